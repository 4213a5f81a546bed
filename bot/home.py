"""App Home: each user's Home tab, published by Token Desk (`views.publish`).

A manager (a role holder) sees the summary of the tokens and the ones that need attention,
as cards that act exactly as the list's; anyone else sees what Token Desk is and who the
Account Administrators are, and no token data. The role is read as the role gate reads it,
at each publish: a user who lost their role gets the no-role Home the next time it is
published (at once when they are revoked or turned guest).

A Home is published when its user opens the tab, after every change they make (from the
list, a DM or Home itself: from Home with the notice of what was done), and when their
role changes. A publish answering a click on Home passes that view's `hash`, so two updates
never overwrite each other; when Slack answers `hash_conflict` the Home is rendered again
from the store and published.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.background import after_ack
from bot.blocks import home
from bot.blocks.token_list import Notice
from bot.memberships import GroupMemberships
from bot.slack_client import publish_home
from storage.fields import is_user_id
from storage.models import Role
from storage.store import Store

ATTENTION_SHOWN = 10


class HomeTab:
    def __init__(self, client: AsyncWebClient, store: Store, memberships: GroupMemberships) -> None:
        self._client = client
        self._store = store
        self._memberships = memberships

    async def publish(
        self, user_id: str, *, notice: Notice | None = None, view_hash: str | None = None
    ) -> None:
        """Publish `user_id`'s Home as it is now, with `notice` for a manager; `view_hash`:
        the Home view a click came from, which must still be the one shown."""
        if not is_user_id(user_id):
            return
        view = await self._render(user_id, notice)
        if await publish_home(self._client, user_id, view, view_hash=view_hash) is False:
            # Another publish came first: this picture is as out of date as that hash.
            view = await self._render(user_id, notice)
            await publish_home(self._client, user_id, view, view_hash=None)

    def publish_soon(self, user_id: str) -> None:
        """`publish` after the ack, logging any failure."""
        after_ack(self.publish(user_id), respond=None)

    async def _render(self, user_id: str, notice: Notice | None) -> dict[str, Any]:
        store = self._store
        role = await store.roles.effective_role(
            user_id=user_id, group_ids=self._memberships.groups_of(user_id)
        )
        if role is None:
            mappings = await store.roles.mappings()
            admins = [user for user, held in mappings.users if held is Role.ADMIN]
            return home.no_role_home(admins=[*mappings.bootstrap_admins, *admins])
        expiry_required = store.max_lifetime_days > 0
        return home.manager_home(
            summary=await store.token_reads.summary(),
            attention=await store.token_reads.needing_attention(
                limit=ATTENTION_SHOWN, expiry_required=expiry_required
            ),
            newest_version=store.token_reads.newest_version,
            now=datetime.fromtimestamp(store.clock(), UTC),
            expiry_required=expiry_required,
            api_access=store.account.api_access,
            notice=notice,
        )
