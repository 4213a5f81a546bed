"""The playground: the real app, wired to the Slack stand-in, and the page that shows it.

The app is the one `python -m bot` runs (bot.app.create_app, bot.server.create_web_app, a
real Store, the scheduler and the group-membership refresher), on its own database and key
in a temporary directory, seeded with the demo workspace (playground/demo.py), served on a
loopback port of its own as Slack's HTTP request URL. Slack is the stand-in (slack_standin):
the app's Web API calls land in it, and every interaction the page asks for is a signed
request into the app, built by the stand-in's client as Slack builds it.

The page and its JSON API are served on 127.0.0.1:PORT only. The page is for whoever sits at
this machine: a request must name the page by its own address in `Host` (no DNS rebinding:
a name resolving to 127.0.0.1 reaches the port, not the page), a change must come as JSON
(a cross-site form cannot send it without a preflight, which is never answered), and an
`Origin`, when sent, must be the page's own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import logging
import os
import secrets
import signal
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bot.app import create_app
from bot.background import drain
from bot.http_limits import GuardedAppRunner, HttpLimits, fit_open_file_limit
from bot.memberships import SlackGroupMemberships
from bot.scheduler import Scheduler
from bot.server import create_web_app, open_store
from bot.settings import Settings
from bot.slack_client import create_web_client
from playground import demo
from slack_standin.client import SlackClient
from slack_standin.server import Refusal, SlackStandIn
from storage.errors import StartupRefused
from storage.store import Store

logger = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 3000
STATIC = Path(__file__).parent / "static"
WAIT_SECONDS_MAX = 25.0
PAGE_SHUTDOWN_SECONDS = 1.0
BODY_MAX = 64 * 1024
TEXT_MAX = 4000
CREDENTIAL_MAX = 512
NO_STORE = {"Cache-Control": "no-store"}
# The page is its own files only: nothing fetched from elsewhere, nothing inline, never framed.
PAGE_HEADERS = NO_STORE | {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none';"
    " base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
BOT_TOKEN = "xoxb-playground"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _PlaygroundSettings(Settings):
    """The app's settings as the playground gives them, and nothing else: no variable of
    the environment or of `.env` reaches the playground's app (a deployment's database,
    key or Slack credentials least of all)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class BadRequest(Exception):
    """A page request the API refuses; answered 400 with `{"error": message}`."""


class Playground:
    """The started playground (`start`, then `stop`); `url` is the page's address."""

    def __init__(self, *, port: int = DEFAULT_PORT, host: str = LOOPBACK) -> None:
        if host != LOOPBACK:
            raise StartupRefused("HOST", "the playground listens on 127.0.0.1 only")
        if not 0 <= port <= 65535:
            raise StartupRefused("PORT", "must be a port number between 1 and 65535")
        self.requested_port = port
        self.port = port
        self.standin = SlackStandIn(
            token=BOT_TOKEN,
            team_id="T0PLAY",
            app_id="A0PLAYDESK",
            bot_user_id="U0PLAYBOT",
            bot_id="B0PLAYBOT",
        )
        self.demo = demo.DemoTokens()
        self.last_gateway: dict[str, Any] | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._store: Store | None = None
        self._slack: SlackClient | None = None
        self._app_url = ""
        self._runners: list[web.BaseRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the playground is not started")
        return self._store

    @property
    def slack(self) -> SlackClient:
        if self._slack is None:
            raise RuntimeError("the playground is not started")
        return self._slack

    async def start(self) -> None:
        """The stand-in, the seeded app, then the page; StartupRefused when PORT is taken."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="tokendesk-playground-")
        await self.standin.start()
        demo.add_workspace(self.standin)
        signing_secret = secrets.token_hex(32)
        settings = _PlaygroundSettings(
            slack_bot_token=SecretStr(BOT_TOKEN),
            slack_signing_secret=SecretStr(signing_secret),
            slack_api_url=self.standin.api_url,
            tokendesk_db=Path(self._directory.name) / "tokendesk.db",
            tokendesk_admins=(demo.ANA,),
            tokendesk_alerts_channel=demo.ALERTS_CHANNEL,
            host=LOOPBACK,
        )
        self.demo = await demo.seed_tokens(settings)
        store = self._store = await open_store(settings)
        client = create_web_client(settings)
        memberships = SlackGroupMemberships(client, store)
        bolt = create_app(settings, store, client=client, memberships=memberships)
        scheduler = Scheduler(
            store=store, client=client, settings=settings, memberships=memberships
        )
        self._tasks = [
            asyncio.create_task(memberships.keep_fresh()),
            asyncio.create_task(scheduler.run_forever()),
        ]
        app_runner = GuardedAppRunner(
            create_web_app(store, bolt, serve_slack_events=True),
            limits=fit_open_file_limit(HttpLimits()),
            access_log=None,
        )
        self._runners.append(app_runner)
        await app_runner.setup()
        await web.TCPSite(app_runner, LOOPBACK, 0).start()
        host, port = app_runner.addresses[0][:2]
        self._app_url = f"http://{host}:{port}"
        self.standin.deliver_over_http(f"{self._app_url}/slack/events", signing_secret)
        self._slack = SlackClient(
            f"{self._app_url}/slack/events", signing_secret=signing_secret, standin=self.standin
        )
        self._session = aiohttp.ClientSession()
        # A page holds a long poll (/api/wait) open: stopping must not wait for it.
        page_runner = web.AppRunner(
            create_page_app(self), access_log=None, shutdown_timeout=PAGE_SHUTDOWN_SECONDS
        )
        self._runners.append(page_runner)
        await page_runner.setup()
        try:
            await web.TCPSite(page_runner, LOOPBACK, self.requested_port).start()
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else "unknown error"
            raise StartupRefused("PORT", f"cannot be listened on ({reason})") from None
        self.port = int(page_runner.addresses[0][1])

    async def stop(self) -> None:
        """Stops everything `start` started, whatever it got to."""
        for task in self._tasks:
            task.cancel()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await drain()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._slack is not None:
            await self._slack.close()
        if self._store is not None:
            await self._store.close()
        await self.standin.stop()
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    # -- what the page asks -------------------------------------------------------------

    def state(self, user: str) -> dict[str, Any]:
        """What `user` sees now (see `_message` for a message's shape)."""
        standin = self.standin
        return {
            "version": standin.version,
            "users": [
                {"id": person.id, "name": person.name, "title": person.title}
                for person in demo.PEOPLE
            ],
            "channel": {
                "id": demo.DESK_CHANNEL,
                "name": demo.DESK_NAME,
                "messages": _threaded(standin.channel_messages(demo.DESK_CHANNEL)),
            },
            "ephemerals": [
                _message(message) for message in standin.ephemerals(user, demo.DESK_CHANNEL)
            ],
            "dms": _threaded(standin.dm_messages(user)),
            "modals": standin.modal_stack(user),
            "home": standin.home_of(user),
            "last_gateway": self.last_gateway,
        }

    async def command(self, user: str, text: str) -> dict[str, Any]:
        """`/tokens text` typed by `user` in #token-desk; a message in the ack is shown to
        them alone, as Slack shows it."""
        reply = await self.slack.slash_command(
            user, _escaped(text), channel_id=demo.DESK_CHANNEL, channel_name=demo.DESK_NAME
        )
        if isinstance(reply.body, dict) and ("text" in reply.body or "blocks" in reply.body):
            self.standin.add_ephemeral(
                user, demo.DESK_CHANNEL, reply.body, response_url=reply.sent["response_url"]
            )
        return {"status": reply.status}

    async def post_message(self, user: str, text: str, thread_ts: str | None) -> dict[str, Any]:
        delivery = await self.standin.user_posts(
            demo.DESK_CHANNEL, user, _escaped(text), thread_ts=thread_ts
        )
        return {"ts": delivery.ts, "delivered": delivery.status}

    async def gateway(self, secret: str, sid: str | None) -> dict[str, Any]:
        """The gateway's auth check with `secret` (and `sid`); its answer is kept for the
        page, never what was presented."""
        if sid is None:
            authorization = f"Bearer {secret}"
        else:
            pair = base64.b64encode(f"{sid}:{secret}".encode()).decode()
            authorization = f"Basic {pair}"
        if self._session is None:
            raise RuntimeError("the playground is not started")
        async with self._session.get(
            f"{self._app_url}/auth/check",
            headers={"Authorization": authorization, "User-Agent": "playground-gateway/1"},
        ) as response:
            body: Any = await response.text()
            if response.content_type == "application/json":
                body = await response.json()
            answer = {
                "status": response.status,
                "headers": {
                    name: value
                    for name, value in response.headers.items()
                    if name.lower().startswith("x-token-") or name.lower() == "www-authenticate"
                },
                "body": body,
            }
        self.last_gateway = answer
        return answer


def _escaped(text: str) -> str:
    """`text` as Slack sends what a person typed: `&`, `<` and `>` escaped."""
    return html.escape(text, quote=False)


def _message(record: dict[str, Any], thread: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    message = {
        "ts": record.get("ts", ""),
        "user": record.get("user"),
        "bot": "bot_id" in record,
        "text": record.get("text", ""),
        "blocks": record.get("blocks", []),
        "thread": [_message(reply) for reply in thread],
        "edited": "edited" in record,
    }
    if isinstance(record.get("response_url"), str):
        message["response_url"] = record["response_url"]
    return message


def _threaded(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Top-level messages in order, each with the replies of its thread."""
    replies: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        parent = record.get("thread_ts")
        if parent is not None and parent != record.get("ts"):
            replies.setdefault(parent, []).append(record)
    return [
        _message(record, replies.get(record["ts"], ()))
        for record in records
        if record.get("thread_ts") in (None, record.get("ts"))
    ]


# -- the page's HTTP side --------------------------------------------------------------

PLAYGROUND = web.AppKey("playground", Playground)


def create_page_app(playground: Playground) -> web.Application:
    app = web.Application(middlewares=[_same_machine, _page_headers], client_max_size=BODY_MAX)
    app[PLAYGROUND] = playground
    app.router.add_get("/", _index)
    app.router.add_static("/static", STATIC, follow_symlinks=False)
    app.router.add_get("/api/state", _state)
    app.router.add_get("/api/wait", _wait)
    for path, handler in (
        ("/api/command", _command),
        ("/api/message", _post),
        ("/api/action", _action),
        ("/api/submit", _submit),
        ("/api/close", _close),
        ("/api/home", _home),
        ("/api/gateway", _gateway),
    ):
        app.router.add_post(path, _json_api(handler))
    return app


@web.middleware
async def _same_machine(request: web.Request, handler: Handler) -> web.StreamResponse:
    port = request.app[PLAYGROUND].port
    own = {f"{LOOPBACK}:{port}", f"localhost:{port}"}
    if request.headers.get("Host", "").lower() not in own:
        return _error(421, "this page answers only at its own address")
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in {f"http://{host}" for host in own}:
        return _error(403, "requests from other pages are refused")
    if request.method == "POST" and request.content_type != "application/json":
        return _error(415, "send JSON")
    return await handler(request)


@web.middleware
async def _page_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as error:
        error.headers.update(PAGE_HEADERS)
        raise
    response.headers.update(PAGE_HEADERS)
    return response


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=NO_STORE)


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


def _user(request_or_body: web.Request | dict[str, Any], playground: Playground) -> str:
    if isinstance(request_or_body, web.Request):
        user = request_or_body.query.get("user", "")
    else:
        user = request_or_body.get("user", "")
    if not isinstance(user, str) or user not in playground.standin.users:
        raise BadRequest("user: not a person of this workspace")
    return user


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > TEXT_MAX:
        raise BadRequest(f"{name}: must be text of at most {TEXT_MAX} characters")
    return value


async def _state(request: web.Request) -> web.Response:
    playground = request.app[PLAYGROUND]
    try:
        user = _user(request, playground)
    except BadRequest as error:
        return _error(400, str(error))
    return web.json_response(playground.state(user))


async def _wait(request: web.Request) -> web.Response:
    standin = request.app[PLAYGROUND].standin
    seen = request.query.get("version", "")
    if not seen.isdigit():
        return _error(400, "version: must be a whole number")
    await standin.changed(int(seen), WAIT_SECONDS_MAX)
    return web.json_response({"version": standin.version})


ApiHandler = Callable[[Playground, dict[str, Any]], Awaitable[dict[str, Any]]]


def _json_api(handler: ApiHandler) -> Handler:
    """`handler` on the request's JSON object; its refusals answered as 4xx errors."""

    async def answer(request: web.Request) -> web.StreamResponse:
        playground = request.app[PLAYGROUND]
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        try:
            result = await handler(playground, body)
        except BadRequest as error:
            return _error(400, str(error))
        except Refusal as refusal:
            return _error(400, str(refusal.answer.get("error", "refused")))
        except LookupError as error:
            return _error(404, _reason(error))
        except (ValueError, NotImplementedError) as error:
            return _error(400, _reason(error))
        # The app acks first and then does what the interaction asked of Slack (a modal to
        # open, a list to refresh, DMs): the page is answered once that is done too, so that
        # the state it reads next shows the interaction's whole outcome.
        await drain()
        return web.json_response({"version": playground.standin.version, **result})

    return answer


def _reason(error: Exception) -> str:
    # A KeyError's str() is the repr of its argument.
    return str(error.args[0]) if error.args else type(error).__name__


async def _command(playground: Playground, body: dict[str, Any]) -> dict[str, Any]:
    user = _user(body, playground)
    return await playground.command(user, _text(body, "text") or "")


async def _post(playground: Playground, body: dict[str, Any]) -> dict[str, Any]:
    user = _user(body, playground)
    text = _text(body, "text") or ""
    if not text.strip():
        raise BadRequest("text: write something")
    return await playground.post_message(user, text, _text(body, "thread_ts", required=False))


async def _action(playground: Playground, body: dict[str, Any]) -> dict[str, Any]:
    user = _user(body, playground)
    where = body.get("where")
    if not isinstance(where, dict) or where.get("kind") not in (
        "channel",
        "ephemeral",
        "dm",
        "modal",
        "home",
    ):
        raise BadRequest("where: must say the surface (channel, ephemeral, dm, modal, home)")
    block_id = _text(body, "block_id")
    action_id = _text(body, "action_id")
    values = body.get("values")
    if values is not None and not isinstance(values, dict):
        raise BadRequest("values: must be an object")
    selected = body.get("selected")
    if selected is not None and not (
        isinstance(selected, str)
        or (isinstance(selected, list) and all(isinstance(item, str) for item in selected))
    ):
        raise BadRequest("selected: must be an option's value, or a list of them")
    key = where.get("view_id") if where["kind"] in ("modal", "home") else where.get("ts")
    if key is not None and not isinstance(key, str):
        raise BadRequest("where: ts and view_id are text")
    reply = await playground.slack.click(
        user,
        (where["kind"], key),
        block_id or "",
        action_id or "",
        value=_text(body, "value", required=False),
        selected=selected,
        date=_text(body, "date", required=False),
        values=values,
    )
    return {"status": reply.status}


async def _submit(playground: Playground, body: dict[str, Any]) -> dict[str, Any]:
    user = _user(body, playground)
    view_id = _text(body, "view_id") or ""
    values = body.get("values", {})
    if not isinstance(values, dict):
        raise BadRequest("values: must be an object")
    reply = await playground.slack.submit_view(user, view_id, state=values)
    return {"status": reply.status, "problems": list(reply.problems)}


async def _close(playground: Playground, body: dict[str, Any]) -> dict[str, Any]:
    user = _user(body, playground)
    playground.standin.close_view(user, _text(body, "view_id") or "")
    return {}


async def _home(playground: Playground, body: dict[str, Any]) -> dict[str, Any]:
    delivery = await playground.standin.user_opens_home(_user(body, playground))
    return {"delivered": delivery.status}


async def _gateway(playground: Playground, body: dict[str, Any]) -> dict[str, Any]:
    secret = _credential(body, "secret")
    if not secret:
        raise BadRequest("secret: paste a secret to try")
    return await playground.gateway(secret, _credential(body, "sid", required=False) or None)


def _credential(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = _text(body, name, required=required)
    if value is None:
        return None
    value = value.strip()
    if len(value) > CREDENTIAL_MAX or not value.isascii() or not value.isprintable():
        raise BadRequest(f"{name}: must be printable ASCII, at most {CREDENTIAL_MAX} characters")
    if name == "sid" and ":" in value:
        raise BadRequest("sid: must not contain a colon")
    return value


# -- running it ------------------------------------------------------------------------


async def run(port: int) -> None:
    """The playground until SIGINT or SIGTERM; its URL printed first, once it answers."""
    playground = Playground(port=port)
    await playground.start()
    try:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        print(f"Token Desk playground: {playground.url}", flush=True)
        await stopping.wait()
        logger.info("shutting down")
    finally:
        await playground.stop()
