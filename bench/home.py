"""How long a manager's Home takes to build, next to the first page of the list.

Run with `.venv/bin/python bench/home.py` (`--quick` for a smoke check). By hand, not in CI.

Both are timed server side, in process, as Token Desk builds them: the Home as bot/home.py
renders a manager's (`token_reads.summary()`, `token_reads.needing_attention(limit=10)`,
`bot.blocks.home.manager_home`, and the JSON of the view `views.publish` sends), the list
as bot/list_message.py answers `/tokens` (`list_message` for the first page, `as_dict` and
the JSON of the ack body). What is judged is Home/list at 100k tokens.

Two sets of 100k tokens (seeded as bench/store.py seeds them, bench/seed.py, then given
their states by direct writes): "mixed", with tokens of every kind (used lately, idle,
never used, disabled, expired, expiring, in a grace window, leaked, old secrets still
presented), so that the ten cards come from the first reasons; and "healthy", where every
enabled token was used within a day and expires months ahead, so that no token needs
attention and every reason's query runs and finds nothing: the walk that would cost most
if a query read every token.

As in bench/store.py, the machine is small and shared: every figure is a median over many
rounds, all variants timed interleaved in a fresh shuffled order each round, and what is
judged is a ratio between figures measured side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The bot's packages come from the repo, as in bench/list.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seed import API_VERSIONS, DAY, SCOPES, insert_rows, make_seed, spread_over_days
from verdict import judge

from bot.blocks.home import manager_home
from bot.home import ATTENTION_SHOWN
from bot.list_message import list_message
from bot.list_view import ListView
from storage.models import AttentionItem, HomeSummary
from storage.store import Store

RANDOM_SEED = 20_240_501
SIZE = 100_000
TARGET = 2.0  # the highest acceptable Home/list ratio
HEALTHY, MIXED = "healthy", "mixed"
SHAPES = (MIXED, HEALTHY)
HOME, LIST = "Home", "list"
STEPS = ("summary", "needing_attention", "manager_home", "json.dumps")


@dataclass(frozen=True)
class Plan:
    rounds: int
    warmup_rounds: int


FULL = Plan(rounds=300, warmup_rounds=20)
QUICK = Plan(rounds=30, warmup_rounds=3)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


def require(condition: bool, failure: str) -> None:
    """Like assert, but not stripped by `python -O`: a figure measured on the wrong
    data would be worse than none."""
    if not condition:
        raise SystemExit(f"benchmark set-up is wrong: {failure}")


# Seeding ------------------------------------------------------------------------------------


async def open_store(path: Path, key: bytes) -> Store:
    # A flush interval longer than the run keeps the background last-used writer out of
    # the timed calls. The default maximum lifetime: tokens without expiry need attention.
    return await Store.open(
        path=path, secret_key=key, api_versions=API_VERSIONS, scopes=SCOPES, flush_seconds=3_600
    )


def give_states(path: Path, shape: str, now: int, rng: random.Random) -> None:
    """Last uses, expiries, grace windows, leaks and presented old secrets for `shape`
    (disabled tokens come from bench/seed.py), each token's activity its latest event."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        rows = connection.execute("SELECT id, enabled FROM tokens ORDER BY id").fetchall()
        uses, expiries = [], []
        for token_id, enabled in rows:
            draw = rng.random()
            used: int | None
            stops: int | None
            if shape == HEALTHY:
                # The disabled ones were never used: unused, but needing no attention.
                used = now - rng.randrange(DAY) if enabled else None
                stops = now + rng.randrange(60, 365) * DAY
            else:
                # 80% used within two days, 12% last used 31 to 120 days ago, 8% never.
                if draw < 0.80:
                    used = now - rng.randrange(2 * DAY)
                elif draw < 0.92:
                    used = now - rng.randrange(31 * DAY, 120 * DAY)
                else:
                    used = None
                # 60% with an expiry from 60 days ago to a year ahead, the rest none.
                stops = now + rng.randrange(-60, 365) * DAY if rng.random() < 0.6 else None
            if used is not None:
                uses.append((token_id, used))
            expiries.append((stops, token_id))
        connection.executemany(
            "INSERT INTO token_usage (token_id, last_used_at) VALUES (?, ?)", uses
        )
        connection.executemany("UPDATE tokens SET expires_at = ? WHERE id = ?", expiries)
        if shape == MIXED:
            mark_some(connection, rng.sample([row[0] for row in rows], 400), now, rng)
        connection.execute(
            "UPDATE tokens SET last_active_at = max(last_active_at, coalesce(reset_at, 0),"
            " coalesce((SELECT last_used_at FROM token_usage WHERE token_id = tokens.id), 0))"
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


def mark_some(
    connection: sqlite3.Connection, chosen: list[int], now: int, rng: random.Random
) -> None:
    """Of `chosen`: 300 in a grace window, 3 leaked, 60 with old secrets presented."""
    for token_id in chosen[:300]:
        connection.execute(
            "UPDATE tokens SET previous_secret_hash = ?, previous_secret_hint = 'AbCd',"
            " previous_until = ?, reset_at = ? WHERE id = ?",
            (secrets.token_bytes(32), now + rng.randrange(3_600, 7 * DAY), now - 3_600, token_id),
        )
    for token_id in chosen[300:303]:
        connection.execute(
            "UPDATE tokens SET leaked_at = ? WHERE id = ?",
            (now - rng.randrange(30 * DAY), token_id),
        )
    for token_id in chosen[303:363]:
        for _ in range(rng.randrange(1, 4)):
            at = now - rng.randrange(20 * DAY)
            presenter = {"address": "10.0.0.1", "user_agent": "cron/1.0", "at": at}
            connection.execute(
                "INSERT INTO retired_secrets (digest, token_id, retired_at, presented,"
                " last_presented_at, presenters) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    secrets.token_bytes(32),
                    token_id,
                    at - DAY,
                    rng.randrange(1, 500),
                    at,
                    json.dumps([presenter]),
                ),
            )


async def seed_stores(directory: Path, key: bytes, rng: random.Random) -> dict[str, Path]:
    seed = make_seed(SIZE, key, rng)
    now = int(time.time())
    paths = {}
    for shape in SHAPES:
        path = paths[shape] = directory / f"{shape}.db"
        store = await open_store(path, key)  # the real schema and key check
        await store.close()
        insert_rows(path, spread_over_days(seed.rows, now))
        give_states(path, shape, now, rng)
    return paths


# Timing -------------------------------------------------------------------------------------


async def probes(store: Store) -> dict[str, Callable[[], Awaitable[object]]]:
    """The Home and the list, whole; the Home's steps one by one, the builder and the JSON
    on what the store answered once."""
    expiry_required = store.max_lifetime_days > 0

    async def summary() -> HomeSummary:
        return await store.token_reads.summary()

    async def attention() -> list[AttentionItem]:
        return await store.token_reads.needing_attention(
            limit=ATTENTION_SHOWN, expiry_required=expiry_required
        )

    def build(summary: HomeSummary, attention: list[AttentionItem]) -> dict[str, Any]:
        return manager_home(
            summary=summary,
            attention=attention,
            newest_version=store.token_reads.newest_version,
            now=datetime.fromtimestamp(store.clock(), UTC),
            expiry_required=expiry_required,
            api_access=store.account.api_access,
        )

    async def home() -> str:
        return json.dumps(build(await summary(), await attention()))

    async def the_list() -> str:
        message = await list_message(store, view=ListView())
        return json.dumps({"response_type": "ephemeral", **message.as_dict()})

    answered = (await summary(), await attention())
    view = build(*answered)

    async def builder() -> object:
        return build(*answered)

    async def dumps() -> object:
        return json.dumps(view)

    return {
        HOME: home,
        LIST: the_list,
        "summary": summary,
        "needing_attention": attention,
        "manager_home": builder,
        "json.dumps": dumps,
    }


async def interleaved(
    calls: dict[Any, Callable[[], Awaitable[object]]], rounds: int, rng: random.Random
) -> dict[Any, list[float]]:
    """Every call timed once per round, in a fresh shuffled order each round."""
    samples: dict[Any, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            await calls[name]()
            samples[name].append(time.perf_counter() - started)
    return samples


async def check(stores: dict[str, Store]) -> None:
    """Refuse to time data that is not what the benchmark says it is."""
    for shape, store in stores.items():
        summary = await store.token_reads.summary()
        attention = await store.token_reads.needing_attention(
            limit=ATTENTION_SHOWN, expiry_required=True
        )
        page = await store.token_reads.page()
        require(page.total == SIZE and len(page.tokens) == 10, f"{shape}: the list's first page")
        require(summary.enabled + summary.disabled + summary.expired == SIZE, f"{shape}: states")
        if shape == HEALTHY:
            require(not attention and summary.unused == summary.disabled, "healthy: attention")
        else:
            require(len(attention) == ATTENTION_SHOWN, "mixed: ten cards")
            require(min(summary.leaked, summary.expired, summary.in_grace) > 0, "mixed: kinds")
        print(f"  {shape}: {summary}")
        print(f"  {shape}: attention {[item.reason.value for item in attention]}")


async def run(plan: Plan, directory: Path) -> None:
    rng = random.Random(RANDOM_SEED)
    key = secrets.token_bytes(32)
    started = time.perf_counter()
    paths = await seed_stores(directory, key, rng)
    print(f"seeded {len(SHAPES)} sets of {SIZE:,} tokens in {time.perf_counter() - started:.1f} s")

    stores: dict[str, Store] = {}
    try:
        for shape, path in paths.items():
            stores[shape] = await open_store(path, key)
        await check(stores)
        calls: dict[Any, Callable[[], Awaitable[object]]] = {}
        for shape, store in stores.items():
            calls |= {(name, shape): call for name, call in (await probes(store)).items()}
        # The loaded credentials live for the whole run: freezing them keeps full garbage
        # collections, which would walk them all, out of the timings.
        gc.collect()
        gc.freeze()
        await interleaved(calls, plan.warmup_rounds, rng)
        samples = await interleaved(calls, plan.rounds, rng)
    finally:
        for store in stores.values():
            await store.close()
    report(plan, {name: statistics.median(times) for name, times in samples.items()})


def report(plan: Plan, median: dict[Any, float]) -> None:
    print(
        f"\nat {SIZE:,} tokens: median of {plan.rounds} rounds, every call interleaved in a"
        " fresh shuffled order each round"
    )
    print(f"  {'':<34}" + "".join(f"{shape:>14}" for shape in SHAPES))
    rows = [
        (f"{HOME} (the four steps below)", HOME),
        *((f"  {step}", step) for step in STEPS),
        (f"{LIST}: first page, as_dict, json.dumps", LIST),
    ]
    for title, name in rows:
        print(f"  {title:<34}" + "".join(f"{ms(median[(name, shape)]):>14}" for shape in SHAPES))
    for shape in SHAPES:
        ratio = median[(HOME, shape)] / median[(LIST, shape)]
        figure = f"manager Home / list first page, {SIZE // 1000}k tokens, {shape}"
        print(f"  Home/list, {shape}: {ratio:.2f}  {judge('home', figure, ratio, '≤', TARGET)}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke check")
    arguments = parser.parse_args(argv)
    plan = QUICK if arguments.quick else FULL
    print("Token Desk Home benchmark" + (" (quick)" if arguments.quick else ""))
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version},"
        f" os.cpu_count() = {os.cpu_count()}"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tokendesk-bench-") as directory:
        asyncio.run(run(plan, Path(directory)))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
