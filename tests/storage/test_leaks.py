"""The leak guard's store: live secrets found in Slack messages reported once per message,
the token marked leaked until a Reset (or its window ended, for a previous secret), what
is not live costing nothing; through restarts, races and Delete."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from storage.credential_index import RETIRED, LiveSecret
from storage.credentials import PREFIX, generate_secret
from storage.errors import InvalidInput, TokenLeaked
from storage.models import IDLE, LEAKED, AuditEvent, IssuedToken, LeakReport, Token
from storage.store import Store
from tests.conftest import OpenStore
from tests.storage.support_durability import ACTOR, FakeClock, create_token, plain_connection
from tests.storage.support_grace import (
    DIGEST,
    HOUR,
    assert_index_agrees_with_database,
    at,
    reset,
    secret_used,
)

SYSTEM = "tokendesk"
CHANNEL = "C0LEAKS01"
POSTER = "UPOSTER01"


async def opened(open_store: OpenStore, **options: Any) -> Store:
    store = await open_store(**options)
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    return store


async def report(
    store: Store,
    *candidates: str,
    message_ts: str = "1790000000.000100",
    channel: str = CHANNEL,
    poster: str | None = POSTER,
    disable: bool = False,
) -> list[LeakReport]:
    return await store.leaks.report(
        candidates=candidates,
        channel=channel,
        message_ts=message_ts,
        poster=poster,
        disable=disable,
    )


async def events(store: Store, *actions: str) -> list[AuditEvent]:
    """The audit records of `actions`, oldest first."""
    return [
        event for event in reversed(await store.audit.events(limit=200)) if event.action in actions
    ]


def report_rows(path: Path) -> list[tuple[str, str, bytes, int, int]]:
    connection = plain_connection(path)
    try:
        rows = connection.execute(
            "SELECT channel, message_ts, digest, token_id, reported_at FROM leak_reports"
            " ORDER BY rowid"
        ).fetchall()
    finally:
        connection.close()
    return [tuple(row) for row in rows]


def database_bytes(path: Path) -> bytes:
    """The database file and its write-ahead log, as they are on disk."""
    return b"".join(
        candidate.read_bytes()
        for candidate in (path, path.with_name(path.name + "-wal"))
        if candidate.exists()
    )


async def get(store: Store, token: Token) -> Token:
    return await store.token_reads.get(token_id=token.id)


# Reporting a current secret ----------------------------------------------------------------


async def test_a_current_secret_is_reported_once_per_message_and_marks_the_token(
    open_store: OpenStore, clock: FakeClock, db_path: Path
) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    clock.advance(60)

    (first,) = await report(store, issued.secret)

    token = first.token
    assert (first.which, first.disabled) == ("current", False)
    assert token.leaked_at == at(clock.now) and token.enabled
    # The mark moves no version: a Reset being confirmed is not refused as stale.
    assert (token.row_version, token.updated_by) == (1, ACTOR)
    assert await get(store, token) == token
    # Notify only: the secret still works until someone acts.
    assert secret_used(store, issued.secret) == "current"
    (event,) = await events(store, "leak")
    assert (event.actor, event.token_sid, event.before) == (SYSTEM, token.sid, {"leaked": False})
    assert event.after == {
        "channel": CHANNEL,
        "message_ts": "1790000000.000100",
        "poster": POSTER,
        "which": "current",
        "action": "notify",
        "leaked": True,
    }

    # The same message again (a retry, an edit, a re-delivery): nothing at all.
    clock.advance(60)
    assert await report(store, issued.secret, issued.secret) == []
    unchanged = await get(store, token)
    assert (unchanged.row_version, unchanged.leaked_at) == (1, token.leaked_at)
    assert len(await events(store, "leak")) == 1

    # The same secret in another message: reported and audited again, the mark kept.
    (again,) = await report(store, issued.secret, message_ts="1790000100.000200")
    assert again.token.row_version == 1 and again.token.leaked_at == at(clock.now - 60)
    assert [event.after["message_ts"] for event in await events(store, "leak")] == [
        "1790000000.000100",
        "1790000100.000200",
    ]
    assert (await events(store, "leak"))[1].before == {}
    # The same message ts in another channel is another message.
    assert len(await report(store, issued.secret, channel="C0OTHER01")) == 1

    digest = DIGEST(issued.secret)
    assert [row[:4] for row in report_rows(db_path)] == [
        (CHANNEL, "1790000000.000100", digest, token.id),
        (CHANNEL, "1790000100.000200", digest, token.id),
        ("C0OTHER01", "1790000000.000100", digest, token.id),
    ]
    # Neither the secret nor its digest is in the audit log; the secret is nowhere.
    connection = plain_connection(db_path)
    try:
        details = [row[0] for row in connection.execute("SELECT detail FROM audit_log")]
    finally:
        connection.close()
    for detail in details:
        assert issued.secret not in detail and digest.hex() not in detail.lower()
    assert issued.secret.encode() not in database_bytes(db_path)


async def test_a_disabled_or_expired_tokens_current_secret_is_live_and_reported(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    disabled = await create_token(store, "Switched Off")
    await store.tokens.set_enabled(actor=ACTOR, token_id=disabled.token.id, enabled=False)
    expiring = await create_token(
        store, "Runs Out", expires_on=at(clock.now).date() + timedelta(days=1)
    )
    clock.advance(3 * 86_400)
    assert secret_used(store, disabled.secret) is None
    assert secret_used(store, expiring.secret) is None

    reports = await report(store, disabled.secret, expiring.secret, disable=True)

    assert [(r.token.id, r.which, r.disabled) for r in reports] == [
        (disabled.token.id, "current", False),
        # Enabled, though expired: disabled, so that a later expiry change cannot revive it.
        (expiring.token.id, "current", True),
    ]
    assert all(r.token.leaked_at == at(clock.now) for r in reports)
    assert reports[0].token.disabled_reason is None
    assert reports[1].token.disabled_reason == LEAKED


async def test_what_is_not_live_gives_nothing_and_costs_no_database_work(
    open_store: OpenStore, clock: FakeClock, db_path: Path
) -> None:
    store = await opened(open_store)
    retired = await create_token(store, "Reset Without Grace")
    await reset(store, retired.token)
    lapsed = await create_token(store, "Window Ended")
    await reset(store, lapsed.token, grace=timedelta(hours=1))
    deleted = await create_token(store, "Deleted")
    await store.tokens.delete(
        actor=ACTOR, token_id=deleted.token.id, row_version=deleted.token.row_version
    )
    live = await create_token(store, "Still Live")
    clock.advance(HOUR)  # the window ended by the clock; the scheduler has not run
    body = live.secret[len(PREFIX) :]
    not_live = [
        retired.secret,
        lapsed.secret,
        deleted.secret,
        generate_secret(),  # unknown
        PREFIX + body[:-1] + ("0" if body[-1] != "0" else "1"),  # bad checksum
        live.secret[:-1],  # malformed
        "",
    ]
    for candidate in not_live:
        assert store.credentials.live_secret(candidate) is None
    await store.close()
    for suffix in ("", "-wal", "-shm"):
        db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)

    # The database is closed and gone: only a look-up in memory can answer.
    assert await report(store, *not_live, disable=True) == []
    assert await report(store) == []
    with pytest.raises(ValueError):
        await report(store, live.secret)


async def test_the_index_says_which_secret_is_live_whatever_the_tokens_state(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(hours=1))
    await store.account.set_api_access(actor=ACTOR, enabled=False)

    token_id = old.token.id
    assert store.credentials.live_secret(new.secret) == LiveSecret(
        token_id, "current", DIGEST(new.secret)
    )
    assert store.credentials.live_secret(old.secret) == LiveSecret(
        token_id, "previous", DIGEST(old.secret)
    )
    clock.advance(HOUR - 1)
    assert store.credentials.live_secret(old.secret) is not None
    clock.advance(1)
    assert store.credentials.live_secret(old.secret) is None
    await store.tokens.set_enabled(actor=ACTOR, token_id=token_id, enabled=False)
    found = store.credentials.live_secret(new.secret)
    assert found is not None and found.which == "current"


# Disabling ---------------------------------------------------------------------------------


async def test_disable_disables_an_enabled_token_and_ends_its_window(
    open_store: OpenStore, clock: FakeClock, db_path: Path
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    window = await reset(store, old.token, grace=timedelta(hours=2))
    clock.advance(60)

    (leak,) = await report(store, window.secret, disable=True)

    token = leak.token
    assert (leak.which, leak.disabled) == ("current", True)
    assert not token.enabled and token.disabled_reason == LEAKED
    assert token.leaked_at == at(clock.now) and token.previous_until is None
    assert (token.row_version, token.updated_by) == (window.token.row_version + 1, SYSTEM)
    # The index followed at the commit: neither secret passes, the old one is retired.
    assert store.credentials.check(window.secret).reason == "token disabled"
    assert store.credentials.check(old.secret).reason == RETIRED
    (event,) = await events(store, "leak")
    assert event.actor == SYSTEM
    assert event.before == {
        "leaked": False,
        "state": "enabled",
        "previous_until": window.token.previous_until.isoformat()
        if window.token.previous_until
        else None,
    }
    assert event.after == {
        "channel": CHANNEL,
        "message_ts": "1790000000.000100",
        "poster": POSTER,
        "which": "current",
        "action": "disable",
        "leaked": True,
        "state": "disabled",
        "reason": LEAKED,
        "previous_until": None,
    }

    # Already disabled: another message reports it, and nothing is disabled again.
    (again,) = await report(store, window.secret, message_ts="1790000200.000300", disable=True)
    assert (again.disabled, again.token) == (False, token)
    assert (await events(store, "leak"))[-1].after["action"] == "notify"
    assert_index_agrees_with_database(store, db_path, [old.secret, window.secret], clock.now)


async def test_an_idle_disabled_tokens_reason_is_kept(open_store: OpenStore) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    await store.tokens.set_enabled(
        actor=SYSTEM,
        token_id=issued.token.id,
        enabled=False,
        reason=IDLE,
        idle_since=issued.token.last_active_at,
    )

    (leak,) = await report(store, issued.secret, disable=True)

    assert (leak.disabled, leak.token.disabled_reason) == (False, IDLE)
    assert leak.token.leaked_at is not None


# A previous secret -------------------------------------------------------------------------


@pytest.mark.parametrize("disable", [False, True])
async def test_a_leaked_previous_secret_ends_the_window_and_nothing_else(
    open_store: OpenStore, clock: FakeClock, db_path: Path, disable: bool
) -> None:
    store = await opened(open_store)
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(hours=2))
    until = new.token.previous_until
    assert until is not None
    clock.advance(60)

    (leak,) = await report(store, old.secret, disable=disable)

    token = leak.token
    assert (leak.which, leak.disabled) == ("previous", False)
    assert token.enabled and token.leaked_at is None and token.previous_until is None
    # Ended as the scheduler ends a window by time: no version moves.
    assert (token.row_version, token.updated_by) == (new.token.row_version, ACTOR)
    assert store.credentials.check(old.secret).reason == RETIRED
    assert secret_used(store, new.secret) == "current"
    end, leak_event = await events(store, "end_grace", "leak")
    assert (end.actor, end.before) == (SYSTEM, {"previous_until": until.isoformat()})
    assert end.after == {"previous_until": None, "reason": LEAKED}
    assert (leak_event.actor, leak_event.before) == (SYSTEM, {})
    assert leak_event.after == {
        "channel": CHANNEL,
        "message_ts": "1790000000.000100",
        "poster": POSTER,
        "which": "previous",
        "action": "notify",
    }
    # Retired now: another message with it is not a leak of anything live.
    assert await report(store, old.secret, message_ts="1790000300.000400") == []
    assert_index_agrees_with_database(store, db_path, [old.secret, new.secret], clock.now)


async def test_one_message_with_both_secrets_and_noise_reports_each_live_one_in_order(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    old = await create_token(store, "Both Pasted")
    new = await reset(store, old.token, grace=timedelta(hours=2))
    other = await create_token(store, "Another One")

    reports = await report(
        store, old.secret, generate_secret(), other.secret, new.secret, old.secret, poster=None
    )

    assert [(r.token.id, r.which) for r in reports] == [
        (old.token.id, "previous"),
        (other.token.id, "current"),
        (old.token.id, "current"),
    ]
    # Each token as it is after the whole report: its window ended, then marked.
    both = reports[0].token
    assert both == reports[2].token and both.leaked_at is not None
    assert both.previous_until is None and both.row_version == new.token.row_version
    leaks = await events(store, "leak")
    assert [(e.token_name, e.after["which"], e.after["poster"]) for e in leaks] == [
        ("Both Pasted", "previous", None),
        ("Another One", "current", None),
        ("Both Pasted", "current", None),
    ]


async def test_identifiers_holding_a_secret_are_stored_masked(
    open_store: OpenStore, db_path: Path
) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    planted = generate_secret()

    (leak,) = await report(store, issued.secret, channel=f"C{planted}", poster=planted)

    assert leak.token.leaked_at is not None
    (event,) = await events(store, "leak")
    assert (event.after["channel"], event.after["poster"]) == (f"C{PREFIX}…", f"{PREFIX}…")
    assert planted.encode() not in database_bytes(db_path)


# What a leaked token may do ----------------------------------------------------------------


async def test_enable_is_refused_while_leaked_and_allowed_after_a_reset(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    (leak,) = await report(store, issued.secret, disable=True)
    leaked = leak.token

    for _ in range(2):
        with pytest.raises(TokenLeaked):
            await store.tokens.set_enabled(actor=ACTOR, token_id=leaked.id, enabled=True)
    assert await get(store, leaked) == leaked
    assert await events(store, "enable") == []

    clock.advance(60)
    fresh = await reset(store, leaked)
    assert fresh.token.leaked_at is None and not fresh.token.enabled
    *_, event = await events(store, "reset")
    assert (event.before["leaked"], event.after["leaked"]) == (True, False)
    change = await store.tokens.set_enabled(actor=ACTOR, token_id=leaked.id, enabled=True)
    assert change.after.enabled and change.after.leaked_at is None
    assert secret_used(store, fresh.secret) == "current"
    assert store.credentials.check(issued.secret).reason == RETIRED


async def test_enable_is_refused_for_an_enabled_leaked_token_too(open_store: OpenStore) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    (leak,) = await report(store, issued.secret)

    with pytest.raises(TokenLeaked):
        await store.tokens.set_enabled(actor=ACTOR, token_id=leak.token.id, enabled=True)
    # A disable is never refused.
    change = await store.tokens.set_enabled(actor=ACTOR, token_id=leak.token.id, enabled=False)
    assert change.changed and change.after.leaked_at == leak.token.leaked_at


async def test_a_reset_of_a_leaked_token_offers_no_grace_window(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    (leak,) = await report(store, issued.secret)
    leaked = leak.token
    assert not leaked.current_secret_works_at(at(clock.now))
    assert leaked.state_at(at(clock.now)).value == "enabled"

    with pytest.raises(InvalidInput) as refused:
        await reset(store, leaked, grace=timedelta(hours=1))
    assert set(refused.value.errors) == {"grace"}
    assert issued.secret not in str(refused.value)
    assert await get(store, leaked) == leaked

    fresh = await reset(store, leaked, grace=timedelta(0))
    assert fresh.token.leaked_at is None and fresh.token.previous_until is None
    assert fresh.token.current_secret_works_at(at(clock.now))
    assert store.credentials.check(issued.secret).reason == RETIRED
    # The fresh secret may be given a window again.
    again = await reset(store, fresh.token, grace=timedelta(hours=1))
    assert again.token.previous_until == at(clock.now + HOUR)


async def test_a_duplicate_of_a_leaked_token_is_not_leaked(open_store: OpenStore) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    (leak,) = await report(store, issued.secret, disable=True)

    copy = await store.tokens.duplicate(
        actor=ACTOR, token_id=leak.token.id, row_version=leak.token.row_version, expires_on=None
    )

    assert copy.token.leaked_at is None and copy.token.enabled
    assert copy.token.disabled_reason is None
    assert secret_used(store, copy.secret) == "current"


async def test_delete_takes_the_tokens_reports_with_it(
    open_store: OpenStore, db_path: Path
) -> None:
    store = await opened(open_store)
    gone = await create_token(store, "Going Away")
    kept = await create_token(store, "Staying")
    (leak,) = await report(store, gone.secret)
    await report(store, kept.secret)

    await store.tokens.delete(
        actor=ACTOR, token_id=gone.token.id, row_version=leak.token.row_version
    )

    assert [row[3] for row in report_rows(db_path)] == [kept.token.id]
    assert await report(store, gone.secret, message_ts="1790000400.000500") == []


# Restarts and races ------------------------------------------------------------------------


async def test_reports_and_marks_outlive_a_restart(open_store: OpenStore, clock: FakeClock) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    (leak,) = await report(store, issued.secret)
    await store.close()

    store = await opened(open_store)
    assert (await get(store, leak.token)).leaked_at == leak.token.leaked_at
    assert await report(store, issued.secret) == []
    with pytest.raises(TokenLeaked):
        await store.tokens.set_enabled(actor=ACTOR, token_id=leak.token.id, enabled=True)
    clock.advance(60)
    (again,) = await report(store, issued.secret, message_ts="1790000500.000600")
    assert again.token.leaked_at == leak.token.leaked_at


class Observed(list[str]):
    """Candidates that note, when the store reads them (its look-up in memory), which of
    its secrets the first one then passed as."""

    def __init__(self, store: Store, candidates: list[str]) -> None:
        super().__init__(candidates)
        self.store = store
        self.seen: list[str | None] = []

    def __iter__(self) -> Iterator[str]:
        self.seen.append(secret_used(self.store, self[0]))
        return super().__iter__()


@pytest.mark.parametrize("grace", [None, timedelta(hours=1)], ids=["no-grace", "grace"])
@pytest.mark.parametrize("first", ["report", "reset"])
async def test_a_report_racing_a_reset_never_marks_the_fresh_secret(
    open_store: OpenStore, clock: FakeClock, db_path: Path, first: str, grace: timedelta | None
) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    candidates = Observed(store, [issued.secret])

    async def reset_it() -> IssuedToken:
        return await reset(store, issued.token, grace=grace)

    async def report_it() -> list[LeakReport]:
        return await report(store, *candidates)

    if first == "report":
        leaks, fresh = await asyncio.gather(report_it(), reset_it(), return_exceptions=True)
    else:
        fresh, leaks = await asyncio.gather(reset_it(), report_it(), return_exceptions=True)

    # Either way the look-up found the old secret current: the Reset had not committed.
    assert candidates.seen == ["current"]
    assert isinstance(leaks, list)
    token = await get(store, issued.token)
    if first == "report":
        # The report landed on the old secret; the Reset then cleared the mark, or, asked
        # for a window, was refused: a leaked secret gets none.
        (leak,) = leaks
        assert leak.which == "current" and leak.token.row_version == 1
        if grace is None:
            assert isinstance(fresh, IssuedToken)
            assert token.leaked_at is None and token.secret_hint == fresh.secret[-4:]
        else:
            assert isinstance(fresh, InvalidInput)
            assert token == leak.token
    else:
        # The transaction found what the Reset left: a retired secret (nothing to report),
        # or the previous one, whose window it ended.
        assert isinstance(fresh, IssuedToken)
        assert token.leaked_at is None and token.previous_until is None
        if grace is None:
            assert leaks == []
        else:
            (leak,) = leaks
            assert leak.which == "previous" and leak.token == token
        assert secret_used(store, fresh.secret) == "current"
    assert store.credentials.check(issued.secret).token is None or token.leaked_at is not None
    secrets = [issued.secret] + ([fresh.secret] if isinstance(fresh, IssuedToken) else [])
    assert_index_agrees_with_database(store, db_path, secrets, clock.now)
    await store.close()
    store = await opened(open_store)
    assert_index_agrees_with_database(store, db_path, secrets, clock.now)


async def test_the_schema_refuses_an_unknown_disabled_reason(
    open_store: OpenStore, db_path: Path
) -> None:
    store = await opened(open_store)
    issued = await create_token(store)
    await store.close()
    connection = plain_connection(db_path)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute("UPDATE tokens SET disabled_reason = 'bored'")
        connection.execute("UPDATE tokens SET disabled_reason = ?", (LEAKED,))
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(
                "INSERT INTO leak_reports VALUES ('C1', '1.2', x'00', ?, 0)",
                (issued.token.id + 1,),
            )
    finally:
        connection.close()
