"""A scheduler pass at 100k tokens with 1,000 reminders due: how long it holds the event loop.

Run with `make bench` (or `.venv/bin/python bench/scheduler.py`; `--quick` for a smoke check
at 10k tokens). Not part of the test suite.

The database is seeded as bench/store.py seeds it (rows written straight into a schema the
Store created, bench/seed.py); then every token gets an expiry: 1,000 enabled ones stop
within the next 30 days, so that a reminder (30, 7 or 1 day before) is due for each, and the
others stop later, up to a year ahead; four tokens in five were used in the last 90 days,
so most reminder lines show a last use, as on a live account. Their 50 primary contacts get
one DM each, and the alerts channel one digest. The Slack stand-in runs in a process of its
own, so that its work is not counted; between passes the reminders' marks are deleted so
that every pass finds the same 1,000 due.

What is timed, per pass, with a warm-up pass first and the median of the others:
- the event loop's own time: CPU time of the loop's thread during the pass, less the part of
  it spent inside the Slack client's calls (building and sending requests, reading answers).
  This is what the app's other requests wait for; the SQLite work happens in aiosqlite's
  thread, waited for, not holding the loop. The target is 20 ms;
- informative: the pass's wall time, the wall time inside Slack calls, and the wall time
  outside them (which includes waiting for SQLite and its commits); and where the loop's
  time goes, each step timed on its own as the pass runs it: finding the due reminders,
  marking them, the recipients' role checks, composing the DMs and the digest.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seed import API_VERSIONS, DAY, SCOPES, insert_rows, make_seed, spread_over_days
from slack_sdk.web.async_client import AsyncWebClient
from verdict import judge

from bot.blocks import reminders
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.slack_client import create_web_client
from storage.models import DueReminder
from storage.store import Store

TARGET_MS = 20.0
DUE = 1_000
USED_SHARE = 0.8
ALERTS = "C0ALERTS1"
# Some contacts hold a role (Extend… and Reset… buttons), the others do not.
ADMINS = ("U0001", "U0002", "U0003", "U0004", "U0005")


@dataclass(frozen=True)
class Plan:
    tokens: int
    passes: int


FULL = Plan(tokens=100_000, passes=7)
QUICK = Plan(tokens=10_000, passes=5)


def require(condition: bool, failure: str) -> None:
    """Like assert, but not stripped by `python -O`: a figure measured on the wrong data
    would be worse than none."""
    if not condition:
        raise SystemExit(f"benchmark set-up is wrong: {failure}")


# The Slack stand-in, in its own process -------------------------------------------------


async def serve_standin() -> None:
    """`--standin`: print the stand-in's API URL, then serve until stdin closes."""
    from slack_standin.server import SlackStandIn

    async with SlackStandIn() as standin:
        print(standin.api_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def start_standin() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--standin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


@dataclass
class SlackTime:
    wall: float = 0.0
    cpu: float = 0.0
    calls: int = 0


class TimedClient(AsyncWebClient):
    """The app's client (same retry handlers), adding up the wall time and this thread's CPU
    time spent inside its `chat.postMessage` calls (all the scheduler makes): slack_sdk's
    own preparation of each request included. `spent` is shared with the copies the
    scheduler makes of the client (bot/slack_client.py, `sharing_connections`)."""

    spent = SlackTime()

    async def chat_postMessage(self, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return await super().chat_postMessage(**kwargs)
        finally:
            self.spent.wall += time.perf_counter() - wall
            self.spent.cpu += time.thread_time() - cpu
            self.spent.calls += 1


# The database ---------------------------------------------------------------------------


def give_expiries(path: Path, now: int, rng: random.Random) -> list[int]:
    """Every token an expiry, chosen long ago; DUE enabled ones stop within 30 days (a
    reminder is due for each), the others later. Four tokens in five were used within the
    last 90 days (a reminder line shows when). The ids of the due ones."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        ids = [row[0] for row in connection.execute("SELECT id, enabled FROM tokens") if row[1]]
        due = set(rng.sample(ids, DUE))
        today = now - now % DAY
        rows = []
        for (token_id,) in connection.execute("SELECT id FROM tokens").fetchall():
            days = rng.randint(1, 30) if token_id in due else rng.randint(31, 365)
            rows.append((today + days * DAY, now - 200 * DAY, token_id))
        uses = [
            (token_id, now - rng.randint(0, 90 * DAY))
            for (_, _, token_id) in rows
            if rng.random() < USED_SHARE
        ]
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "UPDATE tokens SET expires_at = ?, expiry_set_at = ? WHERE id = ?", rows
        )
        connection.executemany(
            "INSERT INTO token_usage (token_id, last_used_at) VALUES (?, ?)", uses
        )
        connection.execute("COMMIT")
        return sorted(due)
    finally:
        connection.close()


def forget_marks(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("DELETE FROM reminder_marks")
    finally:
        connection.close()


async def seeded(directory: Path, plan: Plan, key: bytes, now: int) -> Path:
    path = directory / f"scheduler-{plan.tokens}.db"
    store = await Store.open(path=path, secret_key=key, api_versions=API_VERSIONS, scopes=SCOPES)
    await store.close()
    rng = random.Random(13)
    insert_rows(path, spread_over_days(make_seed(plan.tokens, key, rng).rows, now))
    give_expiries(path, now, rng)
    return path


# The pass -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    wall: float
    loop_cpu: float
    slack_wall: float
    slack_cpu: float
    calls: int

    @property
    def loop_without_slack(self) -> float:
        return self.loop_cpu - self.slack_cpu

    @property
    def wall_without_slack(self) -> float:
        return self.wall - self.slack_wall


async def steps(store: Store, path: Path, now: int, passes: int) -> dict[str, float]:
    """The loop's CPU time of each step of a pass, timed apart (median of `passes`)."""
    moment = datetime.fromtimestamp(now, UTC)
    samples: dict[str, list[float]] = {}

    def timed(name: str, started: float) -> None:
        samples.setdefault(name, []).append(time.thread_time() - started)

    for _ in range(passes):
        forget_marks(path)
        gc.collect()
        started = time.thread_time()
        await store.credentials.flush_last_used()
        await store.expiry.retired_work()
        timed("retired secrets: anything to do", started)
        started = time.thread_time()
        due = await store.expiry.due_reminders(reminder_days=(30, 7, 1))
        timed("find the due reminders", started)
        started = time.thread_time()
        marked = await store.expiry.mark_reminders(reminders=due)
        timed("mark them", started)
        by_contact: dict[str, list[DueReminder]] = {}
        for reminder in marked:
            by_contact.setdefault(reminder.token.primary_contact, []).append(reminder)
        started = time.thread_time()
        roles = await store.roles.effective_roles(groups_by_user=dict.fromkeys(by_contact, ()))
        timed("role checks of the recipients", started)
        started = time.thread_time()
        for contact, items in by_contact.items():
            reminders.reminder_dm(items, now=moment, may_act=roles[contact] is not None).as_dict()
        reminders.digest(marked, [], unused_days=0, now=moment).as_dict()
        timed("compose the DMs and the digest", started)
    return {name: statistics.median(times) for name, times in samples.items()}


async def one_pass(scheduler: Scheduler, client: TimedClient, contacts: int) -> Sample:
    client.spent = SlackTime()
    gc.collect()
    wall, cpu = time.perf_counter(), time.thread_time()
    report = await scheduler.run_pass()
    sample = Sample(
        wall=time.perf_counter() - wall,
        loop_cpu=time.thread_time() - cpu,
        slack_wall=client.spent.wall,
        slack_cpu=client.spent.cpu,
        calls=client.spent.calls,
    )
    require(len(report.reminded) == DUE, f"{len(report.reminded)} reminders due, not {DUE}")
    require(report.reminder_dms == contacts, f"{report.reminder_dms} DMs, not {contacts}")
    require(report.digest_posted and report.posts_failed == 0, "a post failed")
    return sample


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f} ms"


async def bench(plan: Plan) -> None:
    key = bytes(range(32))
    now = int(time.time())
    standin, api_url = start_standin()
    try:
        with tempfile.TemporaryDirectory(prefix="tokendesk-scheduler-") as directory:
            path = await seeded(Path(directory), plan, key, now)
            settings = Settings(
                _env_file=None,
                slack_bot_token="xoxb-test",
                slack_signing_secret="bench",
                slack_api_url=api_url,
                tokendesk_db=path,
                tokendesk_admins=",".join(ADMINS),
                tokendesk_alerts_channel=ALERTS,
            )
            store = await Store.open(
                path=path,
                secret_key=key,
                api_versions=API_VERSIONS,
                scopes=SCOPES,
                admins=ADMINS,
                clock=lambda: float(now),
                flush_seconds=3_600,
            )
            client = TimedClient(
                token="xoxb-test",
                base_url=api_url,
                retry_handlers=create_web_client(settings).retry_handlers,
            )
            scheduler = Scheduler(
                store=store, client=client, settings=settings, clock=lambda: float(now)
            )
            contacts = len({f"U{1 + index % 50:04d}" for index in range(plan.tokens)})
            try:
                samples = []
                for run in range(plan.passes + 1):
                    forget_marks(path)
                    sample = await one_pass(scheduler, client, contacts)
                    if run:  # the first pass warms SQLite's cache and the client up
                        samples.append(sample)
                parts = await steps(store, path, now, plan.passes)
            finally:
                await store.close()
    finally:
        assert standin.stdin is not None
        standin.stdin.close()
        standin.wait(timeout=10)
    report(plan, samples, parts)


def report(plan: Plan, samples: Sequence[Sample], parts: dict[str, float]) -> None:
    def median(name: str) -> float:
        return statistics.median(getattr(sample, name) for sample in samples)

    calls = samples[0].calls
    print(
        f"\nScheduler pass, {plan.tokens:,} tokens, {DUE:,} reminders due, {calls} Slack calls"
        f" (median of {len(samples)} passes)"
    )
    print(f"  event loop, Slack calls excluded  {ms(median('loop_without_slack'))}")
    print(f"  event loop, inside Slack calls    {ms(median('slack_cpu'))}")
    print(f"  wall, Slack calls excluded        {ms(median('wall_without_slack'))}  (informative)")
    print(f"  wall, inside Slack calls          {ms(median('slack_wall'))}  (informative)")
    print(f"  wall, whole pass                  {ms(median('wall'))}  (informative)")
    print("  where the loop's time goes, each step timed apart (informative):")
    for name, seconds in parts.items():
        print(f"    {name:<32}{ms(seconds)}")
    loop_ms = median("loop_without_slack") * 1000
    figure = f"scheduler pass {plan.tokens // 1000}k tokens, {DUE} due: loop ms / {TARGET_MS:g}"
    print("  " + judge("scheduler", figure, loop_ms / TARGET_MS, "≤", 1.0))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k tokens: a smoke check")
    parser.add_argument("--standin", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.standin:
        asyncio.run(serve_standin())
        return
    asyncio.run(bench(QUICK if arguments.quick else FULL))


if __name__ == "__main__":
    main()
