"""The role gate: one global middleware that runs before every listener.

Only the role tables are read here (mappings, and users' last known Slack statuses, so that
a guest, a bot, a deactivated user or someone of another organisation holds no role), and
Slack is never asked: group membership comes from memory. A request from a user without a
role stops here with RoleRequired, which the error handler acknowledges on the surface the
request came from. Events come from Slack, not from a user, and pass without a role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.errors import RoleRequired
from bot.memberships import GroupMemberships
from storage.store import Store

Next = Callable[[], Awaitable[BoltResponse]]


def role_gate(
    store: Store, memberships: GroupMemberships
) -> Callable[..., Awaitable[BoltResponse | None]]:
    async def gate(body: dict[str, Any], context: AsyncBoltContext, next: Next) -> BoltResponse:
        context["store"] = store
        if body.get("type") == "event_callback":
            return await next()
        user_id = context.user_id
        role = None
        if user_id:
            role = await store.roles.effective_role(
                user_id=user_id, group_ids=memberships.groups_of(user_id)
            )
        if role is None:
            raise RoleRequired()
        context["role"] = role
        context["actor"] = user_id
        return await next()

    return gate
