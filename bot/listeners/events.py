"""Events Slack sends on its own account: group membership changes, user changes, App Home
visits (the Home tab is published then)."""

from __future__ import annotations

import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.background import after_ack
from bot.home import HomeTab
from bot.ids import Event
from bot.inputs.payloads import event_group_id, event_user
from bot.memberships import GroupMemberships
from bot.user_status import status_of, wall_time
from storage.models import UserStatus
from storage.store import Store


def register(app: AsyncApp) -> None:
    app.event(Event.SUBTEAM_MEMBERS_CHANGED)(subteam_members_changed)
    app.event(Event.USER_CHANGE)(user_change)
    app.event(Event.APP_HOME_OPENED)(app_home_opened)


async def subteam_members_changed(event: dict[str, Any], memberships: GroupMemberships) -> None:
    group_id = event_group_id(event)
    if group_id is not None:
        memberships.invalidate(group_id)


async def user_change(
    event: dict[str, Any], context: AsyncBoltContext, store: Store, home: HomeTab
) -> None:
    """Someone was made a guest, deactivated, or changed otherwise: the user object carries
    what `users.info` would say, and is kept at once, so that the role check applies it to
    their very next request."""
    changed = event_user(event)
    if changed is None:
        return
    user_id, user = changed
    status = status_of(user, team_id=context.team_id)
    learned = UserStatus(user_id, status, wall_time(time.time()))

    async def record() -> None:
        await store.roles.record_statuses(statuses=[learned])
        if not status.may_hold_a_role:
            # A guest, a bot, a deactivated user: their Home shows token data no more.
            await home.publish(user_id)

    # The ack waits for the listener: a write that waits for the database would delay it.
    after_ack(record(), respond=None)


async def ignore() -> None:
    """An event Token Desk has no use for."""


async def app_home_opened(event: dict[str, Any], home: HomeTab) -> None:
    """The Home tab opened: published as it is now. The event also fires for the Messages
    tab (where the DMs live), which needs nothing."""
    user_id = event.get("user")
    if event.get("tab") == "home" and isinstance(user_id, str):
        home.publish_soon(user_id)
