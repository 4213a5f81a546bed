"""The scheduler against the Slack stand-in and a real SQLite file, on a clock the test moves
(the store's and the scheduler's): reminders, idle tokens, the digest, and how its posts
behave when Slack misbehaves.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientOSError, ServerDisconnectedError
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.state import RetryState

from bot.ids import ActionId
from bot.scheduler import ACTOR, PassReport, Scheduler
from bot.settings import Settings
from bot.slack_client import create_web_client
from slack_standin.blockkit import check_message
from slack_standin.server import SlackStandIn
from storage.models import IDLE, Token, TokenEdit
from storage.store import Store
from tests.bot.blockwalk import SECRET_SHAPE, Body, all_text, assert_harmless, interactive
from tests.bot.conftest import ADMIN, ALICE, BOB, SPECIALIST, Seed
from tests.bot.driver import eventually
from tests.conftest import OpenStore
from tests.store_support import verify

DAY = timedelta(days=1)
ALERTS = "C0ALERTS1"
# A Monday morning, UTC: a token created now with a 40-day lifetime works through 11 April
# and stops at 12 April 00:00 UTC.
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class MovedClock:
    """The wall clock of the store and the scheduler, set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def advance(self, delta: timedelta) -> None:
        self.now += delta.total_seconds()


@pytest.fixture
def wall() -> MovedClock:
    return MovedClock(START)


@pytest.fixture
def store_clock(wall: MovedClock) -> Callable[[], float]:
    return wall


MakeScheduler = Callable[..., Scheduler]


@pytest.fixture
def scheduler_for(settings: Settings, wall: MovedClock) -> MakeScheduler:
    """A scheduler on `store` with the app's client and retry policy, and `settings` changed
    as given (`tokendesk_disable_unused_days=30`, ...)."""

    def make(store: Store, *, timeout: float | None = None, **changed: Any) -> Scheduler:
        configured = settings.model_copy(update=changed)
        client = create_web_client(configured)
        if timeout is not None:
            client.timeout = timeout
        return Scheduler(store=store, client=client, settings=configured, clock=wall)

    return make


def posts_to(standin: SlackStandIn, channel: str) -> list[Body]:
    """The messages Slack accepted for `channel` (a user id for a DM), in order; each one
    Slack takes and a reader finds harmless."""
    found = [
        call.args
        for call in standin.calls_to("chat.postMessage")
        if call.ok and call.args.get("channel") == channel
    ]
    for message in found:
        assert check_message(message) == []
        assert_harmless(message)
    return found


def listed(message: Body) -> list[int]:
    """The token ids a reminder DM lists."""
    return [
        int(block["block_id"].split(".")[1])
        for block in message["blocks"]
        if str(block.get("block_id", "")).startswith("reminder.")
    ]


def days_of(report: PassReport) -> list[tuple[str, int]]:
    return [(due.token.name, due.days) for due in report.reminded]


def stops(token: Token) -> datetime:
    assert token.stops_at is not None
    return token.stops_at


# -- reminders ----------------------------------------------------------------------------


async def test_each_reminder_is_sent_once_across_passes_and_restarts(
    seed: Seed,
    store: Store,
    open_store: OpenStore,
    wall: MovedClock,
    standin: SlackStandIn,
    scheduler_for: MakeScheduler,
) -> None:
    token = (await seed("Nightly export", lifetime_days=40)).token
    scheduler = scheduler_for(store)
    assert days_of(await scheduler.run_pass()) == []
    for days in (30, 7, 1, 0):
        wall.set(stops(token) - days * DAY)
        assert days_of(await scheduler.run_pass()) == [("Nightly export", days)]
        wall.advance(timedelta(minutes=1))
        assert days_of(await scheduler.run_pass()) == []
        # A new instance on the same database knows what was sent.
        await store.close()
        store = await open_store()
        scheduler = scheduler_for(store)
        assert days_of(await scheduler.run_pass()) == []
    wall.advance(30 * DAY)
    assert days_of(await scheduler.run_pass()) == []
    texts = [all_text(message) for message in posts_to(standin, ADMIN)]
    assert len(texts) == 4
    for text, expected in zip(
        texts,
        ("in 30 days", "in 7 days", "in 1 day", "has stopped working"),
        strict=True,
    ):
        assert expected in text and "Nightly export" in text


async def test_after_downtime_only_the_most_urgent_reminder_is_sent(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, scheduler_for: MakeScheduler
) -> None:
    token = (await seed("Partner feed", lifetime_days=40)).token
    scheduler = scheduler_for(store)
    # Down from before the 30-day reminder until 12 hours before the stop.
    wall.set(stops(token) - timedelta(hours=12))
    assert days_of(await scheduler.run_pass()) == [("Partner feed", 1)]
    assert days_of(await scheduler.run_pass()) == []
    # And down again over the stop itself: the on-expiry reminder still comes, once.
    wall.set(stops(token) + 3 * DAY)
    assert days_of(await scheduler.run_pass()) == [("Partner feed", 0)]
    assert days_of(await scheduler.run_pass()) == []
    assert len(posts_to(standin, ADMIN)) == 2


async def test_no_reminder_for_a_day_past_or_today_when_the_date_was_chosen(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, scheduler_for: MakeScheduler
) -> None:
    # Chosen today: "6 days" puts its 7-day moment at today's 00:00, "7 days" at tomorrow's.
    six = (await seed("Six days", lifetime_days=6)).token
    await seed("Seven days", lifetime_days=7)
    scheduler = scheduler_for(store)
    assert days_of(await scheduler.run_pass()) == []
    wall.advance(DAY)
    assert days_of(await scheduler.run_pass()) == [("Seven days", 7)]
    wall.set(stops(six) - DAY)
    assert days_of(await scheduler.run_pass()) == [("Six days", 1)]
    wall.advance(DAY)
    assert days_of(await scheduler.run_pass()) == [("Six days", 0), ("Seven days", 1)]


async def test_a_new_expiry_date_re_arms_the_reminders(
    seed: Seed, store: Store, wall: MovedClock, scheduler_for: MakeScheduler
) -> None:
    token = (await seed("Rotated", lifetime_days=40)).token
    scheduler = scheduler_for(store)
    wall.set(stops(token) - 7 * DAY)
    assert days_of(await scheduler.run_pass()) == [("Rotated", 7)]
    later = token.expires_on + 60 * DAY if token.expires_on else None
    current = await store.token_reads.get(token_id=token.id)
    change = await store.tokens.edit(
        actor=ADMIN,
        token_id=token.id,
        row_version=current.row_version,
        edit=TokenEdit(expires_on=later),
    )
    assert days_of(await scheduler.run_pass()) == []
    wall.set(stops(change.after) - 30 * DAY)
    assert days_of(await scheduler.run_pass()) == [("Rotated", 30)]


async def test_one_dm_per_contact_lists_all_their_due_tokens(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, scheduler_for: MakeScheduler
) -> None:
    alices = [(await seed(f"Alice {n}", contact=ALICE, lifetime_days=40)).token for n in (1, 2, 3)]
    admins = (await seed("Admin's", contact=ADMIN, lifetime_days=40)).token
    await seed("Not yet", contact=ALICE, lifetime_days=60)
    wall.set(stops(admins) - 30 * DAY)
    report = await scheduler_for(store).run_pass()
    assert report.reminder_dms == 2 and len(report.reminded) == 4
    (to_alice,) = posts_to(standin, ALICE)
    assert sorted(listed(to_alice)) == sorted(token.id for token in alices)
    # Alice holds no role: no button, and she is told whom to ask.
    assert interactive(to_alice) == []
    assert "Ask an Account Administrator or an Implementation Specialist" in all_text(to_alice)
    (to_admin,) = posts_to(standin, ADMIN)
    values = {(e["action_id"], e["value"]) for e in interactive(to_admin)}
    ref = f"{admins.id}:{admins.row_version}"
    assert values == {(ActionId.REMINDER_EXTEND, ref), (ActionId.REMINDER_RESET, ref)}
    # Posted to the user id directly: no conversations.open round trip.
    assert standin.calls_to("conversations.open") == []


async def test_a_specialist_contact_gets_the_buttons_too(
    seed: Seed,
    store: Store,
    specialist: str,
    wall: MovedClock,
    standin: SlackStandIn,
    scheduler_for: MakeScheduler,
) -> None:
    token = (await seed("Specialist's", contact=specialist, lifetime_days=10)).token
    wall.set(stops(token) - 7 * DAY)
    await scheduler_for(store).run_pass()
    (message,) = posts_to(standin, SPECIALIST)
    assert len(interactive(message)) == 2
    await store.roles.revoke_user(actor=ADMIN, user_id=SPECIALIST)
    wall.set(stops(token) - DAY)
    await scheduler_for(store).run_pass()
    assert interactive(posts_to(standin, SPECIALIST)[1]) == []


async def test_no_reminder_for_disabled_or_deleted_tokens(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, scheduler_for: MakeScheduler
) -> None:
    disabled = (await seed("Disabled", lifetime_days=40)).token
    deleted = (await seed("Deleted", lifetime_days=40)).token
    await seed("Kept", lifetime_days=40)
    await store.tokens.set_enabled(actor=ADMIN, token_id=disabled.id, enabled=False)
    await store.tokens.delete(actor=ADMIN, token_id=deleted.id, row_version=deleted.row_version)
    scheduler = scheduler_for(store)
    for days in (30, 7, 1, 0):
        wall.set(stops(disabled) - days * DAY)
        assert days_of(await scheduler.run_pass()) == [("Kept", days)]
    assert all(listed(message) != [disabled.id] for message in posts_to(standin, ADMIN))


async def test_a_post_that_fails_for_one_contact_does_not_stop_the_others(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, scheduler_for: MakeScheduler
) -> None:
    await seed("Alice's", contact=ALICE, lifetime_days=10)
    token = (await seed("Bob's", contact=BOB, lifetime_days=10)).token
    standin.fail_next("chat.postMessage", "channel_not_found", status=200, retry_after=None)
    wall.set(stops(token) - 7 * DAY)
    report = await scheduler_for(store).run_pass()
    assert report.reminder_dms == 1 and report.posts_failed == 1
    assert len(posts_to(standin, ALICE)) + len(posts_to(standin, BOB)) == 1
    # The failed one was marked before it was posted: it is not sent again.
    assert days_of(await scheduler_for(store).run_pass()) == []


# -- idle tokens --------------------------------------------------------------------------


async def test_an_idle_token_is_warned_then_disabled_a_week_later(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, scheduler_for: MakeScheduler
) -> None:
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    idle = await seed("Forgotten", contact=ALICE, lifetime_days=365)
    used = await seed("Still used", contact=ALICE, lifetime_days=365)
    scheduler = scheduler_for(
        store, tokendesk_disable_unused_days=30, tokendesk_alerts_channel=ALERTS
    )
    wall.advance(22 * DAY)
    report = await scheduler.run_pass()
    assert report.warned == () and report.disabled == ()
    wall.advance(DAY)
    report = await scheduler.run_pass()
    assert sorted(item.token.name for item in report.warned) == ["Forgotten", "Still used"]
    (warning,) = posts_to(standin, ALICE)
    assert "2 of your tokens have not been used" in all_text(warning)
    assert (await scheduler.run_pass()).warned == ()
    # A use ends the idle period: that token is not disabled.
    assert verify(store, used.secret) is not None
    wall.advance(6 * DAY)
    assert (await scheduler.run_pass()).disabled == ()
    wall.advance(DAY)
    report = await scheduler.run_pass()
    assert [token.name for token in report.disabled] == ["Forgotten"]
    token = await store.token_reads.get(token_id=idle.token.id)
    assert not token.enabled and token.disabled_reason == IDLE
    assert verify(store, idle.secret) is None
    assert verify(store, used.secret) is not None
    events = await store.audit.events(limit=1)
    assert (events[0].actor, events[0].action, events[0].token_sid) == (
        ACTOR,
        "disable",
        idle.token.sid,
    )
    told = posts_to(standin, ALICE)[-1]
    assert "Token Desk disabled 1 of your tokens: unused for 30 days" in all_text(told)
    assert listed(told) == [idle.token.id]
    (digest,) = posts_to(standin, ALERTS)
    assert "Forgotten" in all_text(digest) and "unused for 30 days" in all_text(digest)
    assert (await scheduler.run_pass()).disabled == ()


# -- the alerts channel -------------------------------------------------------------------


async def test_one_digest_per_pass_of_what_stops_within_a_week(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, scheduler_for: MakeScheduler
) -> None:
    soon = [
        (await seed(f"Soon {n}", contact=c, lifetime_days=10)).token
        for n, c in enumerate((ALICE, BOB, ADMIN))
    ]
    # Its 30-day reminder comes with their 7-day ones, but it stops in a month.
    await seed("Far", contact=ALICE, lifetime_days=33)
    scheduler = scheduler_for(store, tokendesk_alerts_channel=ALERTS)
    assert not (await scheduler.run_pass()).digest_posted
    wall.set(stops(soon[0]) - 7 * DAY)
    report = await scheduler.run_pass()
    assert ("Far", 30) in days_of(report) and len(report.reminded) == 4
    assert report.digest_posted and report.reminder_dms == 3
    (digest,) = posts_to(standin, ALERTS)
    text = all_text(digest)
    assert "3 tokens stopping within 7 days or stopped" in text
    assert all(f"Soon {n}" in text for n in range(3)) and "Far" not in text
    assert f"<@{ALICE}>" in text and f"<@{BOB}>" in text
    assert not (await scheduler.run_pass()).digest_posted
    assert len(posts_to(standin, ALERTS)) == 1


async def test_without_an_alerts_channel_no_digest_is_posted(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, scheduler_for: MakeScheduler
) -> None:
    token = (await seed("Soon", lifetime_days=5)).token
    wall.set(stops(token) - DAY)
    report = await scheduler_for(store).run_pass()
    assert report.reminder_dms == 1 and not report.digest_posted
    assert len(standin.calls_to("chat.postMessage")) == 1


# -- Slack misbehaving --------------------------------------------------------------------


@pytest.mark.parametrize(("error", "status"), [("ratelimited", 429), ("internal_error", 500)])
async def test_a_post_slack_refused_for_its_load_is_retried_once(
    seed: Seed,
    store: Store,
    wall: MovedClock,
    standin: SlackStandIn,
    scheduler_for: MakeScheduler,
    error: str,
    status: int,
) -> None:
    token = (await seed("Retried", lifetime_days=5)).token
    standin.fail_next("chat.postMessage", error, status=status, retry_after=1)
    wall.set(stops(token) - DAY)
    report = await scheduler_for(store).run_pass()
    assert report.reminder_dms == 1 and report.posts_failed == 0
    tried = standin.calls_to("chat.postMessage")
    assert [call.status for call in tried] == [status, 200]
    if status == 429:
        assert tried[1].time - tried[0].time >= 1, "Retry-After was not honoured"
    assert len(posts_to(standin, ADMIN)) == 1


async def test_a_timed_out_post_is_not_retried_nor_sent_again(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, scheduler_for: MakeScheduler
) -> None:
    token = (await seed("Slow Slack", lifetime_days=5)).token
    standin.delay_next("chat.postMessage", 1.5)
    wall.set(stops(token) - DAY)
    scheduler = scheduler_for(store, timeout=1)
    report = await scheduler.run_pass()
    assert report.reminder_dms == 0 and report.posts_failed == 1
    # Slack took it after all, once: the app neither retried nor sends it again.
    await eventually(lambda: standin.calls_to("chat.postMessage"))
    assert days_of(await scheduler.run_pass()) == []
    await asyncio.sleep(0.2)
    assert len(standin.calls_to("chat.postMessage")) == 1


@pytest.mark.parametrize("error", [ServerDisconnectedError(), ClientOSError()])
async def test_a_post_is_never_retried_after_a_connection_error(
    settings: Settings, error: Exception
) -> None:
    """A connection that failed may have carried the post: only other calls are retried."""
    client = create_web_client(settings)

    async def retried(method: str) -> bool:
        request = HttpRequest(
            method="POST", url=f"{settings.slack_api_url}{method}", headers={}, body_params={}
        )
        answers = [
            await handler.can_retry_async(
                state=RetryState(), request=request, response=None, error=error
            )
            for handler in client.retry_handlers
        ]
        return any(answers)

    assert not await retried("chat.postMessage")
    assert not await retried("views.open")
    assert await retried("chat.update")


# -- running on its own -------------------------------------------------------------------


async def test_the_first_pass_comes_within_5_seconds_and_a_moved_clock_is_honoured(
    seed: Seed, store: Store, wall: MovedClock, standin: SlackStandIn, settings: Settings
) -> None:
    token = (await seed("Due at start", lifetime_days=5)).token
    wall.set(stops(token) - DAY)
    scheduler = Scheduler(
        store=store, client=create_web_client(settings), settings=settings, clock=wall
    )
    started = asyncio.get_running_loop().time()
    running = asyncio.create_task(scheduler.run_forever())
    try:
        await eventually(lambda: posts_to(standin, ADMIN), timeout=5)
        assert asyncio.get_running_loop().time() - started < 5
        quick = Scheduler(
            store=store,
            client=create_web_client(settings),
            settings=settings,
            clock=wall,
            first_pass_seconds=0,
            interval_seconds=0.05,
        )
        running.cancel()
        running = asyncio.create_task(quick.run_forever())
        wall.set(stops(token))
        await eventually(lambda: len(posts_to(standin, ADMIN)) == 2, timeout=2)
        assert "has stopped working" in all_text(posts_to(standin, ADMIN)[1])
    finally:
        running.cancel()


async def test_no_secret_in_any_dm_post_or_log_line(
    seed: Seed,
    store: Store,
    wall: MovedClock,
    standin: SlackStandIn,
    scheduler_for: MakeScheduler,
    captured_log: io.StringIO,
) -> None:
    issued = [
        await seed(f"Token {n}", contact=c, lifetime_days=10) for n, c in enumerate((ADMIN, ALICE))
    ]
    scheduler = scheduler_for(
        store, tokendesk_disable_unused_days=14, tokendesk_alerts_channel=ALERTS
    )
    for days in (7, 1, 0, -7, -14):
        wall.set(stops(issued[0].token) - days * DAY)
        await scheduler.run_pass()
    sent = repr([call.args for call in standin.calls])
    assert len(standin.calls_to("chat.postMessage")) >= 8
    log = captured_log.getvalue()
    assert "scheduler pass" in log
    for each in issued:
        assert each.secret not in sent and each.secret[4:36] not in sent
        assert each.secret not in log and each.secret[4:36] not in log
    assert not SECRET_SHAPE.search(sent) and not SECRET_SHAPE.search(log)
