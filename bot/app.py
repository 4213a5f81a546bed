"""The Slack app, built by a factory (no module-level singleton), and its one error handler.

The handler turns any error a listener raises into a polite reply on the surface the request
came from (the command's ack, an ephemeral reply to a button, a view for a modal submission),
in the words of `bot.errors.user_message`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot import listeners
from bot.background import Respond, after_ack
from bot.blocks.modals import message_view
from bot.errors import user_message
from bot.gate import role_gate
from bot.home import HomeTab
from bot.memberships import GroupMemberships, NoGroupMemberships
from bot.metrics import Metrics
from bot.settings import Settings
from bot.slack_client import create_web_client
from bot.surfaces import home_teller
from storage.store import Store


def create_app(
    settings: Settings,
    store: Store,
    *,
    client: AsyncWebClient | None = None,
    memberships: GroupMemberships | None = None,
    metrics: Metrics | None = None,
) -> AsyncApp:
    """The Bolt app. `client` defaults to one on SLACK_API_URL; without `memberships`,
    nobody gets a role from a user group; with `metrics`, Slack's requests are counted and
    timed, and listeners find them in their context (`metrics`, else None)."""
    memberships = memberships or NoGroupMemberships()
    client = client or create_web_client(settings)
    home = HomeTab(client, store, memberships)
    signing_secret = settings.slack_signing_secret
    app = _bolt_app(
        client=client,
        signing_secret=signing_secret.get_secret_value() if signing_secret else "",
        logger=logging.getLogger("slack_bolt.App"),
        metrics=metrics,
    )

    async def inject(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[BoltResponse]]
    ) -> Any:
        context["memberships"] = memberships
        context["settings"] = settings
        context["home"] = home
        context["metrics"] = metrics
        if metrics is not None:
            # Bolt hands listeners a plain client it makes for each request: this one counts
            # failed calls, and with one fixed token it serves every request alike.
            context["client"] = client
        teller = home_teller(body, home)
        if teller is not None:
            # Every listener's `respond`, and the error handler's, tells a Home click's
            # clicker on Home: Bolt's own needs the response_url such a click has not.
            context["respond"] = teller
        return await next()

    app.middleware(inject)
    app.middleware(role_gate(store, memberships))
    app.error(handle_error)
    listeners.register(app)
    return app


class _DropMessage(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self._message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self._message


class _MeasuredApp(AsyncApp):
    """The Bolt app, each of Slack's requests counted and timed from its arrival to its ack:
    over HTTP (bot/server.py) and over Socket Mode alike, every request goes through
    `async_dispatch`, which returns with the ack."""

    def __init__(self, *, metrics: Metrics, **options: Any) -> None:
        super().__init__(**options)
        self._request_metrics = metrics

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        started = time.perf_counter()
        try:
            return await super().async_dispatch(req)
        finally:
            self._request_metrics.count_slack_request(req.body, time.perf_counter() - started)


def _bolt_app(
    *,
    client: AsyncWebClient,
    signing_secret: str,
    logger: logging.Logger,
    metrics: Metrics | None = None,
) -> AsyncApp:
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself, and when it is set and a
    client is given as well, warns that the token will be unused. The client (SLACK_API_URL,
    the retry policy) is built from that same token, so the warning, which a newcomer would
    read as a misconfiguration, says nothing true here: it alone is dropped, while the app is
    built."""
    same_token = _DropMessage(warning_client_prioritized_and_token_skipped())
    logger.addFilter(same_token)
    options: dict[str, Any] = {
        "client": client,
        "signing_secret": signing_secret,
        "logger": logger,
        "raise_error_for_unhandled_request": False,
        # Each request's listener runs in the request, and the ack is sent when it returns:
        # Bolt otherwise runs it as a task and polls every 10 ms for its ack, which cost
        # every ack under load. Listeners ack, and hand what calls Slack to `after_ack`, so
        # that no ack waits on Slack (bot/background.py).
        "process_before_response": True,
    }
    try:
        return AsyncApp(**options) if metrics is None else _MeasuredApp(metrics=metrics, **options)
    finally:
        logger.removeFilter(same_token)


def _kind(body: dict[str, Any]) -> str:
    if "command" in body:
        return "command"
    return str(body.get("type", ""))


async def handle_error(
    error: Exception, body: dict[str, Any], respond: Respond | None = None
) -> BoltResponse:
    """Registered with `app.error`. A request is answered once its listener returned
    (`process_before_response`), so what this returns is the answer, in place of any ack
    the listener made before it failed."""
    text = user_message(error)
    kind = _kind(body)
    if kind == "view_submission":
        return BoltResponse(
            status=200, body={"response_action": "update", "view": message_view(text).to_dict()}
        )
    if kind == "command":
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text})
    if respond is not None:
        # Posting to the response_url before answering would delay the ack.
        reply = respond(text=text, response_type="ephemeral", replace_original=False)
        after_ack(reply, respond=None)
    return BoltResponse(status=200, body="")
