"""How the store's start-up, list, search and auth check scale with the number of tokens.

Run with `make bench` (or `.venv/bin/python bench/store.py`; `--quick` for a smoke check).

The machine this runs on is small and shared, so absolute times mean little: every figure
is a median over many repetitions, the variants being compared are timed interleaved in a
shuffled order (a burst of noise then hits all of them alike), and what is judged is a
ratio between two figures measured side by side in the same process. Two figures are
judged as times, being targets of their own: Store.open at the largest size, and a search
matching at most 1 % of the tokens there; a busy machine can miss them (see the load
average printed with the first).

Seeding 100k tokens through `TokenLifecycle.create` would take one durable (fsynced) transaction
each, so the rows are written directly with `sqlite3` into a database that the real schema
created, in one transaction, before the Store that is measured opens it (bench/seed.py).

Start-up is timed in fresh processes (this script run with `--open-once`), as the app starts:
a process that already loaded the credentials once would reuse its memory. A store reads
every token's digest when it opens, and a token's row on the first check of one of its
secrets: the auth-check figures time checks of secrets checked before, and the first
checks, which read those rows, are reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import json
import os
import random
import resource
import secrets
import sqlite3
import statistics
import subprocess
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
# In the numbers of 0.12 % of the tokens at 100k (fewer at the smaller sizes).
RARE_TERM = "0123"
SEARCH_TARGET_MS = 5.0
STARTUP_TARGET_SECONDS = 0.4


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    open_repeats: int
    startup_processes: int
    page_rounds: int
    verify_batch: int
    verify_rounds: int


FULL = Plan(
    sizes=(1_000, 10_000, 100_000),
    open_repeats=3,
    startup_processes=5,
    page_rounds=300,
    verify_batch=2_000,
    verify_rounds=60,
)
QUICK = Plan(
    sizes=(1_000, 10_000),
    open_repeats=1,
    startup_processes=3,
    page_rounds=40,
    verify_batch=1_000,
    verify_rounds=10,
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
    """Informative: open (lock, check, read every digest) then close, sizes interleaved."""
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


async def open_once(path: Path, key: bytes) -> dict[str, float]:
    """Open and close the store at `path` in this process: how long Store.open took, and
    this process's resident memory after it and at its peak, in KiB."""
    started = time.perf_counter()
    store = await open_store(path, key)
    seconds = time.perf_counter() - started
    memory = memory_kib()
    await store.close()
    return {"seconds": seconds, "resident_kib": memory["VmRSS"], "peak_kib": memory["VmHWM"]}


def memory_kib() -> dict[str, int]:
    """This process's resident set now (VmRSS) and at its peak (VmHWM), from Linux's
    /proc; elsewhere both are the peak getrusage gives (which, unlike VmHWM, may be the
    parent's from before the exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status)
        return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}
    except (OSError, KeyError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"VmRSS": peak, "VmHWM": peak}


def open_in_fresh_process(path: Path, key: bytes) -> dict[str, float]:
    """`open_once` in a new Python process (the key goes through its standard input)."""
    finished = subprocess.run(
        [sys.executable, __file__, "--open-once", str(path)],
        input=key.hex(),
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(finished.stdout)
    return figures


def bench_startup(path: Path, size: int, empty: Path, key: bytes, processes: int) -> None:
    """Judged: Store.open at the largest size, in fresh processes (median); and the
    memory the index takes, against a store without tokens (a figure)."""
    runs: dict[Path, list[dict[str, float]]] = {path: [], empty: []}
    for _ in range(processes):
        for database in runs:
            runs[database].append(open_in_fresh_process(database, key))
    seconds = statistics.median(run["seconds"] for run in runs[path])
    resident = {
        database: statistics.median(run["resident_kib"] for run in found) / 1024
        for database, found in runs.items()
    }
    peak = statistics.median(run["peak_kib"] for run in runs[path]) / 1024
    load = " ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(f"\nStore.open in a fresh process (median of {processes}; load average {load})")
    figure = f"Store.open at {label(size)} tokens, fresh process, s"
    verdict = judge("store", figure, seconds, "≤", STARTUP_TARGET_SECONDS)
    print(f"  {label(size):>5} tokens  {milliseconds(seconds)}  {verdict}")
    print(
        f"  resident memory after it: {resident[empty]:.1f} MiB without tokens,"
        f" {resident[path]:.1f} MiB with {label(size)}"
        f" (+{resident[path] - resident[empty]:.1f} MiB,"
        f" {(resident[path] - resident[empty]) * 1024 / size:.2f} KiB per token;"
        f" peak {peak:.1f} MiB)"
    )


@dataclass(frozen=True)
class PageCase:
    title: str
    filters: TokenFilter | None
    target: float | None  # the highest acceptable largest/smallest ratio, if any


RARE = PageCase(f'search "{RARE_TERM}" (≤1% match)', TokenFilter(name=RARE_TERM), None)
PAGE_CASES = (
    PageCase("first page", None, 1.5),
    RARE,
    PageCase(f'search "{SOME_TERM}" (1/10 match)', TokenFilter(name=SOME_TERM), None),
    PageCase(f'search "{NO_TERM}" (none match)', TokenFilter(name=NO_TERM), None),
)


async def check_pages(stores: dict[int, Store]) -> None:
    """Refuse to time queries that do not return what the benchmark assumes they do."""
    for size, store in stores.items():
        first = await store.token_reads.page(limit=PAGE_LIMIT)
        some = await store.token_reads.page(filters=TokenFilter(name=SOME_TERM), limit=PAGE_LIMIT)
        none = await store.token_reads.page(filters=TokenFilter(name=NO_TERM), limit=PAGE_LIMIT)
        rare = await store.token_reads.page(filters=TokenFilter(name=RARE_TERM), limit=PAGE_LIMIT)
        newest = [token.created_at for token in first.tokens]
        require(len(first.tokens) == PAGE_LIMIT and first.total == size, "first page")
        require(newest == sorted(newest, reverse=True), "first page is not newest first")
        require(len(some.tokens) == PAGE_LIMIT and some.total == size // len(TEAMS), "search")
        require(not none.tokens and none.total == 0, "search without a match")
        require(0 < rare.total <= size // 100, "the rare search matches more than 1 %")
        require(all(RARE_TERM in token.name for token in rare.tokens), "rare search")


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
    rare = medians[(RARE.title, largest)] * 1000
    figure = f'token_reads.page search "{RARE_TERM}" at {label(largest)}, ms'
    print(
        f"  {RARE.title} at {label(largest)}: {judge('store', figure, rare, '≤', SEARCH_TARGET_MS)}"
    )
    print(
        "  (a search of 3 characters or more finds its tokens by trigram while they are few,"
        " else reads every name)"
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
    # Both must find every kept secret, or the race means nothing; the store's first check
    # of each reads its token's row.
    started = time.perf_counter()
    verdicts = [store.credentials.check(secret) for secret in kept]
    first_check = (time.perf_counter() - started) / len(kept)
    require(all(verdict.token is not None for verdict in verdicts), "a kept secret refused")
    require(all(check(secret) is not None for secret in kept), "the floor missed a kept secret")
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
    print(
        f"  (the first check of each since the store opened, reading its token's row:"
        f" {first_check * 1e6:.2f} µs/call, once)"
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
    empty = directory / "empty.db"
    await create_schema(empty, key)
    bench_startup(paths[largest], largest, empty, key, plan.startup_processes)

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
    # The child of `open_in_fresh_process`: one open of this database, the key on stdin.
    parser.add_argument("--open-once", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.open_once is not None:
        key = bytes.fromhex(sys.stdin.read())
        print(json.dumps(asyncio.run(open_once(arguments.open_once, key))))
        return
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
