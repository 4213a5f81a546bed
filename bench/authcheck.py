"""How many `/auth/check` calls a second Token Desk answers, next to a bare aiohttp handler.

Run with `.venv/bin/python bench/authcheck.py` (`--quick` for a smoke check; `--baseline REV`
to serve Token Desk as it was at git revision REV as well, see below).

A gateway asks `/auth/check` before every API call it lets through, so this is the endpoint
whose throughput matters. Token Desk is served as bot/server.py serves it with metrics on
(`open_store`, `Metrics`, `create_app`, `create_web_app`, an aiohttp AppRunner and TCPSite,
no access log) on loopback, on a store of 10k tokens seeded as bench/seed.py seeds them, with
API access on: once on a SQLite file and, when the PostgreSQL server binaries are installed,
once on a PostgreSQL database of a private cluster (as tests/postgres_cluster.py starts one,
without fsync). Every request is `GET /auth/check` with `Authorization: Bearer <a valid
secret>`. The yardstick is a bare aiohttp handler on the same route answering the very body
and headers Token Desk answered (captured once, then checked byte for byte), built with
`web.json_response` as Token Desk's is: what is left of the ratio is what Token Desk does on
top of aiohttp (parse the header, check the secret's shape and checksum, HMAC it, look the
digest up, note the last use, count and time the check for /metrics; on PostgreSQL, also make
sure its memory is current).

Each server runs in its own process (this file, started again with `--serve`), so that the
load generator never shares a server's event loop; only one of them is under load at a time.
The load tool is `wrk` when it is installed (C, one thread, 32 connections) and otherwise a
closed-loop aiohttp generator in this process (32 workers on one session): the same tool,
concurrency and duration for every server, in one run. The servers are loaded alternately in
several short rounds, in a fresh shuffled order each round; the figures are the medians over
the rounds and what is judged is the ratio of each Token Desk's rate to the bare one's,
against 0.85 (a Python process on aiohttp tops out near 0.9 of a bare handler). The servers'
own CPU time is read from /proc for each round too: CPU per request depends much less than
the rate on how much CPU the load tool and other processes left over, which on a machine with
few cores they compete for.

Before timing, every server must answer correctly (Token Desk 200 with the token's SID, and
401 for an unknown secret; bare 200 with the same bytes); after timing, none may have failed
a single request (non-2xx answers, socket errors or timeouts).

With `--baseline REV`, a third server is Token Desk as it was at REV (bench/baseline.py checks
it out and runs its processes on its own packages): seeded by REV's code as the first one is
(`--seed`, which hands the chosen secret to this process on a pipe), served as the first one
is (`--serve token-desk`), checked the same way, and loaded in the same rounds, in the same
shuffled order. What is judged then as well is the ratio of this tree's rate to REV's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import random
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from baseline import (
    Baseline,
    checked_out,
    first_line,
    start_child,
    stop_child,
    wait_until_stopped,
)
from seed import copy_rows, insert_rows, make_seed, spread_over_days
from verdict import judge

from bot.app import create_app
from bot.background import drain
from bot.http_limits import GuardedAppRunner, HttpLimits
from bot.logs import configure_logging
from bot.metrics import Metrics
from bot.server import create_web_app, open_store
from bot.settings import Settings
from storage.credentials import generate_secret

TOKEN_DESK, TOKEN_DESK_POSTGRES, BARE = "Token Desk", "Token Desk (PG)", "bare"
THIS_FILE = Path(__file__).resolve()
RANDOM_SEED = 20_240_501
SIZE = 10_000
ADMIN = "UADMIN001"
ROUTE = "/auth/check"
CONCURRENCY = 32
TARGET = 0.85  # the lowest acceptable Token Desk/bare ratio of checks per second
BASELINE_TARGET = 0.95  # the lowest acceptable ratio of this tree's checks per second to REV's
# Nothing here may talk to Slack: the Web API client of the real Bolt app points at the
# discard port on loopback, so a call made by mistake fails at once, and locally.
NO_SLACK = "http://127.0.0.1:9/api/"
# The answer headers the bare handler copies from Token Desk's.
COPIED_HEADERS = ("Cache-Control", "X-Token-Sid", "X-Token-Api-Version")
READY = "listening on port"
BUSY_SHARE = 0.9  # a server under closed-loop load that gets less CPU than this is starved


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: int  # per server per round (wrk takes whole seconds)
    warmup_seconds: int
    budget: float  # the whole run, servers and seeding included, is cut off after this


FULL = Plan(rounds=6, seconds=3, warmup_seconds=1, budget=120.0)
QUICK = Plan(rounds=3, seconds=1, warmup_seconds=1, budget=40.0)


def require(condition: bool, failure: str) -> None:
    """Like assert, but not stripped by `python -O`: a figure measured on the wrong
    data would be worse than none."""
    if not condition:
        raise SystemExit(f"benchmark set-up is wrong: {failure}")


def bench_settings(place: Path | str, key_hex: str) -> Settings:
    """Settings on the SQLite file at `place`, or on the PostgreSQL database at the URL
    `place` (set explicitly, whatever the environment says)."""
    where: dict[str, Any] = (
        {"tokendesk_database_url": place}
        if isinstance(place, str)
        else {"tokendesk_database_url": None, "tokendesk_db": place}
    )
    return Settings(
        _env_file=None,
        slack_bot_token="xoxb-bench",
        slack_signing_secret="bench-signing-secret",
        slack_api_url=NO_SLACK,
        tokendesk_secret_key=key_hex,
        tokendesk_admins=ADMIN,
        **where,
    )


def place_of(argument: str) -> Path | str:
    """A `--serve` or `--seed` argument: a PostgreSQL URL, or else a SQLite file's path."""
    return argument if argument.startswith("postgresql://") else Path(argument)


# The servers, each in a process of its own (`--serve`) -------------------------------------


async def serve_until_stopped(runner: web.AppRunner) -> None:
    """Serve on a free loopback port until SIGTERM, SIGINT or the end of standard input
    (the bench process gone); the port is the one line written to standard output."""
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        # What is loaded now lives as long as the server: as in the other benches, freezing
        # it keeps full garbage collections, which would walk it all, out of the timings.
        gc.collect()
        gc.freeze()
        print(f"{READY} {port}", flush=True)
        await wait_until_stopped()
    finally:
        await runner.cleanup()


async def serve_token_desk(place: Path | str, key_hex: str) -> None:
    settings = bench_settings(place, key_hex)
    configure_logging(settings.tokendesk_log_level)
    store = await open_store(settings)
    try:
        # As `bot.server` serves it with TOKENDESK_METRICS_PORT set (/metrics itself, on a
        # port of its own, is not asked here): every check counted and timed.
        metrics = Metrics(store)
        bolt = create_app(settings, store, metrics=metrics)
        # Through the connection limits, as `bot.server` serves it.
        web_app = create_web_app(store, bolt, serve_slack_events=True, metrics=metrics)
        await serve_until_stopped(GuardedAppRunner(web_app, limits=HttpLimits(), access_log=None))
    finally:
        await drain()
        await store.close()


def bare_web_app(body: dict[str, Any], headers: dict[str, str]) -> web.Application:
    """The floor: aiohttp answering the same JSON for any method, without looking at the
    request."""

    async def auth_check(request: web.Request) -> web.Response:
        return web.json_response(body, headers=headers)

    app = web.Application()
    app.router.add_route("*", ROUTE, auth_check)
    return app


async def serve_bare(answer: str) -> None:
    configure_logging("INFO")
    captured = json.loads(answer)
    bare = bare_web_app(captured["body"], captured["headers"])
    await serve_until_stopped(web.AppRunner(bare, access_log=None))


# Starting and stopping them from the bench process ------------------------------------------


@dataclass
class Server:
    name: str
    process: asyncio.subprocess.Process
    url: str = ""

    def cpu_seconds(self) -> float | None:
        """The server process's user + system CPU time so far, where /proc tells it."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_server(
    name: str,
    arguments: Sequence[str],
    started: list[Server],
    baseline: Baseline | None = None,
) -> Server:
    """A server of this tree, or of `baseline` (served by REV's copy of this file)."""
    script = baseline.script(THIS_FILE.name) if baseline else THIS_FILE
    process = await start_child(script, ["--serve", *arguments], baseline)
    server = Server(name, process)
    started.append(server)  # stopped by the caller whatever happens next
    text = await first_line(process, name)
    require(text.startswith(READY), f"the {name} server did not start (it said {text!r})")
    server.url = f"http://127.0.0.1:{int(text.removeprefix(READY))}{ROUTE}"
    return server


async def stop_server(server: Server) -> None:
    await stop_child(server.process)


# Seeding and checking -----------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    secret: str
    sid: str
    check_micros: float  # store.credentials.check in-process, for reference


async def seed_store(place: Path | str, key: bytes, rng: random.Random) -> Prepared:
    """10k tokens in a database the real schema created (the SQLite file at `place`, or the
    PostgreSQL database at the URL `place`), API access on, and one valid secret."""
    settings = bench_settings(place, key.hex())
    created = await open_store(settings)
    await created.close()
    seed = make_seed(SIZE, key, rng)
    rows = spread_over_days(seed.rows, int(time.time()))
    if isinstance(place, str):
        await copy_rows(place, rows)
    else:
        insert_rows(place, rows)
    store = await open_store(settings)
    try:
        require((await store.token_reads.page(limit=1)).total == SIZE, f"not {SIZE} tokens")
        await store.account.set_api_access(actor=ADMIN, enabled=True)
        secret = rng.choice(list(seed.secrets_by_row.values()))
        token = store.credentials.check(secret).token
        require(token is not None, "the chosen secret is refused in-process")
        assert token is not None
        calls = 20_000
        started = time.perf_counter()
        for _ in range(calls):
            store.credentials.check(secret)
        micros = (time.perf_counter() - started) / calls * 1e6
        return Prepared(secret=secret, sid=token.sid, check_micros=micros)
    finally:
        await store.close()


async def print_seeded(place: Path | str, key_hex: str) -> None:
    """`--seed`: `seed_store` as the bench process runs it, what it prepared as one JSON line."""
    prepared = await seed_store(place, bytes.fromhex(key_hex), random.Random(RANDOM_SEED))
    print(json.dumps(dataclasses.asdict(prepared)), flush=True)


async def seed_baseline(baseline: Baseline, db: Path, key: bytes) -> Prepared:
    """REV's database, seeded by REV's code (its schema may be older than this tree's)."""
    script = baseline.script(THIS_FILE.name)
    process = await start_child(script, ["--seed", str(db), key.hex()], baseline)
    out, _ = await process.communicate()
    require(process.returncode == 0, f"seeding {baseline.label}'s database failed")
    return Prepared(**json.loads(out))


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def fetch(session: aiohttp.ClientSession, url: str, secret: str) -> Answer:
    headers = {"Authorization": f"Bearer {secret}"}
    async with session.get(url, headers=headers) as response:
        return Answer(response.status, dict(response.headers), await response.read())


async def check_token_desk(session: aiohttp.ClientSession, url: str, prepared: Prepared) -> Answer:
    answer = await fetch(session, url, prepared.secret)
    require(answer.status == 200, f"Token Desk answered HTTP {answer.status} to a valid secret")
    body = json.loads(answer.body)
    require(body.get("active") is True, "Token Desk's answer is not active")
    require(body.get("sid") == prepared.sid, "Token Desk answered another token's SID")
    require(answer.headers.get("X-Token-Sid") == prepared.sid, "no X-Token-Sid header")
    refused = await fetch(session, url, generate_secret())
    require(refused.status == 401, f"Token Desk answered HTTP {refused.status} to a wrong secret")
    return answer


async def check_bare(session: aiohttp.ClientSession, url: str, reference: Answer) -> None:
    answer = await fetch(session, url, "anything")
    require(answer.status == 200, f"the bare server answered HTTP {answer.status}")
    require(answer.body == reference.body, "the bare server's body is not Token Desk's")
    for name in COPIED_HEADERS:
        require(answer.headers.get(name) == reference.headers.get(name), f"bare {name} differs")


# The load tools ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One server loaded for one round."""

    requests: int
    seconds: float
    p50: float  # seconds
    p99: float
    failures: int
    server_cpu: float | None  # seconds of the server process's CPU time
    tool_cpu: float  # seconds of the load tool's CPU time

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d\\n",
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Wrk:
    title = f"wrk (C; 1 thread, {CONCURRENCY} connections, keep-alive)"

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.script = directory / "report.lua"
        self.script.write_text(WRK_SCRIPT)

    async def load(self, server: Server, secret: str, seconds: int) -> Sample:
        cpu_before, tool_before = server.cpu_seconds(), children_cpu()
        process = await asyncio.create_subprocess_exec(
            self.executable,
            "-t1",
            f"-c{CONCURRENCY}",
            f"-d{seconds}s",
            "--timeout",
            "2s",
            "-s",
            str(self.script),
            "-H",
            f"Authorization: Bearer {secret}",
            server.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), seconds + 15)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise SystemExit("wrk did not finish in time") from None
        cpu_after, tool_after = server.cpu_seconds(), children_cpu()  # wrk reaped: counted
        lines = [line for line in out.decode().splitlines() if line.startswith("BENCH ")]
        require(process.returncode == 0 and len(lines) == 1, f"wrk failed: {err.decode()!r}")
        duration, requests, *errors, p50, p99 = (int(field) for field in lines[0].split()[1:])
        return Sample(
            requests=requests,
            seconds=duration / 1e6,
            p50=p50 / 1e6,
            p99=p99 / 1e6,
            failures=sum(errors),
            server_cpu=spent(cpu_before, cpu_after),
            tool_cpu=tool_after - tool_before,
        )


class AiohttpLoad:
    title = (
        f"aiohttp closed-loop generator in the bench process ({CONCURRENCY} workers, one"
        " session, keep-alive)"
    )

    def __init__(self, expected: dict[str, bytes]) -> None:
        self.expected = expected  # the body each server answers, by name

    async def load(self, server: Server, secret: str, seconds: int) -> Sample:
        headers = {"Authorization": f"Bearer {secret}"}
        latencies: list[float] = []
        failures = 0
        timeout = aiohttp.ClientTimeout(total=2)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def worker(deadline: float) -> None:
                nonlocal failures
                while time.perf_counter() < deadline:
                    sent = time.perf_counter()
                    try:
                        async with session.get(server.url, headers=headers) as response:
                            body = await response.read()
                            good = response.status == 200 and body == self.expected[server.name]
                    except (aiohttp.ClientError, TimeoutError):
                        good = False
                    latencies.append(time.perf_counter() - sent)
                    failures += not good

            cpu_before, tool_before = server.cpu_seconds(), time.process_time()
            started = time.perf_counter()
            workers = (worker(started + seconds) for _ in range(CONCURRENCY))
            await asyncio.wait_for(asyncio.gather(*workers), seconds + 15)
            elapsed = time.perf_counter() - started
            cpu_after, tool_after = server.cpu_seconds(), time.process_time()
        percentiles = statistics.quantiles(latencies, n=100)
        return Sample(
            requests=len(latencies),
            seconds=elapsed,
            p50=percentiles[49],
            p99=percentiles[98],
            failures=failures,
            server_cpu=spent(cpu_before, cpu_after),
            tool_cpu=tool_after - tool_before,
        )


# Running ------------------------------------------------------------------------------------


def usable_cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


async def run(
    plan: Plan,
    tool_choice: str,
    directory: Path,
    servers: list[Server],
    baseline: Baseline | None,
    postgres: str | None,
) -> None:
    rng = random.Random(RANDOM_SEED)
    key = secrets.token_bytes(32)
    db = directory / "tokens.db"

    started = time.perf_counter()
    prepared = await seed_store(db, key, rng)
    print(f"seeded {SIZE:,} tokens (API access on) in {time.perf_counter() - started:.1f} s")
    if postgres:
        started = time.perf_counter()
        postgres_prepared = await seed_store(postgres, key, random.Random(RANDOM_SEED))
        print(
            f"seeded {SIZE:,} tokens (API access on) into PostgreSQL in"
            f" {time.perf_counter() - started:.1f} s"
        )
    if baseline:
        print(baseline.describe())
        started = time.perf_counter()
        baseline_db = directory / "baseline.db"
        baseline_prepared = await seed_baseline(baseline, baseline_db, key)
        print(
            f"seeded {SIZE:,} tokens (API access on) by {baseline.label}'s code in"
            f" {time.perf_counter() - started:.1f} s"
        )

    started = time.perf_counter()
    token_desk = await start_server(TOKEN_DESK, ["token-desk", str(db), key.hex()], servers)
    by_server = {TOKEN_DESK: token_desk}
    async with aiohttp.ClientSession() as session:
        reference = await check_token_desk(session, token_desk.url, prepared)
        answer = {
            "body": json.loads(reference.body),
            "headers": {name: reference.headers[name] for name in COPIED_HEADERS},
        }
        by_server[BARE] = await start_server(BARE, ["bare", json.dumps(answer)], servers)
        await check_bare(session, by_server[BARE].url, reference)
        secret_for = {TOKEN_DESK: prepared.secret, BARE: prepared.secret}
        expected = {TOKEN_DESK: reference.body, BARE: reference.body}
        if postgres:
            by_server[TOKEN_DESK_POSTGRES] = await start_server(
                TOKEN_DESK_POSTGRES, ["token-desk", postgres, key.hex()], servers
            )
            postgres_answer = await check_token_desk(
                session, by_server[TOKEN_DESK_POSTGRES].url, postgres_prepared
            )
            secret_for[TOKEN_DESK_POSTGRES] = postgres_prepared.secret
            expected[TOKEN_DESK_POSTGRES] = postgres_answer.body
        if baseline:
            earlier = baseline_name(baseline)
            arguments = ["token-desk", str(baseline_db), key.hex()]
            by_server[earlier] = await start_server(earlier, arguments, servers, baseline)
            baseline_answer = await check_token_desk(
                session, by_server[earlier].url, baseline_prepared
            )
            secret_for[earlier] = baseline_prepared.secret
            expected[earlier] = baseline_answer.body
    print(f"started {len(by_server)} servers in {time.perf_counter() - started:.1f} s")
    print(
        f"checked: Token Desk answers 200 with the token's SID ({len(reference.body)} bytes:"
        f" {reference.body.decode()}) and 401 to an unknown secret; bare answers 200 with the"
        " same body and headers"
    )
    if postgres:
        print(
            "checked: Token Desk on PostgreSQL answers 200 with its token's SID"
            f" ({len(postgres_answer.body)} bytes) and 401 to an unknown secret"
        )
    if baseline:
        print(
            f"checked: Token Desk at {baseline.label} answers 200 with its token's SID"
            f" ({len(baseline_answer.body)} bytes: {baseline_answer.body.decode()}) and 401 to"
            " an unknown secret"
        )

    wrk = shutil.which("wrk") if tool_choice in ("auto", "wrk") else None
    require(tool_choice != "wrk" or wrk is not None, "--tool wrk, but wrk is not installed")
    tool: Wrk | AiohttpLoad = Wrk(wrk, directory) if wrk else AiohttpLoad(expected)
    print(f"load tool: {tool.title}")
    cores = usable_cores()
    if cores <= 2:
        print(
            f"note: {cores} usable cores: the load tool runs on this machine and competes with"
            " the server for CPU, so\n  the rates are lower bounds for the servers (their CPU"
            " time per request depends much less on it)"
        )

    for name, server in by_server.items():  # warm-up, untimed
        await tool.load(server, secret_for[name], plan.warmup_seconds)

    gc.collect()
    gc.freeze()
    samples: dict[str, list[Sample]] = {name: [] for name in by_server}
    order = list(by_server)
    for _ in range(plan.rounds):
        rng.shuffle(order)
        for name in order:
            samples[name].append(await tool.load(by_server[name], secret_for[name], plan.seconds))

    async with aiohttp.ClientSession() as session:
        await check_token_desk(session, token_desk.url, prepared)
        await check_bare(session, by_server[BARE].url, reference)
        if postgres:
            await check_token_desk(session, by_server[TOKEN_DESK_POSTGRES].url, postgres_prepared)
        if baseline:
            await check_token_desk(session, by_server[earlier].url, baseline_prepared)
    for server in servers:
        require(server.process.returncode is None, f"the {server.name} server stopped")
    for name in by_server:
        failed = sum(sample.failures for sample in samples[name])
        require(failed == 0, f"the {name} server failed {failed} requests")
    report(plan, samples, prepared, tool)
    if baseline:
        report_baseline(samples, baseline, prepared, baseline_prepared)


def baseline_name(baseline: Baseline) -> str:
    return f"at {baseline.label}"


def median_of(samples: Sequence[Sample], value: Callable[[Sample], float]) -> float:
    return statistics.median(value(sample) for sample in samples)


def cpu_per_request(samples: Sequence[Sample]) -> float | None:
    """Microseconds of server CPU per request, where /proc told it."""
    if any(sample.server_cpu is None for sample in samples):
        return None
    return median_of(samples, lambda s: (s.server_cpu or 0.0) / s.requests) * 1e6


def report(plan: Plan, samples: dict[str, list[Sample]], prepared: Prepared, tool: Any) -> None:
    def median(name: str, value: Any) -> float:
        return statistics.median(value(sample) for sample in samples[name])

    total = sum(sample.requests for name in samples for sample in samples[name])
    print(
        f"\nGET {ROUTE}, Authorization: Bearer <a valid secret>, {CONCURRENCY} concurrent"
        f" keep-alive connections:\nmedians of {plan.rounds} rounds of {plan.seconds} s per"
        f" server, in a fresh shuffled order each round ({total:,} requests)"
    )
    with_cpu = all(sample.server_cpu is not None for name in samples for sample in samples[name])
    cpu_title = "server CPU/req" if with_cpu else ""
    print(
        f"  {'server':<18}{'checks/s':>10}{'p50 ms':>9}{'p99 ms':>9}{cpu_title:>16}"
        f"{'server CPU':>12}{'tool CPU':>10}{'failures':>10}"
    )
    rates = {name: median(name, lambda sample: sample.rate) for name in samples}
    per_request: dict[str, float] = {}
    for name in samples:
        p50 = median(name, lambda sample: sample.p50) * 1e3
        p99 = median(name, lambda sample: sample.p99) * 1e3
        tool_share = median(name, lambda sample: sample.tool_cpu / sample.seconds)
        failures = sum(sample.failures for sample in samples[name])
        cpu = share = ""
        if with_cpu:
            per_request[name] = median(name, lambda s: s.server_cpu / s.requests) * 1e6
            server_share = median(name, lambda s: s.server_cpu / s.seconds)
            cpu, share = f"{per_request[name]:.1f} µs", f"{server_share:.2f} core"
        print(
            f"  {name:<18}{rates[name]:>10,.0f}{p50:>9.2f}{p99:>9.2f}{cpu:>16}{share:>12}"
            f"{tool_share:>6.2f} core{failures:>10}"
        )
    ours = [name for name in (TOKEN_DESK, TOKEN_DESK_POSTGRES) if name in samples]
    for name in ours:
        ratio = rates[name] / rates[BARE]
        backend = "PostgreSQL" if name == TOKEN_DESK_POSTGRES else "SQLite"
        verdict = judge(
            "authcheck",
            f"/auth/check rate with metrics on, {backend}, Token Desk/bare aiohttp",
            ratio,
            "≥",
            TARGET,
        )
        print(f"  {name + '/bare':<18}{ratio:>10.2f}  {verdict}")
    for name in samples:
        each = ", ".join(f"{sample.rate:,.0f}" for sample in samples[name])
        print(f"  checks/s per round, {name}: {each}")
    for name in ours:
        paired = [
            mine.rate / bare.rate for mine, bare in zip(samples[name], samples[BARE], strict=True)
        ]
        print(
            f"  {name}/bare within each round: median {statistics.median(paired):.2f}, from"
            f" {min(paired):.2f} to {max(paired):.2f}"
        )
        if per_request:
            by_cpu = per_request[BARE] / per_request[name]
            print(
                f"  {name}/bare by server CPU per request: {by_cpu:.2f} (the rate ratio if each"
                " server had a whole core)"
            )
        extra = (1 / rates[name] - 1 / rates[BARE]) * 1e6
        print(
            f"  {name}'s extra time per check at this load: {extra:.1f} µs of wall time"
            + (
                f", {per_request[name] - per_request[BARE]:.1f} µs of server CPU"
                if per_request
                else ""
            )
        )
    print(
        f"  for reference, store.credentials.check(secret) in-process: {prepared.check_micros:.2f}"
        " µs/call (shape, checksum, HMAC-SHA256, look-up)"
    )
    if per_request:
        shares = [s.server_cpu / s.seconds for name in samples for s in samples[name]]
        if statistics.median(shares) < BUSY_SHARE:
            print(
                f"  the servers got a median {statistics.median(shares):.2f} core while under"
                " load, not a whole one: the machine\n  was busy (the load tool, or other"
                " processes): the rates are low and noisy, and the ratio by CPU\n  per request"
                " is the steadier figure"
            )
    if isinstance(tool, AiohttpLoad):
        print(
            "  the load generator is Python: when its CPU nears 1 core it, not the server, sets"
            " the pace, and the\n  ratio understates the difference; install wrk for a"
            " sharper figure"
        )


def report_baseline(
    samples: dict[str, list[Sample]],
    baseline: Baseline,
    prepared: Prepared,
    baseline_prepared: Prepared,
) -> None:
    ours, theirs = samples[TOKEN_DESK], samples[baseline_name(baseline)]
    compared = f"this tree/{baseline.label}"
    ratio = median_of(ours, lambda s: s.rate) / median_of(theirs, lambda s: s.rate)
    verdict = judge("authcheck", f"/auth/check rate, {compared}", ratio, "≥", BASELINE_TARGET)
    print(f"\n  against Token Desk at {baseline.title}:")
    print(f"  {compared:<16}{ratio:>10.2f}  {verdict}")
    paired = [mine.rate / old.rate for mine, old in zip(ours, theirs, strict=True)]
    print(
        f"  {compared} within each round: median {statistics.median(paired):.2f}, from"
        f" {min(paired):.2f} to {max(paired):.2f}"
    )
    our_cpu, their_cpu = cpu_per_request(ours), cpu_per_request(theirs)
    if our_cpu is not None and their_cpu is not None:
        print(
            f"  {compared} by server CPU per request: {their_cpu / our_cpu:.2f}"
            f" ({our_cpu:.1f} µs against {their_cpu:.1f} µs)"
        )
    print(
        f"  store.credentials.check(secret) in-process: {prepared.check_micros:.2f} µs/call here,"
        f" {baseline_prepared.check_micros:.2f} µs/call at {baseline.label}"
    )


async def bounded(
    plan: Plan,
    tool_choice: str,
    directory: Path,
    baseline: Baseline | None,
    postgres: str | None,
) -> None:
    # A baseline or PostgreSQL is one more server to seed, start and load in every round.
    budget = plan.budget * (1 + 0.5 * (baseline is not None) + 0.5 * (postgres is not None))
    servers: list[Server] = []
    try:
        await asyncio.wait_for(
            run(plan, tool_choice, directory, servers, baseline, postgres), budget
        )
    except TimeoutError:
        raise SystemExit(f"the benchmark did not finish in {budget:.0f} s") from None
    finally:
        for server in servers:
            await stop_server(server)


def postgres_database(stack: contextlib.ExitStack) -> str | None:
    """The URL of a database of a private PostgreSQL cluster, stopped with `stack`; None,
    said in one line, when the PostgreSQL server binaries are not installed."""
    # Imported here: bench/instances.py imports this file.
    from instances import private_cluster

    from tests.postgres_cluster import NOT_INSTALLED, server_bindir

    if server_bindir() is None:
        print(f"no PostgreSQL figure: {NOT_INSTALLED}")
        return None
    return str(stack.enter_context(private_cluster()).create_database())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer, shorter rounds: a smoke check in about 15 s"
    )
    parser.add_argument(
        "--tool",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="the load tool: wrk when installed (auto), or the aiohttp generator",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also serve Token Desk as it was at git revision REV, and judge this tree/REV",
    )
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)  # a server process
    parser.add_argument("--seed", nargs=2, help=argparse.SUPPRESS)  # a baseline's database
    arguments = parser.parse_args(argv)
    if arguments.serve:
        kind, *rest = arguments.serve
        if kind == "token-desk":
            asyncio.run(serve_token_desk(place_of(rest[0]), rest[1]))
        else:
            asyncio.run(serve_bare(rest[0]))
        return
    if arguments.seed:
        db, key_hex = arguments.seed
        asyncio.run(print_seeded(place_of(db), key_hex))
        return

    plan = QUICK if arguments.quick else FULL
    affinity = getattr(os, "sched_getaffinity", None)
    usable = f" ({len(affinity(0))} usable)" if affinity else ""
    print("Token Desk /auth/check benchmark" + (" (quick)" if arguments.quick else ""))
    print(
        f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__},"
        f" os.cpu_count() = {os.cpu_count()}{usable}"
    )
    if hasattr(os, "getloadavg"):
        loads = ", ".join(f"{load:.2f}" for load in os.getloadavg())
        print(f"load average before the run: {loads}")
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        directory = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="tokendesk-bench-"))
        )
        baseline = (
            stack.enter_context(checked_out(arguments.baseline)) if arguments.baseline else None
        )
        postgres = postgres_database(stack)
        asyncio.run(bounded(plan, arguments.tool, directory, baseline, postgres))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
