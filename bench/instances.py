"""Token Desk on PostgreSQL, one instance and several, next to SQLite: the figures of #18.

Run with `.venv/bin/python bench/instances.py` (`--quick` for a smoke check). Not part of the
test suite. It needs the PostgreSQL server binaries (a private cluster is started as
tests/postgres_cluster.py starts the tests' one), wrk, and nginx for the second figure.

One seed of 10k tokens (bench/seed.py) goes into a SQLite file and into a PostgreSQL
database, API access on. Each instance is served as bench/authcheck.py serves Token Desk
(`open_store`, `create_app`, `create_web_app`, no access log), in a process of its own:
one on the SQLite file, two on the PostgreSQL database. Measured, in one run:

1. `/auth/check` with one valid secret, as bench/authcheck.py loads it (wrk, one thread, 32
   keep-alive connections): one PostgreSQL instance against the SQLite one, loaded
   directly. Judged: the median over the rounds of each round's PostgreSQL/SQLite rate
   ratio, against 0.9. The servers' CPU time per request is read from /proc as well.
2. The same load through nginx (one worker, an upstream with keepalive): round-robin over
   the two PostgreSQL instances against the same nginx with only the first instance in its
   upstream. A figure; the load tool, nginx and the instances share the machine's cores.

   The four variants of 1 and 2 are loaded in the same rounds, the two of each ratio back
   to back, in a fresh shuffled order each round; the figures are medians over the rounds.
3. What acknowledging a change costs with three instances: the bench process opens a third
   store on the same database and disables and enables one token alternately, timing each
   `store.tokens.set_enabled` call. A store alone on a copy of the database (no other
   instance to wait for) makes the same changes, interleaved with them. Both the whole call
   and the wait after the commit are timed (the latter by wrapping the database's
   `acknowledge`, which the store calls once the change is committed and applied to its own
   memory). On a sample of the changes, every instance of the three is asked over HTTP:
   after a disable none may answer 200 for the token, after an enable none may answer 401
   (an instance not sure to be current answers 503, which is allowed and counted).
4. The listener of an admin's `/tokens` at 10k tokens (bench/list.py's in-process probes:
   the role gate's read, the list read and rendered, its dicts and JSON), on the SQLite
   file and on the PostgreSQL database, interleaved: the ratio, a figure.

The private cluster runs without fsync (tests/postgres_cluster.py): commits cost no disk
flush there, and the SQLite file is the one the app would write. The machine is small and
shared: every ratio is between figures measured side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# tests/ is not an installed package: the private cluster's helpers come from the repo.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import asyncpg
from aiohttp import web
from authcheck import (
    CONCURRENCY,
    RANDOM_SEED,
    READY,
    Sample,
    Server,
    Wrk,
    bench_settings,
    fetch,
    place_of,
    require,
    serve_until_stopped,
    usable_cores,
)
from baseline import first_line, start_child, stop_child
from list import in_process_probes, interleaved
from seed import copy_rows, insert_rows, make_seed, spread_over_days
from verdict import judge

from bot.app import create_app
from bot.auth_check import add_auth_check
from bot.background import drain
from bot.http_limits import GuardedAppRunner, HttpLimits
from bot.list_message import list_message
from bot.list_view import ListView
from bot.logs import configure_logging
from bot.server import create_web_app, open_store
from storage.credentials import generate_secret
from storage.postgres import PostgresDatabase
from storage.store import Store
from tests.postgres_cluster import (
    NOT_INSTALLED,
    SERVER_USER,
    PostgresCluster,
    free_port,
    server_bindir,
    start_cluster,
)

THIS_FILE = Path(__file__).resolve()
SIZE = 10_000
ADMIN = "UADMIN001"
ROUTE = "/auth/check"
TARGET = 0.9  # the lowest acceptable one-instance PostgreSQL/SQLite ratio of checks per second
SQLITE, POSTGRES = "SQLite", "PostgreSQL"
VIA_ONE, VIA_TWO = "nginx, 1 PG", "nginx, 2 PG"
SHARED, ALONE = "3 instances", "1 instance"
NGINX_START_SECONDS = 10.0


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: int  # per variant per round (wrk takes whole seconds)
    warmup_seconds: int
    changes: int  # per side
    warmup_changes: int  # per side, untimed; even, so that the timed ones start with a disable
    check_every: int  # changes between two checks of every instance
    list_rounds: int
    list_warmup_rounds: int
    budget: float  # the whole run, cluster and seeding included, is cut off after this


FULL = Plan(
    rounds=9,
    seconds=2,
    warmup_seconds=1,
    changes=1_000,
    warmup_changes=10,
    check_every=50,
    list_rounds=300,
    list_warmup_rounds=20,
    budget=330.0,
)
QUICK = Plan(
    rounds=3,
    seconds=1,
    warmup_seconds=1,
    changes=100,
    warmup_changes=4,
    check_every=10,
    list_rounds=40,
    list_warmup_rounds=5,
    budget=150.0,
)


# The instances, each in a process of its own (`--serve`) ------------------------------------


async def serve_instance(place: str, key_hex: str) -> None:
    """Token Desk on `place`, served as bench/authcheck.py serves it."""
    settings = bench_settings(place_of(place), key_hex)
    configure_logging(settings.tokendesk_log_level)
    store = await open_store(settings)
    try:
        bolt = create_app(settings, store)
        web_app = create_web_app(store, bolt, serve_slack_events=True)
        await serve_until_stopped(GuardedAppRunner(web_app, limits=HttpLimits(), access_log=None))
    finally:
        await drain()
        await store.close()


@dataclass
class Instance(Server):
    """A Token Desk instance in a process of its own, on a loopback port."""

    port: int = 0


async def start_instance(name: str, place: str, key_hex: str, started: list[Server]) -> Instance:
    process = await start_child(THIS_FILE, ["--serve", place, key_hex], None)
    instance = Instance(name, process)
    started.append(instance)  # stopped by the caller whatever happens next
    text = await first_line(process, name)
    require(text.startswith(READY), f"the {name} instance did not start (it said {text!r})")
    instance.port = int(text.removeprefix(READY))
    instance.url = f"http://127.0.0.1:{instance.port}{ROUTE}"
    return instance


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far, where /proc tells it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def total(values: Sequence[float | None]) -> float | None:
    return None if any(value is None for value in values) else sum(v or 0.0 for v in values)


@dataclass
class Proxied(Server):
    """nginx (`process` is its master) in front of `behind`: the CPU time counted as the
    server's is the instances', nginx's workers are counted apart."""

    behind: tuple[Server, ...] = ()
    workers: tuple[int, ...] = ()

    def cpu_seconds(self) -> float | None:
        return total([instance.cpu_seconds() for instance in self.behind])

    def nginx_cpu_seconds(self) -> float | None:
        return total([process_cpu(pid) for pid in self.workers]) if self.workers else None


NGINX_CONF = """daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    upstream one {{ server 127.0.0.1:{first} max_fails=0; keepalive {keepalive}; }}
    upstream two {{
        server 127.0.0.1:{first} max_fails=0;
        server 127.0.0.1:{second} max_fails=0;
        keepalive {keepalive};
    }}
    server {{
        listen 127.0.0.1:{one_port};
        location = {route} {{ proxy_pass http://one; {common} }}
    }}
    server {{
        listen 127.0.0.1:{two_port};
        location = {route} {{ proxy_pass http://two; {common} }}
    }}
}}
"""
# Kept-alive connections to the upstream, as in examples/nginx-instances.conf. No
# proxy_next_upstream on 503: an instance answering 503 shows as a failure here.
PROXY_COMMON = 'proxy_http_version 1.1; proxy_set_header Connection "";'


async def start_nginx(
    nginx: str, directory: Path, first: Instance, second: Instance, started: list[Server]
) -> tuple[Proxied, Proxied]:
    """nginx on two loopback ports: one proxying to `first` only, one round-robin to both."""
    directory.mkdir()
    one_port, two_port = free_port(), free_port()
    conf = directory / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            directory=directory,
            first=first.port,
            second=second.port,
            keepalive=CONCURRENCY,
            one_port=one_port,
            two_port=two_port,
            route=ROUTE,
            common=PROXY_COMMON,
        )
    )
    process = await asyncio.create_subprocess_exec(
        nginx,
        "-p",
        str(directory),
        "-e",
        str(directory / "error.log"),
        "-c",
        str(conf),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    started.append(Server("nginx", process))
    deadline = time.monotonic() + NGINX_START_SECONDS
    while not all(listening(port) for port in (one_port, two_port)):
        if process.returncode is not None or time.monotonic() > deadline:
            log = (
                (directory / "error.log").read_text() if (directory / "error.log").exists() else ""
            )
            raise SystemExit(f"nginx did not start: {log[-2000:]!r}")
        await asyncio.sleep(0.05)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    workers = tuple(int(pid) for pid in children.read_text().split()) if children.exists() else ()
    return (
        Proxied(VIA_ONE, process, f"http://127.0.0.1:{one_port}{ROUTE}", (first,), workers),
        Proxied(VIA_TWO, process, f"http://127.0.0.1:{two_port}{ROUTE}", (first, second), workers),
    )


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# The private cluster and the seeding ------------------------------------------------------


@contextlib.contextmanager
def private_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this run, as the tests' fixture starts one, gone at the end."""
    bindir = server_bindir()
    require(bindir is not None, NOT_INSTALLED)
    assert bindir is not None
    directory = Path(tempfile.mkdtemp(prefix="tokendesk-bench-postgres-"))
    try:
        if os.geteuid() == 0:  # the server runs as its own user, which owns the directory
            shutil.chown(directory, user=SERVER_USER, group=SERVER_USER)
        cluster = start_cluster(bindir, directory)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class Seeded:
    sqlite: Path
    postgres: str  # the database the instances share
    alone: str  # a copy of it, for a store with no other instance
    loaded: str  # the secret wrk presents
    toggled: str  # the secret of the token disabled and enabled in figure 3
    loaded_sid: str
    toggled_id: int


async def seed_database(place: str, key_hex: str, insert: Callable[[], Awaitable[None]]) -> Store:
    """The real schema made by a Store, the rows inserted, API access on; the store reopened."""
    settings = bench_settings(place_of(place), key_hex)
    created = await open_store(settings)
    await created.close()
    await insert()
    store = await open_store(settings)
    try:
        require((await store.token_reads.page(limit=1)).total == SIZE, f"not {SIZE} tokens")
        await store.account.set_api_access(actor=ADMIN, enabled=True)
    except BaseException:
        await store.close()
        raise
    return store


async def seed(cluster: PostgresCluster, directory: Path, key: bytes) -> Seeded:
    rng = random.Random(RANDOM_SEED)
    made = make_seed(SIZE, key, rng)
    rows = spread_over_days(made.rows, int(time.time()))
    loaded, toggled = rng.sample(sorted(made.secrets_by_row.values()), 2)
    sqlite = directory / "tokens.db"
    url = cluster.create_database()

    async def into_sqlite() -> None:
        insert_rows(sqlite, rows)

    async def into_postgres() -> None:
        await copy_rows(url, rows)

    found: dict[str, tuple[str, int]] = {}
    for backend, place, insert in (
        (SQLITE, str(sqlite), into_sqlite),
        (POSTGRES, url, into_postgres),
    ):
        store = await seed_database(place, key.hex(), insert)
        try:
            for secret in (loaded, toggled):
                token = store.credentials.check(secret).token
                require(token is not None, f"a seeded secret is refused on {backend}")
                assert token is not None
                found.setdefault(secret, (token.sid, token.id))
                require(found[secret] == (token.sid, token.id), "the backends hold other tokens")
        finally:
            await store.close()
    # A byte-for-byte copy, made while no one is connected to the original.
    name = urlsplit(url).path.strip("/")
    administrator = await asyncpg.connect(cluster.admin_url)
    try:
        await administrator.execute(f'CREATE DATABASE "{name}_alone" TEMPLATE "{name}"')
    finally:
        await administrator.close()
    return Seeded(
        sqlite=sqlite,
        postgres=url,
        alone=cluster.url(f"{name}_alone"),
        loaded=loaded,
        toggled=toggled,
        loaded_sid=found[loaded][0],
        toggled_id=found[toggled][1],
    )


# 1 and 2: the auth check under load ---------------------------------------------------------


async def check_answers(session: aiohttp.ClientSession, url: str, secret: str, sid: str) -> None:
    answer = await fetch(session, url, secret)
    require(answer.status == 200, f"{url} answered HTTP {answer.status} to a valid secret")
    require(json.loads(answer.body).get("sid") == sid, f"{url} answered another token's SID")
    refused = await fetch(session, url, generate_secret())
    require(refused.status == 401, f"{url} answered HTTP {refused.status} to a wrong secret")


@dataclass(frozen=True)
class Loaded:
    """One variant loaded for one round, and the CPU beside its server's."""

    sample: Sample
    nginx_cpu: float | None
    split: tuple[float, ...]  # each instance's share of the instances' CPU time, behind nginx


async def load(wrk: Wrk, server: Server, secret: str, seconds: int) -> Loaded:
    behind = server.behind if isinstance(server, Proxied) else ()
    nginx_before = server.nginx_cpu_seconds() if isinstance(server, Proxied) else None
    before = [instance.cpu_seconds() or 0.0 for instance in behind]
    sample = await wrk.load(server, secret, seconds)
    nginx_after = server.nginx_cpu_seconds() if isinstance(server, Proxied) else None
    spent = [(i.cpu_seconds() or 0.0) - b for i, b in zip(behind, before, strict=True)]
    nginx = None if nginx_before is None or nginx_after is None else nginx_after - nginx_before
    split = tuple(each / sum(spent) for each in spent) if sum(spent) > 0 else ()
    return Loaded(sample, nginx, split)


async def loaded_rounds(
    plan: Plan, wrk: Wrk, variants: dict[str, Server], secret: str, rng: random.Random
) -> dict[str, list[Loaded]]:
    for server in variants.values():  # warm-up, untimed
        await wrk.load(server, secret, plan.warmup_seconds)
    gc.collect()
    gc.freeze()
    rounds: dict[str, list[Loaded]] = {name: [] for name in variants}
    # The two variants of a ratio are loaded back to back, so that a busy stretch of the
    # shared machine weighs on both; the pairs, and the variants within each, in a fresh
    # shuffled order each round.
    pairs = (
        [[SQLITE, POSTGRES], [VIA_ONE, VIA_TWO]] if VIA_ONE in variants else [[SQLITE, POSTGRES]]
    )
    for _ in range(plan.rounds):
        rng.shuffle(pairs)
        for pair in pairs:
            rng.shuffle(pair)
            for name in pair:
                rounds[name].append(await load(wrk, variants[name], secret, plan.seconds))
    return rounds


def paired(rounds: dict[str, list[Loaded]], mine: str, other: str) -> list[float]:
    return [a.sample.rate / b.sample.rate for a, b in zip(rounds[mine], rounds[other], strict=True)]


def cpu_per_request(loads: Sequence[Loaded]) -> float | None:
    """Median microseconds of the instances' CPU per request, where /proc told it."""
    if any(each.sample.server_cpu is None for each in loads):
        return None
    return statistics.median((e.sample.server_cpu or 0.0) / e.sample.requests for e in loads) * 1e6


def report_load(plan: Plan, rounds: dict[str, list[Loaded]]) -> None:
    requests = sum(each.sample.requests for loads in rounds.values() for each in loads)
    print(
        f"\nGET {ROUTE}, Authorization: Bearer <a valid secret>, {CONCURRENCY} keep-alive"
        f" connections ({Wrk.title}):\nmedians of {plan.rounds} rounds of {plan.seconds} s per"
        " variant, the two of each ratio back to back, in a fresh shuffled order each round"
        f"\n({requests:,} requests)"
    )
    print(
        f"  {'variant':<14}{'checks/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'TD CPU/req':>12}"
        f"{'TD CPU':>11}{'nginx CPU':>11}{'wrk CPU':>10}{'failures':>10}"
    )
    for name, loads in rounds.items():

        def median(value: Callable[[Loaded], float], of: Sequence[Loaded] = loads) -> float:
            return statistics.median(value(each) for each in of)

        per_request = cpu_per_request(loads)
        cpu = "" if per_request is None else f"{per_request:.1f} µs"
        share = (
            ""
            if per_request is None
            else f"{median(lambda e: (e.sample.server_cpu or 0.0) / e.sample.seconds):.2f} core"
        )
        nginx = (
            f"{median(lambda e: (e.nginx_cpu or 0.0) / e.sample.seconds):.2f} core"
            if all(each.nginx_cpu is not None for each in loads)
            else ""
        )
        failures = sum(each.sample.failures for each in loads)
        print(
            f"  {name:<14}{median(lambda e: e.sample.rate):>10,.0f}"
            f"{median(lambda e: e.sample.p50) * 1e3:>9.2f}"
            f"{median(lambda e: e.sample.p99) * 1e3:>9.2f}{cpu:>12}{share:>11}{nginx:>11}"
            f"{median(lambda e: e.sample.tool_cpu / e.sample.seconds):>5.2f} core{failures:>10}"
        )
    for name, loads in rounds.items():
        print(f"  checks/s per round, {name}: {', '.join(f'{e.sample.rate:,.0f}' for e in loads)}")
    failed = {name: sum(e.sample.failures for e in loads) for name, loads in rounds.items()}
    if any(failed.values()):
        print(
            "  FAILURES (non-2xx answers, socket errors or timeouts; a 503 is an instance not"
            f" sure to be current): {failed}"
        )

    ratios = paired(rounds, POSTGRES, SQLITE)
    ratio = statistics.median(ratios)
    figure = "/auth/check rate, one PostgreSQL/one SQLite instance"
    print(
        f"\n1. one instance, PostgreSQL/SQLite: {ratio:.2f}"
        f"  {judge('instances', figure, ratio, '≥', TARGET)}"
    )
    print(
        f"   the median of each round's ratio; the rounds' ratios from {min(ratios):.2f} to"
        f" {max(ratios):.2f}"
    )
    ours, theirs = cpu_per_request(rounds[POSTGRES]), cpu_per_request(rounds[SQLITE])
    if ours is not None and theirs is not None:
        print(
            f"   server CPU per request: PostgreSQL {ours:.1f} µs, SQLite {theirs:.1f} µs;"
            f" SQLite/PostgreSQL {theirs / ours:.2f}\n   (the rate ratio if each had a whole core)"
        )

    if VIA_TWO not in rounds:
        return
    ratios = paired(rounds, VIA_TWO, VIA_ONE)
    one_rate = statistics.median(e.sample.rate for e in rounds[VIA_ONE])
    two_rate = statistics.median(e.sample.rate for e in rounds[VIA_TWO])
    print(
        f"\n2. through nginx, two PostgreSQL instances/one: {statistics.median(ratios):.2f}"
        f" (a figure; {two_rate:,.0f} against {one_rate:,.0f} checks/s)"
    )
    print(
        f"   the median of each round's ratio; the rounds' ratios from {min(ratios):.2f} to"
        f" {max(ratios):.2f}"
    )
    splits = [each.split for each in rounds[VIA_TWO] if each.split]
    if splits:
        first = statistics.median(split[0] for split in splits)
        print(
            f"   the two instances' shares of their CPU time behind nginx: {first:.0%} /"
            f" {1 - first:.0%} (round-robin)"
        )
    direct = statistics.median(e.sample.rate for e in rounds[POSTGRES])
    print(
        f"   through nginx, one instance answers {one_rate / direct:.2f} of its direct rate."
        f" {usable_cores()} usable cores for wrk,\n   nginx and the instances together: a second"
        " instance only gets what the others leave over\n   (the CPU columns above)"
    )


# 3: the acknowledgement of a change ---------------------------------------------------------


@dataclass
class Side:
    """A store making changes, and what its changes took."""

    name: str
    store: Store
    calls: list[float] = field(default_factory=list)  # the whole set_enabled call
    waits: list[float] = field(default_factory=list)  # from the commit to the acknowledgement
    timing: bool = False

    def time_acknowledgements(self) -> None:
        """Time the wait `PostgresDatabase.transact` does once the change is committed and
        applied to this store's memory (`acknowledge`, set by the store at open: reached
        through the store's database, which the store keeps private)."""
        database = self.store._database
        require(isinstance(database, PostgresDatabase), f"{self.name} is not on PostgreSQL")
        assert isinstance(database, PostgresDatabase)
        acknowledge = database.acknowledge
        require(acknowledge is not None, f"{self.name} has no currency lease")
        assert acknowledge is not None

        async def timed(counter: int) -> None:
            started = time.perf_counter()
            await acknowledge(counter)
            if self.timing:
                self.waits.append(time.perf_counter() - started)

        database.acknowledge = timed

    async def change(self, token_id: int, enabled: bool) -> None:
        started = time.perf_counter()
        await self.store.tokens.set_enabled(actor=ADMIN, token_id=token_id, enabled=enabled)
        if self.timing:
            self.calls.append(time.perf_counter() - started)


@dataclass
class Checked:
    after_disable: dict[int, int] = field(default_factory=dict)  # HTTP status: how many
    after_enable: dict[int, int] = field(default_factory=dict)


async def serve_in_process(store: Store) -> tuple[web.AppRunner, str]:
    """The auth check of a store of this process, on a loopback port."""
    app = web.Application()
    add_auth_check(app, store)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}{ROUTE}"


async def acknowledged_changes(
    plan: Plan, seeded: Seeded, sides: dict[str, Side], urls: Sequence[str], rng: random.Random
) -> Checked:
    """Disable and enable the toggled token alternately through each side, interleaved in a
    fresh shuffled order each change; every instance asked on a sample of them."""
    checked = Checked()
    order = list(sides)
    async with aiohttp.ClientSession() as session:
        for index in range(plan.warmup_changes + plan.changes):
            timed = index - plan.warmup_changes
            enabled = index % 2 == 1  # the first change disables
            rng.shuffle(order)
            for name in order:
                sides[name].timing = timed >= 0
                await sides[name].change(seeded.toggled_id, enabled)
            if timed < 0 or timed % plan.check_every > 1:
                continue  # checked: a disable (timed % check_every == 0) and the enable after it
            alone = sides[ALONE].store.credentials.check(seeded.toggled).token
            require((alone is not None) == enabled, "the lone store did not apply its change")
            tally = checked.after_enable if enabled else checked.after_disable
            for url in urls:
                status = (await fetch(session, url, seeded.toggled)).status
                tally[status] = tally.get(status, 0) + 1
                wrong = 401 if enabled else 200
                require(
                    status != wrong,
                    f"an instance answered {status} after the acknowledged change {timed}"
                    f" ({'enable' if enabled else 'disable'})",
                )
    return checked


def percentile(values: Sequence[float], share: int) -> float:
    return statistics.quantiles(values, n=100)[share - 1]


def report_changes(plan: Plan, sides: dict[str, Side], checked: Checked, instances: int) -> None:
    shared, alone = sides[SHARED], sides[ALONE]
    print(
        f"\n3. a change acknowledged with {instances} instances on one database, against a store"
        f" alone on a copy of it:\n   store.tokens.set_enabled on one token, disable and enable"
        f" alternately, {plan.changes:,} changes each,\n   interleaved in a fresh shuffled order"
        f" (after {plan.warmup_changes} untimed); ms"
    )
    print(f"   {'':<38}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    for title, values in (
        (f"whole call, {SHARED}", shared.calls),
        (f"whole call, {ALONE}", alone.calls),
        (f"commit to acknowledgement, {SHARED}", shared.waits),
        (f"commit to acknowledgement, {ALONE}", alone.waits),
    ):
        print(
            f"   {title:<38}{statistics.median(values) * 1e3:>8.2f}"
            f"{percentile(values, 90) * 1e3:>8.2f}{percentile(values, 99) * 1e3:>8.2f}"
            f"{max(values) * 1e3:>8.2f}"
        )
    difference = statistics.median(shared.calls) - statistics.median(alone.calls)
    print(
        f"   the whole call's medians differ by {difference * 1e3:.2f} ms: what waiting for the"
        f" other {instances - 1} instances costs a change"
    )
    print(
        f"   every instance asked over HTTP after every {plan.check_every}th change (a disable)"
        " and after the enable that\n   follows it, (HTTP status, answers): after a disable"
        f" {sorted(checked.after_disable.items())}, after an enable"
        f" {sorted(checked.after_enable.items())};\n   never 200 after a disable, nor 401 after"
        " an enable (the run stops at the first)"
    )


# 4: the /tokens listener --------------------------------------------------------------------


async def list_times(
    plan: Plan, stores: dict[str, Store], rng: random.Random
) -> dict[tuple[str, str], list[float]]:
    for backend, store in stores.items():
        message = await list_message(store, view=ListView())
        shown = json.dumps(message.as_dict(), ensure_ascii=False)
        require(f"1–10 of {SIZE}" in shown, f"the {backend} list does not show 1–10 of {SIZE}")
    probes = {
        (step, backend): probe
        for backend, store in stores.items()
        for step, probe in (await in_process_probes(store)).items()
    }
    await interleaved(probes, rounds=plan.list_warmup_rounds, rng=rng)
    return await interleaved(probes, rounds=plan.list_rounds, rng=rng)


def report_list(plan: Plan, samples: dict[tuple[str, str], list[float]]) -> None:
    steps = ("gate", "listener", "list_message", "as_dict", "json.dumps")
    print(
        f"\n4. an admin's /tokens at {SIZE:,} tokens, Token Desk's own work in-process"
        f" (bench/list.py's probes):\n   medians of {plan.list_rounds} rounds, both backends"
        " interleaved in a fresh shuffled order each round; ms"
    )
    print(
        f"   {'backend':<12}" + "".join(f"{step:>14}" for step in steps) + f"{'listener p90':>14}"
    )
    for backend in (SQLITE, POSTGRES):
        medians = "".join(
            f"{statistics.median(samples[(step, backend)]) * 1e3:>14.3f}" for step in steps
        )
        p90 = percentile(samples[("listener", backend)], 90) * 1e3
        print(f"   {backend:<12}{medians}{p90:>14.3f}")
    ratio = {
        step: statistics.median(samples[(step, POSTGRES)])
        / statistics.median(samples[(step, SQLITE)])
        for step in steps
    }
    print(
        "   PostgreSQL/SQLite, the listener (page read and rendered, dicts, JSON):"
        f" {ratio['listener']:.2f}; of which the page\n   read and rendered (list_message):"
        f" {ratio['list_message']:.2f}; the role gate's read: {ratio['gate']:.2f} (figures,"
        " no target)"
    )
    print(
        "   gate: store.roles.effective_role(user_id=admin); listener: list_message(store,"
        " view=ListView()),\n   message.as_dict() and json.dumps of the ack body"
    )


# Running ------------------------------------------------------------------------------------


@dataclass
class Started:
    """Everything started, so that `bounded` can stop it all whatever happens."""

    servers: list[Server] = field(default_factory=list)
    stores: list[Store] = field(default_factory=list)
    runners: list[web.AppRunner] = field(default_factory=list)

    async def close(self) -> None:
        for server in self.servers:
            await stop_child(server.process)
        for runner in self.runners:
            await runner.cleanup()
        for store in self.stores:
            await store.close()


async def run(
    plan: Plan, cluster: PostgresCluster, directory: Path, started: Started, nginx: str | None
) -> None:
    rng = random.Random(RANDOM_SEED)
    key = secrets.token_bytes(32)
    wrk_path = shutil.which("wrk")
    require(wrk_path is not None, "wrk is not installed")
    assert wrk_path is not None
    wrk = Wrk(wrk_path, directory)

    clock = time.perf_counter()
    seeded = await seed(cluster, directory, key)
    print(
        f"seeded {SIZE:,} tokens (API access on) into a SQLite file and a PostgreSQL database,"
        f" and copied the latter, in {time.perf_counter() - clock:.1f} s"
    )

    clock = time.perf_counter()
    lite = await start_instance(SQLITE, str(seeded.sqlite), key.hex(), started.servers)
    first = await start_instance(POSTGRES, seeded.postgres, key.hex(), started.servers)
    second = await start_instance("PostgreSQL #2", seeded.postgres, key.hex(), started.servers)
    variants: dict[str, Server] = {SQLITE: lite, POSTGRES: first}
    if nginx:
        variants[VIA_ONE], variants[VIA_TWO] = await start_nginx(
            nginx, directory / "nginx", first, second, started.servers
        )
    async with aiohttp.ClientSession() as session:
        for server in (*variants.values(), second):
            await check_answers(session, server.url, seeded.loaded, seeded.loaded_sid)
    print(
        f"started the SQLite instance, two PostgreSQL instances{' and nginx' if nginx else ''}"
        f" in {time.perf_counter() - clock:.1f} s; each answers 200 with the token's SID and 401"
        " to an unknown secret"
    )
    if not nginx:
        print("figure 2 NOT measured: nginx is not installed")

    clock = time.perf_counter()
    rounds = await loaded_rounds(plan, wrk, variants, seeded.loaded, rng)
    async with aiohttp.ClientSession() as session:
        for server in (*variants.values(), second):
            await check_answers(session, server.url, seeded.loaded, seeded.loaded_sid)
    for server in started.servers:
        require(server.process.returncode is None, f"{server.name} stopped")
    print(f"loaded the auth check in {time.perf_counter() - clock:.0f} s")

    # The SQLite file is owned by one process: its instance goes, this process opens it.
    await stop_child(lite.process)
    clock = time.perf_counter()
    shared = await open_store(bench_settings(seeded.postgres, key.hex()))
    started.stores.append(shared)
    alone = await open_store(bench_settings(seeded.alone, key.hex()))
    started.stores.append(alone)
    on_file = await open_store(bench_settings(seeded.sqlite, key.hex()))
    started.stores.append(on_file)
    list_samples = await list_times(plan, {SQLITE: on_file, POSTGRES: shared}, rng)
    print(f"timed the /tokens listener in {time.perf_counter() - clock:.0f} s")

    clock = time.perf_counter()
    runner, url = await serve_in_process(shared)
    started.runners.append(runner)
    sides = {SHARED: Side(SHARED, shared), ALONE: Side(ALONE, alone)}
    for side in sides.values():
        side.time_acknowledgements()
    instances = [url, first.url, second.url]
    async with aiohttp.ClientSession() as session:
        for each in instances:
            await check_answers(session, each, seeded.loaded, seeded.loaded_sid)
    checked = await acknowledged_changes(plan, seeded, sides, instances, rng)
    print(
        f"made {2 * (plan.changes + plan.warmup_changes):,} changes in"
        f" {time.perf_counter() - clock:.0f} s"
    )

    report_load(plan, rounds)
    report_changes(plan, sides, checked, len(instances))
    report_list(plan, list_samples)


async def bounded(plan: Plan, cluster: PostgresCluster, directory: Path, nginx: str | None) -> None:
    started = Started()
    try:
        await asyncio.wait_for(run(plan, cluster, directory, started, nginx), plan.budget)
    except TimeoutError:
        raise SystemExit(f"the benchmark did not finish in {plan.budget:.0f} s") from None
    finally:
        await started.close()
        await drain()


def load_average() -> str:
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)  # an instance: PLACE KEY
    arguments = parser.parse_args(argv)
    if arguments.serve:
        place, key_hex = arguments.serve
        asyncio.run(serve_instance(place, key_hex))
        return

    plan = QUICK if arguments.quick else FULL
    print(
        "Token Desk on PostgreSQL, one instance and several"
        + (" (quick)" if arguments.quick else "")
    )
    print(
        f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, asyncpg"
        f" {asyncpg.__version__}, os.cpu_count() = {os.cpu_count()} ({usable_cores()} usable)"
    )
    print(f"load average before the run: {load_average()} (a shared machine)")
    nginx = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )
    clock = time.perf_counter()
    with (
        private_cluster() as cluster,
        tempfile.TemporaryDirectory(prefix="tokendesk-bench-") as directory,
    ):
        print(f"a private PostgreSQL cluster on 127.0.0.1:{cluster.port} (no fsync)")
        asyncio.run(bounded(plan, cluster, Path(directory), nginx))
    print(f"\nload average after the run: {load_average()}")
    print(f"total {time.perf_counter() - clock:.0f} s")


if __name__ == "__main__":
    main()
