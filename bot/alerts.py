"""The alerts channel (TOKENDESK_ALERTS_CHANNEL), told at once when API access is turned on
or off and when a role changes; the scheduler posts its digest there too (bot/scheduler.py).

Listeners call these after the change was committed, after the ack and log only
(`after_ack(..., respond=None)`): an alert that Slack does not take is logged and undoes
nothing. Without a channel configured, nothing is posted.
"""

from __future__ import annotations

from datetime import UTC, datetime

from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import reminders
from bot.settings import Settings
from bot.slack_client import Postable, post_message
from storage.models import Role


async def post_alert(client: AsyncWebClient, settings: Settings, message: Postable) -> None:
    channel = settings.tokendesk_alerts_channel
    if channel is not None:
        await post_message(client, channel, message)


async def api_access_switched(
    client: AsyncWebClient, settings: Settings, *, actor: str, enabled: bool
) -> None:
    message = reminders.api_access_alert(actor=actor, enabled=enabled, at=datetime.now(UTC))
    await post_alert(client, settings, message)


async def role_changed(
    client: AsyncWebClient,
    settings: Settings,
    *,
    actor: str,
    subject: str,
    group: bool,
    before: Role | None,
    after: Role | None,
) -> None:
    """`subject` (a user id, or a user group id when `group`) was mapped to `before` and
    now to `after`; nothing is posted when that is no change."""
    if before != after:
        message = reminders.role_alert(
            actor=actor, subject=subject, group=group, before=before, after=after
        )
        await post_alert(client, settings, message)
