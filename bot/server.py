"""Runs Token Desk: opens the store, serves HTTP on HOST:PORT, runs the background work (the
group-membership refresher, the scheduler), and shuts down cleanly on a signal.

In HTTP mode Slack posts to `/slack/events`, always signature-checked by Bolt. In Socket Mode
that route does not exist at all; `/healthz` and `/auth/check` are served in both. Connections
keep to `bot.http_limits`, so that slow or excess clients cannot starve the auth check.
With TOKENDESK_METRICS_PORT set, `GET /metrics` (bot/metrics.py) is served on that port of
HOST, by an app of its own; unset, nothing listens there and nothing is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import create_app
from bot.auth_check import MAX_FIELD_SIZE, add_auth_check
from bot.background import drain
from bot.http_limits import GuardedAppRunner, HttpLimits, fit_open_file_limit
from bot.memberships import SlackGroupMemberships
from bot.metrics import LIMITS as METRICS_LIMITS
from bot.metrics import PATH as METRICS_PATH
from bot.metrics import Metrics, metrics_web_app
from bot.scheduler import Scheduler
from bot.settings import Settings, store_options
from bot.slack_client import create_web_client, sharing_connections
from storage.errors import StartupRefused
from storage.store import Store

logger = logging.getLogger(__name__)
STORE_KEY = web.AppKey("store", Store)
BOLT_KEY = web.AppKey("bolt", AsyncApp)
# The collector's thresholds once serving: each request allocates a few thousand objects,
# nearly all gone by its end, so a first generation of 2,000 (not 700) passes them over less
# often and promotes fewer; a full collection waits for 100 (not 10) of the second
# generation's, as what survives two young collections mostly lives on (measured under the
# mixed load: young pauses under 20 ms, full ones rare).
GC_THRESHOLDS = (2_000, 10, 100)


async def open_store(settings: Settings) -> Store:
    return await Store.open(**store_options(settings))


def settle_heap() -> None:
    """Called once start-up is done, before serving. What start-up loaded (modules, the
    app, the store's caches) lives as long as the process, yet each full collection walked
    it all: a pause of the event loop of 100 to 360 ms under load, every Slack ack behind
    it. Frozen, it is never walked again; only what serving makes is."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def healthz(request: web.Request) -> web.Response:
    healthy = await request.app[STORE_KEY].is_healthy()
    return web.json_response(
        {"ok": healthy}, status=200 if healthy else 503, headers={"Cache-Control": "no-store"}
    )


async def readyz(request: web.Request) -> web.Response:
    """Whether to send this instance requests: 503 with a short reason while it should not
    (on PostgreSQL, while its currency lease has lapsed)."""
    reason = await request.app[STORE_KEY].not_ready()
    body = {"ready": True} if reason is None else {"ready": False, "reason": reason}
    return web.json_response(
        body, status=200 if reason is None else 503, headers={"Cache-Control": "no-store"}
    )


async def slack_events(request: web.Request) -> web.Response:
    try:
        bolt_request = await to_bolt_request(request)
    except (ValueError, TypeError, AttributeError, RecursionError) as error:
        # Bolt reads the body before it checks the signature, and raises on one that is not
        # UTF-8, not JSON or a form, or not an object: Slack never sends such a body, so it
        # is refused without a word, and logged by its kind only (never its bytes).
        logger.debug("a request to /slack/events with a malformed body: %s", type(error).__name__)
        return web.Response(status=400, headers={"Cache-Control": "no-store"})
    bolt_response = await request.app[BOLT_KEY].async_dispatch(bolt_request)
    return await to_aiohttp_response(bolt_response)


def create_web_app(
    store: Store, bolt: AsyncApp, *, serve_slack_events: bool, metrics: Metrics | None = None
) -> web.Application:
    """The app on PORT; with `metrics`, the auth check is counted and timed."""
    app = web.Application(handler_args={"max_field_size": MAX_FIELD_SIZE})
    app[STORE_KEY] = store
    app[BOLT_KEY] = bolt
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_auth_check(app, store, measure=None if metrics is None else metrics.measure_auth_check)
    if serve_slack_events:
        app.router.add_post("/slack/events", slack_events)
    return app


async def listen(
    runner: web.BaseRunner,
    settings: Settings,
    *,
    port: int | None = None,
    port_variable: str = "PORT",
) -> web.TCPSite:
    """Listen on HOST and `port` (PORT's by default, else `port_variable`'s); StartupRefused,
    naming the variable at fault, when that fails."""
    site = web.TCPSite(runner, settings.host, settings.port if port is None else port)
    try:
        await site.start()
    except OSError as error:
        raise _listen_refusal(error, port_variable) from None
    return site


def _listen_refusal(error: OSError, port_variable: str = "PORT") -> StartupRefused:
    # asyncio's message quotes the address: the error number alone says what is wrong.
    if isinstance(error, socket.gaierror):
        return StartupRefused("HOST", f"cannot be resolved ({error.strerror})")
    reason = os.strerror(error.errno) if error.errno else "unknown error"
    subject = "HOST" if error.errno == errno.EADDRNOTAVAIL else port_variable
    return StartupRefused(subject, f"cannot be listened on ({reason})")


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT; StartupRefused when configuration or data forbid it."""
    store = await open_store(settings)
    metrics = None if settings.tokendesk_metrics_port is None else Metrics(store)
    # Every call to Slack while serving shares kept-alive connections: one connection per
    # call cost the event loop about a tenth of its time under load, every ack waiting on it.
    async with sharing_connections(create_web_client(settings, metrics=metrics)) as client:
        await _serve(settings, store, client, metrics)


async def _serve(
    settings: Settings, store: Store, client: AsyncWebClient, metrics: Metrics | None
) -> None:
    metrics_port = settings.tokendesk_metrics_port
    memberships = SlackGroupMemberships(client, store)
    bolt = create_app(settings, store, client=client, memberships=memberships, metrics=metrics)
    refresher = asyncio.create_task(memberships.keep_fresh())
    scheduler = Scheduler(
        store=store, client=client, settings=settings, memberships=memberships, metrics=metrics
    )
    scheduled = asyncio.create_task(scheduler.run_forever())
    runner = GuardedAppRunner(
        create_web_app(store, bolt, serve_slack_events=not settings.socket_mode, metrics=metrics),
        limits=fit_open_file_limit(HttpLimits()),
        access_log=None,
    )
    metrics_runner = None
    if metrics is not None:
        metrics_runner = GuardedAppRunner(
            metrics_web_app(metrics), limits=METRICS_LIMITS, access_log=None
        )
    socket_mode: AsyncSocketModeHandler | None = None
    settle_heap()
    try:
        await runner.setup()
        await listen(runner, settings)
        if metrics_runner is not None:
            await metrics_runner.setup()
            await listen(
                metrics_runner,
                settings,
                port=metrics_port,
                port_variable="TOKENDESK_METRICS_PORT",
            )
            logger.info("metrics at %s port %d, %s", settings.host, metrics_port, METRICS_PATH)
        if settings.slack_app_token is not None:
            socket_mode = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
            await socket_mode.connect_async()  # type: ignore[no-untyped-call]
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        logger.info(
            "Token Desk listening on %s port %d (%s)",
            settings.host,
            settings.port,
            "Socket Mode" if socket_mode else "HTTP mode",
        )
        await stopping.wait()
        logger.info("shutting down")
    finally:
        refresher.cancel()
        scheduled.cancel()
        if socket_mode is not None:
            await socket_mode.close_async()  # type: ignore[no-untyped-call]
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await runner.cleanup()
        await drain()
        # A pass cut short loses at most the posts of reminders it marked: never a double.
        with contextlib.suppress(asyncio.CancelledError):
            await scheduled
        await store.close()
