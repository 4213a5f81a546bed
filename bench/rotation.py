"""`/auth/check` during a rotation: the previous secret against the current one, and a retired
secret's 401 against an unknown one's.

Run with `.venv/bin/python bench/rotation.py` (`--quick` for a smoke check). Not part of the
test suite.

One Token Desk server, served as bench/authcheck.py serves it (its own process, 10k seeded
tokens, API access on), holds a token reset with a 7-day grace window (its current secret and
its previous one both pass) and a token reset without one (its old secret is retired: kept
as a digest, refused with the very 401 of an unknown secret, and counted with its
presenters off the hot path). Four kinds of request are loaded alternately with the same
tool, concurrency and duration: the current secret, the previous secret, the retired secret
and an unknown secret (a valid checksum, so that it reaches the look-up). Each round loads
the two kinds a ratio compares back to back (which pair first, and which kind first within
it, drawn afresh each round): this machine's speed drifts within seconds, and kinds loaded
further apart would carry that drift into their ratio. The figures are the medians over the
rounds of the rates, and of the server's CPU time per request. Judged, as the median over
the rounds of each round's ratio: previous/current ≥ 0.95 and retired/unknown ≥ 0.95.

Before and after timing, the answers are checked: 200 for both live secrets (`secret_used`
saying which), and for the retired and the unknown secret the same 401, byte for byte.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import secrets
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from authcheck import (
    CONCURRENCY,
    RANDOM_SEED,
    TOKEN_DESK,
    AiohttpLoad,
    Answer,
    Sample,
    Server,
    Wrk,
    bench_settings,
    fetch,
    require,
    seed_store,
    start_server,
    stop_server,
)
from seed import SCOPES
from verdict import judge

from bot.server import open_store
from storage.credentials import generate_secret

ADMIN = "UADMIN001"
TARGET = 0.95
CURRENT, PREVIOUS, RETIRED, UNKNOWN = "current", "previous", "retired", "unknown"
# The ratios judged: each kind against the one it is compared with.
PAIRS = ((PREVIOUS, CURRENT), (RETIRED, UNKNOWN))


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: int
    warmup_seconds: int


FULL = Plan(rounds=11, seconds=3, warmup_seconds=1)
QUICK = Plan(rounds=3, seconds=1, warmup_seconds=1)


async def rotate(db: Path, key: bytes, rng: random.Random) -> dict[str, str]:
    """Seed the store as bench/authcheck.py does, then reset its chosen token with a 7-day
    window and a new token without one; the four secrets, by kind."""
    prepared = await seed_store(db, key, rng)
    store = await open_store(bench_settings(db, key.hex()))
    expires_on = (datetime.now(UTC) + timedelta(days=90)).date()
    try:
        token = store.credentials.check(prepared.secret).token
        assert token is not None
        current = await store.tokens.reset(
            actor=ADMIN,
            token_id=token.id,
            row_version=(await store.token_reads.get(token_id=token.id)).row_version,
            expires_on=expires_on,
            grace=timedelta(days=7),
        )
        replaced = await store.tokens.create(
            actor=ADMIN,
            name="Rotated without a window",
            access_rights=[SCOPES[0]],
            primary_contact=ADMIN,
            expires_on=expires_on,
        )
        await store.tokens.reset(
            actor=ADMIN,
            token_id=replaced.token.id,
            row_version=replaced.token.row_version,
            expires_on=expires_on,
        )
    finally:
        await store.close()
    return {
        CURRENT: current.secret,
        PREVIOUS: prepared.secret,
        RETIRED: replaced.secret,
        UNKNOWN: generate_secret(),
    }


async def check_answers(url: str, secret_of: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session:
        answers: dict[str, Answer] = {
            kind: await fetch(session, url, secret) for kind, secret in secret_of.items()
        }
    for kind in (CURRENT, PREVIOUS):
        answer = answers[kind]
        require(answer.status == 200, f"the {kind} secret got HTTP {answer.status}")
        used = json.loads(answer.body).get("secret_used")
        require(used == kind, f"the {kind} secret passed as secret_used={used!r}")
    retired, unknown = answers[RETIRED], answers[UNKNOWN]
    require(retired.status == unknown.status == 401, "a dead secret was not refused with 401")
    require(retired.body == unknown.body, "the retired secret's 401 body is not the unknown's")
    for name in ("Content-Type", "Cache-Control", "WWW-Authenticate", "Content-Length"):
        require(retired.headers.get(name) == unknown.headers.get(name), f"401 {name} differs")


def cpu_per_request(samples: Sequence[Sample]) -> float | None:
    if any(sample.server_cpu is None for sample in samples):
        return None
    return statistics.median((s.server_cpu or 0.0) / s.requests for s in samples) * 1e6


def report(plan: Plan, samples: dict[str, list[Sample]], title: str) -> None:
    print(
        f"\nGET /auth/check with each kind of secret, {CONCURRENCY} keep-alive connections,"
        f" {title}:\nmedians of {plan.rounds} rounds of {plan.seconds} s per kind, the kinds"
        " compared loaded back to back"
    )
    print(f"  {'secret':<10}{'checks/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'server CPU/req':>16}")
    rates = {k: statistics.median(s.rate for s in samples[k]) for k in samples}
    cpu = {k: cpu_per_request(samples[k]) for k in samples}
    for kind, kind_samples in samples.items():
        p50 = statistics.median(s.p50 for s in kind_samples) * 1e3
        p99 = statistics.median(s.p99 for s in kind_samples) * 1e3
        per_request = cpu[kind]
        shown = "" if per_request is None else f"{per_request:.1f} µs"
        print(f"  {kind:<10}{rates[kind]:>10,.0f}{p50:>9.2f}{p99:>9.2f}{shown:>16}")
    for mine, other in PAIRS:
        # Judged: the median over the rounds of each round's ratio, the two kinds loaded
        # back to back; a slow stretch of the machine then weighs on both sides of it.
        paired = [a.rate / b.rate for a, b in zip(samples[mine], samples[other], strict=True)]
        ratio = statistics.median(paired)
        figure = f"/auth/check rate, {mine} secret/{other} secret"
        print(f"  {mine}/{other:<10}{ratio:>7.2f}  {judge('rotation', figure, ratio, '≥', TARGET)}")
        print(
            f"    the rounds' ratios from {min(paired):.2f} to {max(paired):.2f}; ratio of the"
            f" median rates {rates[mine] / rates[other]:.2f}"
        )
        mine_cpu, other_cpu = cpu[mine], cpu[other]
        if mine_cpu is not None and other_cpu is not None:
            print(f"    by server CPU per request: {other_cpu / mine_cpu:.2f}")


async def run(plan: Plan, tool_choice: str, directory: Path) -> None:
    rng = random.Random(RANDOM_SEED)
    key = secrets.token_bytes(32)
    db = directory / "tokens.db"
    secret_of = await rotate(db, key, rng)
    servers: list[Server] = []
    try:
        server = await start_server(TOKEN_DESK, ["token-desk", str(db), key.hex()], servers)
        await check_answers(server.url, secret_of)
        wrk = shutil.which("wrk") if tool_choice in ("auto", "wrk") else None
        require(tool_choice != "wrk" or wrk is not None, "--tool wrk, but wrk is not installed")
        # The aiohttp generator checks every body against one expected answer: a 401 counts
        # as a failure there, which is the answer expected for two of the kinds.
        tool: Wrk | AiohttpLoad = Wrk(wrk, directory) if wrk else AiohttpLoad({})
        print(f"load tool: {tool.title}")
        for secret in secret_of.values():
            await tool.load(server, secret, plan.warmup_seconds)
        gc.collect()
        gc.freeze()
        samples: dict[str, list[Sample]] = {kind: [] for kind in secret_of}
        for _ in range(plan.rounds):
            for pair in rng.sample(PAIRS, len(PAIRS)):
                for kind in rng.sample(pair, len(pair)):
                    samples[kind].append(await tool.load(server, secret_of[kind], plan.seconds))
        await check_answers(server.url, secret_of)
        require(server.process.returncode is None, "the server stopped")
        for kind in (CURRENT, PREVIOUS):
            failures = sum(sample.failures for sample in samples[kind])
            require(failures == 0, f"{failures} checks with the {kind} secret failed")
        report(plan, samples, tool.title)
    finally:
        for started in servers:
            await stop_server(started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--tool", choices=("auto", "wrk", "aiohttp"), default="auto")
    arguments = parser.parse_args(argv)
    plan = QUICK if arguments.quick else FULL
    with tempfile.TemporaryDirectory(prefix="tokendesk-rotation-") as directory:
        asyncio.run(run(plan, arguments.tool, Path(directory)))


if __name__ == "__main__":
    sys.exit(main())
