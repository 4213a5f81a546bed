"""Events Slack sends on its own account: group membership changes, App Home visits."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.ids import Event
from bot.memberships import GroupMemberships


def register(app: AsyncApp) -> None:
    app.event(Event.SUBTEAM_MEMBERS_CHANGED)(subteam_members_changed)
    app.event(Event.APP_HOME_OPENED)(app_home_opened)


async def subteam_members_changed(event: dict[str, Any], memberships: GroupMemberships) -> None:
    group_id = event.get("subteam_id")
    if isinstance(group_id, str):
        memberships.invalidate(group_id)


async def app_home_opened() -> None:
    """Only the Messages tab is used (the DMs live there): nothing to render."""
