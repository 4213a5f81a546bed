"""How long an admin's `/tokens` takes to answer, next to a bare Bolt app answering the same.

Run with `.venv/bin/python bench/list.py` (`--quick` for a smoke check; `--baseline REV` to
time Token Desk as it was at git revision REV as well, see the end).

Token Desk answers `/tokens` with the first page of the list in the ack body itself, so the
request's server time is the whole of it: there is no follow-up post (the run checks that the
Slack stand-in saw no response_url post and no Web API call but each app's first auth.test).
Each app is served as bot/server.py serves it (aiohttp, `to_bolt_request` and
`to_aiohttp_response`, on loopback) and timed from the client side, one request at a time
over a kept-alive connection, every request a freshly signed slash command.

Token Desk is measured as `create_app` builds it: with process_before_response=True, its
listener runs in the request and the ack is sent when it returns. The yardstick is a bare
`AsyncApp` with the same signing secret and the same kind of Web API client, whose `/tokens`
listener acks the very body Token Desk answered (captured once per store size), measured in
both of Bolt's modes. What is judged is Token Desk's time over the bare app's with Bolt's
defaults (process_before_response=False: the listener runs in a task and the ack is polled
every 10 ms), what a user of a plain Bolt app waits for. Token Desk's time over the bare app's
with process_before_response=True, as Token Desk's, is printed too, not judged: what Token Desk
does on top of Bolt, with no poll to hide it. The listener's own work (reading the page and
rendering the message) is also timed in-process, to show how much of a request it is.

As in bench/store.py, the machine is small and shared: every figure is a median over many
rounds, all variants are timed interleaved in a fresh shuffled order each round, and what is
judged is a ratio between figures measured side by side.

With `--baseline REV`, Token Desk as it was at REV (bench/baseline.py checks it out and runs
its processes on its own packages) is timed too, against this tree: each in a process of its
own (`--serve`, REV's copy of this file for REV), which seeds its databases with its own code
(REV's schema may be older), serves Token Desk as its `create_app` builds it on the stand-in of
this process, and prints the URLs as one JSON line, {"<size>": url}. Older revisions' copies
print {"<mode> <size>": url} for two modes instead, their `create_app`'s own, Bolt's default,
and one patched to process_before_response=True; of those the default one is timed, which is
how such a revision builds Token Desk (a revision whose `create_app` gives its AsyncApp the
flag while its copy of this file still builds a default one stops there, saying so). Both are
timed in the same rounds as the rest, and the judged ratio is this tree's time over REV's:
what Slack waits for, from each as it is built. The two run in processes of their own, unlike
the apps above that share this process's event loop, so their times are compared with each
other only.
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
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

# tests/ is not an installed package: the stand-in and the request signing come from the repo.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
from seed import insert_rows, make_seed, spread_over_days
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.version import __version__ as slack_bolt_version
from verdict import judge

from bot.app import create_app
from bot.background import drain
from bot.list_message import list_message
from bot.list_view import ListView
from bot.server import create_web_app, open_store
from bot.settings import Settings
from bot.slack_client import create_web_client
from slack_standin.client import signed_headers
from slack_standin.server import SlackStandIn
from storage.store import Store

SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-test"  # what the stand-in accepts
ADMIN = "UADMIN001"
COMMAND = "/tokens"
DEFAULT, EAGER = "default", "eager"  # process_before_response False / True
MODES = (DEFAULT, EAGER)
TOKEN_DESK = "Token Desk"
BARE = {mode: f"bare Bolt app, {mode}" for mode in MODES}
THIS_TREE = "this tree"  # Token Desk served by a process of its own, next to a baseline's
TARGETS = {1_000: 1.2, 10_000: 1.5}  # the highest acceptable Token Desk/bare ratio
BASELINE_TARGET = 1.05  # the highest acceptable ratio of this tree's time to REV's
THIS_FILE = Path(__file__).resolve()
RANDOM_SEED = 20_240_501


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    rounds: int
    warmup_rounds: int


FULL = Plan(sizes=(1_000, 10_000), rounds=600, warmup_rounds=30)
QUICK = Plan(sizes=(1_000, 10_000), rounds=100, warmup_rounds=5)


# Helpers ------------------------------------------------------------------------------------


def label(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def require(condition: bool, failure: str) -> None:
    """Like assert, but not stripped by `python -O`: a figure measured on the wrong
    data would be worse than none."""
    if not condition:
        raise SystemExit(f"benchmark set-up is wrong: {failure}")


def span(values: Sequence[float], show: Callable[[float], str]) -> str:
    low, high = show(min(values)), show(max(values))
    return low if low == high else f"{low}-{high}"


def p90(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


async def serve(web_app: web.Application) -> tuple[web.AppRunner, str]:
    """On loopback, on a free port, as tests/bot/conftest.py serves the app."""
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/slack/events"


# The two apps -------------------------------------------------------------------------------


def settings_for(directory: Path, size: int, key: bytes, api_url: str) -> Settings:
    return Settings(
        _env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=api_url,
        tokendesk_db=directory / f"tokens-{size}.db",
        tokendesk_secret_key=key.hex(),
        tokendesk_admins=ADMIN,
    )


def token_desk_app(settings: Settings, store: Store) -> AsyncApp:
    """`create_app` as is: the app Token Desk serves, listeners run in the request."""
    app = create_app(settings, store)
    require(app.process_before_response, "Token Desk's app is not process_before_response")
    return app


def bare_app(settings: Settings, mode: str, answer: dict[str, Any]) -> AsyncApp:
    """Bolt with nothing on top: same secret, same kind of client, a static ack."""
    app = AsyncApp(
        client=create_web_client(settings),
        signing_secret=SIGNING_SECRET,
        process_before_response=mode == EAGER,
    )

    @app.command(COMMAND)
    async def tokens(ack: AsyncAck) -> None:
        await ack(**answer)

    return app


def bare_web_app(bolt: AsyncApp) -> web.Application:
    """What bot/server.py's create_web_app serves on /slack/events, without the store."""

    async def slack_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", slack_events)
    return app


# Requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    body: bytes
    headers: dict[str, str]


def slash_command(standin: SlackStandIn) -> Signed:
    """An admin's `/tokens`, as slack_standin/client.py's `slash_command` forms it, signed now."""
    form = {
        "token": "verification-token-unused",
        "team_id": standin.team_id,
        "team_domain": standin.team_domain,
        "channel_id": "C0TEST",
        "channel_name": "token-desk",
        "user_id": ADMIN,
        "user_name": ADMIN.lower(),
        "command": COMMAND,
        "text": "",
        "api_app_id": standin.app_id,
        "is_enterprise_install": "false",
        "response_url": standin.response_url(),
        "trigger_id": standin.trigger_id(),
    }
    body = urlencode(form).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **signed_headers(SIGNING_SECRET, body, timestamp=int(time.time())),
    }
    return Signed(body, headers)


async def post(session: aiohttp.ClientSession, url: str, request: Signed) -> tuple[int, bytes]:
    async with session.post(url, data=request.body, headers=request.headers) as response:
        return response.status, await response.read()


# Timing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One variant: `prepare` runs untimed (signing), `call` is timed, `check` untimed."""

    prepare: Callable[[], Any]
    call: Callable[[Any], Awaitable[Any]]
    check: Callable[[Any], None]


def http_probe(
    session: aiohttp.ClientSession, url: str, standin: SlackStandIn, seen: set[int]
) -> Probe:
    """`seen` gathers the sizes of the bodies answered."""

    def check(result: tuple[int, bytes]) -> None:
        status, body = result
        require(status == 200, f"HTTP {status} from {url}")
        seen.add(len(body))

    return Probe(
        prepare=lambda: slash_command(standin),
        call=lambda request: post(session, url, request),
        check=check,
    )


STEPS = ("list_message", "as_dict", "json.dumps")


async def in_process_probes(store: Store) -> dict[str, Probe]:
    """Token Desk's own work for `/tokens`, without HTTP or Bolt: the role gate's store read,
    then the listener (the list read and rendered, the Block Kit objects turned into dicts,
    the JSON Bolt makes of the ack), whole and step by step."""
    rendered = await list_message(store, view=ListView())
    as_dict = {"response_type": "ephemeral", **rendered.as_dict()}

    async def gate(_: None) -> object:
        return await store.roles.effective_role(user_id=ADMIN)

    async def listener(_: None) -> str:
        message = await list_message(store, view=ListView())
        return json.dumps({"response_type": "ephemeral", **message.as_dict()})

    async def read_and_render(_: None) -> object:
        return await list_message(store, view=ListView())

    async def to_dicts(_: None) -> object:
        return rendered.as_dict()

    async def dumps(_: None) -> object:
        return json.dumps(as_dict)

    def probe(call: Callable[[None], Awaitable[object]]) -> Probe:
        return Probe(prepare=lambda: None, call=call, check=lambda _: None)

    return {
        "gate": Probe(prepare=lambda: None, call=gate, check=lambda role: require(role, "no role")),
        "listener": probe(listener),
        "list_message": probe(read_and_render),
        "as_dict": probe(to_dicts),
        "json.dumps": probe(dumps),
    }


async def interleaved(
    probes: dict[Any, Probe], rounds: int, rng: random.Random
) -> dict[Any, list[float]]:
    """Every probe timed once per round, in a fresh shuffled order each round."""
    samples: dict[Any, list[float]] = {name: [] for name in probes}
    order = list(probes)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            probe = probes[name]
            prepared = probe.prepare()
            started = time.perf_counter()
            result = await probe.call(prepared)
            samples[name].append(time.perf_counter() - started)
            probe.check(result)
    return samples


# Running ------------------------------------------------------------------------------------


@dataclass
class Stack:
    """Everything started, so that `run` can stop it all whatever happens."""

    runners: list[web.AppRunner]
    stores: list[Store]
    processes: list[asyncio.subprocess.Process]

    async def close(self) -> None:
        for process in self.processes:
            await stop_child(process)
        await drain()
        for runner in self.runners:
            await runner.cleanup()
        for store in self.stores:
            await store.close()


async def seed_stores(
    sizes: Sequence[int], directory: Path, key: bytes, api_url: str, rng: random.Random
) -> dict[int, Settings]:
    seed = make_seed(sizes[-1], key, rng)
    settings = {size: settings_for(directory, size, key, api_url) for size in sizes}
    for size, each in settings.items():
        created = await open_store(each)  # the real schema and key check, made by the Store
        await created.close()
        insert_rows(each.tokendesk_db, spread_over_days(seed.rows[:size], int(time.time())))
    return settings


async def capture(
    session: aiohttp.ClientSession, url: str, standin: SlackStandIn, size: int
) -> bytes:
    """The real app's answer, to be acked byte for byte by the bare app."""
    status, body = await post(session, url, slash_command(standin))
    require(status == 200, f"Token Desk answered HTTP {status}")
    answer = json.loads(body)
    shown = json.dumps(answer, ensure_ascii=False)
    require(bool(answer.get("blocks")), "Token Desk did not answer the list in its ack")
    require(f"1–10 of {size}" in shown, f"the list does not show 1–10 of {size} tokens")
    return body


# Token Desk in a process of its own, for a baseline -----------------------------------------


async def serve_apps(directory: Path, key_hex: str, api_url: str, sizes: Sequence[int]) -> None:
    """`--serve`: databases seeded by this file's code, Token Desk's app on each, their URLs as
    one JSON line ({"<size>": url}), served until stopped."""
    stack = Stack(runners=[], stores=[], processes=[])
    try:
        key = bytes.fromhex(key_hex)
        settings = await seed_stores(sizes, directory, key, api_url, random.Random(RANDOM_SEED))
        urls: dict[str, str] = {}
        for size, each in settings.items():
            store = await open_store(each)
            stack.stores.append(store)
            bolt = token_desk_app(each, store)
            runner, urls[str(size)] = await serve(
                create_web_app(store, bolt, serve_slack_events=True)
            )
            stack.runners.append(runner)
        # As in the bench process: what lives as long as the server is kept out of full
        # garbage collections.
        gc.collect()
        gc.freeze()
        print(json.dumps(urls), flush=True)
        await wait_until_stopped()
    finally:
        await stack.close()


async def start_apps(
    app: str,
    directory: Path,
    key: bytes,
    api_url: str,
    sizes: Sequence[int],
    stack: Stack,
    baseline: Baseline | None,
) -> dict[tuple[str, int], str]:
    """Token Desk of this tree, or of `baseline`, served by a process of its own: the URL of
    each (app, size)."""
    directory.mkdir()
    script = baseline.script(THIS_FILE.name) if baseline else THIS_FILE
    arguments = ["--serve", str(directory), key.hex(), api_url, *map(str, sizes)]
    process = await start_child(script, arguments, baseline)
    stack.processes.append(process)
    line = await first_line(process, app)
    require(line.startswith("{"), f"the {app} server did not start (it said {line!r})")
    return {(app, size): served_url(json.loads(line), size) for size in sizes}


def served_url(urls: dict[str, str], size: int) -> str:
    """The URL `--serve` printed for `size`: {"<size>": url}, or from an older revision's copy,
    {"<mode> <size>": url}, its default mode's when it has one."""
    for key in (str(size), *(f"{mode} {size}" for mode in MODES)):
        if key in urls:
            return urls[key]
    raise SystemExit(f"no app served for {size} tokens among {sorted(urls)}")


def baseline_name(baseline: Baseline) -> str:
    return f"at {baseline.label}"


async def run(plan: Plan, directory: Path, stack: Stack, baseline: Baseline | None) -> None:
    rng = random.Random(RANDOM_SEED)
    key = secrets.token_bytes(32)
    async with SlackStandIn(token=BOT_TOKEN) as standin, aiohttp.ClientSession() as session:
        standin.add_user(ADMIN)
        started = time.perf_counter()
        settings = await seed_stores(plan.sizes, directory, key, standin.api_url, rng)
        print(f"seeded {', '.join(map(label, plan.sizes))} tokens in", end=" ")
        print(f"{time.perf_counter() - started:.1f} s")

        stores: dict[int, Store] = {}
        for size, each in settings.items():
            stores[size] = await open_store(each)
            stack.stores.append(stores[size])

        urls: dict[tuple[str, int], str] = {}
        body_size: dict[tuple[str, int], int] = {}
        for size, store in stores.items():
            bolt = token_desk_app(settings[size], store)
            runner, urls[(TOKEN_DESK, size)] = await serve(
                create_web_app(store, bolt, serve_slack_events=True)
            )
            stack.runners.append(runner)
            body = await capture(session, urls[(TOKEN_DESK, size)], standin, size)
            body_size[(TOKEN_DESK, size)] = len(body)
            for mode in MODES:
                name = (BARE[mode], size)
                runner, urls[name] = await serve(
                    bare_web_app(bare_app(settings[size], mode, json.loads(body)))
                )
                stack.runners.append(runner)
                status, bare_body = await post(session, urls[name], slash_command(standin))
                require(status == 200, f"the bare app answered HTTP {status}")
                require(bare_body == body, "the bare app's ack is not the same")
                body_size[name] = len(body)

        if baseline:
            print(baseline.describe())
            started = time.perf_counter()
            for app, owner in ((THIS_TREE, None), (baseline_name(baseline), baseline)):
                place = directory / ("baseline" if owner else "this-tree")
                urls |= await start_apps(app, place, key, standin.api_url, plan.sizes, stack, owner)
                for size in plan.sizes:
                    name = (app, size)
                    body_size[name] = len(await capture(session, urls[name], standin, size))
            print(
                f"seeded and started this tree's and {baseline.label}'s apps in processes of"
                f" their own in {time.perf_counter() - started:.1f} s"
            )

        seen: dict[tuple[str, int], set[int]] = {name: set() for name in urls}
        probes: dict[Any, Probe] = {
            name: http_probe(session, url, standin, seen[name]) for name, url in urls.items()
        }
        for size, store in stores.items():
            for step, probe in (await in_process_probes(store)).items():
                probes[(step, size)] = probe

        await interleaved(probes, rounds=plan.warmup_rounds, rng=rng)
        apps = len(urls)
        calls_after_warmup = list(standin.calls)
        require(
            [call.method for call in calls_after_warmup] == ["auth.test"] * apps,
            f"warm-up made Web API calls other than one auth.test per app: {calls_after_warmup}",
        )
        require(not standin.responses, "the app posted to a response_url")

        # The seeded rows, stores and apps live for the whole run: freezing them keeps full
        # garbage collections, which would walk them all, out of the timings.
        gc.collect()
        gc.freeze()
        measured_from = time.perf_counter()
        samples = await interleaved(probes, rounds=plan.rounds, rng=rng)
        measured = time.perf_counter() - measured_from
        await drain()
        extra_calls = standin.calls[len(calls_after_warmup) :]
        require(not extra_calls, f"timed requests made Web API calls: {extra_calls}")
        require(not standin.responses, "timed requests posted to a response_url")

        for name, sizes in seen.items():
            require(sizes == {body_size[name]}, f"answers of {sizes} bytes")
        report(plan, samples, seen, apps, measured)
        if baseline:
            report_baseline(plan, samples, seen, baseline)


def report(
    plan: Plan,
    samples: dict[Any, list[float]],
    seen: dict[tuple[str, int], set[int]],
    apps: int,
    measured: float,
) -> None:
    median = {name: statistics.median(times) for name, times in samples.items()}
    requests = sum(len(samples[name]) for name in seen)
    print(
        f"\nan admin's {COMMAND}, the list's first page answered in the ack: server time seen"
        " from the client over\nloopback, one request at a time on kept-alive connections,"
        f" each freshly signed; median and p90 (ms)\nof {plan.rounds} rounds, all"
        f" {len(samples)} variants below and in-process interleaved in a fresh shuffled order"
        f"\neach round ({requests:,} requests, {measured:.0f} s)"
    )
    print(
        "\n  Token Desk as create_app builds it (process_before_response=True), against a bare"
        " Bolt app\n  with Bolt's default (process_before_response=False: the ack is polled"
        " every 10 ms), judged,\n  and with process_before_response=True, informative"
    )
    print(
        f"  {'tokens':>6}  {'Token Desk':>17}  {'bare, default':>17}  {'bare, eager':>17}"
        f"  {'body bytes TD / bare':>20}  {'TD/default':>10}  {'TD/eager':>8}  target"
    )
    for size in plan.sizes:
        ours = median[(TOKEN_DESK, size)]
        bare = {mode: median[(BARE[mode], size)] for mode in MODES}
        ratio = {mode: ours / bare[mode] for mode in MODES}
        target = TARGETS.get(size)
        verdict = "(informative)"
        if target is not None:
            figure = f"/tokens at {label(size)} tokens, Token Desk/bare Bolt app"
            verdict = judge("list", figure, ratio[DEFAULT], "≤", target)
        times = "  ".join(
            f"{ms(median[name]):>8} /{ms(p90(samples[name])):>7}"
            for name in ((BARE[DEFAULT], size), (BARE[EAGER], size))
        )
        ours_bytes, bare_bytes = (max(seen[(app, size)]) for app in (TOKEN_DESK, BARE[DEFAULT]))
        print(
            f"  {label(size):>6}  {ms(ours):>8} /{ms(p90(samples[(TOKEN_DESK, size)])):>7}"
            f"  {times}  {f'{ours_bytes:,} / {bare_bytes:,}':>20}"
            f"  {ratio[DEFAULT]:>10.2f}  {ratio[EAGER]:>8.2f}  {verdict}"
        )

    print(
        "\n  Token Desk's own work, in-process (median / p90 ms; the steps alone: medians),"
        "\n  against its requests"
    )
    steps = "".join(f"{step:>13}" for step in STEPS)
    print(f"  {'tokens':>6}  {'role gate':>17}  {'listener':>17}{steps}")
    for size in plan.sizes:
        gate, listener = samples[("gate", size)], samples[("listener", size)]
        alone = "".join(f"{ms(median[(step, size)]):>13}" for step in STEPS)
        print(
            f"  {label(size):>6}  {ms(median[('gate', size)]):>8} /{ms(p90(gate)):>7}"
            f"  {ms(median[('listener', size)]):>8} /{ms(p90(listener)):>7}{alone}"
        )
    print(
        "  role gate: store.roles.effective_role(user_id=admin); listener: list_message(store,"
        "\n  view=ListView()), then message.as_dict() and json.dumps of the ack body"
    )
    for size in plan.sizes:
        work = median[("gate", size)] + median[("listener", size)]
        ours, eager = median[(TOKEN_DESK, size)], median[(BARE[EAGER], size)]
        print(
            f"  at {label(size)}: role gate + listener {ms(work)} ms = {work / ours:.0%} of Token"
            f" Desk's {ms(ours)} ms,\n    which is {ms(ours - eager)} ms over the bare app with"
            " process_before_response=True"
        )
    poll = [median[(BARE[DEFAULT], size)] - median[(BARE[EAGER], size)] for size in plan.sizes]
    share = [
        each / median[(BARE[DEFAULT], size)] for each, size in zip(poll, plan.sizes, strict=True)
    ]
    print(
        f"\n  the 10 ms ack poll is {span(poll, ms)} ms of the bare app's time with Bolt's default"
        f" ({span(share, '{:.0%}'.format)} of it):\n  a plain Bolt app's users wait for it,"
        " Token Desk's do not, its ack being sent when its listener\n  returns; TD/eager is"
        " what Token Desk does on top of Bolt, with no poll on either side."
    )
    print(
        f"  Slack traffic: the stand-in saw {apps} auth.test calls, one per app, all in the"
        " warm-up; during the timed\n  requests no Web API call and no response_url post:"
        " the ack is the whole answer."
    )


def report_baseline(
    plan: Plan,
    samples: dict[Any, list[float]],
    seen: dict[tuple[str, int], set[int]],
    baseline: Baseline,
) -> None:
    earlier = baseline_name(baseline)
    print(
        f"\n  against Token Desk at {baseline.title}: each as its create_app builds it, served by"
        " a process of its\n  own, timed in the same rounds (median / p90 ms)"
    )
    print(
        f"  {'tokens':>6}  {'this tree':>17}  {earlier:>17}"
        f"  {'body bytes this / REV':>21}  {'this/REV':>8}  target"
    )
    for size in plan.sizes:
        ours, theirs = samples[(THIS_TREE, size)], samples[(earlier, size)]
        ratio = statistics.median(ours) / statistics.median(theirs)
        figure = f"/tokens at {label(size)} tokens, this tree/{baseline.label}"
        verdict = judge("list", figure, ratio, "≤", BASELINE_TARGET)
        ours_bytes, their_bytes = (max(seen[(app, size)]) for app in (THIS_TREE, earlier))
        print(
            f"  {label(size):>6}"
            f"  {ms(statistics.median(ours)):>8} /{ms(p90(ours)):>7}"
            f"  {ms(statistics.median(theirs)):>8} /{ms(p90(theirs)):>7}"
            f"  {f'{ours_bytes:,} / {their_bytes:,}':>21}  {ratio:>8.2f}  {verdict}"
        )
    print(
        "  a revision whose create_app keeps Bolt's default (process_before_response=False)"
        " is timed so,\n  its ack polled every 10 ms: what Slack waited for from it"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds: a smoke check in about 20 s"
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also time Token Desk as it was at git revision REV, and judge this tree/REV",
    )
    # A process serving Token Desk for a baseline: DIRECTORY KEY API_URL SIZE...
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve:
        directory, key_hex, api_url, *sizes = arguments.serve
        asyncio.run(serve_apps(Path(directory), key_hex, api_url, [int(size) for size in sizes]))
        return
    plan = QUICK if arguments.quick else FULL
    affinity = getattr(os, "sched_getaffinity", None)
    usable = f" ({len(affinity(0))} usable)" if affinity else ""
    print(f"Token Desk {COMMAND} benchmark" + (" (quick)" if arguments.quick else ""))
    print(
        f"python {sys.version.split()[0]}, slack_bolt {slack_bolt_version},"
        f" aiohttp {aiohttp.__version__}, os.cpu_count() = {os.cpu_count()}"
        f"{usable}"
    )
    started = time.perf_counter()
    with contextlib.ExitStack() as resources:
        directory = resources.enter_context(tempfile.TemporaryDirectory(prefix="tokendesk-bench-"))
        baseline = (
            resources.enter_context(checked_out(arguments.baseline)) if arguments.baseline else None
        )
        asyncio.run(guarded(plan, Path(directory), baseline))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


async def guarded(plan: Plan, directory: Path, baseline: Baseline | None) -> None:
    stack = Stack(runners=[], stores=[], processes=[])
    try:
        await run(plan, directory, stack, baseline)
    finally:
        await stack.close()


if __name__ == "__main__":
    main()
