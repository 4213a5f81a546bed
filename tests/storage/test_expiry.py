"""What the scheduler asks of the store: due reminders and idle tokens, each marked once."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from storage.expiry import IDLE_QUERY, reminders_query
from storage.models import IDLE, DueReminder, IdleToken, ReminderToken, TokenChange, TokenEdit
from storage.store import Store
from storage.token_reads import DAY
from tests.storage.conftest import FakeClock, OpenStore
from tests.storage.support_durability import ACTOR, START, create_token
from tests.store_support import verify

TODAY = datetime.fromtimestamp(START, UTC).date()  # 21 Sep 2026; START is 14:13:20 UTC
REMINDER_DAYS = (30, 7, 1)


def midnight(day: date) -> float:
    return datetime.combine(day, time(), UTC).timestamp()


def on(day_offset: int) -> date:
    return TODAY + timedelta(days=day_offset)


def reminder_moment(expires_on: date, days: int) -> float:
    """When the reminder `days` before the stop instant (00:00 UTC after `expires_on`) is due."""
    return midnight(expires_on + timedelta(days=1 - days))


async def due(store: Store, reminder_days: tuple[int, ...] = REMINDER_DAYS) -> list[DueReminder]:
    return await store.expiry.due_reminders(reminder_days=reminder_days)


async def send(
    store: Store, reminder_days: tuple[int, ...] = REMINDER_DAYS
) -> list[tuple[str, int]]:
    """One pass's reminders: found, marked, and those marked now (name, day)."""
    marked = await store.expiry.mark_reminders(reminders=await due(store, reminder_days))
    return [(reminder.token.name, reminder.days) for reminder in marked]


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    store = await open_store(max_lifetime_days=365)
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    return store


# Reminders ------------------------------------------------------------------------------


async def test_each_reminder_day_comes_once_and_then_the_day_it_stops(
    store: Store, clock: FakeClock
) -> None:
    expires_on = on(40)
    await create_token(store, "Alpha", expires_on=expires_on)
    assert await send(store) == []

    for days in (30, 7, 1, 0):
        clock.now = reminder_moment(expires_on, days) - 1
        assert await send(store) == [], days
        clock.now = reminder_moment(expires_on, days)
        found = await due(store)
        assert [(r.token.name, r.days, r.token.expires_on) for r in found] == [
            ("Alpha", days, expires_on)
        ]
        assert await send(store) == [("Alpha", days)]
        assert await send(store) == []
    clock.advance(400 * DAY)
    assert await send(store) == []


async def test_after_downtime_only_the_most_urgent_reminder_is_sent(
    store: Store, clock: FakeClock
) -> None:
    expires_on = on(40)
    await create_token(store, "Alpha", expires_on=expires_on)
    clock.now = reminder_moment(expires_on, 1) + 5 * 3600  # days 30, 7 and 1 all came
    assert await send(store) == [("Alpha", 1)]
    assert await send(store) == []
    # A mark covers the less urgent days, even ones added to the configuration since, or
    # left once the day marked is dropped from it.
    assert await due(store, (30, 14, 7, 2, 1)) == []
    assert await due(store, (30, 7)) == []
    clock.now = reminder_moment(expires_on, 0) + 30 * DAY
    assert await send(store) == [("Alpha", 0)]


async def test_no_reminder_for_a_day_already_past_or_today_when_the_date_was_chosen(
    store: Store, clock: FakeClock
) -> None:
    await create_token(store, "Today", expires_on=on(0))  # day 1 is today: never
    await create_token(store, "Six", expires_on=on(6))  # day 7 is today: never
    await create_token(store, "Seven", expires_on=on(7))  # day 7 is tomorrow
    await create_token(store, "Forty", expires_on=on(40))  # day 30 in 11 days
    assert await send(store) == []  # days 30 of all but Forty, 7 of Six, 1 of Today: not armed

    clock.now = midnight(on(1))
    assert sorted(await send(store)) == [("Seven", 7), ("Today", 0)]
    clock.now = midnight(on(6))
    assert await send(store) == [("Six", 1)]
    clock.now = midnight(on(7))
    assert sorted(await send(store)) == [("Seven", 1), ("Six", 0)]


async def test_a_new_date_rearms_the_reminders_and_an_old_one_does_not(
    store: Store, clock: FakeClock
) -> None:
    token = (await create_token(store, "Alpha", expires_on=on(40))).token
    clock.now = reminder_moment(on(40), 30)
    assert await send(store) == [("Alpha", 30)]

    async def move_to(expires_on: date) -> None:
        current = await store.token_reads.get(token_id=token.id)
        await store.tokens.edit(
            actor=ACTOR,
            token_id=token.id,
            row_version=current.row_version,
            edit=TokenEdit(expires_on=expires_on),
        )

    await move_to(on(45))
    assert await send(store) == []  # its day 30 is still ahead
    clock.now = reminder_moment(on(45), 30)
    assert await send(store) == [("Alpha", 30)]
    # Back to the first date: its day 30 was sent already (once per token, day and date).
    await move_to(on(40))
    assert await send(store) == []
    # A Reset choosing a date re-arms the same way.
    current = await store.token_reads.get(token_id=token.id)
    await store.tokens.reset(
        actor=ACTOR, token_id=token.id, row_version=current.row_version, expires_on=on(30)
    )
    clock.now = reminder_moment(on(30), 7)
    assert await send(store) == [("Alpha", 7)]


async def test_no_reminder_for_disabled_or_deleted_tokens(store: Store, clock: FakeClock) -> None:
    tokens = {
        name: (await create_token(store, name, expires_on=on(10))).token
        for name in ("Kept", "Disabled", "Deleted", "Disabled later", "Deleted later", "Moved")
    }
    await store.tokens.set_enabled(actor=ACTOR, token_id=tokens["Disabled"].id, enabled=False)
    await store.tokens.delete(actor=ACTOR, token_id=tokens["Deleted"].id, row_version=1)
    clock.now = reminder_moment(on(10), 7)
    found = await due(store)
    assert sorted(r.token.name for r in found) == [
        "Deleted later",
        "Disabled later",
        "Kept",
        "Moved",
    ]

    # Changed between the pass's read and its mark: dropped, never sent.
    await store.tokens.set_enabled(actor=ACTOR, token_id=tokens["Disabled later"].id, enabled=False)
    await store.tokens.delete(actor=ACTOR, token_id=tokens["Deleted later"].id, row_version=1)
    await store.tokens.edit(
        actor=ACTOR,
        token_id=tokens["Moved"].id,
        row_version=1,
        edit=TokenEdit(expires_on=on(12)),
    )
    marked = await store.expiry.mark_reminders(reminders=found)
    assert [r.token.name for r in marked] == ["Kept"]


async def test_two_passes_at_once_mark_each_reminder_once_and_for_good(
    store: Store, clock: FakeClock, open_store: OpenStore
) -> None:
    for number in range(5):
        await create_token(store, f"Token {number}", expires_on=on(8))
    clock.now = reminder_moment(on(8), 7)
    first, second = await due(store), await due(store)
    results = await asyncio.gather(
        store.expiry.mark_reminders(reminders=first),
        store.expiry.mark_reminders(reminders=second),
    )
    assert sorted(len(result) for result in results) == [0, 5]

    # The marks were committed: another instance, after a crash, sends none of them again.
    await store.close()
    reopened = await open_store(max_lifetime_days=365)
    assert await send(reopened) == []


async def test_a_reminder_is_dropped_when_a_more_urgent_one_was_marked_first(
    store: Store, clock: FakeClock
) -> None:
    await create_token(store, "Alpha", expires_on=on(10))
    clock.now = reminder_moment(on(10), 7)
    slow_pass = await due(store)
    clock.now = reminder_moment(on(10), 1)
    assert await send(store) == [("Alpha", 1)]
    assert await store.expiry.mark_reminders(reminders=slow_pass) == []
    # Of several for one token, only the most urgent is marked.
    clock.now = reminder_moment(on(10), 0)
    (zero,) = await due(store)
    stale = DueReminder(token=zero.token, days=7)
    assert await store.expiry.mark_reminders(reminders=[stale, zero, stale]) == [zero]


async def test_a_reminder_shows_the_last_use_written_or_not(store: Store, clock: FakeClock) -> None:
    issued = await create_token(store, "Alpha", expires_on=on(3))
    clock.now = reminder_moment(on(3), 1)
    (reminder,) = await due(store)
    assert reminder.token.last_used_at is None
    assert verify(store, issued.secret) is not None
    written = datetime.fromtimestamp(clock.now, UTC)
    await store.credentials.flush_last_used()
    (reminder,) = await due(store)
    assert reminder.token.last_used_at == written
    # A later use, gathered by the auth check but not written yet, shows over it.
    clock.advance(90)
    assert verify(store, issued.secret) is not None
    (reminder,) = await due(store)
    assert reminder.token.last_used_at == datetime.fromtimestamp(clock.now, UTC)
    assert reminder.token == ReminderToken(
        id=issued.token.id,
        sid=issued.token.sid,
        name="Alpha",
        primary_contact=issued.token.primary_contact,
        row_version=issued.token.row_version,
        stops_at=datetime.combine(on(4), time(), UTC),
        last_used_at=datetime.fromtimestamp(clock.now, UTC),
    )


# Idle tokens ------------------------------------------------------------------------------

UNUSED_DAYS = 30


async def idle(store: Store) -> tuple[list[str], list[str]]:
    to_warn, to_disable = await store.expiry.idle_tokens(unused_days=UNUSED_DAYS)
    return [i.token.name for i in to_warn], [i.token.name for i in to_disable]


async def warn(store: Store) -> list[str]:
    to_warn, _ = await store.expiry.idle_tokens(unused_days=UNUSED_DAYS)
    return [i.token.name for i in await store.expiry.mark_idle_warnings(tokens=to_warn)]


async def disable_idle(store: Store, idle: IdleToken) -> TokenChange:
    """As the scheduler disables a token it found idle."""
    return await store.tokens.set_enabled(
        actor="tokendesk",
        token_id=idle.token.id,
        enabled=False,
        reason=IDLE,
        idle_since=idle.idle_since,
    )


async def test_an_idle_token_is_warned_then_disabled_a_week_later(
    store: Store, clock: FakeClock
) -> None:
    issued = await create_token(store, "Idle", expires_on=on(300))
    await create_token(store, "Busy", expires_on=on(300))
    busy = (await store.token_reads.page()).tokens[0]
    clock.now = START + 23 * DAY - 1
    assert await idle(store) == ([], [])

    clock.now = START + 23 * DAY
    busy_secret = await store.tokens.reset(
        actor=ACTOR, token_id=busy.id, row_version=1, expires_on=on(300)
    )
    (to_warn,), [] = await store.expiry.idle_tokens(unused_days=UNUSED_DAYS)
    assert to_warn == IdleToken(token=to_warn.token, idle_since=datetime.fromtimestamp(START, UTC))
    assert to_warn.token.name == "Idle"
    assert await store.expiry.mark_idle_warnings(tokens=[to_warn]) == [to_warn]
    assert await store.expiry.mark_idle_warnings(tokens=[to_warn]) == []
    assert await idle(store) == ([], [])

    clock.now = START + 30 * DAY - 1
    assert await idle(store) == ([], [])
    clock.now = START + 30 * DAY
    assert await idle(store) == ([], ["Idle"])
    [], (found,) = await store.expiry.idle_tokens(unused_days=UNUSED_DAYS)
    change = await disable_idle(store, found)
    assert change.changed and change.after.disabled_reason == IDLE
    assert change.after.id == issued.token.id and verify(store, issued.secret) is None
    assert await idle(store) == ([], [])
    assert verify(store, busy_secret.secret) is not None


async def test_a_token_idle_too_long_already_is_warned_before_it_is_disabled(
    store: Store, clock: FakeClock
) -> None:
    await create_token(store, "Forgotten", expires_on=on(300))
    clock.now = START + 200 * DAY
    assert await idle(store) == (["Forgotten"], [])
    assert await warn(store) == ["Forgotten"]
    clock.advance(7 * DAY - 1)
    assert await idle(store) == ([], [])
    clock.advance(1)
    assert await idle(store) == ([], ["Forgotten"])


async def test_a_use_ends_the_idle_period_even_before_it_is_written(
    store: Store, clock: FakeClock
) -> None:
    issued = await create_token(store, "Alpha", expires_on=on(300))
    clock.now = START + 23 * DAY
    (stale,), [] = await store.expiry.idle_tokens(unused_days=UNUSED_DAYS)
    assert await warn(store) == ["Alpha"]

    clock.now = START + 25 * DAY
    assert verify(store, issued.secret) is not None
    clock.now = START + 40 * DAY
    assert await idle(store) == ([], [])  # the use is not written yet, and still counts
    assert await store.expiry.mark_idle_warnings(tokens=[stale]) == []
    await store.credentials.flush_last_used()
    assert await idle(store) == ([], [])
    # A new idle period, since the use: warned again, then disabled.
    clock.now = START + 48 * DAY
    assert await warn(store) == ["Alpha"]
    clock.now = START + 55 * DAY
    assert await idle(store) == ([], ["Alpha"])


@pytest.mark.parametrize("meanwhile", ["used", "used and written", "reset", "enabled again"])
async def test_a_token_active_since_it_was_found_idle_is_not_disabled(
    store: Store, clock: FakeClock, meanwhile: str
) -> None:
    """Between the pass's read and its disable, the token was used (the use perhaps not
    written yet), reset, or disabled and enabled again: its idle period ended, and the
    disable, checked inside its transaction, changes nothing."""
    issued = await create_token(store, "Alpha", expires_on=on(300))
    token_id = issued.token.id
    clock.now = START + 23 * DAY
    assert await warn(store) == ["Alpha"]
    clock.now = START + 30 * DAY
    [], (found,) = await store.expiry.idle_tokens(unused_days=UNUSED_DAYS)

    clock.advance(60)
    if meanwhile.startswith("used"):
        assert verify(store, issued.secret) is not None
        if meanwhile == "used and written":
            await store.credentials.flush_last_used()
    elif meanwhile == "reset":
        await store.tokens.reset(actor=ACTOR, token_id=token_id, row_version=1, expires_on=on(300))
    else:
        await store.tokens.set_enabled(actor=ACTOR, token_id=token_id, enabled=False)
        await store.tokens.set_enabled(actor=ACTOR, token_id=token_id, enabled=True)
    events = await store.audit.events()

    change = await disable_idle(store, found)
    assert not change.changed
    token = await store.token_reads.get(token_id=token_id)
    assert token.enabled and token.disabled_reason is None
    assert await store.audit.events() == events


async def test_an_idle_disable_says_since_when(store: Store) -> None:
    token_id = (await create_token(store, "Alpha", expires_on=on(300))).token.id
    with pytest.raises(ValueError):
        await store.tokens.set_enabled(
            actor="tokendesk", token_id=token_id, enabled=False, reason=IDLE
        )
    with pytest.raises(ValueError):
        await store.tokens.set_enabled(
            actor=ACTOR,
            token_id=token_id,
            enabled=False,
            idle_since=datetime.fromtimestamp(START, UTC),
        )


async def test_an_enable_or_a_reset_starts_a_new_idle_period(
    store: Store, clock: FakeClock
) -> None:
    enabled = (await create_token(store, "Enabled", expires_on=on(300))).token
    reset = (await create_token(store, "Reset", expires_on=on(300))).token
    await store.tokens.set_enabled(actor=ACTOR, token_id=enabled.id, enabled=False)
    clock.now = START + 20 * DAY
    await store.tokens.set_enabled(actor=ACTOR, token_id=enabled.id, enabled=True)
    await store.tokens.reset(actor=ACTOR, token_id=reset.id, row_version=1, expires_on=on(300))
    clock.now = START + 43 * DAY - 1
    assert await idle(store) == ([], [])
    clock.now = START + 43 * DAY
    to_warn, _ = await store.expiry.idle_tokens(unused_days=UNUSED_DAYS)
    assert {i.token.name for i in to_warn} == {"Enabled", "Reset"}
    assert {i.idle_since for i in to_warn} == {datetime.fromtimestamp(START + 20 * DAY, UTC)}


async def test_two_passes_at_once_warn_once(store: Store, clock: FakeClock) -> None:
    for number in range(4):
        await create_token(store, f"Token {number}", expires_on=on(300))
    clock.now = START + 23 * DAY
    (first, _), (second, _) = (
        await store.expiry.idle_tokens(unused_days=UNUSED_DAYS),
        await store.expiry.idle_tokens(unused_days=UNUSED_DAYS),
    )
    results = await asyncio.gather(
        store.expiry.mark_idle_warnings(tokens=first),
        store.expiry.mark_idle_warnings(tokens=second),
    )
    assert sorted(len(result) for result in results) == [0, 4]


async def test_days_are_checked(store: Store) -> None:
    for unused_days, warn_days_before in ((0, 7), (7, 7), (30, -1)):
        with pytest.raises(ValueError):
            await store.expiry.idle_tokens(
                unused_days=unused_days, warn_days_before=warn_days_before
            )
    with pytest.raises(ValueError):
        await store.expiry.due_reminders(reminder_days=(7, 0))


# Indexed ----------------------------------------------------------------------------------


def plan(path: Path, sql: str, parameters: tuple[int, ...]) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
    finally:
        connection.close()
    return [row[3] for row in rows]


@pytest.mark.parametrize("analyzed", [False, True], ids=["as-shipped", "analyzed"])
async def test_the_scheduler_reads_through_indexes_never_every_token(
    store: Store, db_path: Path, clock: FakeClock, analyzed: bool
) -> None:
    for number in range(60):
        issued = await create_token(store, f"Token {number}", expires_on=on(number * 5))
        if number % 4 == 0:
            await store.tokens.set_enabled(actor=ACTOR, token_id=issued.token.id, enabled=False)
    if analyzed:
        connection = sqlite3.connect(db_path)
        connection.execute("ANALYZE")
        connection.close()
    now = int(clock())

    reminders = plan(db_path, reminders_query([0, 1, 7, 30]), (now + 30 * DAY, now))
    idle_tokens = plan(db_path, IDLE_QUERY, (now, now, now))

    assert any(step.startswith("SEARCH t USING INDEX tokens_by_expiry (") for step in reminders)
    assert any(
        step.startswith("SEARCH t USING INDEX tokens_by_activity (last_active_at<?)")
        for step in idle_tokens
    )
    for step in reminders + idle_tokens:
        assert not step.startswith("SCAN"), step
