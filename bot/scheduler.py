"""The scheduler: the work that comes due with time, done by the app itself (no cron).

A first pass runs within seconds of start-up, then one every minute, each on the instance's
wall clock (`clock`, the store's too: a clock moved forward is honoured). A pass reads only
what is due, through the store's indexed queries (`store.expiry`), never every token:

1. Reminders. The due ones are marked in one transaction, committed before anything is
   posted: a reminder goes out at most once, even when the process dies between the mark
   and the post (it is then lost, never doubled). Then one DM per primary contact lists all
   their due tokens, posted to the user id directly. Contacts who hold a role get Extend…
   and Reset… on each token; the others are told whom to ask.
2. Idle tokens, when TOKENDESK_DISABLE_UNUSED_DAYS is set: the warnings are marked, then
   told, one DM per contact; the tokens whose contact was warned at least a week ago are
   disabled by `tokendesk` (audited, with the reason the card shows), then told likewise.
3. One digest to the alerts channel, if there is one and the pass did anything it reports.

Before those, retired secrets: the counts of their presentations gathered in memory are
written, grace windows that ended by time are retired for good, digests retired 30 days ago
are forgotten, and the primary contact of each retired secret presented for the first time
gets one DM (marked before it is posted, like a reminder).

Posts go one after another (Slack limits chat.postMessage per channel and per workspace,
and batching per contact keeps a thousand due tokens to a few dozen posts). The client
retries a post only when Slack answered `rate_limited` or a 5xx (it was not posted), never
after a timeout (bot/slack_client.py). A post that fails is logged and the pass goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import notifications, reminders
from bot.memberships import GroupMemberships, NoGroupMemberships
from bot.metrics import Metrics
from bot.settings import Settings
from bot.slack_client import Postable, Posted, post_message, sharing_connections
from storage.errors import StoreError, TokenNotFound
from storage.fields import is_user_id
from storage.models import IDLE, DueReminder, IdleToken, Token
from storage.store import Store

logger = logging.getLogger(__name__)
ACTOR = "tokendesk"
FIRST_PASS_SECONDS = 2.0
PASS_INTERVAL_SECONDS = 60.0
# A contact is warned this long before Token Desk disables an unused token.
IDLE_WARNING_DAYS = 7
_WARNING = timedelta(days=IDLE_WARNING_DAYS)
# The digest reports the reminded tokens that stop within this many days, or have stopped.
DIGEST_DAYS = 7

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass did. `slack_seconds` is the time spent waiting on Slack's answers."""

    reminded: tuple[DueReminder, ...] = ()
    reminder_dms: int = 0
    warned: tuple[IdleToken, ...] = ()
    disabled: tuple[Token, ...] = ()
    digest_posted: bool = False
    presentation_dms: int = 0
    posts_failed: int = 0
    slack_seconds: float = 0.0


class _Posts:
    """Posts one message at a time, counting the failures and the time Slack took."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self.failed = 0
        self.seconds = 0.0

    async def send(self, channel: str, message: Postable) -> Posted | None:
        started = time.perf_counter()
        try:
            posted = await post_message(self._client, channel, message)
        finally:
            self.seconds += time.perf_counter() - started
        if posted is None:
            self.failed += 1
        return posted


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        client: AsyncWebClient,
        settings: Settings,
        memberships: GroupMemberships | None = None,
        clock: Callable[[], float] = time.time,
        first_pass_seconds: float = FIRST_PASS_SECONDS,
        interval_seconds: float = PASS_INTERVAL_SECONDS,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._client = client
        self._settings = settings
        self._memberships = memberships or NoGroupMemberships()
        self._clock = clock
        self._first_pass_seconds = first_pass_seconds
        self._interval_seconds = interval_seconds

    async def run_forever(self) -> None:
        """Runs until cancelled. The first pass waits a moment, so that the role holders
        of user groups are known by then (they get the buttons)."""
        await asyncio.sleep(self._first_pass_seconds)
        while True:
            try:
                await self.run_pass()
            except StoreError as error:
                logger.warning("scheduler pass not done: %s", type(error).__name__)
            except Exception:
                # The next pass tries again: a bug in one pass must not stop the reminders.
                logger.exception("scheduler pass failed")
            await asyncio.sleep(self._interval_seconds)

    async def run_pass(self) -> PassReport:
        """One pass of the due work; an empty report when another instance is doing it."""
        async with self._store.scheduled_work() as ours:
            if not ours:
                return PassReport()
            async with sharing_connections(self._client) as client:
                report = await self._run_pass(_Posts(client))
        if self._metrics is not None:
            self._metrics.count_scheduled(
                reminders_sent=report.reminder_dms, automatic_disables=len(report.disabled)
            )
        return report

    async def _run_pass(self, posts: _Posts) -> PassReport:
        presentation_dms = await self._retired_secrets(posts)
        reminded, reminder_dms = await self._remind(posts)
        warned: list[IdleToken] = []
        disabled: list[Token] = []
        if self._settings.tokendesk_disable_unused_days:
            warned, disabled = await self._switch_off_unused(posts)
        digest_posted = await self._post_digest(posts, reminded, disabled)
        report = PassReport(
            reminded=tuple(reminded),
            reminder_dms=reminder_dms,
            warned=tuple(warned),
            disabled=tuple(disabled),
            digest_posted=digest_posted,
            presentation_dms=presentation_dms,
            posts_failed=posts.failed,
            slack_seconds=posts.seconds,
        )
        if reminded or warned or disabled:
            logger.info(
                "scheduler pass: %d reminders in %d DMs, %d idle warnings, %d disabled,"
                " %d posts failed",
                len(reminded),
                reminder_dms,
                len(warned),
                len(disabled),
                posts.failed,
            )
        return report

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def _retired_secrets(self, posts: _Posts) -> int:
        """Write the counts of retired secrets presented (with the last-used times), retire
        the grace windows that ended by time, forget the digests retired 30 days ago; then
        one DM to the primary contact per retired secret presented for the first time,
        marked before it is posted (so at most once); how many went out."""
        await self._store.credentials.flush_last_used()
        work = await self._store.expiry.retired_work()
        if work.lapsed_windows:
            await self._store.expiry.retire_lapsed_windows()
        if work.purgeable:
            await self._store.expiry.purge_retired()
        if not work.first_presentations:
            return 0
        sent = 0
        for presentation in await self._store.expiry.first_presentations():
            contact = presentation.token.primary_contact
            if is_user_id(contact):
                message = notifications.retired_secret_presented(presentation)
                sent += await posts.send(contact, message) is not None
        if sent:
            logger.info("scheduler pass: %d DMs about retired secrets still presented", sent)
        return sent

    async def _remind(self, posts: _Posts) -> tuple[list[DueReminder], int]:
        due = await self._store.expiry.due_reminders(
            reminder_days=self._settings.tokendesk_reminder_days
        )
        if not due:
            return [], 0
        marked = await self._store.expiry.mark_reminders(reminders=due)
        now = self._now()
        by_contact = _by_contact(marked, lambda due: due.token.primary_contact)
        roles = await self._store.roles.effective_roles(
            groups_by_user={contact: self._memberships.groups_of(contact) for contact in by_contact}
        )
        # Every DM is written before the first is posted: the work stays in one stretch,
        # rather than going cold between round trips to Slack.
        messages = [
            (contact, reminders.reminder_dm(items, now=now, may_act=roles[contact] is not None))
            for contact, items in by_contact.items()
        ]
        sent = 0
        for contact, message in messages:
            sent += await posts.send(contact, message) is not None
        return marked, sent

    async def _switch_off_unused(self, posts: _Posts) -> tuple[list[IdleToken], list[Token]]:
        unused_days = self._settings.tokendesk_disable_unused_days
        # A use on any instance ends an idle period: with several, theirs are written first.
        if not await self._store.gather_uses():
            logger.info("idle tokens left for the next pass: an instance did not write its uses")
            return [], []
        to_warn, to_disable = await self._store.expiry.idle_tokens(
            unused_days=unused_days, warn_days_before=IDLE_WARNING_DAYS
        )
        warned = await self._store.expiry.mark_idle_warnings(tokens=to_warn) if to_warn else []
        now = self._now()
        for contact, items in _by_contact(warned, lambda idle: idle.token.primary_contact).items():
            disabled_from = min(
                max(idle.idle_since + timedelta(days=unused_days), now + _WARNING) for idle in items
            )
            message = reminders.idle_warning_dm(
                items, unused_days=unused_days, disabled_from=disabled_from
            )
            await posts.send(contact, message)
        disabled = []
        for idle in to_disable:
            try:
                change = await self._store.tokens.set_enabled(
                    actor=ACTOR,
                    token_id=idle.token.id,
                    enabled=False,
                    reason=IDLE,
                    idle_since=idle.idle_since,
                )
            except TokenNotFound:
                continue
            if change.changed:
                disabled.append(change.after)
        for contact, tokens in _by_contact(disabled, lambda token: token.primary_contact).items():
            await posts.send(contact, reminders.idle_disabled_dm(tokens, unused_days=unused_days))
        return warned, disabled

    async def _post_digest(
        self, posts: _Posts, reminded: Sequence[DueReminder], disabled: Sequence[Token]
    ) -> bool:
        channel = self._settings.tokendesk_alerts_channel
        now = self._now()
        # A token stops at a 00:00 UTC: within the days, or stopped, when that is at the
        # latest the 00:00 UTC that starts the window's last day.
        window_end = now + timedelta(days=DIGEST_DAYS)
        last_day = datetime(window_end.year, window_end.month, window_end.day, tzinfo=UTC)
        soon = [due for due in reminded if due.token.stops_at <= last_day]
        if channel is None or not (soon or disabled):
            return False
        message = reminders.digest(
            soon, disabled, unused_days=self._settings.tokendesk_disable_unused_days, now=now
        )
        return await posts.send(channel, message) is not None


def _by_contact(items: Iterable[T], contact_of: Callable[[T], str]) -> dict[str, list[T]]:
    """`items` grouped by their token's primary contact, in order of first appearance;
    a contact that is not a Slack user id cannot be sent a DM and is left out."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(contact_of(item), []).append(item)
    return {contact: group for contact, group in groups.items() if is_user_id(contact)}
