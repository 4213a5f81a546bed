"""App Home's reads: the summary counts as the list's filters count, and the tokens that
need attention, most urgent first, each read from an index."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.credential_index import RETIRED
from storage.models import (
    Attention,
    AttentionItem,
    HomeSummary,
    LastUsedFilter,
    StateFilter,
    Token,
    TokenEdit,
    TokenFilter,
    TokenState,
)
from storage.store import Store
from storage.token_reads import (
    _EXPIRED,
    _EXPIRING,
    _IDLE,
    _LEAKED,
    _NO_EXPIRY,
    _OLD_SECRET_PRESENTED,
    _SUMMARY,
    _UNUSED_SINCE_EVENT,
)
from tests.conftest import OpenStore
from tests.storage.conftest import DAY_SECONDS as DAY
from tests.storage.support_durability import ACTOR, START, FakeClock, create_token, plain_connection
from tests.storage.support_grace import reset
from tests.store_support import days_ahead, tokens_by_sid

HOUR = 3_600


@dataclass(frozen=True)
class Known:
    """The known set's secrets by name, and its edge moments."""

    secrets: dict[str, str]
    soon_stops_at: int
    later_stops_at: int
    grace_until: int
    last_use: int


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    # The background flush never runs within a test: only the test's own flushes write uses.
    store = await open_store(flush_seconds=3600.0)
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    return store


def use(store: Store, secret: str) -> None:
    assert store.credentials.check(secret).token is not None


async def seed_known(store: Store, clock: FakeClock) -> Known:
    """Thirteen tokens, one or more of each kind, built in time order up to START:

    Busy (used an hour ago), Dormant (last used 45 days ago), Pending (used 50 days ago,
    and an hour ago, not written yet), Off (disabled), Gone (expired 29 days ago), Later
    (stopping in 20 days, used an hour ago), Echo (reset 10 days ago, its old secret
    presented 3 times since, used an hour ago), Rekeyed (used 40 days ago, reset 5 days
    ago), Fresh (created 2 days ago), Grace (a window of 3 days from a day ago), Leaky and
    LeakyOff (leaked a day ago, the latter disabled by it), Soon (stopping within 4 days,
    used an hour ago): all created 60 days ago but the last four and Fresh, and without
    expiry but Gone, Later and Soon."""
    secrets: dict[str, str] = {}
    tokens: dict[str, Token] = {}

    async def create(name: str, **options: object) -> None:
        issued = await create_token(store, name, **options)  # type: ignore[arg-type]
        secrets[name], tokens[name] = issued.secret, issued.token

    clock.now = START - 60 * DAY
    for name in ("Busy", "Dormant", "Pending", "Off", "Echo", "Rekeyed"):
        await create(name)
    await create("Gone", expires_on=days_ahead(30, clock=clock))
    await create("Later", expires_on=days_ahead(80, clock=clock))
    for moment, name in ((START - 50 * DAY, "Pending"), (START - 45 * DAY, "Dormant")):
        clock.now = moment
        use(store, secrets[name])
        await store.credentials.flush_last_used()
    clock.now = START - 40 * DAY
    use(store, secrets["Rekeyed"])
    await store.credentials.flush_last_used()

    clock.now = START - 10 * DAY
    old_echo = secrets["Echo"]
    secrets["Echo"] = (await reset(store, tokens["Echo"])).secret
    for _ in range(3):
        verdict = store.credentials.check(old_echo)
        assert verdict.reason == RETIRED
        store.credentials.record_retired(verdict, lambda: ("10.0.0.9", "cron/2"))
    await store.credentials.flush_last_used()
    clock.now = START - 5 * DAY
    secrets["Rekeyed"] = (await reset(store, tokens["Rekeyed"])).secret

    clock.now = START - 2 * DAY
    await create("Fresh")
    clock.now = START - DAY
    await create("Grace")
    grace = await reset(store, tokens["Grace"], grace=timedelta(days=3))
    secrets["Grace"] = grace.secret
    await store.tokens.set_enabled(actor=ACTOR, token_id=tokens["Off"].id, enabled=False)
    await create("Leaky")
    await create("LeakyOff")
    await create("Soon", expires_on=days_ahead(3, clock=clock) + timedelta(days=1))
    for name, disable in (("Leaky", False), ("LeakyOff", True)):
        clock.advance(60)
        await store.leaks.report(
            candidates=[secrets[name]],
            channel="C0LEAKS01",
            message_ts=f"{clock.now:.6f}",
            poster=None,
            disable=disable,
        )

    clock.now = START - HOUR
    for name in ("Busy", "Soon", "Echo", "Later"):
        use(store, secrets[name])
    await store.credentials.flush_last_used()
    use(store, secrets["Pending"])
    clock.now = START
    soon, later = (tokens[name].stops_at for name in ("Soon", "Later"))
    assert soon is not None and later is not None and grace.token.previous_until is not None
    return Known(
        secrets=secrets,
        soon_stops_at=int(soon.timestamp()),
        later_stops_at=int(later.timestamp()),
        grace_until=int(grace.token.previous_until.timestamp()),
        last_use=int(START - HOUR),
    )


# The product rules, written from the tokens as the list shows them -------------------------


def reason_of(token: Token, now: datetime, *, expiry_required: bool) -> Attention | None:
    """The most urgent reason a token needs attention for, if any."""
    if token.leaked_at is not None:
        return Attention.LEAKED
    state = token.state_at(now)
    if state is TokenState.DISABLED:
        return None
    if state is TokenState.EXPIRED:
        return Attention.EXPIRED
    if token.expires_within(now, 7):
        return Attention.EXPIRING
    if token.retired is not None and token.retired.presented > 0:
        return Attention.OLD_SECRET_PRESENTED
    if token.last_used_at is None or token.last_used_at < now - timedelta(days=30):
        return Attention.UNUSED
    if token.expires_on is None and expiry_required:
        return Attention.NO_EXPIRY
    return None


def urgency(item: AttentionItem) -> tuple[object, ...]:
    token = item.token
    order = list(Attention).index(item.reason)
    if item.reason is Attention.LEAKED:
        assert token.leaked_at is not None
        return (order, -token.leaked_at.timestamp(), -token.id)
    if item.reason in (Attention.EXPIRED, Attention.EXPIRING):
        assert token.stops_at is not None
        return (order, token.stops_at, token.id)
    if item.reason is Attention.OLD_SECRET_PRESENTED:
        assert token.retired is not None
        last = token.retired.last_presented_at
        assert last is not None
        return (order, -token.retired.presented, -last.timestamp(), token.id)
    if item.reason is Attention.UNUSED:
        return (order, token.last_active_at, token.id)
    return (order, token.created_at, token.id)


async def expected_attention(store: Store, *, expiry_required: bool) -> list[AttentionItem]:
    now = datetime.fromtimestamp(store.clock(), UTC)
    items = []
    for token in (await tokens_by_sid(store)).values():
        reason = reason_of(token, now, expiry_required=expiry_required)
        if reason is not None:
            items.append(AttentionItem(token, reason))
    return sorted(items, key=urgency)


async def expected_summary(store: Store) -> HomeSummary:
    """Each count as the list's filter counts it, the others from the tokens' cards."""

    async def total(**filters: object) -> int:
        page = await store.token_reads.page(filters=TokenFilter(**filters))  # type: ignore[arg-type]
        return page.total

    now = datetime.fromtimestamp(store.clock(), UTC)
    tokens = (await tokens_by_sid(store)).values()
    return HomeSummary(
        enabled=await total(state=StateFilter.ENABLED),
        disabled=await total(state=StateFilter.DISABLED),
        expired=await total(state=StateFilter.EXPIRED),
        expiring_soon=await total(state=StateFilter.EXPIRING_SOON),
        in_grace=sum(token.grace_open_at(now) for token in tokens),
        leaked=sum(token.leaked_at is not None for token in tokens),
        unused=await total(last_used=LastUsedFilter.NOT_30_DAYS),
        without_expiry=sum(token.expires_on is None for token in tokens),
    )


def names(items: list[AttentionItem]) -> list[tuple[str, Attention]]:
    return [(item.token.name, item.reason) for item in items]


# Tests --------------------------------------------------------------------------------------


async def test_the_summary_of_a_known_set(store: Store, clock: FakeClock) -> None:
    await seed_known(store, clock)

    summary = await store.token_reads.summary()

    assert summary == HomeSummary(
        enabled=10,
        disabled=2,
        expired=1,
        expiring_soon=1,
        in_grace=1,
        leaked=2,
        # Fresh, Dormant, Off, Gone, Grace, Leaky, LeakyOff and Rekeyed: never used, or
        # not within 30 days (a Reset is no use); Pending's use is not written yet.
        unused=8,
        without_expiry=10,
    )
    assert summary == await expected_summary(store)


async def test_the_summary_counts_as_the_filters_at_every_edge(
    store: Store, clock: FakeClock
) -> None:
    known = await seed_known(store, clock)
    soon, later, grace = known.soon_stops_at, known.later_stops_at, known.grace_until
    window_end = known.last_use + 30 * DAY
    # (expiring soon, expired, in grace, unused) from each moment on.
    expected = {
        START: (1, 1, 1, 8),
        grace - 1: (1, 1, 1, 8),  # the window's last second
        grace: (1, 1, 0, 8),
        soon - 1: (1, 1, 0, 8),
        soon: (0, 2, 0, 8),  # expired from its stop instant on
        # Counted with today's expiries to the day's last second, then by its day.
        soon + DAY - 1: (0, 2, 0, 8),
        soon + DAY: (0, 2, 0, 8),
        later - 7 * DAY - 1: (0, 2, 0, 8),
        later - 7 * DAY: (1, 2, 0, 8),  # stopping within 7 days, to the second
        later: (0, 3, 0, 8),
        window_end: (0, 3, 0, 8),  # used 30 days ago to the second: within the window
        # Busy, Soon, Echo, Later and Pending too (its use written by now).
        window_end + 1: (0, 3, 0, 13),
    }
    assert list(expected) == sorted(expected)
    for moment, (expiring, expired, in_grace, unused) in expected.items():
        if moment > window_end:
            # As the flush every minute would have: the order of idle tokens is by the
            # activity written (a use kept in memory for 30 days never happens).
            await store.credentials.flush_last_used()
        clock.now = moment
        summary = await store.token_reads.summary()
        assert summary == await expected_summary(store), moment
        assert (summary.expiring_soon, summary.expired, summary.in_grace, summary.unused) == (
            expiring,
            expired,
            in_grace,
            unused,
        ), moment
        assert summary.enabled + summary.disabled + summary.expired == 13
        for expiry_required in (True, False):
            everything = await store.token_reads.needing_attention(
                limit=100, expiry_required=expiry_required
            )
            assert everything == await expected_attention(store, expiry_required=expiry_required)
            for limit in (1, 4, 7):
                assert everything[:limit] == await store.token_reads.needing_attention(
                    limit=limit, expiry_required=expiry_required
                )


async def test_what_needs_attention_in_a_known_set(store: Store, clock: FakeClock) -> None:
    await seed_known(store, clock)
    reads = store.token_reads

    attention = await reads.needing_attention(expiry_required=True)

    # Leaky is unused and without expiry too, Gone unused: each appears once, under its
    # most urgent reason. Off, disabled, needs no attention; LeakyOff does, as leaked.
    assert names(attention) == [
        ("LeakyOff", Attention.LEAKED),  # the newest leak first
        ("Leaky", Attention.LEAKED),
        ("Gone", Attention.EXPIRED),
        ("Soon", Attention.EXPIRING),
        ("Echo", Attention.OLD_SECRET_PRESENTED),
        ("Dormant", Attention.UNUSED),  # idle for 45 days
        ("Rekeyed", Attention.UNUSED),  # for 5, since its Reset
        ("Fresh", Attention.UNUSED),
        ("Grace", Attention.UNUSED),
        ("Busy", Attention.NO_EXPIRY),  # Pending, as old, is the eleventh
    ]
    assert attention == (await expected_attention(store, expiry_required=True))[:10]
    assert names(await reads.needing_attention(limit=11, expiry_required=True))[-1] == (
        "Pending",
        Attention.NO_EXPIRY,
    )
    # Without a maximum lifetime, no token needs an expiry.
    assert await reads.needing_attention(expiry_required=False) == attention[:9]
    assert await reads.needing_attention(limit=3, expiry_required=True) == attention[:3]
    for limit in (0, 101):
        with pytest.raises(ValueError):
            await reads.needing_attention(limit=limit, expiry_required=True)

    # Disabled, Echo needs no attention any more, whatever its old secret does.
    echo = next(item.token for item in attention if item.token.name == "Echo")
    await store.tokens.set_enabled(actor=ACTOR, token_id=echo.id, enabled=False)
    assert "Echo" not in dict(names(await reads.needing_attention(expiry_required=True)))


async def test_a_use_not_written_yet_counts_at_once(store: Store, clock: FakeClock) -> None:
    known = await seed_known(store, clock)
    before = await store.token_reads.summary()

    # Fresh (never used, no usage row) and Dormant (a stored use 45 days old) are used.
    for name in ("Fresh", "Dormant"):
        use(store, known.secrets[name])
    pending = await store.token_reads.summary()
    items = await store.token_reads.needing_attention(limit=100, expiry_required=True)
    attention = names(items)

    assert pending.unused == before.unused - 2
    assert pending == await expected_summary(store)
    assert items == await expected_attention(store, expiry_required=True)
    assert ("Dormant", Attention.NO_EXPIRY) in attention  # no longer unused
    assert ("Fresh", Attention.NO_EXPIRY) in attention
    await store.credentials.flush_last_used()
    assert await store.token_reads.summary() == pending
    assert await store.token_reads.needing_attention(limit=100, expiry_required=True) == items


def query_plan(path: Path, query: str, parameters: tuple[object, ...]) -> list[str]:
    connection = plain_connection(path)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {query}", parameters).fetchall()
    finally:
        connection.close()
    return [row[3] for row in rows]


# A table read whole, row by row, with no index to narrow it.
FULL_SCAN = re.compile(r"SCAN (t|u|r|tokens|token_usage|retired_secrets)")


@pytest.mark.parametrize(
    ("query", "parameters", "index"),
    [
        (_LEAKED, (10,), "SEARCH t USING INDEX tokens_leaked"),
        (_EXPIRED, (START, 10), "SEARCH t USING INDEX tokens_by_expiry"),
        (_EXPIRING, (START, START + 7 * DAY, 10), "SEARCH t USING INDEX tokens_by_expiry"),
        (
            _OLD_SECRET_PRESENTED,
            (10,),
            "SCAN retired_secrets USING COVERING INDEX retired_secrets_presented",
        ),
        (_IDLE, (START, "[1, 2]", 10), "SEARCH t USING INDEX tokens_by_activity"),
        (
            _UNUSED_SINCE_EVENT,
            (START, "[1, 2]", 10),
            "SEARCH t USING INDEX tokens_not_used_since_event",
        ),
        (_NO_EXPIRY, (10,), "SCAN t USING INDEX tokens_without_expiry"),
    ],
    ids=["leaked", "expired", "expiring", "old-secret", "idle", "unused-since-event", "no-expiry"],
)
async def test_each_attention_query_walks_an_index(
    store: Store,
    clock: FakeClock,
    db_path: Path,
    query: str,
    parameters: tuple[object, ...],
    index: str,
) -> None:
    await seed_known(store, clock)
    plan = query_plan(db_path, query, parameters)
    assert any(line.startswith(index) for line in plan), plan
    assert not [line for line in plan if FULL_SCAN.fullmatch(line)], plan
    # Walked in the reason's order: no sort of what the index found, but for the sum of
    # each token's presentations, which only an aggregate knows.
    sorted_ = any("TEMP B-TREE" in line for line in plan)
    assert sorted_ is (query is _OLD_SECRET_PRESENTED)


async def test_the_summary_reads_indexes_only(store: Store, db_path: Path) -> None:
    plan = query_plan(
        db_path, _SUMMARY, (START, START + 7 * DAY, START - 30 * DAY, "[1]", START // DAY)
    )
    for index in ("tokens_by_expiry", "tokens_by_previous_until", "token_usage_by_time"):
        assert any(index in line for line in plan), index
    # The days before today by their key, not every day ever counted.
    assert "SEARCH token_expiry_days USING INTEGER PRIMARY KEY (rowid<?)" in plan, plan
    assert not [line for line in plan if FULL_SCAN.fullmatch(line)], plan


def stored_counts(path: Path) -> tuple[int, ...]:
    connection = plain_connection(path)
    try:
        kept = connection.execute(
            "SELECT tokens, disabled, leaked, without_expiry, used FROM token_counts"
        ).fetchone()
        counted = connection.execute(
            "SELECT count(*), coalesce(sum(enabled = 0), 0),"
            " coalesce(sum(leaked_at IS NOT NULL), 0), coalesce(sum(expires_at IS NULL), 0),"
            " (SELECT count(*) FROM token_usage) FROM tokens"
        ).fetchone()
        days_kept = connection.execute(
            "SELECT day, tokens FROM token_expiry_days WHERE tokens <> 0 ORDER BY day"
        ).fetchall()
        days_counted = connection.execute(
            "SELECT expires_at / 86400, count(*) FROM tokens"
            " WHERE enabled = 1 AND expires_at IS NOT NULL GROUP BY expires_at / 86400 ORDER BY 1"
        ).fetchall()
    finally:
        connection.close()
    assert kept == counted
    assert days_kept == days_counted
    return tuple(kept)


async def test_the_kept_counts_follow_every_change(
    store: Store, clock: FakeClock, db_path: Path
) -> None:
    """Create, use (a first one and a later one), leak, disable and enable, edit the expiry
    (set, moved, removed), Reset (which clears a leak), the flush, and Delete (whose
    cascade takes the usage row): the summary counts as the filters after each."""
    known = await seed_known(store, clock)
    tokens = await tokens_by_sid(store)
    by_name = {token.name: token for token in tokens.values()}

    async def agrees() -> tuple[int, ...]:
        assert await store.token_reads.summary() == await expected_summary(store)
        return stored_counts(db_path)

    assert await agrees() == (
        13,
        2,
        2,
        10,
        7,
    )  # used: Busy, Dormant, Pending, Echo, Rekeyed, Soon, Later
    clock.advance(60)
    issued = await create_token(store, "Newcomer")
    assert await agrees() == (14, 2, 2, 11, 7)
    use(store, issued.secret)
    use(store, known.secrets["Busy"])
    await store.credentials.flush_last_used()
    assert await agrees() == (14, 2, 2, 11, 8)  # only Newcomer's use is a new row
    await store.leaks.report(
        candidates=[issued.secret], channel="C0LEAKS01", message_ts="2.1", poster=None, disable=True
    )
    assert await agrees() == (14, 3, 3, 11, 8)
    newcomer = (await tokens_by_sid(store))[issued.token.sid]
    renewed = await reset(store, newcomer, expires_on=days_ahead(30, clock=clock))
    assert await agrees() == (14, 3, 2, 10, 8)  # the Reset cleared the leak
    await store.tokens.set_enabled(actor=ACTOR, token_id=renewed.token.id, enabled=True)
    assert await agrees() == (14, 2, 2, 10, 8)
    for expires_on in (days_ahead(60, clock=clock), None):
        current = (await tokens_by_sid(store))[issued.token.sid]
        await store.tokens.edit(
            actor=ACTOR,
            token_id=current.id,
            row_version=current.row_version,
            edit=TokenEdit(expires_on=expires_on),
        )
    assert await agrees() == (14, 2, 2, 11, 8)
    for name in ("Busy", "Off"):
        token = by_name[name] if name == "Off" else (await tokens_by_sid(store))[by_name[name].sid]
        await store.tokens.delete(actor=ACTOR, token_id=token.id, row_version=token.row_version)
    # Busy took its usage row along; Off, disabled, had none.
    assert await agrees() == (12, 1, 2, 9, 7)
