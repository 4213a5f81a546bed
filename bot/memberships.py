"""Which Slack user groups a user belongs to, as far as Token Desk knows without waiting.

The role gate asks this on every request and must never wait on Slack, so the answer comes
from memory: the members of each mapped group, fetched with `usergroups.users.list` in the
background, and trusted for at most 60 seconds. A group whose members are unknown, or known
for longer than that, gives nobody a role (PRODUCT.md §1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import spawn
from storage.errors import StoreError
from storage.store import Store

logger = logging.getLogger(__name__)
MAX_AGE_SECONDS = 60.0
REFRESH_SECONDS = 25.0


class GroupMemberships(Protocol):
    def groups_of(self, user_id: str) -> frozenset[str]:
        """The groups `user_id` is known to be in right now; never waits."""
        ...

    def invalidate(self, group_id: str) -> None:
        """Slack said the group's members changed: forget them and fetch them again."""
        ...


class NoGroupMemberships:
    """For an app that does not look group members up: nobody gets a role from a group."""

    def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset()

    def invalidate(self, group_id: str) -> None:
        return None


class SlackGroupMemberships:
    def __init__(
        self,
        client: AsyncWebClient,
        store: Store,
        *,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._store = store
        self._max_age = max_age
        self._clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._fetching: set[str] = set()
        # Moves on every invalidation: an answer fetched before it is already stale.
        self._generation: dict[str, int] = {}

    def groups_of(self, user_id: str) -> frozenset[str]:
        now = self._clock()
        return frozenset(
            group
            for group, (fetched_at, members) in self._members.items()
            if now - fetched_at <= self._max_age and user_id in members
        )

    def invalidate(self, group_id: str) -> None:
        # Forget first: someone just removed from the group must lose its role at once.
        self._members.pop(group_id, None)
        self._generation[group_id] = self._generation.get(group_id, 0) + 1
        self.refresh_soon(group_id)

    def refresh_soon(self, group_id: str) -> None:
        if group_id not in self._fetching:
            spawn(self.refresh(group_id))

    async def refresh(self, group_id: str) -> None:
        self._fetching.add(group_id)
        try:
            while True:
                generation = self._generation.get(group_id, 0)
                answer = await self._client.usergroups_users_list(usergroup=group_id)
                if generation == self._generation.get(group_id, 0):
                    break
            users = answer.get("users")
            if isinstance(users, list):
                self._members[group_id] = (self._clock(), frozenset(map(str, users)))
        except (SlackApiError, SlackClientError, ClientError, OSError, TimeoutError) as error:
            logger.warning("members of %s unknown for now: %s", group_id, type(error).__name__)
        finally:
            self._fetching.discard(group_id)

    async def refresh_all(self) -> None:
        """Fetch every mapped group's members; forget groups no longer mapped."""
        groups = {group for group, _ in (await self._store.roles.mappings()).groups}
        for stale in set(self._members) - groups:
            del self._members[stale]
        await asyncio.gather(*(self.refresh(group) for group in groups))

    async def keep_fresh(self, interval: float = REFRESH_SECONDS) -> None:
        """Runs until cancelled, refreshing well within the 60-second bound."""
        while True:
            try:
                await self.refresh_all()
            except StoreError as error:
                logger.warning("group members not refreshed: %s", error)
            await asyncio.sleep(interval)
