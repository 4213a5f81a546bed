"""Which Slack user groups a user belongs to, as far as Token Desk knows without waiting, and
the Slack statuses of everyone who holds a role.

The role gate asks this on every request and must never wait on Slack, so the answer comes
from memory: the members of each mapped group, fetched with `usergroups.users.list` in the
background, and trusted for at most 60 seconds after the question was asked. A group whose
members are unknown, or known for longer than that, gives nobody a role.

The same background work keeps role holders' Slack statuses (guest, bot, deactivated,
another organisation) in the store, where the role check reads them: a group member's
status is learned before the group's answer is used, and every holder's is asked again
well within 60 seconds, a few look-ups at a time and stopping at Slack's rate limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from math import inf
from typing import Protocol

from slack_sdk.web.async_client import AsyncWebClient

from bot.background import after_ack
from bot.slack_client import SLACK_FAILURES
from bot.user_status import look_up_status, wall_time
from storage.errors import StoreError
from storage.models import UserStatus
from storage.store import Store

logger = logging.getLogger(__name__)
MAX_AGE_SECONDS = 60.0
REFRESH_SECONDS = 25.0
# Asked again once this old, so that with one refresh every 25 s none gets older than 60 s.
STATUS_REFRESH_AGE_SECONDS = MAX_AGE_SECONDS - REFRESH_SECONDS
LOOKUPS_AT_ONCE = 4


class GroupMemberships(Protocol):
    def groups_of(self, user_id: str) -> frozenset[str]:
        """The groups `user_id` is known to be in right now; never waits."""
        ...

    def members_by_group(self) -> dict[str, frozenset[str]]:
        """Every group whose members are known right now, with them; never waits."""
        ...

    def invalidate(self, group_id: str) -> None:
        """Slack said the group's members changed: forget them and fetch them again."""
        ...


class NoGroupMemberships:
    """For an app that does not look group members up: nobody gets a role from a group."""

    def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset()

    def members_by_group(self) -> dict[str, frozenset[str]]:
        return {}

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
        wall_clock: Callable[[], float] = time.time,
        team_id: str | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._max_age = max_age
        self._clock = clock
        # Statuses are kept across restarts, so they are stamped with the wall clock.
        self._wall_clock = wall_clock
        self._team_id = team_id
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._fetching: set[str] = set()
        # Moves on every invalidation: an answer fetched before it is already stale.
        self._generation: dict[str, int] = {}

    def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset(
            group for group, members in self.members_by_group().items() if user_id in members
        )

    def members_by_group(self) -> dict[str, frozenset[str]]:
        now = self._clock()
        return {
            group: members
            for group, (asked_at, members) in self._members.items()
            if now - asked_at <= self._max_age
        }

    def invalidate(self, group_id: str) -> None:
        # Forget first: someone just removed from the group must lose its role at once.
        self._members.pop(group_id, None)
        self._generation[group_id] = self._generation.get(group_id, 0) + 1
        self.refresh_soon(group_id)

    def refresh_soon(self, group_id: str) -> None:
        if group_id not in self._fetching:
            after_ack(self.refresh(group_id), respond=None)

    async def refresh(self, group_id: str) -> None:
        """Fetch the group's members, learn the statuses of those whose status is unknown or
        older than the maximum age, then publish the members, stamped with the moment the
        question was asked, unless the group changed meanwhile (then ask again)."""
        self._fetching.add(group_id)
        try:
            while True:
                generation = self._generation.get(group_id, 0)
                asked_at = self._clock()
                answer = await self._client.usergroups_users_list(usergroup=group_id)
                users = answer.get("users")
                members = frozenset(map(str, users)) if isinstance(users, list) else None
                if members:
                    await self._learn_member_statuses(group_id, members)
                if generation == self._generation.get(group_id, 0):
                    break
            if members is not None:
                self._members[group_id] = (asked_at, members)
        except (*SLACK_FAILURES, StoreError) as error:
            logger.warning("members of %s unknown for now: %s", group_id, type(error).__name__)
        finally:
            self._fetching.discard(group_id)

    async def _learn_member_statuses(self, group_id: str, members: frozenset[str]) -> None:
        try:
            await self.learn_statuses(members, older_than=self._max_age)
        except SLACK_FAILURES as error:
            # The members are still worth knowing: those whose status is unknown get no
            # role from the group until it is learned, the others keep their last known one.
            logger.warning(
                "statuses of members of %s unknown for now: %s", group_id, type(error).__name__
            )

    async def refresh_all(self) -> None:
        """Fetch every mapped group's members; forget groups no longer mapped; then ask
        again for the status of every role holder whose status is unknown or getting old."""
        mappings = await self._store.roles.mappings()
        groups = {group for group, _ in mappings.groups}
        for stale in set(self._members) - groups:
            del self._members[stale]
        await asyncio.gather(*(self.refresh(group) for group in groups))
        holders = {*mappings.bootstrap_admins, *(user for user, _ in mappings.users)}
        for members in self.members_by_group().values():
            holders |= members
        try:
            await self.learn_statuses(holders, older_than=STATUS_REFRESH_AGE_SECONDS)
        except SLACK_FAILURES as error:
            logger.warning("user statuses not refreshed: %s", type(error).__name__)

    async def learn_statuses(self, user_ids: Collection[str], *, older_than: float) -> None:
        """Ask Slack about those of `user_ids` whose status is unknown or at least
        `older_than` seconds old (unknown and oldest first), a few at a time, recording each
        batch as it comes. A rate limit or a failure ends the round: the rest keep their
        last known status, and the next round starts with them."""
        known = await self._store.roles.statuses(user_ids=user_ids)
        now = self._wall_clock()

        def age(user: str) -> float:
            return now - known[user].learned_at.timestamp() if user in known else inf

        # Unknown first, then the oldest. A negative age means the clock was set back: that
        # status is asked again too.
        due = sorted(
            (user for user in user_ids if not 0 <= age(user) < older_than), key=age, reverse=True
        )
        if not due:
            return
        team_id = await self._workspace_team_id()
        for start in range(0, len(due), LOOKUPS_AT_ONCE):
            batch = due[start : start + LOOKUPS_AT_ONCE]
            results = await asyncio.gather(
                *(self._look_up(user, team_id) for user in batch), return_exceptions=True
            )
            learned = [result for result in results if isinstance(result, UserStatus)]
            await self._store.roles.record_statuses(statuses=learned)
            failures = [result for result in results if isinstance(result, BaseException)]
            if failures:
                raise failures[0]

    async def _look_up(self, user_id: str, team_id: str | None) -> UserStatus:
        asked_at = wall_time(self._wall_clock())
        return await look_up_status(self._client, user_id, team_id=team_id, asked_at=asked_at)

    async def _workspace_team_id(self) -> str | None:
        """The workspace's id, asked once; unknown (no one taken for another organisation's)
        until Slack answers."""
        if self._team_id is None:
            try:
                team_id = (await self._client.auth_test()).get("team_id")
            except SLACK_FAILURES as error:
                logger.warning("workspace id unknown for now: %s", type(error).__name__)
                return None
            self._team_id = team_id if isinstance(team_id, str) and team_id else None
        return self._team_id

    async def keep_fresh(self, interval: float = REFRESH_SECONDS) -> None:
        """Runs until cancelled, refreshing well within the 60-second bound."""
        while True:
            try:
                await self.refresh_all()
            except StoreError as error:
                logger.warning("group members not refreshed: %s", error)
            await asyncio.sleep(interval)
