"""Retired secrets: refused like unknown ones, but counted off the success path (with the
last few presenters), their first presentation reported once, and purged after 30 days."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from storage.credential_index import RETIRED, Verdict
from storage.credentials import generate_secret
from storage.models import PRESENTERS_KEPT, IssuedToken, Presenter
from storage.presentations import ADDRESS_MAX, USER_AGENT_MAX
from storage.retirement import LAPSED_QUERY, PRESENTED_QUERY, PURGE_QUERY
from storage.store import Store
from storage.token_reads import COLUMNS, FROM
from tests.storage.conftest import DAY_SECONDS, FakeClock
from tests.storage.support_durability import ACTOR, create_token, plain_connection
from tests.storage.support_grace import (
    DIGEST,
    HOUR,
    assert_index_agrees_with_database,
    at,
    reset,
    retired_rows,
    secret_used,
)


@pytest.fixture
async def store(store: Store) -> Store:
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    return store


async def retire(store: Store, name: str = "Lifecycle Alpha") -> tuple[IssuedToken, IssuedToken]:
    """A token reset without a window: (as created, as reset)."""
    old = await create_token(store, name)
    return old, await reset(store, old.token)


def present(store: Store, secret: str, address: str = "10.0.0.1", agent: str = "cron/1") -> None:
    """What the auth check handler does with a secret the store refused as retired."""
    verdict = store.credentials.check(secret)
    assert verdict.token is None and verdict.reason == RETIRED
    store.credentials.record_retired(verdict, lambda: (address, agent))


async def test_a_retired_secret_is_refused_and_its_presentations_add_up_across_flushes(
    store: Store, clock: FakeClock, db_path: Path
) -> None:
    old, new = await retire(store)
    digest = DIGEST(old.secret)
    assert retired_rows(db_path) == {digest: (old.token.id, int(clock.now), 0, None, "[]", None)}

    for number in range(3):
        clock.advance(10)
        present(store, old.secret, f"10.0.0.{number}", f"agent/{number}")
    # Counted in memory only, until the flush that writes the last-used times.
    assert retired_rows(db_path)[digest][2] == 0
    assert (await store.token_reads.get(token_id=old.token.id)).retired is None
    assert await store.credentials.flush_last_used() == 1
    assert await store.credentials.flush_last_used() == 0
    first_flush = int(clock.now)

    for number in range(3, 7):
        clock.advance(10)
        present(store, old.secret, f"10.0.0.{number}", f"agent/{number}")
    assert await store.credentials.flush_last_used() == 1

    token_id, _, presented, last_presented_at, presenters, _ = retired_rows(db_path)[digest]
    assert (token_id, presented, last_presented_at) == (old.token.id, 7, int(clock.now))
    assert [entry["address"] for entry in json.loads(presenters)] == [
        f"10.0.0.{number}" for number in range(6, 6 - PRESENTERS_KEPT, -1)
    ]
    summary = (await store.token_reads.get(token_id=old.token.id)).retired
    assert summary is not None
    assert (summary.presented, summary.last_presented_at) == (7, at(clock.now))
    assert summary.presenters[0] == Presenter("10.0.0.6", "agent/6", at(clock.now))
    # The last five, across the two flushes.
    assert len(summary.presenters) == PRESENTERS_KEPT
    assert summary.presenters[-1] == Presenter("10.0.0.2", "agent/2", at(first_flush))
    # Nothing about the token moved; the new secret never noticed.
    token = await store.token_reads.get(token_id=old.token.id)
    assert token.row_version == new.token.row_version and token.last_used_at is None
    assert secret_used(store, new.secret) == "current"


async def test_presentations_in_one_interval_are_one_write_and_count_all(
    store: Store, clock: FakeClock, db_path: Path
) -> None:
    old, _ = await retire(store)
    for _ in range(250):
        present(store, old.secret)
    assert await store.credentials.flush_last_used() == 1
    assert retired_rows(db_path)[DIGEST(old.secret)][2] == 250


async def test_a_tokens_summary_adds_its_retired_secrets(store: Store, clock: FakeClock) -> None:
    first, second = await retire(store)
    third = await reset(store, second.token)
    present(store, first.secret, "10.0.0.1")
    clock.advance(5)
    present(store, second.secret, "10.0.0.2")
    clock.advance(1)
    present(store, second.secret, "10.0.0.3")
    await store.credentials.flush_last_used()
    summary = (await store.token_reads.get(token_id=third.token.id)).retired
    assert summary is not None
    assert (summary.presented, summary.last_presented_at) == (3, at(clock.now))
    assert [p.address for p in summary.presenters] == ["10.0.0.3", "10.0.0.2", "10.0.0.1"]
    (listed,) = (await store.token_reads.page()).tokens
    assert listed.retired == summary


async def test_presenters_are_sampled_once_a_second_and_the_count_stays_exact(
    store: Store, clock: FakeClock
) -> None:
    old, _ = await retire(store)
    asked: list[str] = []

    def presenter(address: str) -> Callable[[], tuple[str, str]]:
        def read() -> tuple[str, str]:
            asked.append(address)
            return address, "cron/1"

        return read

    verdict = store.credentials.check(old.secret)
    for number in range(100):
        store.credentials.record_retired(verdict, presenter(f"10.0.0.{number}"))
    clock.advance(1)
    store.credentials.record_retired(verdict, presenter("10.0.1.1"))
    store.credentials.record_retired(verdict, presenter("10.0.1.2"))
    # The headers are read for the first presentation of each second only.
    assert asked == ["10.0.0.0", "10.0.1.1"]
    await store.credentials.flush_last_used()
    summary = (await store.token_reads.get(token_id=old.token.id)).retired
    assert summary is not None
    assert (summary.presented, summary.last_presented_at) == (102, at(clock.now))
    assert [p.address for p in summary.presenters] == ["10.0.1.1", "10.0.0.0"]


async def test_what_a_gateway_says_of_the_presenter_is_bounded_and_never_a_secret(
    store: Store, clock: FakeClock, db_path: Path
) -> None:
    old, _ = await retire(store)
    pasted = generate_secret()
    agent = f"curl/8 {pasted}\n\u202eevil {'x' * 500}"
    present(store, old.secret, address="203.0.113.9" * 20, agent=agent)
    clock.advance(1)
    present(store, old.secret, address=f"10.0.0.1 {pasted[:20]}", agent="x" * 180 + pasted)
    clock.advance(1)
    present(store, old.secret, agent="x" * 395 + pasted)
    await store.credentials.flush_last_used()

    summary = (await store.token_reads.get(token_id=old.token.id)).retired
    assert summary is not None
    third, second, first = summary.presenters
    assert len(first.address) == ADDRESS_MAX and first.address.endswith("…")
    assert len(first.user_agent) == USER_AGENT_MAX
    assert first.user_agent.startswith("curl/8 tdk_…??evil xxx")
    assert second.address == "10.0.0.1 tdk_…"
    # Masked before it is cut: no piece of a secret is left by the length limit.
    assert second.user_agent == "x" * 180 + "tdk_…"
    assert third.user_agent == "x" * (USER_AGENT_MAX - 1) + "…"
    stored = db_path.read_bytes() + db_path.with_name(db_path.name + "-wal").read_bytes()
    for piece in (pasted, pasted[4:20], pasted[-20:]):
        assert piece.encode() not in stored


async def test_only_a_retired_verdict_is_recorded(store: Store, db_path: Path) -> None:
    old, new = await retire(store)
    for secret in (new.secret, generate_secret()):
        verdict = store.credentials.check(secret)
        store.credentials.record_retired(verdict, lambda: ("10.0.0.1", "x"))
    # A verdict from before the token was deleted counts nothing after.
    verdict = store.credentials.check(old.secret)
    await store.tokens.delete(actor=ACTOR, token_id=old.token.id, row_version=2)
    store.credentials.record_retired(verdict, lambda: ("10.0.0.1", "x"))
    assert await store.credentials.flush_last_used() == 0  # its last use went with it
    assert retired_rows(db_path) == {}


async def test_a_window_ended_by_time_is_counted_once_the_scheduler_retired_it(
    store: Store, clock: FakeClock, db_path: Path
) -> None:
    old = await create_token(store)
    new = await reset(store, old.token, grace=timedelta(hours=1))
    clock.advance(HOUR)
    present(store, old.secret)
    present(store, old.secret)
    # No row yet to count it in: the count waits in memory, lost by nobody.
    assert await store.credentials.flush_last_used() == 0
    assert retired_rows(db_path) == {}

    assert await store.expiry.retire_lapsed_windows() == 1
    present(store, old.secret)
    assert await store.credentials.flush_last_used() == 1
    assert retired_rows(db_path)[DIGEST(old.secret)][1:3] == (int(clock.now), 3)
    assert_index_agrees_with_database(store, db_path, [old.secret, new.secret], clock.now)


async def test_each_retired_secret_is_reported_once_however_often_presented(
    store: Store, clock: FakeClock
) -> None:
    old, new = await retire(store)
    other_old, _ = await retire(store, "Other")
    assert await store.expiry.first_presentations() == []  # retired, never presented

    present(store, old.secret, "10.0.0.1", "first/1")
    assert await store.expiry.first_presentations() == []  # not written yet
    clock.advance(30)
    present(store, old.secret, "10.0.0.2", "second/1")
    await store.credentials.flush_last_used()

    (found,) = await store.expiry.first_presentations()
    assert found.token.id == old.token.id and found.token.name == "Lifecycle Alpha"
    assert found.presenter == Presenter("10.0.0.2", "second/1", at(clock.now))
    assert found.at == at(clock.now)

    for _ in range(20):
        clock.advance(60)
        present(store, old.secret)
        await store.credentials.flush_last_used()
        assert await store.expiry.first_presentations() == []

    # Each retired secret is its own report: the next one of this token, another token's.
    third = await reset(store, new.token)
    present(store, new.secret)
    present(store, other_old.secret)
    await store.credentials.flush_last_used()
    reports = await store.expiry.first_presentations()
    assert sorted(report.token.id for report in reports) == sorted(
        [third.token.id, other_old.token.id]
    )
    assert await store.expiry.first_presentations() == []


async def test_two_passes_at_once_report_a_presentation_once(store: Store) -> None:
    old, _ = await retire(store)
    present(store, old.secret)
    await store.credentials.flush_last_used()
    first, second = await asyncio.gather(
        store.expiry.first_presentations(), store.expiry.first_presentations()
    )
    assert len(first) + len(second) == 1


async def test_retired_digests_are_purged_after_30_days(
    store: Store, clock: FakeClock, db_path: Path
) -> None:
    old, new = await retire(store)
    retired_at = clock.now
    clock.advance(10 * DAY_SECONDS)
    newer = await reset(store, new.token)
    present(store, old.secret)

    clock.now = retired_at + 30 * DAY_SECONDS
    assert await store.expiry.purge_retired() == 0
    clock.advance(1)
    assert await store.expiry.purge_retired() == 1
    assert list(retired_rows(db_path)) == [DIGEST(new.secret)]
    # Unknown from now on, and its unwritten count went with it.
    assert store.credentials.check(old.secret) == Verdict(None, "unknown secret")
    assert await store.credentials.flush_last_used() == 0
    assert store.credentials.check(new.secret).reason == RETIRED
    assert_index_agrees_with_database(
        store, db_path, [old.secret, new.secret, newer.secret], clock.now
    )
    with pytest.raises(ValueError):
        await store.expiry.purge_retired(older_than_days=0)


async def test_retired_digests_and_counts_survive_a_restart(
    open_store: object, store: Store, clock: FakeClock, db_path: Path
) -> None:
    old, new = await retire(store)
    present(store, old.secret)
    await store.close()  # writes what was gathered

    reopened = await open_store()  # type: ignore[operator]
    await reopened.account.set_api_access(actor=ACTOR, enabled=True)
    assert reopened.credentials.check(old.secret) == Verdict(None, RETIRED, old.token.id)
    summary = (await reopened.token_reads.get(token_id=old.token.id)).retired
    assert summary is not None and summary.presented == 1
    assert_index_agrees_with_database(reopened, db_path, [old.secret, new.secret], clock.now)


def query_plan(path: Path, sql: str, parameters: tuple[object, ...]) -> list[str]:
    connection = plain_connection(path)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
    finally:
        connection.close()
    return [row[3] for row in rows]


async def test_the_scheduler_and_the_cards_read_retired_secrets_through_indexes(
    store: Store, clock: FakeClock, db_path: Path
) -> None:
    for number in range(30):
        old, new = await retire(store, f"Token {number}")
        await reset(store, new.token, grace=timedelta(hours=number + 1))
        present(store, old.secret)
    await store.credentials.flush_last_used()
    now = int(clock.now)
    plans = {
        "lapsed": query_plan(db_path, LAPSED_QUERY, (now,)),
        "purge": query_plan(db_path, PURGE_QUERY, (now,)),
        "presented": query_plan(db_path, PRESENTED_QUERY, (now,)),
        "card": query_plan(db_path, f"SELECT {COLUMNS}{FROM} WHERE t.id = ?", (1,)),
    }
    assert any("INDEX tokens_by_previous_until" in step for step in plans["lapsed"])
    assert any("INDEX retired_secrets_by_time" in step for step in plans["purge"])
    # A partial index of the presented digests (those not yet reported, or all of them).
    presented_indexes = ("INDEX retired_secrets_to_notify", "INDEX retired_secrets_presented")
    assert any(index in step for step in plans["presented"] for index in presented_indexes)
    assert any("SEARCH r USING INDEX retired_secrets_" in step for step in plans["card"])
    for name, steps in plans.items():
        for step in steps:
            assert not step.startswith("SCAN") or "USING" in step, (name, step)
