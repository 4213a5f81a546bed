"""Prometheus metrics (TOKENDESK_METRICS_PORT): each one moves by exactly what was done, the
exposition parses, no label ever carries an identifier or a secret, whatever was sent, and
the port serves `/metrics` only, and nothing at all when unset.

The app is served with a `Metrics` as bot/server.py builds it (the Web API client, the Bolt
app, the auth check and the scheduler share it), driven by signed requests and the Slack
stand-in, on a real SQLite file and a wall clock the test moves.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import create_app
from bot.auth_check import auth_check
from bot.background import drain
from bot.blocks.common import Message
from bot.memberships import GroupMemberships
from bot.metrics import (
    NO_ANSWER,
    OTHER,
    REFUSALS,
    SLACK_KINDS,
    TOKEN_FLAGS,
    TOKEN_STATES,
    Metrics,
)
from bot.scheduler import Scheduler
from bot.server import create_web_app
from bot.settings import Settings
from bot.slack_client import create_web_client, post_message, publish_home
from slack_standin.client import SlackClient
from slack_standin.server import SlackStandIn
from storage.credentials import generate_secret
from storage.store import Store
from tests.bot.blockwalk import create_action
from tests.bot.conftest import (
    ADMIN,
    ALICE,
    BOB,
    SIGNING_SECRET,
    SPECIALIST,
    STRANGER,
    Seed,
    free_port,
    served,
)
from tests.bot.doubles import DAY, WallClock
from tests.bot.driver import CHANNEL, SlackUser, send_payload, settle
from tests.bot.test_hostile_input import (
    HTTP_HEADER_LIMIT,
    action_payload,
    authorization_headers,
    hostile_values,
    http_check,
    make_secrets,
    slash,
)
from tests.bot.test_main import configured
from tests.store_support import days_ahead

GENERAL = "C0GENERAL"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- the app, metered -------------------------------------------------------------------------


@pytest.fixture
def wall() -> WallClock:
    """The store's and the scheduler's wall clock."""
    return WallClock()


@pytest.fixture
def store_clock(wall: WallClock) -> Callable[[], float]:
    return wall


@pytest.fixture
async def store(store: Store) -> Store:
    """The app's store with API access on."""
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    return store


@pytest.fixture
def metrics(store: Store) -> Metrics:
    return Metrics(store)


@pytest.fixture
def client(settings: Settings, metrics: Metrics) -> AsyncWebClient:
    """The app's Web API client, its failures counted."""
    return create_web_client(settings, metrics=metrics)


@pytest.fixture
async def bolt(
    settings: Settings,
    store: Store,
    memberships: GroupMemberships | None,
    client: AsyncWebClient,
    metrics: Metrics,
) -> AsyncApp:
    return create_app(settings, store, client=client, memberships=memberships, metrics=metrics)


@pytest.fixture
async def app_url(store: Store, bolt: AsyncApp, metrics: Metrics) -> AsyncIterator[str]:
    web_app = create_web_app(store, bolt, serve_slack_events=True, metrics=metrics)
    async with served(web_app) as url:
        yield url


async def scrape(metrics: Metrics) -> Samples:
    """Every sample of the exposition, as Prometheus parses it."""
    await metrics.read_store()
    return parsed(metrics.exposition().decode())


def parsed(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """How each series of `name` moved, those that did only."""
    keys = {series for sample, series in (*before, *after) if sample == name}
    changes = {
        series: after.get((name, series), 0.0) - before.get((name, series), 0.0) for series in keys
    }
    return {series: change for series, change in changes.items() if change}


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


# -- the auth check ---------------------------------------------------------------------------


def basic(sid: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{sid}:{secret}".encode()).decode()


async def check(session: aiohttp.ClientSession, app_url: str, *authorizations: str) -> int:
    headers = CIMultiDict(("Authorization", value) for value in authorizations)
    async with session.get(f"{app_url}/auth/check", headers=headers) as answer:
        await answer.read()
        return answer.status


async def test_auth_checks_are_counted_by_result_and_reason_and_timed(
    seed: Seed, store: Store, wall: WallClock, metrics: Metrics, app_url: str
) -> None:
    live = await seed("Live")
    disabled = await seed("Switched off")
    short = await seed("Short-lived", lifetime_days=1)
    rotated = await seed("Rotated")
    await store.tokens.set_enabled(actor=ADMIN, token_id=disabled.token.id, enabled=False)
    await store.tokens.reset(
        actor=ADMIN,
        token_id=rotated.token.id,
        row_version=rotated.token.row_version,
        expires_on=days_ahead(clock=wall),
    )
    wall.advance(2 * DAY)
    before = await scrape(metrics)
    sent: list[tuple[int, tuple[str, ...]]] = [
        (200, (f"Bearer {live.secret}",)),
        (200, (f"Bearer {live.secret}",)),
        (200, (f"Bearer {live.secret}",)),
        (200, (basic(live.token.sid, live.secret),)),
        (401, (basic("SWRONG0001", live.secret),)),
        (401, (f"Bearer {disabled.secret}",)),
        (401, (f"Bearer {short.secret}",)),
        (401, (f"Bearer {rotated.secret}",)),
        (401, (f"Bearer {generate_secret()}",)),
        (401, ("Bearer tdk_not_a_secret",)),
        (401, ()),
        (401, (f"Bearer {live.secret}", f"Bearer {live.secret}")),
        (401, ("Bearer " + "a" * 600,)),
        (401, (f"Token {live.secret}",)),
        (401, ("Basic !!!",)),
    ]
    async with aiohttp.ClientSession() as session:
        for status, authorizations in sent:
            assert await check(session, app_url, *authorizations) == status, authorizations
        await store.account.set_api_access(actor=ADMIN, enabled=False)
        assert await check(session, app_url, f"Bearer {live.secret}") == 401
        await store.account.set_api_access(actor=ADMIN, enabled=True)
        # As on PostgreSQL while this instance's currency lease has lapsed.
        store.credentials.holds = lambda: False
        assert await check(session, app_url, f"Bearer {live.secret}") == 503
        store.credentials.holds = lambda: True
    after = await scrape(metrics)

    name = "tokendesk_auth_checks_total"
    refused = {labels(result="denied", reason=reason): 1.0 for reason in REFUSALS.values()}
    assert moved(before, after, name) == {
        labels(result="allowed", reason=""): 4.0,
        labels(result="unavailable", reason=""): 1.0,
        **refused,
    }
    assert value(after, name, result="denied", reason=OTHER) == 0.0
    checks = 4 + 1 + len(REFUSALS)
    histogram = "tokendesk_auth_check_duration_seconds"
    assert value(after, f"{histogram}_count") - value(before, f"{histogram}_count") == checks
    assert value(after, f"{histogram}_bucket", le="+Inf") == value(after, f"{histogram}_count")
    assert 0 < value(after, f"{histogram}_sum") < checks * 0.1
    cumulative = [
        value(after, f"{histogram}_bucket", le=le)
        for le in ("1e-05", "2.5e-05", "5e-05", "0.0001", "0.001", "0.01", "+Inf")
    ]
    assert cumulative == sorted(cumulative)


async def test_without_metrics_the_check_is_served_undecorated(
    store: Store, bolt: AsyncApp
) -> None:
    web_app = create_web_app(store, bolt, serve_slack_events=False)
    (route,) = [r for r in web_app.router.routes() if r.resource.canonical == "/auth/check"]
    assert route.handler is auth_check


# -- Slack's requests -----------------------------------------------------------------------


def crafted(kind: str, standin: SlackStandIn, **more: Any) -> dict[str, Any]:
    """An interaction payload of type `kind` from ADMIN, as Slack shapes it."""
    return {
        "type": kind,
        "team": {"id": standin.team_id, "domain": standin.team_domain},
        "user": {"id": ADMIN, "username": "uadmin001", "name": "uadmin001"},
        "api_app_id": standin.app_id,
        "token": "verification-token-unused",
        "is_enterprise_install": False,
        **more,
    }


async def test_slack_requests_are_counted_by_kind_and_their_acks_timed(
    admin: SlackUser, slack: SlackClient, standin: SlackStandIn, metrics: Metrics
) -> None:
    before = await scrape(metrics)
    await admin.command()
    _, form = await admin.open(create_action(admin.blocks), "token_create")
    await admin.submit(form, {"name": "Nightly export", "access_rights": ["reports:read"]})
    await send_payload(slack, crafted("view_closed", standin, view=form, is_cleared=False))
    options = crafted(
        "block_suggestion",
        standin,
        action_id="anything",
        block_id="anything",
        value="ni",
        container={"type": "view", "view_id": "V0TEST"},
    )
    await send_payload(slack, options)
    await send_payload(slack, crafted("shortcut", standin, callback_id="anything"))
    await slack.event({"type": "app_home_opened", "user": ADMIN, "tab": "home"})
    await slack.event({"type": "app_home_opened", "user": SPECIALIST, "tab": "home"})
    await settle()
    after = await scrape(metrics)

    expected = {
        "command": 1.0,
        "block_actions": 1.0,
        "view_submission": 1.0,
        "view_closed": 1.0,
        "options": 1.0,
        "other": 1.0,
        "event": 2.0,
    }
    assert moved(before, after, "tokendesk_slack_requests_total") == {
        labels(kind=kind): count for kind, count in expected.items()
    }
    acks = "tokendesk_slack_ack_duration_seconds"
    for kind, count in expected.items():
        timed = value(after, f"{acks}_count", kind=kind) - value(before, f"{acks}_count", kind=kind)
        assert timed == count, kind
        assert 0 < value(after, f"{acks}_sum", kind=kind) < 3 * count
        assert value(after, f"{acks}_bucket", kind=kind, le="3.0") == value(
            after, f"{acks}_count", kind=kind
        )


@pytest.fixture
def socket_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"slack_app_token": SecretStr("xapp-test")})


async def test_socket_mode_requests_are_counted_too(
    socket_settings: Settings, store: Store, standin: SlackStandIn, metrics: Metrics
) -> None:
    client = create_web_client(socket_settings, metrics=metrics)
    bolt = create_app(socket_settings, store, client=client, metrics=metrics)
    handler = AsyncSocketModeHandler(bolt, "xapp-test")
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await standin.socket_connected()
        async with SlackClient.over_socket_mode(standin) as slack:
            admin = SlackUser(slack, ADMIN)
            await admin.command()
            await admin.command("help")
            await slack.event({"type": "app_home_opened", "user": ADMIN, "tab": "home"})
            await settle()
    finally:
        await drain()
        await handler.close_async()  # type: ignore[no-untyped-call]
    samples = await scrape(metrics)
    assert value(samples, "tokendesk_slack_requests_total", kind="command") == 2
    assert value(samples, "tokendesk_slack_requests_total", kind="event") == 1
    assert value(samples, "tokendesk_slack_ack_duration_seconds_count", kind="command") == 2


# -- the Web API's failures -----------------------------------------------------------------


async def test_failed_web_api_calls_are_counted_by_method_and_error(
    settings: Settings,
    admin: SlackUser,
    standin: SlackStandIn,
    client: AsyncWebClient,
    metrics: Metrics,
) -> None:
    hello = Message("Hello")
    before = await scrape(metrics)
    # A DM Slack refuses, and one it refuses with something no error code looks like.
    standin.fail_next("chat.postMessage", "channel_not_found", status=200, retry_after=None)
    assert await post_message(client, ALICE, hello) is None
    standin.fail_next("chat.postMessage", "Not A Code: U012AB3CD", status=200, retry_after=None)
    assert await post_message(client, ALICE, hello) is None
    # A failure its caller expects is a failure all the same.
    standin.fail_next("views.publish", "hash_conflict", status=200, retry_after=None)
    assert (
        await publish_home(client, ADMIN, {"type": "home", "blocks": []}, view_hash="1.x") is False
    )
    # Through the app: a modal whose trigger expired.
    standin.fail_next("views.open", "expired_trigger_id", status=200, retry_after=None)
    await admin.command()
    await admin.send_click(create_action(admin.blocks))
    await settle()
    # A rate limit the client waited out and retried: no failure.
    standin.fail_next("chat.postMessage")
    assert await post_message(client, ALICE, hello) is not None
    # No answer in time.
    impatient = create_web_client(settings, metrics=metrics)
    impatient.timeout = 0.5
    standin.delay_next("chat.postMessage", 0.8)
    assert await post_message(impatient, ALICE, hello) is None
    after = await scrape(metrics)

    assert moved(before, after, "tokendesk_slack_api_errors_total") == {
        labels(method="chat.postMessage", error="channel_not_found"): 1.0,
        labels(method="chat.postMessage", error=OTHER): 1.0,
        labels(method="chat.postMessage", error=NO_ANSWER): 1.0,
        labels(method="views.publish", error="hash_conflict"): 1.0,
        labels(method="views.open", error="expired_trigger_id"): 1.0,
    }


# -- the scheduler and the leak guard -------------------------------------------------------


async def test_reminders_and_automatic_disables_are_counted_per_pass(
    seed: Seed,
    store: Store,
    settings: Settings,
    wall: WallClock,
    standin: SlackStandIn,
    client: AsyncWebClient,
    metrics: Metrics,
) -> None:
    await seed("Alice's", contact=ALICE, lifetime_days=10)
    await seed("Bob's", contact=BOB, lifetime_days=10)
    await seed("Bob's too", contact=BOB, lifetime_days=10)
    await seed("Forgotten", contact=ALICE, lifetime_days=365)
    scheduler = Scheduler(
        store=store,
        client=client,
        settings=settings.model_copy(update={"tokendesk_disable_unused_days": 30}),
        clock=wall,
        metrics=metrics,
    )
    name = "tokendesk_reminders_sent_total"
    wall.advance(4 * DAY)  # 7 days before the three stop
    report = await scheduler.run_pass()
    assert report.reminder_dms == 2  # one per contact
    samples = await scrape(metrics)
    assert value(samples, name) == 2
    assert value(samples, "tokendesk_automatic_disables_total") == 0
    # One reminder DM Slack refuses is not counted as sent.
    standin.fail_next("chat.postMessage", "channel_not_found", status=200, retry_after=None)
    wall.advance(6 * DAY)  # 1 day before
    report = await scheduler.run_pass()
    assert (report.reminder_dms, report.posts_failed) == (1, 1)
    assert value(await scrape(metrics), name) == 3

    # Then a week at a time: the tokens stop (a last reminder), are warned as unused, and
    # are disabled a week after the warning.
    sent, disabled = 3, 0
    for _ in range(5):
        wall.advance(7 * DAY)
        report = await scheduler.run_pass()
        sent += report.reminder_dms
        disabled += len(report.disabled)
    assert disabled > 0
    samples = await scrape(metrics)
    assert value(samples, name) == sent
    assert value(samples, "tokendesk_automatic_disables_total") == disabled


async def test_leaks_are_counted_once_per_message_and_secret(
    seed: Seed, standin: SlackStandIn, metrics: Metrics, app_url: str
) -> None:
    standin.add_channel(GENERAL, name="general")
    standin.deliver_over_http(f"{app_url}/slack/events", SIGNING_SECRET)
    first, second = await seed("Billing"), await seed("Reports")

    async def leaks_after(text: str) -> float:
        delivery = await standin.user_posts(GENERAL, BOB, text)
        assert delivery.acked
        for _ in range(3):
            await settle()
            await standin.deliveries_done()
        return value(await scrape(metrics), "tokendesk_leaks_total")

    assert await leaks_after("nothing to see") == 0
    assert await leaks_after(f"here: {first.secret}") == 1
    assert await leaks_after(f"again: {first.secret} and {first.secret}") == 2
    assert await leaks_after(f"both: {first.secret} {second.secret}") == 4


# -- the gauges, read at each scrape --------------------------------------------------------


async def test_tokens_by_state_and_the_lease_are_read_at_each_scrape(
    seed: Seed, store: Store, wall: WallClock, metrics: Metrics, app_url: str
) -> None:
    used = await seed("Used")
    await seed("Expiring", lifetime_days=5)
    await seed("Expired", lifetime_days=1)
    off = await seed("Switched off")
    await store.tokens.set_enabled(actor=ADMIN, token_id=off.token.id, enabled=False)
    wall.advance(2 * DAY)
    async with aiohttp.ClientSession() as session:
        assert await check(session, app_url, f"Bearer {used.secret}") == 200
    samples = await scrape(metrics)
    assert {state: value(samples, "tokendesk_tokens", state=state) for state in TOKEN_STATES} == {
        "enabled": 2,
        "disabled": 1,
        "expired": 1,
    }
    flags = {flag: value(samples, "tokendesk_tokens_flagged", flag=flag) for flag in TOKEN_FLAGS}
    assert flags == {
        "leaked": 0,
        "expiring_soon": 1,
        "in_grace": 0,
        "unused": 3,
        "without_expiry": 0,
    }
    assert value(samples, "tokendesk_currency_lease_held") == 1  # always, on SQLite
    store.credentials.holds = lambda: False
    assert value(await scrape(metrics), "tokendesk_currency_lease_held") == 0
    await store.tokens.delete(
        actor=ADMIN,
        token_id=off.token.id,
        row_version=(await store.token_reads.get(token_id=off.token.id)).row_version,
    )
    assert value(await scrape(metrics), "tokendesk_tokens", state="disabled") == 0


# -- no identifier in any label, whatever was sent ------------------------------------------

KNOWN_ERRORS = {OTHER, NO_ANSWER}
_LABEL_RULES: dict[str, Callable[[str], bool]] = {
    "result": {"allowed", "denied", "unavailable"}.__contains__,
    "reason": {"", OTHER, *REFUSALS.values()}.__contains__,
    "kind": {*SLACK_KINDS, OTHER}.__contains__,
    "state": set(TOKEN_STATES).__contains__,
    "flag": set(TOKEN_FLAGS).__contains__,
    "le": lambda le: le == "+Inf" or float(le) > 0,
    "method": lambda method: method == OTHER or bool(re.fullmatch(r"[a-z]+(\.[a-zA-Z]+)+", method)),
    "error": lambda error: error in KNOWN_ERRORS or bool(re.fullmatch(r"[a-z_]{1,64}", error)),
}


async def test_no_label_names_anything_after_a_hostile_sweep(
    seed: Seed,
    store: Store,
    slack: SlackClient,
    standin: SlackStandIn,
    client: AsyncWebClient,
    metrics: Metrics,
    app_url: str,
) -> None:
    token = (await seed("Seed token <b>")).token
    issued = await seed("Another one")
    secrets = make_secrets(issued.secret)
    values = hostile_values(secrets)
    async with aiohttp.ClientSession() as session:
        for _, hostile in values:
            for _, header in authorization_headers(hostile, token.sid, secrets.real):
                if len(header.encode("utf-8", errors="surrogatepass")) <= HTTP_HEADER_LIMIT:
                    await http_check(session, app_url, header)
    for _, hostile in values:
        await slash(slack, standin, f"search {hostile}")
        await send_payload(slack, crafted(hostile, standin))
        await send_payload(slack, {**crafted("block_actions", standin), "command": hostile})
        await send_payload(slack, action_payload(standin, {"action_id": hostile, "type": hostile}))
        await slack.event({"type": hostile, "user": hostile, "channel": hostile})
        await slack.event(
            {"type": "message", "channel": CHANNEL, "user": STRANGER, "text": hostile, "ts": "1.2"}
        )
        standin.fail_next("chat.postMessage", hostile, status=200, retry_after=None)
        await post_message(client, ALICE, Message("Hello"))
        # Whatever an impossible method name makes the client raise.
        with contextlib.suppress(Exception):
            await client.api_call(hostile)
    for crafted_type in ([], {}, 7, None):
        await send_payload(slack, {**crafted("x", standin), "type": crafted_type})
    await settle()
    series = (await scrape(metrics)).keys()

    forbidden = [
        "tdk_",
        "xox",
        token.name.lower(),
        token.sid.lower(),
        issued.token.sid.lower(),
        secrets.real.lower(),
        secrets.unknown.lower(),
        *(user.lower() for user in (ADMIN, SPECIALIST, STRANGER, ALICE, BOB)),
        CHANNEL.lower(),
    ]
    called = {call.method for call in standin.calls}
    problems = []
    for name, series_labels in series:
        for label, label_value in series_labels:
            rule = _LABEL_RULES.get(label)
            if rule is None or not rule(label_value):
                problems.append(f"{name}: {label}={label_value!r} is outside its set")
            if label == "method" and label_value not in called | {OTHER}:
                problems.append(f"{name}: method {label_value!r} was never called")
            problems += [
                f"{name}: {label}={label_value!r} holds {piece!r}"
                for piece in forbidden
                if piece in label_value.lower()
            ]
    assert not problems, "\n".join(problems)
    sweep = await scrape(metrics)
    assert value(sweep, "tokendesk_slack_requests_total", kind=OTHER) >= len(values)
    assert (
        value(sweep, "tokendesk_slack_api_errors_total", method="chat.postMessage", error=OTHER) > 0
    )


# -- the port ---------------------------------------------------------------------------------


def get(url: str) -> tuple[int, str, str]:
    """(status, Content-Type, body) of a GET; the status of an HTTP error too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Content-Type", ""), ""


def started_app(tmp_path: Path, **values: str) -> subprocess.Popen[str]:
    port = values.setdefault("PORT", str(free_port()))
    # Nothing may reach Slack: the discard port on loopback fails any call at once.
    env = configured(tmp_path, SLACK_API_URL="http://127.0.0.1:9/api/", **values)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            if get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return process
        except OSError:
            pass
        if process.poll() is not None:
            raise AssertionError(process.stderr.read() if process.stderr else "")
        assert time.monotonic() < deadline, "the app did not start in time"
        time.sleep(0.1)


def stopped(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    return stderr


def test_the_metrics_port_serves_metrics_only(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    process = started_app(tmp_path, PORT=str(port), TOKENDESK_METRICS_PORT=str(metrics_port))
    try:
        metrics_url = f"http://127.0.0.1:{metrics_port}"
        assert get(f"http://127.0.0.1:{port}/auth/check")[0] == 401
        status, content_type, body = get(f"{metrics_url}/metrics")
        assert status == 200
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        samples = parsed(body)
        assert (
            value(samples, "tokendesk_auth_checks_total", result="denied", reason="no_header") == 1
        )
        assert value(samples, "tokendesk_tokens", state="enabled") == 0
        for path in ("/", "/metrics/", "/healthz", "/auth/check", "/slack/events", "/readyz"):
            assert get(f"{metrics_url}{path}")[0] == 404, path
        assert get(f"http://127.0.0.1:{port}/metrics")[0] == 404
        request = urllib.request.Request(f"{metrics_url}/metrics", method="POST", data=b"")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        with refused.value:
            assert refused.value.code == 405
    finally:
        stderr = stopped(process)
    assert f"metrics at 127.0.0.1 port {metrics_port}" in stderr


def test_unset_nothing_listens(tmp_path: Path) -> None:
    unused = free_port()
    process = started_app(tmp_path)
    try:
        with pytest.raises(urllib.error.URLError):
            get(f"http://127.0.0.1:{unused}/metrics")
        listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
        inode_sockets = {
            os.readlink(f"/proc/{process.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{process.pid}/fd")
        }
        # State 0A is LISTEN: the process holds exactly one listening socket, PORT's.
        ours = [
            line
            for line in listening
            if line.split()[3] == "0A" and f"socket:[{line.split()[9]}]" in inode_sockets
        ]
        assert len(ours) == 1, ours
    finally:
        stderr = stopped(process)
    assert "metrics" not in stderr


@pytest.mark.parametrize("given", ["0", "65536", "nine", "-1"])
def test_a_malformed_metrics_port_is_refused_in_one_line(tmp_path: Path, given: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=configured(tmp_path, TOKENDESK_METRICS_PORT=given),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "TOKENDESK_METRICS_PORT" in line and "port number" in line


async def test_the_exposition_parses_and_says_what_each_metric_is(metrics: Metrics) -> None:
    await metrics.read_store()
    text = metrics.exposition().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert {name: family.type for name, family in families.items()} == {
        "tokendesk_auth_checks": "counter",
        "tokendesk_auth_check_duration_seconds": "histogram",
        "tokendesk_slack_requests": "counter",
        "tokendesk_slack_ack_duration_seconds": "histogram",
        "tokendesk_slack_api_errors": "counter",
        "tokendesk_reminders_sent": "counter",
        "tokendesk_automatic_disables": "counter",
        "tokendesk_leaks": "counter",
        "tokendesk_tokens": "gauge",
        "tokendesk_tokens_flagged": "gauge",
        "tokendesk_currency_lease_held": "gauge",
    }
    assert all(family.documentation for family in families.values())
