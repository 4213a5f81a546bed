"""The leak guard: a live Token Desk secret posted in a channel is reported within seconds.

Slack sends a `message` event for every message of the public and private channels Token
Desk was invited to (and only those: `message.channels`, `message.groups`; DMs are not read).
Each is scanned in memory (bot/leak_scan.py) and never stored or logged; a message without a
candidate ends there, with no database work. The candidates go to `store.leaks.report`,
which looks them up by HMAC and records each (message, secret) once, in the database: a
retry of the event, an edit, the re-delivery of a parent when someone (the guard included)
replies in its thread, or a restart never report it twice. Slack's retries of one event (the
same `event_id`) are also dropped here before any database work.

For each new report, in this order: the alerts channel; one thread reply in the channel
(naming neither token nor secret); a DM naming the token to its primary contact and to the
poster if they hold a role (Reset now and Disable now for role holders); a poster without a
role is told to delete the message, without token data.

Bolt acknowledges an event once its listener returns; the work is handed to `after_ack`, so
that the ack waits for none of it and shutdown lets it finish.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import after_ack
from bot.blocks import leaks
from bot.ids import Event
from bot.leak_scan import ScannedMessage, scan_event
from bot.memberships import GroupMemberships
from bot.metrics import Metrics
from bot.settings import Settings
from bot.slack_client import permalink, post_message
from storage.errors import StoreBusy
from storage.fields import is_user_id
from storage.models import LeakReport
from storage.store import Store

# Slack retries an event it thinks was not acknowledged up to three times within minutes:
# the ids of the recent events that held a candidate are enough to drop those retries.
RECENT_EVENTS = 4096
# How long a report waits for a busy database (each try waits for the write lock too).
BUSY_PATIENCE_SECONDS = 30.0


class RecentEvents:
    """The ids of the last RECENT_EVENTS events handled, oldest dropped first."""

    def __init__(self, size: int = RECENT_EVENTS) -> None:
        self._size = size
        self._handled: OrderedDict[str, None] = OrderedDict()

    def handled(self, event_id: str | None) -> bool:
        return event_id is not None and event_id in self._handled

    def remember(self, event_id: str | None) -> None:
        if event_id is None:
            return
        self._handled[event_id] = None
        if len(self._handled) > self._size:
            self._handled.popitem(last=False)


def register(app: AsyncApp) -> None:
    recent = RecentEvents()

    async def message(
        event: dict[str, Any],
        body: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
        store: Store,
        settings: Settings,
        memberships: GroupMemberships,
        metrics: Metrics | None,
    ) -> None:
        scanned = scan_event(event, own_bot_id=context.bot_id, own_user_id=context.bot_user_id)
        event_id = body.get("event_id")
        event_id = event_id if isinstance(event_id, str) and event_id else None
        if scanned is None or recent.handled(event_id):
            return

        async def guard() -> None:
            await report_leaks(
                scanned,
                client=client,
                store=store,
                settings=settings,
                memberships=memberships,
                metrics=metrics,
            )
            recent.remember(event_id)

        after_ack(guard(), respond=None)

    app.event(Event.MESSAGE)(message)


async def report_leaks(
    scanned: ScannedMessage,
    *,
    client: AsyncWebClient,
    store: Store,
    settings: Settings,
    memberships: GroupMemberships,
    metrics: Metrics | None = None,
) -> None:
    reports = await _report(store, scanned, disable=settings.tokendesk_leak_action == "disable")
    if not reports:
        return
    if metrics is not None:
        metrics.count_leaks(len(reports))
    link = await permalink(client, scanned.channel, scanned.message_ts)
    alerts = settings.tokendesk_alerts_channel
    if alerts is not None:
        for report in reports:
            alert = leaks.leak_alert(
                report,
                channel=scanned.channel,
                permalink=link,
                poster=scanned.poster,
                disabled=report.disabled,
            )
            await post_message(client, alerts, alert)
    disabled = any(report.disabled for report in reports)
    reply = leaks.thread_reply(disabled=disabled)
    await post_message(client, scanned.channel, reply, thread_ts=scanned.thread_ts)

    async def holds_role(user_id: str) -> bool:
        role = await store.roles.effective_role(
            user_id=user_id, group_ids=memberships.groups_of(user_id)
        )
        return role is not None

    poster = scanned.poster
    poster_may_act = poster is not None and await holds_role(poster)
    told: set[str] = set()
    for report in reports:
        for user_id in _recipients(report, poster if poster_may_act else None):
            dm = leaks.leak_dm(
                report,
                channel=scanned.channel,
                permalink=link,
                poster=poster,
                may_act=await holds_role(user_id),
                disabled=report.disabled,
            )
            await post_message(client, user_id, dm)
            told.add(user_id)
    if poster is not None and poster not in told:
        await post_message(
            client,
            poster,
            leaks.poster_dm(channel=scanned.channel, permalink=link, disabled=disabled),
        )


async def _report(store: Store, scanned: ScannedMessage, *, disable: bool) -> list[LeakReport]:
    """`store.leaks.report`, tried again while the database is busy: Slack has had its ack
    and will not send the event again, so giving up would lose the leak (and a second try
    cannot report it twice: a report is recorded once per message and secret)."""
    deadline = time.monotonic() + BUSY_PATIENCE_SECONDS
    pause = 0.1
    while True:
        try:
            return await store.leaks.report(
                candidates=scanned.candidates,
                channel=scanned.channel,
                message_ts=scanned.message_ts,
                poster=scanned.poster,
                disable=disable,
            )
        except StoreBusy:
            if time.monotonic() + pause > deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)


def _recipients(report: LeakReport, poster_with_role: str | None) -> list[str]:
    """The token's primary contact and a poster who holds a role, each once, user ids only."""
    candidates = [report.token.primary_contact, poster_with_role]
    return [user for user in dict.fromkeys(candidates) if user is not None and is_user_id(user)]
