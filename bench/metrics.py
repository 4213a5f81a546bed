"""`/auth/check` with metrics on (TOKENDESK_METRICS_PORT set) against metrics off.

Run with `.venv/bin/python bench/metrics.py` (`--quick` for a smoke check). Not part of the
test suite.

Two Token Desk servers on copies of one store (10k tokens seeded as bench/authcheck.py seeds
them, API access on), each served as bot/server.py serves it in its own process: one without
metrics, one with a `Metrics` counting and timing every check, Slack's requests and the
Web API's failures, and its `/metrics` app on a port of its own. They are loaded alternately
with the same tool, concurrency and duration (a valid secret: the check's hot path), in a
fresh shuffled order each round. Judged: the median over the rounds of each round's ratio of
the rates, on/off ≥ 0.97; the servers' CPU time per request is reported beside it.

Before timing, both must answer the same 200 and 401; after timing, the metered server's
`/metrics` must parse and have counted at least every check the load tool saw answered.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from authcheck import (
    CONCURRENCY,
    RANDOM_SEED,
    AiohttpLoad,
    Answer,
    Sample,
    Server,
    Wrk,
    bench_settings,
    fetch,
    require,
    seed_store,
)
from baseline import first_line, start_child, stop_child, wait_until_stopped
from prometheus_client.parser import text_string_to_metric_families
from verdict import judge

from bot.app import create_app
from bot.background import drain
from bot.http_limits import GuardedAppRunner, HttpLimits
from bot.logs import configure_logging
from bot.metrics import LIMITS, PATH, Metrics, metrics_web_app
from bot.server import create_web_app, open_store
from storage.credentials import generate_secret

THIS_FILE = Path(__file__).resolve()
OFF, ON = "metrics off", "metrics on"
READY = "listening on port"
ROUTE = "/auth/check"
TARGET = 0.97


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: int
    warmup_seconds: int


FULL = Plan(rounds=11, seconds=3, warmup_seconds=1)
QUICK = Plan(rounds=5, seconds=1, warmup_seconds=1)


# The servers, each in a process of its own (`--serve`) ---------------------------------------


async def serve(db: Path, key_hex: str, *, metered: bool) -> None:
    """Serve as bot/server.py does, with metrics or without, on free loopback ports: one
    line names them (the metrics port 0 when off)."""
    settings = bench_settings(db, key_hex)
    configure_logging(settings.tokendesk_log_level)
    store = await open_store(settings)
    metrics = Metrics(store) if metered else None
    runners: list[web.AppRunner] = []
    try:
        bolt = create_app(settings, store, metrics=metrics)
        web_app = create_web_app(store, bolt, serve_slack_events=True, metrics=metrics)
        runners.append(GuardedAppRunner(web_app, limits=HttpLimits(), access_log=None))
        if metrics is not None:
            runners.append(
                GuardedAppRunner(metrics_web_app(metrics), limits=LIMITS, access_log=None)
            )
        ports = []
        for runner in runners:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            ports.append(runner.addresses[0][1])
        gc.collect()
        gc.freeze()
        print(f"{READY} {ports[0]} {ports[1] if metered else 0}", flush=True)
        await wait_until_stopped()
    finally:
        for runner in runners:
            await runner.cleanup()
        await drain()
        await store.close()


# The bench process -----------------------------------------------------------------------------


@dataclass
class Metered:
    server: Server
    metrics_url: str


async def start(name: str, db: Path, key_hex: str, started: list[Server]) -> Metered:
    mode = "on" if name == ON else "off"
    process = await start_child(THIS_FILE, ["--serve", mode, str(db), key_hex], None)
    server = Server(name, process)
    started.append(server)
    text = await first_line(process, name)
    require(text.startswith(READY), f"the {name} server did not start (it said {text!r})")
    port, metrics_port = (int(part) for part in text.removeprefix(READY).split())
    server.url = f"http://127.0.0.1:{port}{ROUTE}"
    return Metered(server, f"http://127.0.0.1:{metrics_port}{PATH}")


async def check_answers(url: str, secret: str) -> tuple[Answer, Answer]:
    async with aiohttp.ClientSession() as session:
        allowed = await fetch(session, url, secret)
        refused = await fetch(session, url, generate_secret())
    require(allowed.status == 200, f"a valid secret got HTTP {allowed.status}")
    require(refused.status == 401, f"an unknown secret got HTTP {refused.status}")
    return allowed, refused


async def counted_checks(metrics_url: str) -> dict[str, float]:
    """The metered server's `tokendesk_auth_checks_total`, by result."""
    async with aiohttp.ClientSession() as session, session.get(metrics_url) as response:
        require(response.status == 200, f"/metrics answered HTTP {response.status}")
        text = await response.text()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tokendesk_auth_checks_total":
                result = sample.labels["result"]
                totals[result] = totals.get(result, 0.0) + sample.value
    return totals


def report(plan: Plan, samples: dict[str, list[Sample]], title: str) -> None:
    print(
        f"\nGET {ROUTE} with a valid secret, {CONCURRENCY} keep-alive connections, {title}:"
        f"\nmedians of {plan.rounds} rounds of {plan.seconds} s per server, in a fresh shuffled"
        " order each round"
    )
    print(f"  {'server':<14}{'checks/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'server CPU/req':>16}")
    cpu: dict[str, float | None] = {}
    for name, kind_samples in samples.items():
        rate = statistics.median(s.rate for s in kind_samples)
        p50 = statistics.median(s.p50 for s in kind_samples) * 1e3
        p99 = statistics.median(s.p99 for s in kind_samples) * 1e3
        with_cpu = all(s.server_cpu is not None for s in kind_samples)
        cpu[name] = (
            statistics.median((s.server_cpu or 0.0) / s.requests for s in kind_samples) * 1e6
            if with_cpu
            else None
        )
        shown = "" if cpu[name] is None else f"{cpu[name]:.1f} µs"
        print(f"  {name:<14}{rate:>10,.0f}{p50:>9.2f}{p99:>9.2f}{shown:>16}")
    # Judged: each round's ratio, the two loaded back to back, then the median of those: a
    # slow stretch of the shared machine weighs on both sides of a round.
    paired = [on.rate / off.rate for on, off in zip(samples[ON], samples[OFF], strict=True)]
    ratio = statistics.median(paired)
    figure = "/auth/check rate, metrics on/off"
    print(f"  on/off{ratio:>18.2f}  {judge('metrics', figure, ratio, '≥', TARGET)}")
    print(f"    the rounds' ratios: {', '.join(f'{value:.3f}' for value in paired)}")
    on_cpu, off_cpu = cpu[ON], cpu[OFF]
    if on_cpu is not None and off_cpu is not None:
        print(
            f"    by server CPU per request: {off_cpu / on_cpu:.3f}"
            f" ({on_cpu - off_cpu:+.2f} µs a check with metrics on)"
        )


async def run(plan: Plan, tool_choice: str, directory: Path) -> None:
    rng = random.Random(RANDOM_SEED)
    key = secrets.token_bytes(32)
    db = directory / "tokens.db"
    prepared = await seed_store(db, key, rng)
    # One store each: a SQLite database is served by one process at a time.
    copy = directory / "copy.db"
    for sidecar in ("", "-wal"):
        if Path(f"{db}{sidecar}").exists():
            shutil.copyfile(f"{db}{sidecar}", f"{copy}{sidecar}")
    servers: list[Server] = []
    try:
        off = await start(OFF, db, key.hex(), servers)
        on = await start(ON, copy, key.hex(), servers)
        off_answers = await check_answers(off.server.url, prepared.secret)
        on_answers = await check_answers(on.server.url, prepared.secret)
        require(off_answers[0].body == on_answers[0].body, "the two servers' 200s differ")
        require(off_answers[1].body == on_answers[1].body, "the two servers' 401s differ")
        wrk = shutil.which("wrk") if tool_choice in ("auto", "wrk") else None
        require(tool_choice != "wrk" or wrk is not None, "--tool wrk, but wrk is not installed")
        expected = {OFF: off_answers[0].body, ON: on_answers[0].body}
        tool: Wrk | AiohttpLoad = Wrk(wrk, directory) if wrk else AiohttpLoad(expected)
        print(f"load tool: {tool.title}")
        by_name = {OFF: off.server, ON: on.server}
        for server in by_name.values():
            await tool.load(server, prepared.secret, plan.warmup_seconds)
        gc.collect()
        gc.freeze()
        samples: dict[str, list[Sample]] = {OFF: [], ON: []}
        order = list(by_name)
        for _ in range(plan.rounds):
            rng.shuffle(order)
            for name in order:
                samples[name].append(await tool.load(by_name[name], prepared.secret, plan.seconds))
        for name, server in by_name.items():
            require(server.process.returncode is None, f"the {name} server stopped")
            failures = sum(sample.failures for sample in samples[name])
            require(failures == 0, f"{failures} checks failed with {name}")
        answered = sum(sample.requests for sample in samples[ON])
        counted = await counted_checks(on.metrics_url)
        require(
            counted.get("allowed", 0.0) >= answered,
            f"/metrics counted {counted.get('allowed', 0.0):.0f} allowed checks, the load tool"
            f" saw {answered} answered",
        )
        print(f"checked: /metrics counted every check ({counted})")
        report(plan, samples, tool.title)
    finally:
        for server in servers:
            await stop_child(server.process)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--tool", choices=("auto", "wrk", "aiohttp"), default="auto")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # a server process
    arguments = parser.parse_args(argv)
    if arguments.serve:
        mode, db, key_hex = arguments.serve
        asyncio.run(serve(Path(db), key_hex, metered=mode == "on"))
        return
    plan = QUICK if arguments.quick else FULL
    print(
        "Token Desk /auth/check with metrics on and off" + (" (quick)" if arguments.quick else "")
    )
    if hasattr(os, "getloadavg"):
        print(f"load average before the run: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="tokendesk-metrics-") as directory:
        asyncio.run(run(plan, arguments.tool, Path(directory)))
    if hasattr(os, "getloadavg"):
        print(f"load average after the run: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
