"""A local HTTP stand-in for Slack's Web API and response_urls.

Point the app's `AsyncWebClient(base_url=standin.api_url)` at it. It answers the methods
Token Desk uses the way Slack does (HTTP 200, `{"ok": ...}`), refuses what Slack would
refuse (Block Kit limits, single-use 3 s trigger ids, 5 posts / 30 min per response_url)
and records every call so tests assert on what the app really sent.

Errors chosen where Slack is vague: Block Kit problems in chat.* answer `invalid_blocks`
with the problems in `errors`; in views.* they answer `invalid_arguments` with the problems
in `response_metadata.messages`, as Slack does. A refused response_url post answers
400 `invalid_blocks`, 404 `used_url` or 404 `expired_url`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from slack_standin.blockkit import check_message, check_view

TRIGGER_TTL = 3.0
RESPONSE_URL_TTL = 30 * 60.0
RESPONSE_URL_USES = 5
VIEW_STACK_MAX = 3
# Form bodies carry these as JSON strings; decoded so tests see what the app meant.
JSON_ARGS = ("blocks", "view", "attachments", "metadata")

Answer = dict[str, Any]


@dataclass(frozen=True)
class Call:
    method: str
    args: dict[str, Any]
    time: float
    status: int
    answer: Answer

    @property
    def ok(self) -> bool:
        return bool(self.answer.get("ok"))


@dataclass(frozen=True)
class ResponsePost:
    url: str
    body: Any
    time: float
    status: int
    error: str | None

    @property
    def accepted(self) -> bool:
        return self.error is None


class Refusal(Exception):
    """Raised by a method handler; answered as Slack's `{"ok": false, "error": ...}`."""

    def __init__(
        self, error: str, *, errors: list[str] | None = None, messages: list[str] | None = None
    ) -> None:
        super().__init__(error)
        self.answer: Answer = {"ok": False, "error": error}
        if errors:
            self.answer["errors"] = errors
        if messages:
            self.answer["response_metadata"] = {"messages": messages}


@dataclass(frozen=True)
class Fault:
    error: str
    status: int
    retry_after: float | None


@dataclass
class _Trigger:
    minted: float
    view_id: str | None
    used: bool = False


@dataclass
class _ResponseUrl:
    minted: float
    uses: int = 0


class SlackStandIn:
    """Slack's Web API on 127.0.0.1; see the module docstring for what it enforces."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test",
        clock: Callable[[], float] = time.time,
        team_id: str = "T0TEST",
        app_id: str = "A0TEST",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
    ) -> None:
        self.token = token
        self.clock = clock
        self.team_id = team_id
        self.team_domain = "tokendesk-test"
        self.app_id = app_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.calls: list[Call] = []
        self.responses: list[ResponsePost] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}
        self._skew = 0.0
        self._ts = itertools.count(1)
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._faults: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self._delays: defaultdict[str, deque[float]] = defaultdict(deque)
        # Calls being held back by `delay_next` right now, by method.
        self.held: Counter[str] = Counter()
        self._methods: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.update": self._update_message,
            "conversations.open": self._open_conversation,
            "views.open": self._open_view,
            "views.push": self._push_view,
            "views.update": self._update_view,
            "users.info": self._user_info,
            "usergroups.users.list": self._group_members,
        }
        self._runner: web.AppRunner | None = None
        self._base_url = ""

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{key}", self._response)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """Base URL for `AsyncWebClient(base_url=...)` (ends with a slash, as it must)."""
        if not self._base_url:
            raise RuntimeError("SlackStandIn is not started")
        return f"{self._base_url}/api/"

    # -- what tests set up and inspect -------------------------------------------------

    def now(self) -> float:
        return self.clock() + self._skew

    def advance(self, seconds: float) -> None:
        """Moves the stand-in's clock (trigger and response_url expiry) without sleeping."""
        self._skew += seconds

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        is_bot: bool = False,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        deleted: bool = False,
        tz: str = "Europe/Paris",
        team_id: str | None = None,
    ) -> dict[str, Any]:
        name = name or user_id.lower()
        self.users[user_id] = {
            "id": user_id,
            "team_id": team_id or self.team_id,
            "name": name,
            "real_name": name.title(),
            "deleted": deleted,
            "is_bot": is_bot,
            "is_app_user": False,
            "is_admin": False,
            "is_restricted": is_restricted,
            "is_ultra_restricted": is_ultra_restricted,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": _utc_offset(tz),
            "profile": {"display_name": name, "real_name": name.title()},
        }
        return self.users[user_id]

    def set_group(self, group_id: str, members: list[str]) -> None:
        self.groups[group_id] = list(members)

    def trigger_id(self, *, view_id: str | None = None) -> str:
        """A fresh trigger id, valid once for 3 s; `view_id` when it comes from a modal."""
        trigger = f"{next(self._ts)}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"
        self._triggers[trigger] = _Trigger(minted=self.now(), view_id=view_id)
        return trigger

    def response_url(self) -> str:
        """A fresh response_url: 5 posts within 30 minutes."""
        key = uuid.uuid4().hex
        self._response_urls[key] = _ResponseUrl(minted=self.now())
        return f"{self._base_url}/response/{key}"

    def expire_response_url(self, url: str) -> None:
        self._response_urls[url.rsplit("/", 1)[-1]].minted = float("-inf")

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int = 429,
        retry_after: float | None = 1,
    ) -> None:
        """The next call to `method` (or "response_url") fails once with `error`."""
        self._faults[method].append(Fault(error, status, retry_after))

    def delay_next(self, method: str, seconds: float) -> None:
        """The next call to `method` (or "response_url") is answered `seconds` late; it is
        counted in `held` meanwhile."""
        self._delays[method].append(seconds)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def responses_to(self, url: str) -> list[ResponsePost]:
        return [post for post in self.responses if post.url == url]

    def latest_view(self, callback_id: str | None = None) -> dict[str, Any]:
        """The newest opened, pushed or updated view (as Slack holds it, with id and hash)."""
        for view in reversed(self.views.values()):
            if callback_id is None or view.get("callback_id") == callback_id:
                return view
        raise LookupError(f"no view with callback_id {callback_id!r}")

    # -- HTTP -------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _read_args(request)
        token = args.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ")
        await self._maybe_delay(method)
        headers: dict[str, str] = {}
        status, answer = 200, {"ok": True}
        try:
            if method not in self._methods:
                raise Refusal("unknown_method")
            if not token:
                raise Refusal("not_authed")
            if token != self.token:
                raise Refusal("invalid_auth")
            if self._faults[method]:
                status, answer, headers = _fault(self._faults[method].popleft())
            else:
                answer = self._methods[method](args)
        except Refusal as refusal:
            answer = refusal.answer
        self.calls.append(Call(method, args, self.now(), status, answer))
        return web.json_response(answer, status=status, headers=headers)

    async def _response(self, request: web.Request) -> web.Response:
        url = f"{self._base_url}{request.path}"
        try:
            body: Any = await request.json()
        except ValueError:
            body = await request.text()
        await self._maybe_delay("response_url")
        headers: dict[str, str] = {}
        status, answer = 200, {"ok": True}
        entry = self._response_urls.get(request.match_info["key"])
        if entry is None:
            status, answer = 404, Refusal("invalid_url").answer
        elif self.now() - entry.minted > RESPONSE_URL_TTL:
            status, answer = 404, Refusal("expired_url").answer
        elif entry.uses >= RESPONSE_URL_USES:
            status, answer = 404, Refusal("used_url").answer
        elif self._faults["response_url"]:
            status, answer, headers = _fault(self._faults["response_url"].popleft())
        else:
            # Counted even when the body is refused: an app bug should not earn extra uses.
            entry.uses += 1
            problems = check_message(body) if isinstance(body, dict) else ["body: not JSON"]
            if problems:
                status, answer = 400, Refusal("invalid_blocks", errors=problems).answer
        error = None if answer["ok"] else str(answer["error"])
        self.responses.append(ResponsePost(url, body, self.now(), status, error))
        return web.json_response(answer, status=status, headers=headers)

    async def _maybe_delay(self, method: str) -> None:
        if self._delays[method]:
            self.held[method] += 1
            try:
                await asyncio.sleep(self._delays[method].popleft())
            finally:
                self.held[method] -= 1

    # -- Web API methods ---------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"{int(self.now())}.{next(self._ts):06d}"

    def _dm_channel(self, user_id: str) -> str:
        return "D" + user_id[1:]

    def _auth_test(self, args: dict[str, Any]) -> Answer:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Token Desk Test",
            "user": "tokendesk",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _message(self, args: dict[str, Any], ts: str) -> dict[str, Any]:
        return {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": args.get("text", ""),
            "blocks": args.get("blocks", []),
            "ts": ts,
        }

    def _post_message(self, args: dict[str, Any]) -> Answer:
        channel = str(args.get("channel") or "")
        if not channel:
            raise Refusal("channel_not_found")
        _check_message(args)
        if channel[0] in "UW":  # posting to a user id lands in the DM with the bot
            channel = self._dm_channel(channel)
        ts = self._next_ts()
        self.messages[(channel, ts)] = self._message(args, ts)
        return {"ok": True, "channel": channel, "ts": ts, "message": self.messages[(channel, ts)]}

    def _post_ephemeral(self, args: dict[str, Any]) -> Answer:
        if not args.get("channel"):
            raise Refusal("channel_not_found")
        if not args.get("user"):
            raise Refusal("user_not_found")
        _check_message(args)
        # Not kept in `messages`: an ephemeral message cannot be reached by chat.update.
        return {"ok": True, "message_ts": self._next_ts()}

    def _update_message(self, args: dict[str, Any]) -> Answer:
        key = (str(args.get("channel")), str(args.get("ts")))
        if key not in self.messages:
            raise Refusal("message_not_found")
        _check_message(args)
        self.messages[key] = self._message(args, key[1])
        return {
            "ok": True,
            "channel": key[0],
            "ts": key[1],
            "text": args.get("text", ""),
            "message": self.messages[key],
        }

    def _open_conversation(self, args: dict[str, Any]) -> Answer:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if len(users) != 1:
            raise Refusal("users_list_not_supplied" if not users else "not_implemented")
        if self.users.get(users[0], {}).get("deleted"):
            raise Refusal("user_disabled")
        return {"ok": True, "channel": {"id": self._dm_channel(users[0])}}

    def _use_trigger(self, trigger_id: Any) -> _Trigger:
        trigger = self._triggers.get(str(trigger_id))
        if trigger is None:
            raise Refusal("invalid_trigger_id")
        if trigger.used or self.now() - trigger.minted > TRIGGER_TTL:
            raise Refusal("expired_trigger_id")
        trigger.used = True
        return trigger

    def _store_view(
        self, view: dict[str, Any], *, view_id: str, root_view_id: str, previous: str | None
    ) -> dict[str, Any]:
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            **view,
            "state": {"values": {}},
            "hash": f"{int(self.now())}.{uuid.uuid4().hex[:8]}",
            "root_view_id": root_view_id,
            "previous_view_id": previous,
        }
        self.views.pop(view_id, None)  # re-insert so `latest_view` sees it as newest
        self.views[view_id] = stored
        return stored

    def _open_view(self, args: dict[str, Any]) -> Answer:
        self._use_trigger(args.get("trigger_id"))
        view = _view_arg(args)
        view_id = _view_id()
        return {
            "ok": True,
            "view": self._store_view(view, view_id=view_id, root_view_id=view_id, previous=None),
        }

    def _push_view(self, args: dict[str, Any]) -> Answer:
        trigger = self._use_trigger(args.get("trigger_id"))
        view = _view_arg(args)
        below = self.views.get(trigger.view_id or "")
        root = below["root_view_id"] if below else None
        depth = sum(1 for v in self.views.values() if root and v["root_view_id"] == root)
        if depth >= VIEW_STACK_MAX:
            raise Refusal("push_limit_reached")
        view_id = _view_id()
        stored = self._store_view(
            view, view_id=view_id, root_view_id=root or view_id, previous=trigger.view_id
        )
        return {"ok": True, "view": stored}

    def _update_view(self, args: dict[str, Any]) -> Answer:
        if "view_id" in args:
            current = self.views.get(str(args["view_id"]))
        else:
            external = args.get("external_id")
            matches = [v for v in self.views.values() if external and v["external_id"] == external]
            current = matches[-1] if matches else None
        if current is None:
            raise Refusal("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise Refusal("hash_conflict")
        view = _view_arg(args)
        stored = self._store_view(
            view,
            view_id=current["id"],
            root_view_id=current["root_view_id"],
            previous=current["previous_view_id"],
        )
        return {"ok": True, "view": stored}

    def _user_info(self, args: dict[str, Any]) -> Answer:
        user = self.users.get(str(args.get("user")))
        if user is None:
            raise Refusal("user_not_found")
        return {"ok": True, "user": user}

    def _group_members(self, args: dict[str, Any]) -> Answer:
        members = self.groups.get(str(args.get("usergroup")))
        if members is None:
            raise Refusal("no_such_subteam")
        return {"ok": True, "users": list(members)}


def _check_message(args: dict[str, Any]) -> None:
    if problems := check_message(args):
        raise Refusal("invalid_blocks", errors=problems)


def _view_arg(args: dict[str, Any]) -> dict[str, Any]:
    view = args.get("view")
    if not isinstance(view, dict):
        raise Refusal("invalid_arguments", messages=["[ERROR] missing view"])
    if problems := check_view(view):
        raise Refusal("invalid_arguments", messages=[f"[ERROR] {p}" for p in problems])
    return view


def _fault(fault: Fault) -> tuple[int, Answer, dict[str, str]]:
    headers = {} if fault.retry_after is None else {"Retry-After": str(int(fault.retry_after))}
    return fault.status, Refusal(fault.error).answer, headers


def _utc_offset(tz: str) -> int:
    offset = datetime.now(ZoneInfo(tz)).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def _view_id() -> str:
    return "V" + uuid.uuid4().hex[:10].upper()


async def _read_args(request: web.Request) -> dict[str, Any]:
    """Query string plus a JSON or form body, as slack_sdk sends either."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            args.update(body)
    elif request.can_read_body:
        args.update({key: value for key, value in (await request.post()).items()})
    for name in JSON_ARGS:
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError:
                pass  # left as sent: the checks then report it as malformed
    return args
