"""A user's Slack status as the role check needs it: bots, guests, deactivated users and
people of another organisation hold no role.

Statuses are learned off the request path (when a role is granted, when a group's members
are read, by the background refresh, and from Slack's `user_change` event) and kept in the
store, which the role check reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from storage.models import SlackStatus, UserStatus

# users.info answers these for an id that names nobody this app can see.
NOBODY_ERRORS = frozenset({"user_not_found", "user_not_visible"})


def status_of(user: Mapping[str, Any], *, team_id: str | None) -> SlackStatus:
    """Classify a user object (from `users.info` or a `user_change` event). `team_id` is the
    workspace's; when it is not known, nobody is taken for another organisation's."""
    if user.get("is_bot") or user.get("is_app_user") or user.get("id") == "USLACKBOT":
        return SlackStatus.BOT
    if user.get("is_restricted") or user.get("is_ultra_restricted"):
        return SlackStatus.GUEST
    if user.get("deleted"):
        return SlackStatus.DEACTIVATED
    if team_id and user.get("team_id") not in (None, team_id):
        return SlackStatus.OTHER_ORGANISATION
    return SlackStatus.MEMBER


async def look_up_status(
    client: AsyncWebClient, user_id: str, *, team_id: str | None, asked_at: datetime
) -> UserStatus:
    """Ask Slack with `users.info`; the answer is stamped `asked_at`, the moment the question
    left (a later answer from elsewhere must win over this one). Raises what the client
    raises, except for an id Slack does not know, which is a status of its own."""
    try:
        answer = await client.users_info(user=user_id)
    except SlackApiError as error:
        if error.response.get("error") in NOBODY_ERRORS:
            return UserStatus(user_id, SlackStatus.UNKNOWN_TO_SLACK, asked_at)
        raise
    user = answer.get("user")
    if not isinstance(user, dict):
        return UserStatus(user_id, SlackStatus.UNKNOWN_TO_SLACK, asked_at)
    return UserStatus(user_id, status_of(user, team_id=team_id), asked_at)


def wall_time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
