"""How the store's list, search and auth check scale with the number of tokens.

Run with `make bench` (or `.venv/bin/python bench/store.py`; `--quick` for a smoke check).

The machine this runs on is small and shared, so absolute times mean little: every figure
is a median over many repetitions, the variants being compared are timed interleaved in a
shuffled order (a burst of noise then hits all of them alike), and what is judged is a
ratio between two figures measured side by side in the same process.

Seeding 100k tokens through `TokenLifecycle.create` would take one durable (fsynced) transaction
each, so the rows are written directly with `sqlite3` into a database that the real schema
created, in one transaction, before the Store that is measured opens it (bench/seed.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
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
from pathlib import Path
from typing import Any

from seed import API_VERSIONS, SCOPES, TEAMS, Seed, insert_rows, make_seed, spread_over_days
from verdict import judge

from storage.models import TokenFilter
from storage.store import Store

ACTOR = "U0001"
PAGE_LIMIT = 10

SOME_TERM = "billing"
NO_TERM = "no such token"


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    open_repeats: int
    page_rounds: int
    verify_batch: int
    verify_rounds: int


FULL = Plan(
    sizes=(1_000, 10_000, 100_000),
    open_repeats=3,
    page_rounds=300,
    verify_batch=2_000,
    verify_rounds=60,
)
QUICK = Plan(
    sizes=(1_000, 10_000), open_repeats=1, page_rounds=40, verify_batch=1_000, verify_rounds=10
)


# Seeding ------------------------------------------------------------------------------------


async def create_schema(path: Path, key: bytes) -> None:
    """An empty database with the real schema and key check, made by the Store itself."""
    store = await open_store(path, key)
    await store.close()


async def open_store(path: Path, key: bytes) -> Store:
    # A flush interval longer than the run keeps the background last-used writer from
    # landing inside a timed call; close() still writes what the checks gathered.
    return await Store.open(
        path=path, secret_key=key, api_versions=API_VERSIONS, scopes=SCOPES, flush_seconds=3_600
    )


# Timing -------------------------------------------------------------------------------------


def label(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


def require(condition: bool, failure: str) -> None:
    """Like assert, but not stripped by `python -O`: a figure measured on the wrong
    data would be worse than none."""
    if not condition:
        raise SystemExit(f"benchmark set-up is wrong: {failure}")


async def time_once(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def interleaved(
    calls: dict[Any, Callable[[], Awaitable[object]]], rounds: int, rng: random.Random
) -> dict[Any, float]:
    """The median time of each call, each timed once per round in a fresh shuffled order."""
    samples: dict[Any, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            samples[name].append(await time_once(calls[name]))
    return {name: statistics.median(times) for name, times in samples.items()}


# The benchmarks -----------------------------------------------------------------------------


async def bench_open(paths: dict[int, Path], key: bytes, repeats: int) -> None:
    """Informative: open (lock, check, load every credential) then close, sizes interleaved."""
    samples: dict[int, list[float]] = {size: [] for size in paths}
    for _ in range(repeats):
        for size, path in paths.items():
            started = time.perf_counter()
            store = await open_store(path, key)
            samples[size].append(time.perf_counter() - started)
            await store.close()
    print(f"\nStore.open (median of {repeats}, informative)")
    for size, times in samples.items():
        print(f"  {label(size):>5} tokens  {milliseconds(statistics.median(times))}")


@dataclass(frozen=True)
class PageCase:
    title: str
    filters: TokenFilter | None
    target: float | None  # the highest acceptable largest/smallest ratio, if any


PAGE_CASES = (
    PageCase("first page", None, 1.5),
    PageCase(f'search "{SOME_TERM}" (1/10 match)', TokenFilter(name=SOME_TERM), None),
    PageCase(f'search "{NO_TERM}" (none match)', TokenFilter(name=NO_TERM), None),
)


async def check_pages(stores: dict[int, Store]) -> None:
    """Refuse to time queries that do not return what the benchmark assumes they do."""
    for size, store in stores.items():
        first = await store.token_reads.page(limit=PAGE_LIMIT)
        some = await store.token_reads.page(filters=TokenFilter(name=SOME_TERM), limit=PAGE_LIMIT)
        none = await store.token_reads.page(filters=TokenFilter(name=NO_TERM), limit=PAGE_LIMIT)
        newest = [token.created_at for token in first.tokens]
        require(len(first.tokens) == PAGE_LIMIT and first.total == size, "first page")
        require(newest == sorted(newest, reverse=True), "first page is not newest first")
        require(len(some.tokens) == PAGE_LIMIT and some.total == size // len(TEAMS), "search")
        require(not none.tokens and none.total == 0, "search without a match")


def page_call(store: Store, filters: TokenFilter | None) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return await store.token_reads.page(filters=filters, limit=PAGE_LIMIT)

    return call


async def bench_pages(stores: dict[int, Store], rounds: int, rng: random.Random) -> None:
    await check_pages(stores)
    calls = {
        (case.title, size): page_call(store, case.filters)
        for case in PAGE_CASES
        for size, store in stores.items()
    }
    await interleaved(calls, rounds=max(3, rounds // 20), rng=rng)  # warm caches and threads
    medians = await interleaved(calls, rounds=rounds, rng=rng)

    sizes = list(stores)
    smallest, largest = sizes[0], sizes[-1]
    ratio_title = f"{label(largest)}/{label(smallest)}"
    print(
        f"\ntoken_reads.page(limit={PAGE_LIMIT}): median per call, {rounds} rounds,"
        " all sizes and cases interleaved"
    )
    header = "".join(f"{label(size):>12}" for size in sizes)
    print(f"  {'case':<34}{header}{ratio_title:>12}")
    for case in PAGE_CASES:
        times = "".join(f"{milliseconds(medians[(case.title, size)]):>12}" for size in sizes)
        ratio = medians[(case.title, largest)] / medians[(case.title, smallest)]
        verdict = ""
        if case.target is not None:
            figure = f"token_reads.page {case.title}, {ratio_title}"
            verdict = "  " + judge("store", figure, ratio, "≤", case.target)
        print(f"  {case.title:<34}{times}{ratio:>12.2f}{verdict}")
    print(
        "  (no target for search: a substring match reads every name, and its count(*) always does)"
    )


def build_floor(path: Path, digests: Sequence[bytes]) -> sqlite3.Connection:
    """The simplest credible auth check: a UNIQUE BLOB column of digests on disk."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(
        "CREATE TABLE digests (id INTEGER PRIMARY KEY, digest BLOB NOT NULL UNIQUE) STRICT"
    )
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO digests (digest) VALUES (?)", ((d,) for d in digests))
    connection.execute("COMMIT")
    return connection


def floor_check(connection: sqlite3.Connection, key: bytes) -> Callable[[str], object]:
    def check(secret: str) -> object:
        digest = hmac.new(key, secret.encode(), hashlib.sha256).digest()
        return connection.execute("SELECT id FROM digests WHERE digest = ?", (digest,)).fetchone()

    return check


def batch_call(check: Callable[[str], object], batch: list[str]) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        for secret in batch:
            check(secret)
        return None

    return call


async def bench_verify(
    store: Store,
    size: int,
    seed: Seed,
    floor: sqlite3.Connection,
    key: bytes,
    plan: Plan,
    rng: random.Random,
) -> None:
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    kept = [secret for row, secret in seed.secrets_by_row.items() if row < size]
    check = floor_check(floor, key)
    for secret in kept:  # both must find every kept secret, or the race means nothing
        require(
            store.credentials.check(secret).token is not None, "the check refused a kept secret"
        )
        require(check(secret) is not None, "the floor missed a kept secret")
    batch = [rng.choice(kept) for _ in range(plan.verify_batch)]
    calls = {
        "verify": batch_call(store.credentials.check, batch),
        "floor": batch_call(check, batch),
    }
    await interleaved(calls, rounds=max(2, plan.verify_rounds // 10), rng=rng)
    medians = await interleaved(calls, rounds=plan.verify_rounds, rng=rng)
    rates = {name: plan.verify_batch / seconds for name, seconds in medians.items()}

    print(
        f"\nauth check at {label(size)} tokens, API access on: median of {plan.verify_rounds}"
        f" interleaved batches of {plan.verify_batch:,} calls ({len(kept):,} distinct secrets)"
    )
    titles = {
        "verify": "store.credentials.check(secret)",
        "floor": "floor: HMAC-SHA256 + sqlite3 lookup",
    }
    for name, title in titles.items():
        per_call = 1e6 / rates[name]
        print(f"  {title:<38}{rates[name]:>12,.0f} calls/s {per_call:>8.2f} µs/call")
    ratio = rates["verify"] / rates["floor"]
    print(
        f"  {'verify/floor':<38}{ratio:>12.2f}  {judge('store', 'verify/floor', ratio, '≥', 0.5)}"
    )


# Running ------------------------------------------------------------------------------------


async def run(plan: Plan, directory: Path) -> None:
    rng = random.Random(20_240_501)
    key = secrets.token_bytes(32)
    largest = plan.sizes[-1]

    started = time.perf_counter()
    seed = make_seed(largest, key, rng)
    paths = {size: directory / f"tokens-{size}.db" for size in plan.sizes}
    for size, path in paths.items():
        await create_schema(path, key)
        insert_rows(path, spread_over_days(seed.rows[:size], int(time.time())))
    floor = build_floor(directory / "floor.db", seed.digests)
    seeded = ", ".join(map(label, plan.sizes))
    print(f"seeded {seeded} tokens in {time.perf_counter() - started:.1f} s")

    await bench_open(paths, key, plan.open_repeats)

    stores: dict[int, Store] = {}
    try:
        for size, path in paths.items():
            stores[size] = await open_store(path, key)
        # The seeded rows and loaded credentials live for the whole run: freezing them
        # keeps full garbage collections, which would walk them all, out of the timings.
        gc.collect()
        gc.freeze()
        await bench_pages(stores, plan.page_rounds, rng)
        await bench_verify(stores[largest], largest, seed, floor, key, plan, rng)
    finally:
        floor.close()
        for store in stores.values():
            await store.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1k and 10k tokens, fewer rounds: a smoke check"
    )
    arguments = parser.parse_args(argv)
    plan = QUICK if arguments.quick else FULL
    print("Token Desk store benchmark" + (" (quick)" if arguments.quick else ""))
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
