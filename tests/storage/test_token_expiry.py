"""Tokens that expire: the expiry each secret is given, the stop instant at the auth check,
the State and Last used filters, and the activity that idle tokens are judged by."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage.credential_index import Verdict
from storage.errors import InvalidInput
from storage.models import (
    IDLE,
    CreatedOn,
    LastUsedFilter,
    StateFilter,
    Token,
    TokenEdit,
    TokenFilter,
    TokenState,
)
from storage.store import Store
from tests.storage.conftest import DAY_SECONDS, FakeClock, OpenStore
from tests.storage.support_durability import ACTOR, START, create_token
from tests.store_support import verify

TODAY = datetime.fromtimestamp(START, UTC).date()  # 21 Sep 2026; START is 14:13:20 UTC


def days(count: int) -> timedelta:
    return timedelta(days=count)


def midnight(day: date) -> float:
    """00:00 UTC at the start of `day`, in unix seconds."""
    return datetime.combine(day, time(), UTC).timestamp()


def moment(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


async def names(store: Store, **filters: Any) -> set[str]:
    page = await store.token_reads.page(filters=TokenFilter(**filters), limit=100)
    assert page.total == len(page.tokens)
    return {token.name for token in page.tokens}


async def capped(open_store: OpenStore, max_lifetime_days: int = 365) -> Store:
    store = await open_store(max_lifetime_days=max_lifetime_days)
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    return store


# The stop instant -------------------------------------------------------------------------


async def test_a_token_works_through_its_expiry_date_and_stops_at_the_next_midnight(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await capped(open_store)
    issued = await create_token(store, expires_on=TODAY)  # today itself is allowed
    stop = midnight(TODAY + days(1))
    assert issued.token.expires_on == TODAY
    assert issued.token.stops_at == datetime.fromtimestamp(stop, UTC)

    clock.now = stop - 1
    verdict = store.credentials.check(issued.secret, issued.token.sid)
    assert verdict.token is not None
    assert verdict.token.expires_at == datetime(2026, 9, 22, tzinfo=UTC)
    assert verdict.token.secret_used == "current"
    token = await store.token_reads.get(token_id=issued.token.id)
    assert token.state_at(moment(clock)) is TokenState.ENABLED

    for after in (0, 1, 400 * DAY_SECONDS):
        clock.now = stop + after
        assert store.credentials.check(issued.secret) == Verdict(None, "expired")
        assert token.state_at(moment(clock)) is TokenState.EXPIRED

    # Disabled wins over expired; nothing else about the token moved when it expired.
    await store.tokens.set_enabled(actor=ACTOR, token_id=token.id, enabled=False)
    disabled = await store.token_reads.get(token_id=token.id)
    assert disabled.state_at(moment(clock)) is TokenState.DISABLED
    assert disabled.row_version == 2


async def test_the_stop_instant_holds_across_a_restart(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await capped(open_store)
    issued = await create_token(store, expires_on=TODAY + days(3))
    await store.close()

    store = await open_store(max_lifetime_days=365)
    clock.now = midnight(TODAY + days(4)) - 1
    assert verify(store, issued.secret) is not None
    clock.now = midnight(TODAY + days(4))
    assert verify(store, issued.secret) is None


async def test_a_token_without_expiry_never_stops(open_store: OpenStore, clock: FakeClock) -> None:
    store = await capped(open_store, max_lifetime_days=0)
    issued = await create_token(store, expires_on=None)
    clock.advance(20 * 365 * DAY_SECONDS)
    authorized = verify(store, issued.secret)
    assert authorized is not None and authorized.expires_at is None
    token = await store.token_reads.get(token_id=issued.token.id)
    assert token.stops_at is None and not token.expires_within(moment(clock), 10_000)
    assert token.state_at(moment(clock)) is TokenState.ENABLED


# The expiry each secret is given ----------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_on", "error"),
    [
        (TODAY - days(1), "must not be in the past"),
        (
            TODAY + days(31),
            "must be on or before 21 Oct 2026, 30 days after this secret was issued;"
            " reset the token to go further",
        ),
        (None, "Choose a date: tokens must expire"),
    ],
    ids=["past", "beyond-the-cap", "none-while-capped"],
)
@pytest.mark.parametrize("operation", ["create", "duplicate", "reset"])
async def test_a_new_secret_with_a_bad_expiry_is_refused_and_nothing_changes(
    open_store: OpenStore, operation: str, expires_on: date | None, error: str
) -> None:
    store = await capped(open_store, max_lifetime_days=30)
    source = (await create_token(store, "Source", expires_on=TODAY + days(30))).token
    events = await store.audit.events()

    with pytest.raises(InvalidInput) as refused:
        if operation == "create":
            await create_token(store, "New", expires_on=expires_on)
        elif operation == "duplicate":
            await store.tokens.duplicate(
                actor=ACTOR, token_id=source.id, row_version=1, expires_on=expires_on
            )
        else:
            await store.tokens.reset(
                actor=ACTOR, token_id=source.id, row_version=1, expires_on=expires_on
            )

    assert refused.value.errors == {"expires_on": error}
    assert await names(store) == {"Source"}
    assert await store.token_reads.get(token_id=source.id) == source
    assert await store.audit.events() == events


async def test_create_reports_a_bad_expiry_with_the_other_bad_fields(
    open_store: OpenStore,
) -> None:
    store = await capped(open_store)
    with pytest.raises(InvalidInput) as refused:
        await create_token(store, "  ", expires_on=TODAY - days(1))
    assert set(refused.value.errors) == {"name", "expires_on"}


@pytest.mark.parametrize("offset", [-1, 0], ids=["second-before-midnight", "at-midnight"])
async def test_the_cap_counts_from_the_utc_day_the_secret_is_issued(
    open_store: OpenStore, clock: FakeClock, offset: int
) -> None:
    """Issued a second before 00:00 UTC, a secret's day is the day ending; at 00:00, the
    new one: the latest allowed date moves with it, and so does "the past"."""
    store = await capped(open_store, max_lifetime_days=30)
    clock.now = midnight(TODAY + days(1)) + offset
    issue_day = TODAY if offset < 0 else TODAY + days(1)
    latest = issue_day + days(30)

    accepted = await create_token(store, "Latest", expires_on=latest)
    assert accepted.token.expires_on == latest
    with pytest.raises(InvalidInput) as beyond:
        await create_token(store, "Beyond", expires_on=latest + days(1))
    assert f"{latest.day} {latest:%b %Y}" in beyond.value.errors["expires_on"]
    if offset < 0:
        assert (await create_token(store, "Today", expires_on=TODAY)).token.expires_on == TODAY
    else:
        with pytest.raises(InvalidInput, match="past"):
            await create_token(store, "Yesterday", expires_on=TODAY)


async def test_a_reset_moves_the_cap_and_edit_cannot_extend_past_it(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await capped(open_store, max_lifetime_days=30)
    token = (await create_token(store, expires_on=TODAY + days(30))).token
    clock.advance(10 * DAY_SECONDS)

    async def edit(expires_on: date | None) -> Token:
        current = await store.token_reads.get(token_id=token.id)
        change = await store.tokens.edit(
            actor=ACTOR,
            token_id=token.id,
            row_version=current.row_version,
            edit=TokenEdit(expires_on=expires_on),
        )
        return change.after

    # Extending counts from the day the secret was issued, not from today.
    with pytest.raises(InvalidInput) as refused:
        await edit(TODAY + days(31))
    assert refused.value.errors == {
        "expires_on": "must be on or before 21 Oct 2026, 30 days after this secret was issued;"
        " reset the token to go further"
    }
    assert (
        store.tokens.field_errors(expires_on=TODAY + days(31), secret_issued_on=TODAY)
        == refused.value.errors
    )
    unchanged = await edit(TODAY + days(30))
    assert unchanged.row_version == 1  # the same date: nothing to do
    assert (await edit(TODAY + days(20))).expires_on == TODAY + days(20)
    assert (await edit(TODAY + days(30))).expires_on == TODAY + days(30)

    # Only a Reset lets it go further: the new secret's day starts the count again.
    current = await store.token_reads.get(token_id=token.id)
    reset = await store.tokens.reset(
        actor=ACTOR,
        token_id=token.id,
        row_version=current.row_version,
        expires_on=TODAY + days(40),
    )
    assert reset.token.secret_issued_at == moment(clock)
    assert reset.token.expires_on == TODAY + days(40)
    assert (await edit(TODAY + days(35))).expires_on == TODAY + days(35)
    with pytest.raises(InvalidInput, match="on or before 31 Oct 2026"):
        await edit(TODAY + days(41))
    assert store.tokens.field_errors(expires_on=TODAY + days(40)) == {}  # a new secret's cap
    assert "expires_on" in store.tokens.field_errors(
        expires_on=TODAY + days(41), secret_issued_on=TODAY + days(10)
    )


async def test_an_expired_token_comes_back_with_edit_or_reset(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await capped(open_store, max_lifetime_days=30)
    edited = await create_token(store, "Edited", expires_on=TODAY)
    reset = await create_token(store, "Reset", expires_on=TODAY)
    clock.now = midnight(TODAY + days(2))
    assert verify(store, edited.secret) is None and verify(store, reset.secret) is None

    # Its other fields stay editable while its date is in the past.
    renamed = await store.tokens.edit(
        actor=ACTOR, token_id=edited.token.id, row_version=1, edit=TokenEdit(name="Renamed")
    )
    assert renamed.after.expires_on == TODAY and verify(store, edited.secret) is None
    await store.tokens.edit(
        actor=ACTOR,
        token_id=edited.token.id,
        row_version=2,
        edit=TokenEdit(expires_on=TODAY + days(30)),
    )
    assert verify(store, edited.secret) is not None

    again = await store.tokens.reset(
        actor=ACTOR, token_id=reset.token.id, row_version=1, expires_on=TODAY + days(32)
    )
    assert verify(store, again.secret) is not None


async def test_a_lowered_cap_leaves_each_expiry_alone_until_it_changes(
    open_store: OpenStore, db_path: Path
) -> None:
    store = await capped(open_store, max_lifetime_days=365)
    long = await create_token(store, "Long", expires_on=TODAY + days(300))
    connection = sqlite3.connect(db_path)
    with connection:
        connection.execute(
            "INSERT INTO tokens (sid, name, name_key, description, enabled, api_version,"
            " access_rights, primary_contact, secret_hash, secret_hint, created_at, created_by,"
            " updated_at, updated_by, row_version)"
            " SELECT 'TDOLD', 'Old', 'old', '', 1, 'v3', access_rights, primary_contact,"
            " x'00', 'xxxx', created_at, 'ULEGACY1', created_at, 'ULEGACY1', 1"
            " FROM tokens"
        )
    connection.close()
    await store.close()

    store = await open_store(max_lifetime_days=30)
    for token in (await store.token_reads.page()).tokens:
        described = await store.tokens.edit(
            actor=ACTOR,
            token_id=token.id,
            row_version=token.row_version,
            edit=TokenEdit(description="still editable", expires_on=token.expires_on),
        )
        assert described.after.expires_on == token.expires_on
    with pytest.raises(InvalidInput, match="21 Oct 2026"):
        await store.tokens.edit(
            actor=ACTOR,
            token_id=long.token.id,
            row_version=2,
            edit=TokenEdit(expires_on=TODAY + days(200)),
        )


async def test_expiry_changes_are_audited(open_store: OpenStore) -> None:
    store = await capped(open_store)
    issued = await create_token(store, expires_on=TODAY + days(90))
    token_id = issued.token.id
    await store.tokens.edit(
        actor=ACTOR, token_id=token_id, row_version=1, edit=TokenEdit(expires_on=TODAY + days(7))
    )
    await store.tokens.reset(
        actor=ACTOR, token_id=token_id, row_version=2, expires_on=TODAY + days(7)
    )
    await store.tokens.reset(
        actor=ACTOR, token_id=token_id, row_version=3, expires_on=TODAY + days(30)
    )

    events = [event for event in reversed(await store.audit.events()) if event.token_sid]
    assert [event.action for event in events] == ["create", "edit", "reset", "reset"]
    assert events[0].after["expires_on"] == "2026-12-20"
    assert (events[1].before, events[1].after) == (
        {"expires_on": "2026-12-20"},
        {"expires_on": "2026-09-28"},
    )
    # A Reset also records its grace window (none here) and whether it retired a previous
    # secret.
    no_window = {"grace_until": None, "previous_retired": False}
    assert (events[2].before, events[2].after) == ({}, no_window)  # the same date
    assert (events[3].before, events[3].after) == (
        {"expires_on": "2026-09-28"},
        {"expires_on": "2026-10-21"} | no_window,
    )


# Activity and automatic disables ----------------------------------------------------------


async def test_activity_is_the_latest_of_creation_enable_reset_and_use(
    open_store: OpenStore, clock: FakeClock, db_path: Path
) -> None:
    store = await capped(open_store, max_lifetime_days=0)
    issued = await create_token(store)
    token_id = issued.token.id
    assert issued.token.last_active_at == moment(clock)

    clock.advance(100)
    assert verify(store, issued.secret) is not None
    used = await store.token_reads.get(token_id=token_id)
    assert used.last_active_at == used.last_used_at == moment(clock)  # before it is written
    assert await store.credentials.flush_last_used() == 1
    written = await store.token_reads.get(token_id=token_id)
    assert written == used and written.row_version == 1

    clock.advance(100)
    disabled = await store.tokens.set_enabled(actor=ACTOR, token_id=token_id, enabled=False)
    assert disabled.after.last_active_at == used.last_used_at  # a disable is no activity
    clock.advance(100)
    enabled = await store.tokens.set_enabled(actor=ACTOR, token_id=token_id, enabled=True)
    assert enabled.after.last_active_at == moment(clock)
    clock.advance(100)
    reset = await store.tokens.reset(actor=ACTOR, token_id=token_id, row_version=3, expires_on=None)
    assert reset.token.last_active_at == moment(clock)

    # A use written late never moves activity back.
    clock.advance(-50)
    store.credentials.check(reset.secret)
    await store.credentials.flush_last_used()
    assert (
        await store.token_reads.get(token_id=token_id)
    ).last_active_at == reset.token.last_active_at
    connection = sqlite3.connect(db_path)
    try:
        (enabled_at,) = connection.execute(
            "SELECT enabled_at FROM tokens WHERE id = ?", (token_id,)
        ).fetchone()
    finally:
        connection.close()
    assert enabled_at == int(enabled.after.last_active_at.timestamp())


async def test_token_desk_disables_an_idle_token_with_a_reason_an_enable_clears(
    open_store: OpenStore,
) -> None:
    store = await capped(open_store, max_lifetime_days=0)
    issued = await create_token(store)
    token_id = issued.token.id

    change = await store.tokens.set_enabled(
        actor="tokendesk",
        token_id=token_id,
        enabled=False,
        reason=IDLE,
        idle_since=issued.token.last_active_at,
    )
    assert change.changed and change.after.disabled_reason == "idle"
    assert verify(store, issued.secret) is None
    (event,) = [e for e in await store.audit.events() if e.action == "disable"]
    assert event.actor == "tokendesk"
    assert (event.before, event.after) == (
        {"state": "enabled"},
        {"state": "disabled", "reason": "idle"},
    )

    enabled = await store.tokens.set_enabled(actor=ACTOR, token_id=token_id, enabled=True)
    assert enabled.after.disabled_reason is None
    manual = await store.tokens.set_enabled(actor=ACTOR, token_id=token_id, enabled=False)
    assert manual.after.disabled_reason is None

    for enabled_flag, reason in ((True, IDLE), (False, "bored")):
        with pytest.raises(ValueError):
            await store.tokens.set_enabled(
                actor=ACTOR, token_id=token_id, enabled=enabled_flag, reason=reason
            )


# The State filter -------------------------------------------------------------------------


async def test_the_state_filter_partitions_the_tokens(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await capped(open_store, max_lifetime_days=0)
    clock.now = START - 5 * DAY_SECONDS
    gone = await create_token(store, "Gone", expires_on=TODAY - days(2))
    gone_off = await create_token(store, "Gone off", expires_on=TODAY - days(2))
    clock.now = START
    await create_token(store, "Forever")
    await create_token(store, "Today", expires_on=TODAY)
    await create_token(store, "Six days", expires_on=TODAY + days(6))
    await create_token(store, "Seven days", expires_on=TODAY + days(7))
    off = await create_token(store, "Off")
    off_soon = await create_token(store, "Off soon", expires_on=TODAY + days(1))
    for issued in (gone_off, off, off_soon):
        await store.tokens.set_enabled(actor=ACTOR, token_id=issued.token.id, enabled=False)
    assert gone.token.name == "Gone"

    async def states() -> dict[StateFilter | None, set[str]]:
        return {state: await names(store, state=state) for state in (None, *StateFilter)}

    found = await states()
    assert found[StateFilter.ENABLED] == {"Forever", "Today", "Six days", "Seven days"}
    assert found[StateFilter.EXPIRED] == {"Gone"}
    assert found[StateFilter.DISABLED] == {"Gone off", "Off", "Off soon"}
    # Stopping within 7 days: Six days stops on 28 Sep 00:00, 6 days 9 h 47 min from now.
    assert found[StateFilter.EXPIRING_SOON] == {"Today", "Six days"}
    partition = [
        found[StateFilter.ENABLED],
        found[StateFilter.EXPIRED],
        found[StateFilter.DISABLED],
    ]
    assert set().union(*partition) == found[None]
    assert sum(len(part) for part in partition) == len(found[None])

    # Combined with the other filters.
    assert await names(store, state=StateFilter.EXPIRED, created_on=CreatedOn.LAST_7_DAYS) == {
        "Gone"
    }
    assert (
        await names(store, state=StateFilter.EXPIRED, created_on=CreatedOn.MORE_THAN_30_DAYS)
        == set()
    )
    assert await names(store, state=StateFilter.EXPIRING_SOON, name="six") == {"Six days"}
    assert await names(store, state=StateFilter.DISABLED, name="off s") == {"Off soon"}

    # At its stop instant a token moves from Enabled to Expired, a second earlier it has not.
    clock.now = midnight(TODAY + days(1)) - 1
    assert "Today" in await names(store, state=StateFilter.EXPIRING_SOON)
    clock.now = midnight(TODAY + days(1))
    assert await names(store, state=StateFilter.EXPIRED) == {"Gone", "Today"}
    assert "Today" not in await names(store, state=StateFilter.EXPIRING_SOON)

    # Expiring soon takes in a token 7 days before its stop instant, not a second earlier.
    seven_days_before = midnight(TODAY + days(8)) - 7 * DAY_SECONDS
    clock.now = seven_days_before - 1
    assert "Seven days" not in await names(store, state=StateFilter.EXPIRING_SOON)
    clock.now = seven_days_before
    assert "Seven days" in await names(store, state=StateFilter.EXPIRING_SOON)
    found = await states()
    assert found[StateFilter.EXPIRING_SOON] <= found[StateFilter.ENABLED]


# The Last used filter ---------------------------------------------------------------------


async def test_the_last_used_filter_counts_uses_not_written_yet(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await capped(open_store, max_lifetime_days=0)
    clock.now = START - 100 * DAY_SECONDS
    secrets = {
        name: (await create_token(store, name)).secret
        for name in ("Never", "Now", "31 days", "91 days", "29 days")
    }
    for name, ago in (("91 days", 91), ("31 days", 31), ("29 days", 29)):
        clock.now = START - ago * DAY_SECONDS
        assert verify(store, secrets[name]) is not None
        await store.credentials.flush_last_used()
    clock.now = START
    assert verify(store, secrets["Now"]) is not None  # gathered, not written yet

    expected = {
        LastUsedFilter.NEVER: {"Never"},
        LastUsedFilter.NOT_30_DAYS: {"Never", "31 days", "91 days"},
        LastUsedFilter.NOT_90_DAYS: {"Never", "91 days"},
    }
    for last_used, wanted in expected.items():
        assert await names(store, last_used=last_used) == wanted, last_used
    await store.credentials.flush_last_used()
    for last_used, wanted in expected.items():
        assert await names(store, last_used=last_used) == wanted, last_used

    # A use gathered long ago and still not written counts by its own time.
    assert verify(store, secrets["29 days"]) is not None
    clock.advance(40 * DAY_SECONDS)
    assert await names(store, last_used=LastUsedFilter.NOT_30_DAYS) == set(secrets)

    # Combined with the others.
    never = (await store.token_reads.page(filters=TokenFilter(name="never"))).tokens[0]
    await store.tokens.set_enabled(actor=ACTOR, token_id=never.id, enabled=False)
    assert await names(store, last_used=LastUsedFilter.NEVER, state=StateFilter.ENABLED) == set()
    assert await names(store, last_used=LastUsedFilter.NEVER, state=StateFilter.DISABLED) == {
        "Never"
    }
    assert await names(
        store,
        last_used=LastUsedFilter.NOT_90_DAYS,
        name="days",
        created_on=CreatedOn.MORE_THAN_30_DAYS,
    ) == {"91 days"}
    assert not TokenFilter(last_used=LastUsedFilter.NEVER).is_empty
