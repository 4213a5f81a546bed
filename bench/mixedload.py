"""The mixed load of tests/bot/test_mixed_load.py, longer: every kind of Slack request's ack
time while 20 users work the token list and an API gateway hammers `/auth/check`.

Run with `.venv/bin/python bench/mixedload.py` (`--quick` for an 8-second smoke check). Not
part of the test suite.

The load is the test's own (tests/bot/mixed_load_support.py): 20 simulated Slack users
listing, filtering, paging, creating, resetting and disabling tokens, each request signed
as Slack signs it and every payload checked by the Slack stand-in, while four gateway
workers ask `/auth/check` with current, replaced, disabled, unknown and malformed secrets.
Unlike the test, which serves the app on the event loop of the load and of the stand-in,
the app here is a process of its own (`python -m bot` on a SQLite file), as it is
deployed: the load's and the stand-in's work would otherwise be counted in every ack.
After the load every answer and invariant is checked as the test checks them, and a run
that fails them judges nothing.

Judged, for each kind of Slack request (slash commands, block actions, view submissions):
the 99th percentile of the ack's round trip, against 100 ms. Informative: p50 and max by
kind and by step, the follow-ups (list refreshes, modals opened), the auth checks, and the
trend over the load. The machine is small and shared: the load average is printed with the
figures.

With `--postgres`, the same load then runs against three app processes (`python -m bot`,
as tests/bot/instances_support.py starts them) on one database of a private PostgreSQL
cluster (tests/postgres_cluster.py, without fsync): user i and gateway worker i go to
instance i mod 3, and an instance not current with the database may answer an auth check
503, which the gateway counts apart. Its figures are reported without a target; it needs the
PostgreSQL server binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# tests/ is not an installed package: the load's machinery comes from the repo.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from verdict import inform, judge

from bot.app import create_app
from bot.server import create_web_app
from bot.settings import Settings, store_options
from bot.slack_client import create_web_client, sharing_connections
from slack_standin.client import SlackClient
from slack_standin.server import SlackStandIn
from storage.store import Store
from tests.bot.conftest import ADMIN, SIGNING_SECRET, served
from tests.bot.instances_support import SECRET_KEY, Instances, app_environment, instance_store
from tests.bot.mixed_load_support import (
    SLACK_KINDS,
    LoadRun,
    check_outcome,
    percentile,
    prepare,
    run_load,
    summary,
)

TARGET_MS = 100.0
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Plan:
    seconds: float


FULL = Plan(seconds=20.0)
QUICK = Plan(seconds=8.0)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process while the load runs: a pass over the
    stand-in's records (every call and payload, kept to be checked) stops the load's
    clocks for up to a tenth of a second, which would be counted in the app's acks."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass
class Served:
    """The app served in this process on loopback on a SQLite file, as the test serves it."""

    store: Store
    slack: SlackClient
    gateway: aiohttp.ClientSession


@contextlib.asynccontextmanager
async def sqlite_app(database: Path, standin: SlackStandIn) -> AsyncIterator[Served]:
    """The app on `database`, with the settings `python -m bot` is given by
    tests/bot/instances_support.py: one process at a time may have the file open."""
    settings = Settings(
        _env_file=None,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=standin.api_url,
        tokendesk_db=database,
        tokendesk_secret_key=SECRET_KEY,
        tokendesk_admins=ADMIN,
    )
    store = await Store.open(**store_options(settings))
    try:
        async with sharing_connections(create_web_client(settings)) as client:
            bolt = create_app(settings, store, client=client)
            async with (
                served(create_web_app(store, bolt, serve_slack_events=True)) as url,
                SlackClient(
                    f"{url}/slack/events", signing_secret=SIGNING_SECRET, standin=standin
                ) as slack,
                aiohttp.ClientSession(base_url=url) as gateway,
            ):
                yield Served(store, slack, gateway)
    finally:
        await store.close()


@dataclass
class Outcome:
    """A run, and what was wrong with it (None: every answer and invariant held)."""

    run: LoadRun
    wrong: str | None


async def measure_sqlite(seconds: float) -> Outcome:
    """The load against one app process on a SQLite file. The file is prepared, and the
    outcome checked, by the app served in this process while that process is not running:
    the load itself meets the app as deployed, on an event loop of its own."""
    with tempfile.TemporaryDirectory(prefix="tokendesk-mixedload-") as directory:
        database = Path(directory) / "tokendesk.db"
        async with SlackStandIn() as standin, contextlib.AsyncExitStack() as stack:
            standin.add_user(ADMIN)
            async with sqlite_app(database, standin) as app:
                ledger, baseline = await prepare(app.slack, standin, app.store)
            running = await stack.enter_async_context(Instances(Path(directory), standin.api_url))
            instance = running.launch(
                app_environment(None, standin.api_url, TOKENDESK_DB=str(database))
            )
            await running.ready(instance)
            slack = await stack.enter_async_context(
                SlackClient(
                    f"{instance.url}/slack/events", signing_secret=SIGNING_SECRET, standin=standin
                )
            )
            gateway = await stack.enter_async_context(aiohttp.ClientSession(base_url=instance.url))
            with collector_paused():
                run = await run_load(
                    ledger,
                    slacks=[slack],
                    standin=standin,
                    gateway_sessions=[gateway],
                    seconds=seconds,
                    baseline=baseline,
                )
            print("\n".join(summary(run)))
            stopped = await instance.stop()
            wrong = None if stopped == 0 else f"the app exited with {stopped}"
            async with sqlite_app(database, standin) as app:
                try:
                    await check_outcome(
                        run,
                        standin=standin,
                        store=app.store,
                        gateway_session=app.gateway,
                        sqlite_file=database,
                        scheduled=True,
                    )
                except AssertionError as failed:
                    wrong = wrong or f"the load's answers or invariants are wrong: {failed}"
            logged = levels(instance.stderr)
            print(f"  the app's log lines by level: {dict(logged)}")
            if wrong is None and logged["ERROR"]:
                wrong = f"the app logged {logged['ERROR']} errors under the load"
    return Outcome(run, wrong)


def levels(log: str) -> Counter[str]:
    """An app's log lines by level (its text format: date, time, level, logger, message)."""
    found: Counter[str] = Counter()
    for line in log.splitlines():
        fields = line.split(" ", 3)
        if len(fields) > 2 and fields[2] in LEVELS:
            found[fields[2]] += 1
    return found


async def measure_postgres(seconds: float) -> Outcome:
    """The load against three app processes on one PostgreSQL database."""
    from instances import private_cluster

    with (
        private_cluster() as cluster,
        tempfile.TemporaryDirectory(prefix="tokendesk-mixedload-") as directory,
    ):
        url = cluster.create_database()
        async with SlackStandIn() as standin, contextlib.AsyncExitStack() as stack:
            standin.add_user(ADMIN)
            running = await stack.enter_async_context(Instances(Path(directory), standin.api_url))
            apps = await running.start(url, 3)
            slacks = [
                await stack.enter_async_context(
                    SlackClient(
                        f"{app.url}/slack/events", signing_secret=SIGNING_SECRET, standin=standin
                    )
                )
                for app in apps
            ]
            gateways = [
                await stack.enter_async_context(aiohttp.ClientSession(base_url=app.url))
                for app in apps
            ]
            # Closed before the load: every change waits for each open instance's word.
            async with instance_store(url) as store:
                ledger, baseline = await prepare(slacks[0], standin, store)
            with collector_paused():
                run = await run_load(
                    ledger,
                    slacks=slacks,
                    standin=standin,
                    gateway_sessions=gateways,
                    seconds=seconds,
                    baseline=baseline,
                    shared_database=True,
                )
            print("\n".join(summary(run)))
            wrong = None
            async with instance_store(url) as store:
                try:
                    await check_outcome(
                        run,
                        standin=standin,
                        store=store,
                        gateway_session=gateways[0],
                        sqlite_file=None,
                        shared_database=True,
                        scheduled=True,
                    )
                except AssertionError as failed:
                    wrong = f"the load's answers or invariants are wrong: {failed}"
            logged = sum((levels(app.stderr) for app in apps), Counter[str]())
            print(f"  the instances' log lines by level: {dict(logged)}")
            if wrong is None and logged["ERROR"]:
                wrong = f"the instances logged {logged['ERROR']} errors under the load"
    return Outcome(run, wrong)


def figures(outcome: Outcome, backend: str, *, judged: bool) -> None:
    """Each kind's figures; when the run's answers were right, the p99 judged against
    TARGET_MS if `judged`, else reported."""
    run = outcome.run
    load = os.getloadavg()
    print(
        f"\n{backend}: ack round trips by kind, load average"
        f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"  {'kind':<18}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind in SLACK_KINDS:
        times = run.timings.by_kind[kind]
        p50, p99 = percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000
        figure = f"mixed load, {backend}: {kind} ack p99 ms / {TARGET_MS:g}"
        verdict = ""
        if not outcome.wrong:
            ratio = p99 / TARGET_MS
            verdict = (
                judge("mixedload", figure, ratio, "≤", 1.0)
                if judged
                else inform("mixedload", figure, ratio)
            )
        print(
            f"  {kind:<18}{len(times):>7}{p50:>9.1f}{p99:>9.1f}{max(times) * 1000:>9.1f}  {verdict}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 seconds: a smoke check")
    parser.add_argument(
        "--postgres", action="store_true", help="then three instances on PostgreSQL, a figure"
    )
    arguments = parser.parse_args(argv)
    plan = QUICK if arguments.quick else FULL
    gc.collect()
    started = time.monotonic()
    outcome = asyncio.run(measure_sqlite(plan.seconds))
    figures(outcome, "SQLite", judged=True)
    wrong = [outcome.wrong]
    if arguments.postgres:
        shared = asyncio.run(measure_postgres(plan.seconds))
        figures(shared, "PostgreSQL, 3 instances", judged=False)
        wrong.append(shared.wrong)
    print(f"\n  {time.monotonic() - started:.0f} s in all")
    failures = [failure for failure in wrong if failure]
    if failures:
        raise SystemExit("\n".join(failures))


if __name__ == "__main__":
    main()
