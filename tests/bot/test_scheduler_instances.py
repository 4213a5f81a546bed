"""The scheduler of two instances on one PostgreSQL database: two stores opened in the test
process, each with its own scheduler, posting to one Slack stand-in, on one clock the test
moves. Whichever instance runs a pass, at the same time as the other or after it, each
reminder, idle warning and idle disable happens once in all; what each instance gathers
in memory (last-used times, retired secrets' presentations) adds up once both have flushed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest

from bot.scheduler import ACTOR, PassReport, Scheduler
from bot.settings import Settings
from slack_standin.server import SlackStandIn
from storage.models import IDLE, IssuedToken
from storage.store import Store
from tests.bot import test_scheduler as scheduling
from tests.bot.blockwalk import Body, all_text
from tests.bot.conftest import ADMIN, ALICE, BOB, SIGNING_SECRET, Seed
from tests.bot.test_scheduler import (
    ALERTS,
    DAY,
    START,
    MakeScheduler,
    MovedClock,
    days_of,
    listed,
    posts_to,
    stops,
)
from tests.conftest import OpenStore
from tests.storage.test_retired_secrets import present
from tests.store_support import verify

# The fixtures of tests/bot/test_scheduler.py: the wall clock the test moves (the stores'
# and the schedulers'), and a scheduler on a given store with `settings` changed.
wall = scheduling.wall
store_clock = scheduling.store_clock
scheduler_for = scheduling.scheduler_for

UNUSED_DAYS = 30
# What a reminder, an idle warning and an idle disable DM open with.
REMINDER, WARNING, DISABLED = ":hourglass_flowing_sand:", ":zzz:", ":no_entry:"
CONTACTS = (ADMIN, ALICE, BOB)


@pytest.fixture
def settings(standin: SlackStandIn, postgres_url: str) -> Settings:
    """The app's settings with the store in PostgreSQL, as every instance has them."""
    return Settings(
        _env_file=None,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=standin.api_url,
        tokendesk_database_url=postgres_url,
        tokendesk_secret_key="ab" * 32,
        tokendesk_admins=ADMIN,
    )


@pytest.fixture
async def other(store: Store, open_store: OpenStore) -> Store:
    """A second instance on the database of `store` (the first)."""
    return await open_store()


async def together(schedulers: Sequence[Scheduler]) -> list[PassReport]:
    """One pass of each scheduler started at the same time. A pass that did nothing must
    have found another one holding the work: it ended before the one that did the work."""
    loop = asyncio.get_running_loop()

    async def timed(scheduler: Scheduler) -> tuple[PassReport, float]:
        report = await scheduler.run_pass()
        return report, loop.time()

    finished = await asyncio.gather(*(timed(scheduler) for scheduler in schedulers))
    reports = [report for report, _ in finished]
    worked = [ended for report, ended in finished if report != PassReport()]
    idle = [ended for report, ended in finished if report == PassReport()]
    assert len(worked) == 1 and len(idle) == len(schedulers) - 1, reports
    assert max(idle) < worked[0], "the pass that did nothing waited for the other"
    return reports


async def in_turn(schedulers: Sequence[Scheduler]) -> list[PassReport]:
    """One pass of each scheduler, one after the other; only the first finds work."""
    reports = [await scheduler.run_pass() for scheduler in schedulers]
    assert all(report == PassReport() for report in reports[1:]), reports
    return reports


async def nothing_left(schedulers: Sequence[Scheduler]) -> None:
    """Passes at the same time and one after the other find nothing more to do."""
    for reports in (
        await asyncio.gather(*(scheduler.run_pass() for scheduler in schedulers)),
        await in_turn(schedulers),
        await in_turn(schedulers[::-1]),
    ):
        assert all(report == PassReport() for report in reports), reports


def the_one_that_worked(reports: Sequence[PassReport]) -> PassReport:
    (report,) = [report for report in reports if report != PassReport()]
    return report


def dms(standin: SlackStandIn, kind: str) -> list[tuple[str, Body]]:
    """(contact, message) of every DM of `kind` (its opening) Slack took, by contact."""
    return [
        (contact, message)
        for contact in CONTACTS
        for message in posts_to(standin, contact)
        if all_text(message).startswith(kind)
    ]


def listed_in(standin: SlackStandIn, kind: str) -> list[int]:
    """The token ids every DM of `kind` listed, each as often as it was listed."""
    return sorted(token_id for _, message in dms(standin, kind) for token_id in listed(message))


# -- reminders ----------------------------------------------------------------------------


async def test_each_reminder_goes_out_once_whichever_instance_runs_the_pass(
    seed: Seed,
    store: Store,
    other: Store,
    wall: MovedClock,
    standin: SlackStandIn,
    scheduler_for: MakeScheduler,
) -> None:
    issued = [
        await seed(name, contact=contact, lifetime_days=40)
        for name, contact in (
            ("Alice export", ALICE),
            ("Alice feed", ALICE),
            ("Bob sync", BOB),
            ("Admin audit", ADMIN),
        )
    ]
    ids = sorted(each.token.id for each in issued)
    first = scheduler_for(store, tokendesk_alerts_channel=ALERTS)
    second = scheduler_for(other, tokendesk_alerts_channel=ALERTS)
    stop = stops(issued[0].token)
    # Each day's reminders run at the same time on both, or one after the other, either way.
    rounds = ((30, together), (7, in_turn), (1, together), (0, in_turn))
    digests = 0
    for number, (days, run) in enumerate(rounds):
        wall.set(stop - days * DAY)
        order = [first, second] if number % 2 else [second, first]
        report = the_one_that_worked(await run(order))
        assert sorted(days_of(report)) == sorted((each.token.name, days) for each in issued)
        assert report.reminder_dms == 3 and report.posts_failed == 0
        # The digest reports what stops within a week: not the 30-day reminders.
        assert report.digest_posted is (days <= 7)
        digests += report.digest_posted
        assert len(posts_to(standin, ALERTS)) == digests
        await nothing_left(order)
        # Every contact got this day's DM once, listing each of their tokens once.
        assert len(dms(standin, REMINDER)) == 3 * (number + 1)
        assert listed_in(standin, REMINDER) == sorted(ids * (number + 1))
    for contact, expected in ((ALICE, 2), (BOB, 1), (ADMIN, 1)):
        texts = [all_text(message) for message in posts_to(standin, contact)]
        assert len(texts) == len(rounds)
        for text, words in zip(
            texts, ("in 30 days", "in 7 days", "in 1 day", "stopped working"), strict=True
        ):
            assert words in text
            assert sum(each.token.name in text for each in issued) == expected
    assert digests == 3
    wall.advance(30 * DAY)
    await nothing_left([first, second])


# -- idle tokens --------------------------------------------------------------------------


async def test_each_idle_warning_and_disable_happens_once_across_instances(
    seed: Seed,
    store: Store,
    other: Store,
    wall: MovedClock,
    standin: SlackStandIn,
    scheduler_for: MakeScheduler,
) -> None:
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    early = [
        await seed(name, contact=contact, lifetime_days=365)
        for name, contact in (("Old cron", ALICE), ("Old report", ALICE), ("Old sync", BOB))
    ]
    used = await seed("In use", contact=BOB, lifetime_days=365)
    wall.advance(2 * DAY)
    late = [await seed("Later cron", contact=ALICE, lifetime_days=365)]
    changed = {"tokendesk_disable_unused_days": UNUSED_DAYS, "tokendesk_alerts_channel": ALERTS}
    first = scheduler_for(store, **changed)
    second = scheduler_for(other, **changed)
    # Used through the other instance, and written by it: its idle period ended there.
    wall.set(START + 20 * DAY)
    assert verify(other, used.secret) is not None
    assert await other.credentials.flush_last_used() == 1

    def names(tokens: Sequence[IssuedToken]) -> list[str]:
        return sorted(each.token.name for each in tokens)

    # Each group is warned a week before its disable, which happens a week after the warning.
    rounds = (
        (23, together, early, "warned"),
        (25, in_turn, late, "warned"),
        (30, together, early, "disabled"),
        (32, in_turn, late, "disabled"),
    )
    digests = 0
    for number, (day, run, group, what) in enumerate(rounds):
        wall.set(START + day * DAY + timedelta(minutes=1))
        order = [first, second] if number % 2 else [second, first]
        report = the_one_that_worked(await run(order))
        warned = sorted(item.token.name for item in report.warned)
        disabled = sorted(token.name for token in report.disabled)
        assert (warned, disabled) == (
            (names(group), []) if what == "warned" else ([], names(group))
        )
        assert report.reminded == () and report.posts_failed == 0
        # A digest only for a pass that disabled something, and one for it.
        assert report.digest_posted is (what == "disabled")
        digests += report.digest_posted
        assert len(posts_to(standin, ALERTS)) == digests
        await nothing_left(order)
    everyone = [*early, *late]
    assert listed_in(standin, WARNING) == sorted(each.token.id for each in everyone)
    assert listed_in(standin, DISABLED) == sorted(each.token.id for each in everyone)
    assert sorted(contact for contact, _ in dms(standin, WARNING)) == [ALICE, ALICE, BOB]
    assert sorted(contact for contact, _ in dms(standin, DISABLED)) == [ALICE, ALICE, BOB]
    for instance in (store, other):
        for each in everyone:
            token = await instance.token_reads.get(token_id=each.token.id)
            assert not token.enabled and token.disabled_reason == IDLE
            # Both instances refuse a secret either of them disabled.
            assert verify(instance, each.secret) is None
        assert verify(instance, used.secret) is not None
    disables = [
        (event.actor, event.token_sid)
        for event in await store.audit.events(limit=100)
        if event.action == "disable"
    ]
    assert sorted(disables) == sorted((ACTOR, each.token.sid) for each in everyone)
    assert digests == 2


async def test_a_use_on_the_other_instance_not_yet_written_keeps_an_idle_token(
    seed: Seed,
    store: Store,
    other: Store,
    wall: MovedClock,
    scheduler_for: MakeScheduler,
) -> None:
    """On one instance a use the auth check gathered but has not written yet ends an idle
    period (storage/expiry.py); the same must hold for a use on any instance."""
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    idle = await seed("Back in use", contact=ALICE, lifetime_days=365)
    scheduler = scheduler_for(store, tokendesk_disable_unused_days=UNUSED_DAYS)
    wall.set(START + 23 * DAY + timedelta(minutes=1))
    assert [item.token.name for item in (await scheduler.run_pass()).warned] == ["Back in use"]
    wall.set(START + 30 * DAY + timedelta(minutes=1))
    # Used seconds before the pass, through the other instance, which writes it within its
    # flush interval.
    assert verify(other, idle.secret) is not None
    report = await scheduler.run_pass()
    assert report.disabled == ()
    assert verify(other, idle.secret) is not None


# -- what each instance gathers in memory -------------------------------------------------


async def test_last_used_times_of_two_instances_merge_latest_wins(
    seed: Seed, store: Store, other: Store, wall: MovedClock
) -> None:
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    used_first_here = await seed("Used here, then there", lifetime_days=90)
    used_first_there = await seed("Used there, then here", lifetime_days=90)
    for instance, issued in ((store, used_first_here), (other, used_first_there)):
        wall.advance(timedelta(seconds=10))
        assert verify(instance, issued.secret) is not None
    latest = START + timedelta(seconds=30)
    wall.set(latest)
    for instance, issued in ((other, used_first_here), (store, used_first_there)):
        assert verify(instance, issued.secret) is not None
    # Each instance writes both tokens, one later use and one earlier: whichever is written
    # first, the later use stays.
    assert await other.credentials.flush_last_used() == 2
    assert await store.credentials.flush_last_used() == 2
    for instance in (store, other):
        for issued in (used_first_here, used_first_there):
            token = await instance.token_reads.get(token_id=issued.token.id)
            assert token.last_used_at == latest and token.last_active_at == latest
            assert token.row_version == issued.token.row_version


async def test_presentations_of_a_retired_secret_on_two_instances_add_up(
    seed: Seed, store: Store, other: Store, wall: MovedClock
) -> None:
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    old = await seed("Rotated feed", lifetime_days=90)
    new = await store.tokens.reset(
        actor=ADMIN,
        token_id=old.token.id,
        row_version=old.token.row_version,
        expires_on=old.token.expires_on,
    )
    for number in range(3):
        wall.advance(timedelta(seconds=2))
        present(store, old.secret, f"10.0.1.{number}", "cron/here")
    for number in range(4):
        wall.advance(timedelta(seconds=2))
        present(other, old.secret, f"10.0.2.{number}", "cron/there")
    # Both write at the same time: neither count is lost.
    flushed = await asyncio.gather(
        store.credentials.flush_last_used(), other.credentials.flush_last_used()
    )
    assert list(flushed) == [1, 1]
    for instance in (store, other):
        summary = (await instance.token_reads.get(token_id=new.token.id)).retired
        assert summary is not None
        assert summary.presented == 7
        assert summary.last_presented_at == START + timedelta(seconds=14)
        addresses = [presenter.address for presenter in summary.presenters]
        assert addresses[0] == "10.0.2.3" and "10.0.1.2" in addresses
    # Written once: a further flush on either adds nothing.
    assert await store.credentials.flush_last_used() == 0
    assert await other.credentials.flush_last_used() == 0
    summary = (await store.token_reads.get(token_id=new.token.id)).retired
    assert summary is not None and summary.presented == 7


async def test_a_retired_secret_presented_to_two_instances_is_told_once(
    seed: Seed,
    store: Store,
    other: Store,
    scheduler_for: MakeScheduler,
    standin: SlackStandIn,
) -> None:
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    old = await seed("Forgotten hook", lifetime_days=90)
    await store.tokens.reset(
        actor=ADMIN,
        token_id=old.token.id,
        row_version=old.token.row_version,
        expires_on=old.token.expires_on,
    )
    present(store, old.secret, "203.0.113.1", "hook/1")
    present(other, old.secret, "203.0.113.2", "hook/2")
    schedulers = [scheduler_for(store), scheduler_for(other)]
    await together(schedulers)
    await nothing_left(schedulers)
    told = [
        call.args["channel"]
        for call in standin.calls_to("chat.postMessage")
        if "An old secret of Forgotten hook" in str(call.args.get("text"))
    ]
    assert told == [ADMIN]
