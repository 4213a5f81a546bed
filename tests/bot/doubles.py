"""Stand-ins for time and for the app's background Slack client, moved and held by the test."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.settings import Settings

DAY = 86_400


class ManualClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WallClock:
    """Real time, set forward or back by the test."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew

    def advance(self, seconds: float) -> None:
        self.skew += seconds

    def days_ago(self, days: float) -> None:
        """From now on the clock reads `days` days before real time."""
        self.skew = -days * DAY


class HeldClient(AsyncWebClient):
    """The app's background client (group members, user statuses), able to hold Slack's
    answers to a method back: an answer Slack gave before a change that reaches the app only
    after Slack's event about that change."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        self._holds: dict[str, asyncio.Event] = {}

    def hold(self, method: str) -> asyncio.Event:
        """Holds the answers to the calls of `method` made from now on until the event is set."""
        release = self._holds[method] = asyncio.Event()
        return release

    def stop_holding(self, method: str) -> None:
        """Calls made from now on are answered at once; those already held stay held."""
        self._holds.pop(method, None)

    async def _held(self, method: str, call: Any) -> AsyncSlackResponse:
        release = self._holds.get(method)
        answer: AsyncSlackResponse = await call
        if release is not None:
            await release.wait()
        return answer

    async def usergroups_users_list(
        self,
        *,
        usergroup: str,
        include_disabled: bool | None = None,
        team_id: str | None = None,
        **kwargs: Any,
    ) -> AsyncSlackResponse:
        call = super().usergroups_users_list(
            usergroup=usergroup, include_disabled=include_disabled, team_id=team_id, **kwargs
        )
        return await self._held("usergroups.users.list", call)

    async def users_info(
        self, *, user: str, include_locale: bool | None = None, **kwargs: Any
    ) -> AsyncSlackResponse:
        call = super().users_info(user=user, include_locale=include_locale, **kwargs)
        return await self._held("users.info", call)
