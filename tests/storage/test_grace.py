"""Reset with a grace window: both secrets during it, and every way it ends, each for good
and audited; the index always what the database says, through races and a killed process."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage.credential_index import RETIRED, Verdict
from storage.errors import InvalidInput, StaleVersion
from storage.models import IDLE, AuditEvent, Token, TokenChange, TokenEdit
from storage.store import Store
from tests.storage.conftest import DAY_SECONDS, FakeClock, OpenStore
from tests.storage.support_durability import (
    ACTOR,
    KEY,
    START,
    create_token,
    python_env,
    run_python,
)
from tests.storage.support_grace import (
    DIGEST,
    HOUR,
    assert_index_agrees_with_database,
    at,
    reset,
    retired_rows,
    secret_used,
    stored_secrets,
)

TODAY = datetime.fromtimestamp(START, UTC).date()
SYSTEM = "tokendesk"


def midnight(day: date) -> float:
    return datetime.combine(day, time(), UTC).timestamp()


async def opened(open_store: OpenStore, **options: Any) -> Store:
    store = await open_store(**options)
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    return store


async def token_events(store: Store) -> list[AuditEvent]:
    """The token's audit records, oldest first."""
    return [event for event in reversed(await store.audit.events(limit=100)) if event.token_sid]


# Both secrets during the window -------------------------------------------------------------


async def test_both_secrets_pass_during_the_window_and_say_which(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    clock.advance(60)

    new = await reset(store, old.token, grace=timedelta(hours=24))

    until = at(clock.now + 24 * HOUR)
    token = new.token
    assert (token.previous_secret_hint, token.previous_until) == (old.secret[-4:], until)
    assert token.secret_hint == new.secret[-4:] and token.previous_last_used_at is None
    assert token.grace_open_at(at(clock.now)) and token.row_version == 2
    assert await store.token_reads.get(token_id=token.id) == token
    for sid in (None, token.sid):
        assert secret_used(store, new.secret, sid) == "current"
        assert secret_used(store, old.secret, sid) == "previous"
    assert store.credentials.check(old.secret, "TD" + "0" * 20) == Verdict(
        None, "SID does not match"
    )
    # The previous secret still finds its token (a pasted secret, say).
    found = await store.token_reads.find_by_secret(secret=old.secret)
    assert found is not None and found.id == token.id

    *_, event = await token_events(store)
    assert (event.action, event.actor) == ("reset", ACTOR)
    assert event.after == {"grace_until": until.isoformat(), "previous_retired": False}


async def test_the_previous_secret_stops_at_the_end_of_its_window(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(hours=1))
    end = clock.now + HOUR

    clock.now = end - 1
    assert secret_used(store, old.secret) == "previous"
    clock.now = end
    assert store.credentials.check(old.secret) == Verdict(None, RETIRED, old.token.id)
    assert secret_used(store, new.secret) == "current"
    token = await store.token_reads.get(token_id=old.token.id)
    assert not token.grace_open_at(at(clock.now))
    assert token.row_version == new.token.row_version  # time alone moves no version


async def test_the_previous_secret_stops_at_the_tokens_stop_instant_if_that_comes_first(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store, max_lifetime_days=365)
    # Stops at the next midnight but one; the Reset gives the new secret 90 days.
    old = await create_token(store, "Expiring Soon", expires_on=TODAY + timedelta(days=1))
    new = await reset(
        store, old.token, grace=timedelta(days=7), expires_on=TODAY + timedelta(days=90)
    )
    old_stop = midnight(TODAY + timedelta(days=2))
    assert new.token.previous_until == at(old_stop)

    # A Reset to an earlier stop instant ends the next window there too.
    shorter = await reset(
        store, new.token, grace=timedelta(days=3), expires_on=TODAY, actor="USECOND01"
    )
    first_stop = midnight(TODAY + timedelta(days=1))
    assert shorter.token.previous_until == at(first_stop)
    clock.now = first_stop - 1
    assert secret_used(store, new.secret) == "previous"
    assert secret_used(store, shorter.secret) == "current"
    clock.now = first_stop
    assert store.credentials.check(new.secret).reason == RETIRED
    assert store.credentials.check(shorter.secret) == Verdict(None, "expired")


async def test_an_earlier_expiry_ends_the_window_there_and_a_later_one_never_revives_it(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store, max_lifetime_days=365)
    old = await create_token(store, expires_on=TODAY + timedelta(days=30))
    new = await reset(store, old.token, grace=timedelta(days=7), expires_on=old.token.expires_on)

    edited = await store.tokens.edit(
        actor=ACTOR, token_id=new.token.id, row_version=2, edit=TokenEdit(expires_on=TODAY)
    )
    stop = midnight(TODAY + timedelta(days=1))
    assert edited.after.previous_until == at(stop)
    *_, event = await token_events(store)
    assert event.before["previous_until"] == at(clock.now + 7 * DAY_SECONDS).isoformat()
    assert event.after["previous_until"] == at(stop).isoformat()

    clock.now = stop
    assert store.credentials.check(old.secret).reason == RETIRED
    # Brought back to life by a later date, the token is; its old secret is not.
    revived = await store.tokens.edit(
        actor=ACTOR,
        token_id=new.token.id,
        row_version=3,
        edit=TokenEdit(expires_on=TODAY + timedelta(days=20)),
    )
    assert revived.after.previous_until is None
    assert secret_used(store, new.secret) == "current"
    assert store.credentials.check(old.secret).reason == RETIRED


@pytest.mark.parametrize("grace", [None, timedelta(0)], ids=["none", "zero"])
async def test_without_a_grace_the_replaced_secret_is_retired_at_once(
    store: Store, grace: timedelta | None
) -> None:
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    old = await create_token(store)
    new = await reset(store, old.token, grace=grace)
    assert new.token.previous_until is None and new.token.previous_secret_hint is None
    assert store.credentials.check(old.secret) == Verdict(None, RETIRED, old.token.id)
    *_, event = await token_events(store)
    assert event.after == {"grace_until": None, "previous_retired": False}


async def test_no_window_for_a_disabled_or_expired_token(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store, max_lifetime_days=365)
    disabled = await create_token(store, "Disabled", expires_on=TODAY + timedelta(days=30))
    change = await store.tokens.set_enabled(actor=ACTOR, token_id=disabled.token.id, enabled=False)
    expired = await create_token(store, "Expired", expires_on=TODAY)
    clock.now = midnight(TODAY + timedelta(days=1))
    assert not change.after.current_secret_works_at(at(clock.now))
    assert not expired.token.current_secret_works_at(at(clock.now))

    for old, token in ((disabled, change.after), (expired, expired.token)):
        new = await reset(
            store, token, grace=timedelta(days=7), expires_on=TODAY + timedelta(days=30)
        )
        assert new.token.previous_until is None
        assert store.credentials.check(old.secret).reason == RETIRED


@pytest.mark.parametrize(
    "grace", [timedelta(days=7, seconds=1), timedelta(seconds=-1)], ids=["too-long", "negative"]
)
async def test_a_grace_beyond_seven_days_or_below_zero_is_refused(
    store: Store, grace: timedelta
) -> None:
    old = await create_token(store)
    with pytest.raises(InvalidInput) as refused:
        await reset(store, old.token, grace=grace)
    assert set(refused.value.errors) == {"grace"}
    assert await store.token_reads.get(token_id=old.token.id) == old.token
    # Seven days exactly is the longest window.
    new = await reset(store, old.token, grace=timedelta(days=7))
    assert new.token.previous_until is not None


async def test_api_access_off_suspends_both_secrets_and_on_restores_both(
    open_store: OpenStore,
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(hours=1))
    await store.account.set_api_access(actor=ACTOR, enabled=False)
    for secret in (old.secret, new.secret):
        assert store.credentials.check(secret) == Verdict(None, "API access off")
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    assert (secret_used(store, old.secret), secret_used(store, new.secret)) == (
        "previous",
        "current",
    )


# The previous secret's use ------------------------------------------------------------------


async def test_the_previous_secrets_use_is_recorded_like_last_used(
    open_store: OpenStore, clock: FakeClock, db_path: Path
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(days=3))
    assert (await store.token_reads.get(token_id=old.token.id)).previous_last_used_at is None

    clock.advance(600)
    assert secret_used(store, old.secret) == "previous"
    used_at = at(clock.now)
    token = await store.token_reads.get(token_id=old.token.id)
    # Shown before it is written; a use of the token as much as of the old secret.
    assert (token.previous_last_used_at, token.last_used_at) == (used_at, used_at)
    assert token.last_active_at == used_at
    assert await store.credentials.flush_last_used() == 1
    await store.close()

    store = await opened(open_store)
    token = await store.token_reads.get(token_id=old.token.id)
    assert (token.previous_last_used_at, token.last_used_at) == (used_at, used_at)
    assert token.row_version == new.token.row_version

    # The current secret's use is not the previous one's.
    clock.advance(600)
    assert secret_used(store, new.secret) == "current"
    await store.credentials.flush_last_used()
    token = await store.token_reads.get(token_id=old.token.id)
    assert (token.previous_last_used_at, token.last_used_at) == (used_at, at(clock.now))

    # A used previous secret retired, the next one starts unused, even with a use of the
    # old one still pending when the Reset committed.
    assert secret_used(store, old.secret) == "previous"
    newest = await reset(store, token, grace=timedelta(hours=1))
    assert newest.token.previous_last_used_at is None
    await store.credentials.flush_last_used()
    assert (await store.token_reads.get(token_id=old.token.id)).previous_last_used_at is None
    assert stored_secrets(db_path)[old.token.id].previous == DIGEST(new.secret)


async def test_a_flush_racing_a_reset_never_gives_the_old_use_to_the_new_previous_secret(
    open_store: OpenStore, clock: FakeClock, db_path: Path
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(days=3))
    clock.advance(60)
    assert secret_used(store, old.secret) == "previous"

    # The Reset takes the write lock first; the flush waits for it, then writes.
    newest, _ = await asyncio.gather(
        reset(store, new.token, grace=timedelta(days=3)), store.credentials.flush_last_used()
    )

    token = await store.token_reads.get(token_id=old.token.id)
    assert token.previous_secret_hint == new.secret[-4:] == newest.token.previous_secret_hint
    assert token.previous_last_used_at is None
    assert token.last_used_at == at(clock.now)  # the token's use is kept


# How a window ends -----------------------------------------------------------------------


async def test_a_second_reset_retires_the_earlier_previous_secret_at_once(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    first = await create_token(store)
    second = await reset(store, first.token, grace=timedelta(days=7))
    clock.advance(HOUR)

    third = await reset(store, second.token, grace=timedelta(hours=24))

    assert store.credentials.check(first.secret) == Verdict(None, RETIRED, first.token.id)
    assert secret_used(store, second.secret) == "previous"
    assert secret_used(store, third.secret) == "current"
    assert third.token.previous_secret_hint == second.secret[-4:]
    assert third.token.previous_until == at(clock.now + 24 * HOUR)
    *_, event = await token_events(store)
    assert event.after == {
        "grace_until": at(clock.now + 24 * HOUR).isoformat(),
        "previous_retired": True,
    }

    # A Reset without a window retires both.
    fourth = await reset(store, third.token)
    for earlier in (second, third):
        assert store.credentials.check(earlier.secret).reason == RETIRED
    assert secret_used(store, fourth.secret) == "current"
    *_, event = await token_events(store)
    assert event.after == {"grace_until": None, "previous_retired": True}


async def test_end_grace_retires_the_previous_secret_once_and_checks_the_version(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(days=3))
    until = new.token.previous_until
    assert until is not None
    clock.advance(60)

    # A change since the card was seen may have opened another window: refused.
    edited = await store.tokens.edit(
        actor="UOTHER001", token_id=old.token.id, row_version=2, edit=TokenEdit(description="x")
    )
    with pytest.raises(StaleVersion) as stale:
        await store.tokens.end_grace(actor=ACTOR, token_id=old.token.id, row_version=2)
    assert stale.value.changed_by == "UOTHER001"
    assert secret_used(store, old.secret) == "previous"

    ended = await store.tokens.end_grace(actor=ACTOR, token_id=old.token.id, row_version=3)
    assert ended.changed and ended.before.previous_until == edited.after.previous_until == until
    assert ended.after.previous_until is None and ended.after.previous_secret_hint is None
    assert (ended.after.row_version, ended.after.updated_by) == (4, ACTOR)
    assert store.credentials.check(old.secret) == Verdict(None, RETIRED, old.token.id)
    assert secret_used(store, new.secret) == "current"
    *_, event = await token_events(store)
    assert (event.action, event.actor) == ("end_grace", ACTOR)
    assert (event.before, event.after) == (
        {"previous_until": until.isoformat()},
        {"previous_until": None},
    )

    # Again, at the version seen before or after: nothing to do, nothing written.
    events = await token_events(store)
    for row_version in (3, 4):
        again = await store.tokens.end_grace(
            actor=ACTOR, token_id=old.token.id, row_version=row_version
        )
        assert again == TokenChange(before=ended.after, after=ended.after)
    assert await token_events(store) == events


async def test_disable_ends_the_window_for_good(open_store: OpenStore) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(days=7))

    change = await store.tokens.set_enabled(actor=ACTOR, token_id=old.token.id, enabled=False)
    assert change.after.previous_until is None
    *_, event = await token_events(store)
    assert event.action == "disable"
    assert event.before["previous_until"] == new.token.previous_until.isoformat()  # type: ignore[union-attr]
    assert event.after["previous_until"] is None

    await store.tokens.set_enabled(actor=ACTOR, token_id=old.token.id, enabled=True)
    assert store.credentials.check(old.secret) == Verdict(None, RETIRED, old.token.id)
    assert secret_used(store, new.secret) == "current"


async def test_an_idle_disable_ends_the_window_too(open_store: OpenStore) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(days=7))
    change = await store.tokens.set_enabled(
        actor=SYSTEM,
        token_id=old.token.id,
        enabled=False,
        reason=IDLE,
        idle_since=new.token.last_active_at,
    )
    assert change.after.previous_until is None
    await store.tokens.set_enabled(actor=ACTOR, token_id=old.token.id, enabled=True)
    assert store.credentials.check(old.secret).reason == RETIRED


async def test_delete_ends_the_window_and_purges_the_retired_digests(
    open_store: OpenStore, db_path: Path
) -> None:
    store = await opened(open_store)
    kept = await create_token(store, "Kept")
    kept_new = await reset(store, kept.token)
    first = await create_token(store, "Deleted")
    second = await reset(store, first.token)
    third = await reset(store, second.token, grace=timedelta(days=1))
    assert len(retired_rows(db_path)) == 2

    await store.tokens.delete(actor=ACTOR, token_id=first.token.id, row_version=3)

    for gone in (first, second, third):
        assert store.credentials.check(gone.secret) == Verdict(None, "unknown secret")
    assert list(retired_rows(db_path)) == [DIGEST(kept.secret)]
    assert store.credentials.check(kept.secret).reason == RETIRED
    assert secret_used(store, kept_new.secret) == "current"
    *_, event = await token_events(store)
    assert event.action == "delete"
    assert event.before["previous_until"] == third.token.previous_until.isoformat()  # type: ignore[union-attr]


async def test_a_window_that_ended_by_time_is_retired_and_audited_once(
    open_store: OpenStore, clock: FakeClock, db_path: Path
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(hours=1))
    end = clock.now + HOUR

    clock.now = end - 1
    assert await store.expiry.retire_lapsed_windows() == 0
    clock.now = end + 30
    assert await store.expiry.retire_lapsed_windows() == 1
    assert await store.expiry.retire_lapsed_windows() == 0

    token = await store.token_reads.get(token_id=old.token.id)
    assert token.previous_until is None and token.previous_secret_hint is None
    # Nothing the token does changed: a confirmation opened before still applies.
    assert (token.row_version, token.updated_at) == (2, new.token.updated_at)
    assert store.credentials.check(old.secret) == Verdict(None, RETIRED, old.token.id)
    (retired_at,) = [row[1] for row in retired_rows(db_path).values()]
    assert retired_at == end  # when it stopped working, not when it was noticed
    *_, event = await token_events(store)
    assert (event.action, event.actor, event.at) == ("end_grace", SYSTEM, at(clock.now))
    assert (event.before, event.after) == (
        {"previous_until": at(end).isoformat()},
        {"previous_until": None, "reason": "ended"},
    )
    assert_index_agrees_with_database(store, db_path, [old.secret, new.secret], clock.now)


@pytest.mark.parametrize("change", ["edit", "end_grace", "reset", "disable", "delete"])
async def test_a_change_after_the_window_ended_retires_it_first(
    open_store: OpenStore, clock: FakeClock, db_path: Path, change: str
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(hours=1))
    clock.advance(HOUR)
    token_id, version = old.token.id, new.token.row_version
    changes: dict[str, Callable[[], Awaitable[object]]] = {
        "edit": lambda: store.tokens.edit(
            actor=ACTOR, token_id=token_id, row_version=version, edit=TokenEdit(description="x")
        ),
        "end_grace": lambda: store.tokens.end_grace(
            actor=ACTOR, token_id=token_id, row_version=version
        ),
        "reset": lambda: reset(store, new.token, grace=timedelta(hours=1)),
        "disable": lambda: store.tokens.set_enabled(actor=ACTOR, token_id=token_id, enabled=False),
        "delete": lambda: store.tokens.delete(actor=ACTOR, token_id=token_id, row_version=version),
    }

    await changes[change]()

    actions = [(event.action, event.actor) for event in await token_events(store)][2:]
    made = [] if change == "end_grace" else [(change, ACTOR)]  # no window left to end
    assert actions == [("end_grace", SYSTEM), *made]
    if change != "delete":
        assert store.credentials.check(old.secret).reason == RETIRED
        assert (await store.token_reads.get(token_id=token_id)).previous_secret_hint != (
            old.secret[-4:]
        )
    assert await store.expiry.retire_lapsed_windows() == 0
    assert_index_agrees_with_database(store, db_path, [old.secret, new.secret], clock.now)


# Races and crashes ------------------------------------------------------------------------

ORDERS = list(itertools.permutations(("reset", "end_grace", "disable")))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(order) for order in ORDERS])
async def test_reset_end_grace_and_disable_at_once_have_one_winner_per_version(
    open_store: OpenStore, clock: FakeClock, db_path: Path, order: tuple[str, ...]
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    window = await reset(store, old.token, grace=timedelta(days=1))
    token = window.token
    issued: list[str] = []

    async def reset_it() -> object:
        again = await reset(store, token, grace=timedelta(hours=2), actor="URESET001")
        issued.append(again.secret)
        return again

    operations: dict[str, Callable[[], Awaitable[object]]] = {
        "reset": reset_it,
        "end_grace": lambda: store.tokens.end_grace(
            actor="UENDER001", token_id=token.id, row_version=token.row_version
        ),
        "disable": lambda: store.tokens.set_enabled(
            actor="UDISABLE1", token_id=token.id, enabled=False
        ),
    }
    results = dict(
        zip(
            order,
            await asyncio.gather(*(operations[name]() for name in order), return_exceptions=True),
            strict=True,
        )
    )

    # The disable always applies; of the two changes that carry the version, the first
    # applies unless the disable came first, and the other never does.
    def applied(name: str) -> bool:
        result = results[name]
        if isinstance(result, TokenChange):
            return result.changed
        return not isinstance(result, BaseException)

    assert applied("disable")
    versioned = [name for name in order if name != "disable"]
    first = versioned[0]
    expected = set() if order[0] == "disable" else {first}
    assert {name for name in versioned if applied(name)} == expected
    for name in versioned:
        result = results[name]
        assert not isinstance(result, BaseException) or isinstance(result, StaleVersion), result
    final = await store.token_reads.get(token_id=token.id)
    assert final.row_version == token.row_version + 1 + len(expected)
    assert final.previous_until is None and not final.enabled  # the disable ended any window
    events = [event.action for event in await token_events(store)][2:]
    assert sorted(events) == sorted(["disable", *expected])

    await store.tokens.set_enabled(actor=ACTOR, token_id=token.id, enabled=True)
    secrets = [old.secret, window.secret, *issued]
    assert_index_agrees_with_database(store, db_path, secrets, clock.now)
    await store.close()
    store = await opened(open_store)
    assert_index_agrees_with_database(store, db_path, secrets, clock.now)


async def test_two_resets_with_a_window_at_once_have_one_winner(
    open_store: OpenStore, clock: FakeClock, db_path: Path
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    results = await asyncio.gather(
        reset(store, old.token, grace=timedelta(hours=1), actor="UFIRST001"),
        reset(store, old.token, grace=timedelta(days=3), actor="USECOND01"),
        return_exceptions=True,
    )
    winners = [result for result in results if not isinstance(result, BaseException)]
    assert len(winners) == 1 and sum(isinstance(r, StaleVersion) for r in results) == 1
    assert secret_used(store, old.secret) == "previous"
    assert_index_agrees_with_database(store, db_path, [old.secret, winners[0].secret], clock.now)


# Opens the store at the path given, creates and resets tokens, prints the secrets (the
# test's own pipe), flushes once, then kills itself mid-window, as SIGKILL would.
KILLED_DURING_A_WINDOW = f"""
import asyncio, os, signal, sys
from datetime import timedelta
from pathlib import Path
from storage.store import Store

async def main():
    store = await Store.open(
        path=Path(sys.argv[1]),
        secret_key=bytes.fromhex({KEY.hex()!r}),
        api_versions=("v1", "v2", "v3"),
        scopes=("reports:read",),
        clock=lambda: {START},
        flush_seconds=3600.0,
        max_lifetime_days=0,
    )
    await store.account.set_api_access(actor="UWRITER01", enabled=True)
    old = await store.tokens.create(
        actor="UWRITER01", name="Rotating", access_rights=["reports:read"],
        primary_contact="UCONTACT1", expires_on=None,
    )
    middle = await store.tokens.reset(
        actor="UWRITER01", token_id=old.token.id, row_version=1, expires_on=None,
    )
    new = await store.tokens.reset(
        actor="UWRITER01", token_id=old.token.id, row_version=2, expires_on=None,
        grace=timedelta(days=1),
    )
    print(old.secret, middle.secret, new.secret, flush=True)
    store.credentials.check(old.secret)
    verdict = store.credentials.check(old.secret)
    store.credentials.record_retired(verdict, lambda: ("10.0.0.7", "cron/1"))
    store.credentials.check(middle.secret)
    await store.credentials.flush_last_used()
    # Gathered after the last flush: lost with the process, as a minute's counts may be.
    store.credentials.record_retired(verdict, lambda: ("10.0.0.8", "cron/2"))
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_a_process_killed_during_a_window_loses_nothing_of_it(
    tmp_path: Path, open_store: OpenStore, clock: FakeClock, db_path: Path
) -> None:
    script = tmp_path / "killed.py"
    script.write_text(KILLED_DURING_A_WINDOW)
    child = run_python(script, str(db_path), env=python_env())
    assert child.returncode == -signal.SIGKILL, child.stderr
    retired, previous, current = child.stdout.split()

    store = await opened(open_store)
    assert (secret_used(store, previous), secret_used(store, current)) == ("previous", "current")
    (token,) = (await store.token_reads.page()).tokens
    assert token.previous_until == at(START + DAY_SECONDS)
    assert token.previous_secret_hint == previous[-4:]
    assert token.previous_last_used_at == at(START)
    assert token.retired is not None and token.retired.presented == 1
    assert [p.address for p in token.retired.presenters] == ["10.0.0.7"]
    assert store.credentials.check(retired) == Verdict(None, RETIRED, token.id)
    assert_index_agrees_with_database(store, db_path, [retired, previous, current], clock.now)

    clock.now = START + DAY_SECONDS
    assert store.credentials.check(previous).reason == RETIRED
    assert await store.expiry.retire_lapsed_windows() == 1
    assert_index_agrees_with_database(store, db_path, [retired, previous, current], clock.now)


def test_a_token_says_whether_its_window_is_open_and_its_current_secret_works() -> None:
    base: dict[str, Any] = {
        "id": 1,
        "sid": "TD1",
        "name": "T",
        "description": "",
        "enabled": True,
        "api_version": "v3",
        "access_rights": (),
        "primary_contact": "U1",
        "secret_hint": "abcd",
        "created_at": at(START),
        "created_by": "U1",
        "updated_at": at(START),
        "updated_by": "U1",
        "reset_at": None,
        "last_used_at": None,
        "row_version": 1,
        "expires_on": TODAY,
        "last_active_at": at(START),
        "disabled_reason": None,
    }
    stop = midnight(TODAY + timedelta(days=1))
    token = Token(**base, previous_until=at(START + HOUR))
    assert token.grace_open_at(at(START)) and token.current_secret_works_at(at(START))
    assert not token.grace_open_at(at(START + HOUR))
    # A window reaching past the stop instant (never stored so) closes there anyway.
    late = Token(**base, previous_until=at(stop + HOUR))
    assert late.grace_open_at(at(stop - 1)) and not late.grace_open_at(at(stop))
    assert not late.current_secret_works_at(at(stop))
    assert not Token(**base).grace_open_at(at(START))
    assert not Token(**base | {"enabled": False}).current_secret_works_at(at(START))
