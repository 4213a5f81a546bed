"""Prometheus metrics, served at `GET /metrics` on TOKENDESK_METRICS_PORT: what the auth check
answered and how fast, Slack's requests and how fast they were acknowledged, the Web API
calls that failed, the scheduler's and the leak guard's work, and, read at each scrape, how
many tokens are in each state and whether this instance holds its currency lease.

No label value ever names a token, a SID, a user, a channel or a secret: every label takes
its values from a fixed small set (a Slack method or error code only when it has the shape
of one), and anything else is counted as `other`.

Counting must not slow the auth check: the app runs on one event loop thread, so it adds to
plain integers (prometheus_client's own metrics take a lock on every call) and only a scrape
turns them into metric families, in a registry of its own (never the global one). With
TOKENDESK_METRICS_PORT unset no `Metrics` exists: the check is served undecorated and
nothing listens.
"""

from __future__ import annotations

import logging
import re
import time
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bot.auth_check import NO_STORE, REFUSAL, Handler
from bot.http_limits import HttpLimits
from storage.credential_index import RETIRED
from storage.errors import StoreError
from storage.models import HomeSummary
from storage.store import Store

logger = logging.getLogger(__name__)

PATH = "/metrics"
# What `generate_latest` writes: the classic text format, which every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Prometheus, and perhaps a person with curl: a few connections are plenty.
LIMITS = HttpLimits(max_connections=16)
OTHER = "other"

# The auth check: its results, and why it refused (the reasons bot/auth_check.py and the
# verdicts of storage/credential_index.py give, as they log them), by label.
ALLOWED, DENIED, UNAVAILABLE = "allowed", "denied", "unavailable"
REFUSALS: Mapping[str, str] = {
    "no Authorization header": "no_header",
    "several Authorization headers": "several_headers",
    "header too long": "header_too_long",
    "unknown scheme": "unknown_scheme",
    "malformed Basic credentials": "malformed_basic",
    "malformed or bad checksum": "malformed",
    "unknown secret": "unknown",
    "SID does not match": "sid_mismatch",
    "token disabled": "disabled",
    "expired": "expired",
    "API access off": "api_access_off",
    RETIRED: "retired",
}
AUTH_OUTCOMES: tuple[tuple[str, str], ...] = (
    (ALLOWED, ""),
    (UNAVAILABLE, ""),
    *((DENIED, label) for label in (*REFUSALS.values(), OTHER)),
)
_ALLOWED_AT, _UNAVAILABLE_AT, _OTHER_AT = 0, 1, len(AUTH_OUTCOMES) - 1
_REFUSAL_AT = {reason: AUTH_OUTCOMES.index((DENIED, label)) for reason, label in REFUSALS.items()}
# From a cached answer (10 µs) to a check slowed by a busy machine (10 ms).
AUTH_CHECK_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2)

# Slack's requests, by kind; an ack takes Bolt's 10 ms poll at least, Slack waits 3 s.
SLACK_KINDS = ("command", "block_actions", "view_submission", "view_closed", "event", "options")
_KIND_OF_TYPE = {
    "block_actions": "block_actions",
    "view_submission": "view_submission",
    "view_closed": "view_closed",
    "event_callback": "event",
    "block_suggestion": "options",
}
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)

# Failed Web API calls: a method as the app names it, Slack's error code, or NO_ANSWER when
# Slack did not answer (a timeout, a connection error).
_METHOD = re.compile(r"[a-z]+(?:\.[a-zA-Z]+)+")
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
NO_ANSWER = "no_answer"
# Methods and codes are few; should Slack invent many, the rest are counted together.
API_ERROR_SERIES = 200

TOKEN_STATES = ("enabled", "disabled", "expired")
TOKEN_FLAGS = ("leaked", "expiring_soon", "in_grace", "unused", "without_expiry")


def slack_kind(body: Mapping[str, Any]) -> str:
    """What kind of request Slack sent, from its parsed body: one of SLACK_KINDS or `other`."""
    if "command" in body:
        return "command"
    kind = body.get("type")
    return _KIND_OF_TYPE.get(kind, OTHER) if isinstance(kind, str) else OTHER


def api_error_labels(method: object, error: object) -> tuple[str, str]:
    """(method, error) as labels: each as given when it has the shape of a Slack method or
    error code (and cannot be the start of a secret or a Slack token), else `other`."""
    method_label = method if isinstance(method, str) and _METHOD.fullmatch(method) else OTHER
    error_label = (
        error
        if isinstance(error, str)
        and _ERROR_CODE.fullmatch(error)
        and "tdk_" not in error
        and "xox" not in error
        else OTHER
    )
    return method_label, error_label


class _Histogram:
    """Observations counted in the bucket they fall in (cumulated only at a scrape)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        buckets, seen = [], 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            seen += count
            buckets.append((bound, float(seen)))
        return buckets


class Metrics(Collector):
    """This instance's metrics: counted as the app works, read from the store at a scrape
    (`read_store`), exposed by `exposition`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._auth_checks = [0] * len(AUTH_OUTCOMES)
        self._auth_seconds = _Histogram(AUTH_CHECK_BUCKETS)
        self._slack_requests = dict.fromkeys((*SLACK_KINDS, OTHER), 0)
        self._slack_acks = {kind: _Histogram(ACK_BUCKETS) for kind in self._slack_requests}
        self._api_errors: dict[tuple[str, str], int] = {}
        self._reminders_sent = 0
        self._automatic_disables = 0
        self._leaks = 0
        self._tokens: HomeSummary | None = None
        self._lease_held = True
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # Counting ----------------------------------------------------------------------------

    def measure_auth_check(self, handler: Handler) -> Handler:
        """`handler` (the auth check), counted by result and refusal reason, and timed."""
        # Everything the check touches is bound here, and the histogram observed in line: a
        # lookup or a call less on every check.
        counts, clock = self._auth_checks, time.perf_counter
        durations = self._auth_seconds
        bounds, buckets = durations.bounds, durations.counts

        async def measured(request: web.Request) -> web.StreamResponse:
            started = clock()
            response = await handler(request)
            elapsed = clock() - started
            buckets[bisect_left(bounds, elapsed)] += 1
            durations.total += elapsed
            status = response.status
            if status == 200:
                counts[_ALLOWED_AT] += 1
            elif status == 503:
                counts[_UNAVAILABLE_AT] += 1
            else:
                counts[_REFUSAL_AT.get(response.get(REFUSAL, ""), _OTHER_AT)] += 1
            return response

        return measured

    def count_slack_request(self, body: Mapping[str, Any], seconds: float) -> None:
        """A request from Slack, acknowledged `seconds` after it reached the app."""
        kind = slack_kind(body)
        self._slack_requests[kind] += 1
        self._slack_acks[kind].observe(seconds)

    def count_slack_api_error(self, method: str, error: object) -> None:
        """A Web API call Slack refused with `error` (its error code), or NO_ANSWER."""
        labels = api_error_labels(method, error)
        if labels not in self._api_errors and len(self._api_errors) >= API_ERROR_SERIES:
            labels = (OTHER, OTHER)
        self._api_errors[labels] = self._api_errors.get(labels, 0) + 1

    def count_scheduled(self, *, reminders_sent: int, automatic_disables: int) -> None:
        """What a scheduler pass did: reminder DMs Slack accepted, tokens disabled as unused."""
        self._reminders_sent += reminders_sent
        self._automatic_disables += automatic_disables

    def count_leaks(self, reports: int) -> None:
        """Secrets the leak guard reported (each once per message)."""
        self._leaks += reports

    # Scraping ----------------------------------------------------------------------------

    async def read_store(self) -> None:
        """Read what the gauges show now: the token counts (left out of the exposition when
        the database cannot say) and whether the index may answer (the currency lease)."""
        self._lease_held = self._store.credentials.holds()
        try:
            self._tokens = await self._store.token_reads.summary()
        except StoreError as error:
            self._tokens = None
            logger.warning("metrics: token counts not read: %s", type(error).__name__)

    def exposition(self) -> bytes:
        """Every metric in Prometheus's text format."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        checks = CounterMetricFamily(
            "tokendesk_auth_checks",
            "Auth checks answered, by result and, for a refusal, its reason.",
            labels=["result", "reason"],
        )
        for (result, reason), count in zip(AUTH_OUTCOMES, self._auth_checks, strict=True):
            checks.add_metric([result, reason], count)
        yield checks
        yield HistogramMetricFamily(
            "tokendesk_auth_check_duration_seconds",
            "Time the auth check took to answer, in the handler.",
            buckets=self._auth_seconds.cumulative(),
            sum_value=self._auth_seconds.total,
        )
        requests = CounterMetricFamily(
            "tokendesk_slack_requests",
            "Requests from Slack (HTTP or Socket Mode), by kind.",
            labels=["kind"],
        )
        acks = HistogramMetricFamily(
            "tokendesk_slack_ack_duration_seconds",
            "Time from a Slack request's arrival to its acknowledgement, by kind.",
            labels=["kind"],
        )
        for kind, count in self._slack_requests.items():
            requests.add_metric([kind], count)
            ack = self._slack_acks[kind]
            acks.add_metric([kind], ack.cumulative(), ack.total)
        yield requests
        yield acks
        errors = CounterMetricFamily(
            "tokendesk_slack_api_errors",
            "Slack Web API calls that failed, by method and Slack's error code"
            f" ({NO_ANSWER}: no answer).",
            labels=["method", "error"],
        )
        for (method, error), count in sorted(self._api_errors.items()):
            errors.add_metric([method, error], count)
        yield errors
        yield CounterMetricFamily(
            "tokendesk_reminders_sent",
            "Reminder direct messages Slack accepted (one per contact and pass).",
            value=self._reminders_sent,
        )
        yield CounterMetricFamily(
            "tokendesk_automatic_disables",
            "Tokens Token Desk disabled for being unused.",
            value=self._automatic_disables,
        )
        yield CounterMetricFamily(
            "tokendesk_leaks",
            "Live secrets the leak guard found posted in Slack (each once per message).",
            value=self._leaks,
        )
        if self._tokens is not None:
            states = GaugeMetricFamily(
                "tokendesk_tokens",
                "Tokens by state (every token is in exactly one).",
                labels=["state"],
            )
            for state in TOKEN_STATES:
                states.add_metric([state], getattr(self._tokens, state))
            yield states
            flagged = GaugeMetricFamily(
                "tokendesk_tokens_flagged",
                "Tokens leaked, expiring within 7 days, in a grace window, unused for 30 days"
                " or never, without expiry (a token may have several flags).",
                labels=["flag"],
            )
            for flag in TOKEN_FLAGS:
                flagged.add_metric([flag], getattr(self._tokens, flag))
            yield flagged
        yield GaugeMetricFamily(
            "tokendesk_currency_lease_held",
            "1 while this instance may answer auth checks (on PostgreSQL, while its currency"
            " lease holds; always 1 on SQLite), else 0.",
            value=int(self._lease_held),
        )


METRICS = web.AppKey("metrics", Metrics)


async def serve_metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    await metrics.read_store()
    return web.Response(
        body=metrics.exposition(), headers=NO_STORE | {"Content-Type": CONTENT_TYPE}
    )


def metrics_web_app(metrics: Metrics) -> web.Application:
    """The metrics port's app: `GET /metrics`, and nothing else (404)."""
    app = web.Application()
    app[METRICS] = metrics
    app.router.add_get(PATH, serve_metrics)
    return app
