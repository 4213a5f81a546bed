"""A local HTTP stand-in for Slack's Web API, response_urls and Events API.

Point the app's `AsyncWebClient(base_url=standin.api_url)` at it. It answers the methods
Token Desk uses the way Slack does (HTTP 200, `{"ok": ...}`), refuses what Slack would
refuse (Block Kit limits, single-use 3 s trigger ids, 5 posts / 30 min per response_url)
and records every call so tests assert on what the app really sent.

It also holds channels and their messages, and sends the app the `message` events of the
channels it is in (people's posts and edits, its own posts, a thread's parent re-delivered
after a reply), over HTTP (`deliver_over_http`) or Socket Mode (`apps.connections.open`).
A channel id never added with `add_channel` is a public channel the app is not in.

It holds each person's App Home view (`views.publish`, at most one per user, checked like a
modal but with no title or buttons, its `hash` guarding against a concurrent publish) and
sends `app_home_opened` when someone opens the Home or Messages tab (`user_opens_home`).

It keeps what each person sees: their stack of modals (`modal_stack`), the ephemeral
messages shown to them in each channel (`ephemerals`, from chat.postEphemeral, response_url
posts and command acks), their DM with the app (`dm_messages`); `version` counts every
change to what anyone sees, and `changed` waits for the next one.

Errors chosen where Slack is vague: Block Kit problems in chat.* answer `invalid_blocks`
with the problems in `errors`; in views.* they answer `invalid_arguments` with the problems
in `response_metadata.messages`, as Slack does. A refused response_url post answers
400 `invalid_blocks`, 404 `used_url` or 404 `expired_url`. Stricter than Slack: a
`thread_ts` naming a reply is refused (`thread_ts_is_a_reply`).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from slack_standin import events
from slack_standin.blockkit import check_message, check_view
from slack_standin.events import Delivery
from slack_standin.signing import Signing, signed_headers
from slack_standin.socket_mode import SocketModeHub

TRIGGER_TTL = 3.0
RESPONSE_URL_TTL = 30 * 60.0
RESPONSE_URL_USES = 5
VIEW_STACK_MAX = 3
# Form bodies carry these as JSON strings; decoded so tests see what the app meant.
JSON_ARGS = ("blocks", "view", "attachments", "metadata")
ACK_TIMEOUT = 3.0  # Slack gives up on an ack after 3 s (and retries an event)
# The bot scopes of manifest.yml: chat:write.public lets the app post in any public channel.
BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "users:read",
    "usergroups:read",
    "channels:history",
    "groups:history",
)

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
class Channel:
    id: str
    name: str
    private: bool
    app_member: bool

    @property
    def channel_type(self) -> str:
        return "group" if self.private else "channel"


@dataclass
class _Trigger:
    minted: float
    view_id: str | None
    # Whose click or command minted it: views.open opens the modal on that person's stack.
    user_id: str | None = None
    used: bool = False


@dataclass
class _ResponseUrl:
    minted: float
    uses: int = 0
    # Where its posts land (None: recorded only) and the message `replace_original` and
    # `delete_original` act on (None: the first message posted through it).
    user_id: str | None = None
    channel: str | None = None
    target: str | None = None
    ephemeral: bool = True


@dataclass(frozen=True)
class Surface:
    """What a person can click: a channel or DM message, an ephemeral message (`channel`,
    `ts`), the top modal of their stack or their Home (`view_id`), and its blocks."""

    kind: Literal["channel", "ephemeral", "dm", "modal", "home"]
    blocks: list[dict[str, Any]]
    channel: str | None = None
    ts: str | None = None
    view_id: str | None = None


class SlackStandIn:
    """Slack's Web API on 127.0.0.1; see the module docstring for what it enforces."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test",
        app_token: str = "xapp-test",
        clock: Callable[[], float] = time.time,
        team_id: str = "T0TEST",
        app_id: str = "A0TEST",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
    ) -> None:
        self.token = token
        self.app_token = app_token
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
        # The Home view published to each user, by user id; kept apart from the modals so
        # `latest_view` never answers a Home republished meanwhile.
        self.homes: dict[str, dict[str, Any]] = {}
        # False as when the app's configuration leaves the Home tab off: views.publish then
        # answers `not_enabled`.
        self.home_tab_enabled = True
        # Each person's open modals by id, bottom first; `views` keeps closed ones too.
        self._stacks: dict[str, list[str]] = {}
        self._ephemerals: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.version = 0
        # Set, then replaced, on every change: a waiter holds the event of the version it saw.
        self._change = asyncio.Event()
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}
        self.channels: dict[str, Channel] = {}
        self.scopes = set(BOT_SCOPES)
        self.deliveries: list[Delivery] = []
        # Seconds Slack waits for an ack before it counts the sending as failed.
        self.ack_timeout = ACK_TIMEOUT
        # The subtype of a thread's parent re-delivered after a reply; Slack often sends
        # none (None).
        self.replied_subtype: str | None = "message_replied"
        self.socket_mode = SocketModeHub(app_id=app_id)
        self._http_target: tuple[str, str] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[object]] = set()
        self._background_errors: list[BaseException] = []
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
            "views.publish": self._publish_view,
            "users.info": self._user_info,
            "usergroups.users.list": self._group_members,
            "chat.getPermalink": self._permalink,
            "apps.connections.open": self._open_connection,
        }
        self._runner: web.AppRunner | None = None
        self._base_url = ""

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{key}", self._response)
        app.router.add_get("/socket/{key}", self.socket_mode.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.socket_mode.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
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

    def add_channel(
        self, channel_id: str, *, name: str, private: bool = False, app_member: bool = True
    ) -> Channel:
        """A channel people post in; the app gets its messages' events when a member."""
        self.channels[channel_id] = Channel(channel_id, name, private, app_member)
        return self.channels[channel_id]

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        """The messages of `channel` (replies too), in the order they were posted."""
        return [message for (where, _), message in self.messages.items() if where == channel]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The message `ts` of `channel` and the replies in its thread, in order."""
        return [
            message
            for message in self.channel_messages(channel)
            if ts in (message["ts"], message.get("thread_ts"))
        ]

    def trigger_id(self, *, view_id: str | None = None, user_id: str | None = None) -> str:
        """A fresh trigger id, valid once for 3 s; `view_id` when it comes from a modal,
        `user_id` for the person whose command or click it comes with (a modal opened with
        it goes on their stack)."""
        trigger = f"{next(self._ts)}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"
        self._triggers[trigger] = _Trigger(minted=self.now(), view_id=view_id, user_id=user_id)
        return trigger

    def response_url(
        self,
        *,
        user_id: str | None = None,
        channel: str | None = None,
        message_ts: str | None = None,
        ephemeral: bool = True,
    ) -> str:
        """A fresh response_url: 5 posts within 30 minutes.

        With `user_id` and `channel` its posts show: a new ephemeral message to that person
        there, or (`response_type: in_channel`) a channel message; `replace_original` and
        `delete_original` act on the message `message_ts` (an ephemeral one unless
        `ephemeral=False`), or without one on the first message posted through it.
        """
        key = uuid.uuid4().hex
        self._response_urls[key] = _ResponseUrl(
            minted=self.now(),
            user_id=user_id,
            channel=channel,
            target=message_ts,
            ephemeral=ephemeral,
        )
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

    def home_of(self, user_id: str) -> dict[str, Any] | None:
        """The Home view published to `user_id` (with id and hash), None before the first."""
        return self.homes.get(user_id)

    def set_home_hash(self, user_id: str, value: str | None = None) -> str:
        """Gives `user_id`'s published Home the hash `value` (a fresh one when None), as a
        publish made meanwhile would; a publish still naming the old hash then conflicts."""
        home = self.homes.get(user_id)
        if home is None:
            raise LookupError(f"no Home view published to {user_id!r}")
        home["hash"] = value or self._view_hash()
        return str(home["hash"])

    def find_view(self, view_id: str) -> dict[str, Any]:
        """The modal or published Home view `view_id`."""
        found = self.views.get(view_id) or next(
            (home for home in self.homes.values() if home["id"] == view_id), None
        )
        if found is None:
            raise LookupError(f"no view {view_id!r}")
        return found

    # -- what each person sees: modal stacks, ephemeral messages, DMs -------------------

    async def changed(self, after: int, timeout: float) -> int:
        """Waits until `version` is past `after`, or `timeout` seconds; answers `version`."""
        try:
            async with asyncio.timeout(timeout):
                while self.version <= after:
                    await self._change.wait()
        except TimeoutError:
            pass
        return self.version

    def _bump(self) -> None:
        self.version += 1
        self._change.set()
        self._change = asyncio.Event()

    def dm_channel(self, user_id: str) -> str:
        """The id of the app's DM channel with `user_id`."""
        return self._dm_channel(user_id)

    def dm_messages(self, user_id: str) -> list[dict[str, Any]]:
        """The messages of the app's DM with `user_id` (replies too), in order."""
        return self.channel_messages(self._dm_channel(user_id))

    def ephemerals(self, user_id: str, channel: str) -> list[dict[str, Any]]:
        """The ephemeral messages shown to `user_id` in `channel`, oldest first, each with
        its `ts`, `text`, `blocks` and a `response_url` that replaces or deletes it."""
        return copy.deepcopy(self._ephemerals.get((user_id, channel), []))

    def add_ephemeral(
        self,
        user_id: str,
        channel: str,
        message: dict[str, Any],
        *,
        response_url: str | None = None,
    ) -> dict[str, Any]:
        """Shows `message` (`text`, `blocks`) to `user_id` in `channel`, as Slack shows a
        slash command's ack that is a message; `response_url` (the command's) then
        replaces or deletes it. Raises ValueError if Slack would refuse the message."""
        if problems := check_message(message):
            raise ValueError(f"Slack refuses this message: {problems}")
        shown = self._new_ephemeral(user_id, channel, message, url=response_url)
        return copy.deepcopy(shown)

    def modal_stack(self, user_id: str) -> list[dict[str, Any]]:
        """The modals open for `user_id`, bottom first; a view refused field by field carries
        the errors shown under its inputs in `_errors` ({block_id: message})."""
        return [copy.deepcopy(self.views[view_id]) for view_id in self._stacks.get(user_id, [])]

    def close_view(self, user_id: str, view_id: str) -> None:
        """`user_id` closes the modal `view_id` (and those pushed above it; the whole stack
        when it says `clear_on_close`). Token Desk asks for no `view_closed`, so Slack tells
        the app nothing."""
        stack = self._stacks.get(user_id, [])
        if view_id not in stack:
            raise LookupError(f"{user_id!r} has no modal {view_id!r} open")
        del stack[0 if self.views[view_id].get("clear_on_close") else stack.index(view_id) :]
        self._bump()

    def start_submission(self, user_id: str, view_id: str) -> dict[str, Any]:
        """The modal `view_id` as `user_id` submits it: it must be the top of their stack
        (the only one they see); the field errors it showed are cleared."""
        stack = self._stacks.get(user_id, [])
        if not stack or stack[-1] != view_id:
            raise LookupError(f"{view_id!r} is not the modal {user_id!r} sees")
        view = self.views[view_id]
        if view.pop("_errors", None) is not None:
            self._bump()
        return public_view(view)

    def apply_view_answer(self, user_id: str, view_id: str, answer: Any) -> list[str]:
        """Applies the app's answer to the submission of `view_id` to `user_id`'s stack, as
        Slack does; answers what Slack refuses of it (the stack then stays as it was).

        An empty answer closes the view; `response_action` `errors` shows them under its
        inputs, `update` replaces it (same id, new hash), `push` puts a view above it and
        `clear` closes every modal of the stack.
        """
        stack = self._stacks.get(user_id, [])
        if view_id not in stack:
            raise LookupError(f"{user_id!r} has no modal {view_id!r} open")
        if not answer:
            del stack[stack.index(view_id) :]
            self._bump()
            return []
        action = answer.get("response_action") if isinstance(answer, dict) else None
        current = self.views[view_id]
        try:
            if action == "errors":
                errors = answer.get("errors")
                if not isinstance(errors, dict) or not errors:
                    return ["response_action errors: `errors` must map block_ids to messages"]
                current["_errors"] = {str(key): str(text) for key, text in errors.items()}
            elif action == "update":
                self._store_view(
                    _view_arg(answer, kind="modal"),
                    view_id=view_id,
                    root_view_id=current["root_view_id"],
                    previous=current["previous_view_id"],
                )
            elif action == "push":
                view = _view_arg(answer, kind="modal")
                if len(stack) >= VIEW_STACK_MAX:
                    raise Refusal("push_limit_reached")
                pushed = _view_id()
                self._store_view(
                    view, view_id=pushed, root_view_id=current["root_view_id"], previous=view_id
                )
                stack.append(pushed)
            elif action == "clear":
                stack.clear()
            else:
                return [f"unknown response_action {action!r}"]
        except Refusal as refusal:
            return [str(refusal), *refusal.answer.get("response_metadata", {}).get("messages", [])]
        self._bump()
        return []

    def surface(
        self,
        user_id: str,
        kind: Literal["channel", "ephemeral", "dm", "modal", "home"],
        key: str | None,
    ) -> Surface:
        """What `user_id` sees and can click: the channel message, ephemeral message or DM
        message `key` (a ts), the modal `key` (a view id; only the top of their stack), or
        their Home. LookupError when they see no such thing."""
        if kind == "channel":
            for (channel, ts), message in self.messages.items():
                if ts == key and not channel.startswith("D"):
                    return Surface(kind, message.get("blocks", []), channel=channel, ts=ts)
        elif kind == "dm":
            channel = self._dm_channel(user_id)
            if (sent := self.messages.get((channel, str(key)))) is not None:
                return Surface(kind, sent.get("blocks", []), channel=channel, ts=key)
        elif kind == "ephemeral":
            for (to, channel), shown in self._ephemerals.items():
                for message in shown:
                    if to == user_id and message["ts"] == key:
                        return Surface(kind, message["blocks"], channel=channel, ts=key)
        elif kind == "modal":
            stack = self._stacks.get(user_id, [])
            if stack and stack[-1] == key:
                return Surface(kind, self.views[key]["blocks"], view_id=key)
        elif kind == "home":
            if (home := self.homes.get(user_id)) is not None:
                return Surface(kind, home["blocks"], view_id=home["id"])
        raise LookupError(f"{user_id!r} sees no {kind} {key!r}")

    def _new_ephemeral(
        self,
        user_id: str,
        channel: str,
        message: dict[str, Any],
        *,
        url: str | None = None,
        ts: str | None = None,
    ) -> dict[str, Any]:
        """Records `message` as shown to `user_id` in `channel`; `url`, a response_url
        with no message of its own yet, then acts on it."""
        shown = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "text": message.get("text", ""),
            "blocks": message.get("blocks", []),
            "ts": ts or self._next_ts(),
            "channel": channel,
        }
        if message.get("attachments"):
            shown["attachments"] = message["attachments"]
        entry = self._response_urls.get((url or "").rsplit("/", 1)[-1])
        if url is not None and entry is not None and entry.target is None:
            entry.target, entry.ephemeral = shown["ts"], True
            shown["response_url"] = url
        else:
            shown["response_url"] = self.response_url(
                user_id=user_id, channel=channel, message_ts=shown["ts"]
            )
        self._ephemerals[(user_id, channel)].append(shown)
        self._bump()
        return shown

    def _respond(self, url: str, body: dict[str, Any]) -> None:
        """Shows an accepted post to `url` where Slack would (see `response_url`)."""
        entry = self._response_urls[url.rsplit("/", 1)[-1]]
        user_id, channel = entry.user_id, entry.channel
        if user_id is None or channel is None:
            return
        acts_on_original = body.get("replace_original") or body.get("delete_original")
        if acts_on_original and entry.target is not None and not entry.ephemeral:
            key = (channel, entry.target)
            if key in self.messages and body.get("delete_original"):
                del self.messages[key]
                self._bump()
            elif key in self.messages:
                self._replace_message(key, body)
            return
        if acts_on_original and entry.target is not None:
            shown = self._ephemerals[(user_id, channel)]
            at = next((i for i, m in enumerate(shown) if m["ts"] == entry.target), None)
            if body.get("delete_original"):
                if at is not None:
                    del shown[at]
                    self._bump()
                return
            if at is not None:
                shown[at] |= {"text": body.get("text", ""), "blocks": body.get("blocks", [])}
                self._bump()
                return
            # An ephemeral message shown before the stand-in kept them: shown anew in place.
            self._new_ephemeral(user_id, channel, body, ts=entry.target)
            return
        if body.get("delete_original"):
            return
        if body.get("response_type") == "in_channel":
            # A response_url posts in the channel whether the app is a member or not.
            message = self._message(body, self._next_ts())
            self._store(channel, message, None)
            if (member := self._member_channel(channel)) is not None:
                self._in_background(self._deliver_app_post(member, copy.deepcopy(message), None))
            return
        self._new_ephemeral(user_id, channel, body, url=url)

    # -- the Events API: what people do, sent to the app -------------------------------

    def deliver_over_http(self, app_url: str, signing_secret: str) -> None:
        """Events go to the request URL `app_url`, signed with `signing_secret`, whenever no
        Socket Mode connection is open."""
        self._http_target = (app_url, signing_secret)

    async def socket_connected(self, timeout: float = 5.0) -> None:
        """Waits until the app holds a Socket Mode connection (greeted with `hello`)."""
        await self.socket_mode.wait_connected(timeout)

    async def user_posts(
        self,
        channel: str,
        user: str,
        text: str = "",
        *,
        blocks: list[dict[str, Any]] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        subtype: str | None = None,
        bot_id: str | None = None,
    ) -> Delivery:
        """`user` posts in the added `channel` (in the thread of `thread_ts` when given).

        Returns once the app acked the `message` event ("not_sent" when the app is not in
        the channel); a reply's parent is then re-delivered in the background. `blocks=None`
        sends the rich_text blocks a Slack client makes of `text`.
        """
        where = self._added_channel(channel)
        message: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": self._next_ts(),
            "team": self.team_id,
        }
        if subtype is not None:
            message["subtype"] = subtype
        if bot_id is not None:
            message["bot_id"] = bot_id
        else:
            message["client_msg_id"] = str(uuid.uuid4())
        if blocks := events.rich_text(text) if blocks is None and text else blocks:
            message["blocks"] = blocks
        if attachments:
            message["attachments"] = attachments
        self._store(channel, message, thread_ts)
        if not where.app_member:
            return self._not_sent(message["ts"])
        event = events.in_channel(
            copy.deepcopy(message), channel=channel, channel_type=where.channel_type
        )
        delivery = await self.deliver_event(event)
        if thread_ts is not None:
            self._in_background(self._deliver_replied(where, thread_ts))
        return delivery

    async def user_edits(
        self,
        channel: str,
        ts: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Delivery:
        """The author of message `ts` in `channel` changes it to `text` (blocks as in
        `user_posts`; attachments kept unless given); the app gets `message_changed`."""
        where = self._added_channel(channel)
        old = self.messages.get((channel, ts))
        if old is None:
            raise LookupError(f"no message {ts} in {channel}")
        edited_at = self._next_ts()
        new = {**old, "text": text, "edited": {"user": old.get("user"), "ts": edited_at}}
        new.pop("blocks", None)
        if blocks := events.rich_text(text) if blocks is None and text else blocks:
            new["blocks"] = blocks
        if attachments is not None:
            new["attachments"] = attachments
        self.messages[(channel, ts)] = new
        self._bump()
        if not where.app_member:
            return self._not_sent(ts)
        event = events.changed(
            copy.deepcopy(new),
            copy.deepcopy(old),
            channel=channel,
            channel_type=where.channel_type,
            ts=edited_at,
        )
        return await self.deliver_event(event)

    async def user_opens_home(
        self, user_id: str, tab: Literal["home", "messages"] = "home"
    ) -> Delivery:
        """`user_id` (added with `add_user`) opens the app's Home or Messages `tab`; the
        `app_home_opened` event carries their published Home view, if any, for the Home tab."""
        if user_id not in self.users:
            raise LookupError(f"add_user({user_id!r}) first")
        home = self.homes.get(user_id)
        event = events.app_home_opened(
            user_id,
            channel=self._dm_channel(user_id),
            tab=tab,
            ts=self._next_ts(),
            view=None if home is None else copy.deepcopy(home),
        )
        return await self.deliver_event(event)

    async def deliver_event(
        self,
        event: dict[str, Any],
        *,
        team_id: str | None = None,
        api_app_id: str | None = None,
    ) -> Delivery:
        """Sends any event (unknown types, malformed ones) in an `event_callback`, from this
        workspace and to this app unless told otherwise."""
        body = events.event_callback(
            event,
            team_id=team_id or self.team_id,
            api_app_id=api_app_id or self.app_id,
            bot_user_id=self.bot_user_id,
            time=int(self.now()),
        )
        return await self._send("events_api", body, accepts_response_payload=False)

    async def redeliver(
        self, delivery: Delivery, *, retry_num: int = 1, reason: str = "http_timeout"
    ) -> Delivery:
        """Slack's retry of `delivery`: the same payload (and event_id), with its retry count
        and reason (`X-Slack-Retry-Num`/`-Reason`, or the envelope's `retry_attempt`)."""
        return await self._send(
            delivery.kind,
            delivery.payload,
            accepts_response_payload=False,
            retry_num=retry_num,
            retry_reason=reason,
        )

    async def send_envelope(
        self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool
    ) -> Delivery:
        """A Socket Mode envelope of any type (`slash_commands`, `interactive`, ...)."""
        if not self.socket_mode.connected:
            raise RuntimeError("no Socket Mode connection is open")
        return await self._send(kind, payload, accepts_response_payload=accepts_response_payload)

    async def deliver_raw(
        self, body: bytes, *, signing: Signing = "valid", content_type: str = "application/json"
    ) -> Delivery:
        """Posts `body` as it is to the HTTP request URL; the Delivery's payload is the JSON
        object it holds, else `{"raw": text}`."""
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        payload = parsed if isinstance(parsed, dict) else {"raw": body.decode(errors="replace")}
        return await self._send_http(
            body, payload, content_type=content_type, signing=signing, retry_num=0, reason=""
        )

    async def deliveries_done(self, timeout: float = 10.0) -> None:
        """Waits for the deliveries made in the background; raises the first that failed."""
        async with asyncio.timeout(timeout):
            while self._background:
                await asyncio.gather(*list(self._background), return_exceptions=True)
        if self._background_errors:
            raise self._background_errors.pop(0)

    def _added_channel(self, channel: str) -> Channel:
        if channel not in self.channels:
            raise LookupError(f"add_channel({channel!r}) first")
        return self.channels[channel]

    def _not_sent(self, ts: str) -> Delivery:
        return Delivery(event_id="", ts=ts, status="not_sent", ack_seconds=None, payload={})

    def _can_deliver(self) -> bool:
        return self.socket_mode.connected or self._http_target is not None

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_ended)

    def _background_ended(self, task: asyncio.Task[object]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._background_errors.append(error)

    async def _deliver_replied(self, channel: Channel, thread_ts: str) -> None:
        parent = self.messages[(channel.id, thread_ts)]
        event = events.replied(
            copy.deepcopy(parent),
            channel=channel.id,
            channel_type=channel.channel_type,
            ts=self._next_ts(),
            subtype=self.replied_subtype,
        )
        await self.deliver_event(event)

    async def _deliver_app_post(
        self, channel: Channel, message: dict[str, Any], thread_ts: str | None
    ) -> None:
        """Slack sends the app its own posts in the channels it is in, as anyone's."""
        await self.deliver_event(
            events.in_channel(message, channel=channel.id, channel_type=channel.channel_type)
        )
        if thread_ts is not None:
            await self._deliver_replied(channel, thread_ts)

    async def _send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool,
        retry_num: int = 0,
        retry_reason: str = "",
    ) -> Delivery:
        if self.socket_mode.connected:
            sent = events.envelope(
                kind,
                payload,
                accepts_response_payload=accepts_response_payload,
                retry_num=retry_num,
                retry_reason=retry_reason,
            )
            ack = await self.socket_mode.send(sent, timeout=self.ack_timeout)
            delivery = Delivery(
                event_id=str(payload.get("event_id", "")),
                ts=_event_ts(payload),
                status="timeout" if ack is None else "acked",
                ack_seconds=None if ack is None else ack.seconds,
                payload=payload,
                ack=None if ack is None else ack.payload,
                mode="socket",
                kind=kind,
                envelope_id=sent["envelope_id"],
                retry_num=retry_num,
                retry_reason=retry_reason,
            )
            self.deliveries.append(delivery)
            return delivery
        return await self._send_http(
            json.dumps(payload).encode(), payload, retry_num=retry_num, reason=retry_reason
        )

    async def _send_http(
        self,
        body: bytes,
        payload: dict[str, Any],
        *,
        retry_num: int,
        reason: str,
        content_type: str = "application/json",
        signing: Signing = "valid",
    ) -> Delivery:
        if self._http_target is None:
            raise RuntimeError("no app to deliver to: deliver_over_http or Socket Mode first")
        url, secret = self._http_target
        # Real time: the app checks the signature's timestamp against its own clock.
        headers = {
            "Content-Type": content_type,
            **signed_headers(secret, body, timestamp=int(time.time()), signing=signing),
        }
        if retry_num:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": reason}
        if self._session is None:
            self._session = aiohttp.ClientSession()
        status: events.Status = "timeout"
        seconds: float | None = None
        answer: Any = None
        started = time.perf_counter()
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(self.ack_timeout)
            ) as response:
                text = await response.text()
                status, seconds = response.status, time.perf_counter() - started
                answer = json.loads(text) if response.content_type == "application/json" else text
        except TimeoutError:
            pass  # Slack gives up: recorded as "timeout"
        delivery = Delivery(
            event_id=str(payload.get("event_id", "")),
            ts=_event_ts(payload),
            status=status,
            ack_seconds=seconds,
            payload=payload,
            ack=answer,
            mode="http",
            retry_num=retry_num,
            retry_reason=reason,
        )
        self.deliveries.append(delivery)
        return delivery

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
            if token not in (self.token, self.app_token):
                raise Refusal("invalid_auth")
            # The app-level token opens Socket Mode connections and does nothing else.
            if (token == self.app_token) != (method == "apps.connections.open"):
                raise Refusal("not_allowed_token_type")
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
            else:
                self._respond(url, body)
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
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": args.get("text", ""),
            "blocks": args.get("blocks", []),
            "ts": ts,
        }
        if args.get("attachments"):
            message["attachments"] = args["attachments"]
        return message

    def _postable(self, channel: str) -> str:
        """The id of the channel `channel` (an id, or a name with or without #) if the app
        may post in it."""
        found = self.channels.get(channel) or next(
            (c for c in self.channels.values() if channel in (c.name, f"#{c.name}")), None
        )
        if found is None and channel.startswith("#"):
            raise Refusal("channel_not_found")
        if found is not None and found.app_member:
            return found.id
        if found is not None and found.private:
            raise Refusal("channel_not_found")  # a private channel is hidden from non-members
        if "chat:write.public" not in self.scopes:
            raise Refusal("not_in_channel")
        return channel if found is None else found.id

    def _thread_parent(self, channel: str, thread_ts: str) -> dict[str, Any]:
        parent = self.messages.get((channel, thread_ts))
        if parent is None:
            raise Refusal("thread_not_found")
        if parent.get("thread_ts", thread_ts) != thread_ts:
            raise Refusal("thread_ts_is_a_reply")
        return parent

    def _store(self, channel: str, message: dict[str, Any], thread_ts: str | None) -> None:
        """Keeps `message`; a reply joins the thread of `thread_ts`, counted on its parent."""
        if thread_ts is not None:
            parent = self._thread_parent(channel, thread_ts)
            message |= {"thread_ts": thread_ts, "parent_user_id": parent.get("user")}
            repliers = list(dict.fromkeys([*parent.get("reply_users", []), message.get("user")]))
            parent |= {
                "thread_ts": thread_ts,
                "reply_count": parent.get("reply_count", 0) + 1,
                "reply_users_count": len(repliers),
                "latest_reply": message["ts"],
                "reply_users": repliers,
            }
        self.messages[(channel, message["ts"])] = message
        self._bump()

    def _member_channel(self, channel: str) -> Channel | None:
        """`channel` if the app is in it and can be sent its events now."""
        found = self.channels.get(channel)
        return found if found is not None and found.app_member and self._can_deliver() else None

    def _post_message(self, args: dict[str, Any]) -> Answer:
        channel = str(args.get("channel") or "")
        if not channel:
            raise Refusal("channel_not_found")
        if channel[0] in "UW":  # posting to a user id lands in the DM with the bot
            channel = self._dm_channel(channel)
        elif channel[0] != "D":
            channel = self._postable(channel)
        _check_message(args)
        thread_ts = str(args.get("thread_ts") or "") or None
        message = self._message(args, self._next_ts())
        self._store(channel, message, thread_ts)
        if (member := self._member_channel(channel)) is not None:
            self._in_background(self._deliver_app_post(member, copy.deepcopy(message), thread_ts))
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _post_ephemeral(self, args: dict[str, Any]) -> Answer:
        if not args.get("channel"):
            raise Refusal("channel_not_found")
        if not args.get("user"):
            raise Refusal("user_not_found")
        _check_message(args)
        # Not kept in `messages`: an ephemeral message cannot be reached by chat.update.
        shown = self._new_ephemeral(str(args["user"]), str(args["channel"]), args)
        return {"ok": True, "message_ts": shown["ts"]}

    def _update_message(self, args: dict[str, Any]) -> Answer:
        key = (str(args.get("channel")), str(args.get("ts")))
        old = self.messages.get(key)
        if old is None:
            raise Refusal("message_not_found")
        if old.get("bot_id") != self.bot_id:
            raise Refusal("cant_update_message")
        _check_message(args)
        self._replace_message(key, args)
        return {
            "ok": True,
            "channel": key[0],
            "ts": key[1],
            "text": args.get("text", ""),
            "message": self.messages[key],
        }

    def _replace_message(self, key: tuple[str, str], args: dict[str, Any]) -> None:
        """The app's message `key` becomes `args`' text and blocks, its thread kept; the
        channel's members get `message_changed`."""
        old = self.messages[key]
        kept = {
            name: old[name] for name in (*events.THREAD_FIELDS, "parent_user_id") if name in old
        }
        self.messages[key] = self._message(args, key[1]) | kept
        self._bump()
        if (member := self._member_channel(key[0])) is not None:
            event = events.changed(
                copy.deepcopy(self.messages[key]),
                copy.deepcopy(old),
                channel=member.id,
                channel_type=member.channel_type,
                ts=self._next_ts(),
            )
            self._in_background(self.deliver_event(event))

    def _permalink(self, args: dict[str, Any]) -> Answer:
        channel, ts = str(args.get("channel") or ""), str(args.get("message_ts") or "")
        found = self.channels.get(channel)
        if not channel.startswith("D") and (found is None or not found.app_member):
            raise Refusal("channel_not_found")
        message = self.messages.get((channel, ts))
        if message is None:
            raise Refusal("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if message.get("thread_ts", ts) != ts:
            link += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _open_connection(self, args: dict[str, Any]) -> Answer:
        ws_base = "ws" + self._base_url.removeprefix("http")
        return {"ok": True, "url": f"{ws_base}/socket/{self.socket_mode.mint()}"}

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

    def _view_hash(self) -> str:
        return f"{int(self.now())}.{uuid.uuid4().hex[:8]}"

    def _view_record(
        self, view: dict[str, Any], *, view_id: str, root_view_id: str, previous: str | None
    ) -> dict[str, Any]:
        """`view` as Slack holds and answers it: with its id, a new hash and the defaults."""
        return {
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
            "hash": self._view_hash(),
            "root_view_id": root_view_id,
            "previous_view_id": previous,
        }

    def _store_view(
        self, view: dict[str, Any], *, view_id: str, root_view_id: str, previous: str | None
    ) -> dict[str, Any]:
        stored = self._view_record(
            view, view_id=view_id, root_view_id=root_view_id, previous=previous
        )
        self.views.pop(view_id, None)  # re-insert so `latest_view` sees it as newest
        self.views[view_id] = stored
        self._bump()
        return stored

    def _open_view(self, args: dict[str, Any]) -> Answer:
        trigger = self._use_trigger(args.get("trigger_id"))
        view = _view_arg(args, kind="modal")
        view_id = _view_id()
        stored = self._store_view(view, view_id=view_id, root_view_id=view_id, previous=None)
        if trigger.user_id is not None:
            # A person sees one stack: a modal opened anew takes the place of what was open.
            self._stacks[trigger.user_id] = [view_id]
        return {"ok": True, "view": stored}

    def _push_view(self, args: dict[str, Any]) -> Answer:
        trigger = self._use_trigger(args.get("trigger_id"))
        view = _view_arg(args, kind="modal")
        below = self.views.get(trigger.view_id or "")
        root = below["root_view_id"] if below else None
        stack = next((s for s in self._stacks.values() if trigger.view_id in s), None)
        if stack is not None:
            depth = len(stack)
        else:
            depth = sum(1 for v in self.views.values() if root and v["root_view_id"] == root)
        if depth >= VIEW_STACK_MAX:
            raise Refusal("push_limit_reached")
        view_id = _view_id()
        stored = self._store_view(
            view, view_id=view_id, root_view_id=root or view_id, previous=trigger.view_id
        )
        if stack is not None:
            stack.append(view_id)
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
        view = _view_arg(args, kind="modal")
        stored = self._store_view(
            view,
            view_id=current["id"],
            root_view_id=current["root_view_id"],
            previous=current["previous_view_id"],
        )
        return {"ok": True, "view": stored}

    def _publish_view(self, args: dict[str, Any]) -> Answer:
        user_id = str(args.get("user_id") or "")
        if user_id not in self.users:
            raise Refusal("invalid_arguments", messages=["invalid `user_id`"])
        view = _view_arg(args, kind="home")
        if not self.home_tab_enabled:
            raise Refusal("not_enabled")
        current = self.homes.get(user_id)
        # Without a hash the publish wins over whatever is there; with one, it must name
        # the view published last.
        if args.get("hash") and (current is None or args["hash"] != current["hash"]):
            raise Refusal("hash_conflict")
        view_id = _view_id()
        home = self._view_record(view, view_id=view_id, root_view_id=view_id, previous=None)
        self.homes[user_id] = home
        self._bump()
        return {"ok": True, "view": home}

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


def _event_ts(payload: dict[str, Any]) -> str | None:
    """The ts of the message an event_callback is about: an edit's or a re-delivery's inner
    message, else the event's own."""
    event = payload.get("event")
    if not isinstance(event, dict):
        return None
    inner = event.get("message")
    ts = inner.get("ts") if isinstance(inner, dict) else event.get("ts")
    return ts if isinstance(ts, str) else None


def _check_message(args: dict[str, Any]) -> None:
    if problems := check_message(args):
        raise Refusal("invalid_blocks", errors=problems)


def _view_arg(args: dict[str, Any], *, kind: Literal["modal", "home"]) -> dict[str, Any]:
    """The `view` argument, checked; views.open, push and update take a modal, views.publish
    a Home view."""
    view = args.get("view")
    if not isinstance(view, dict):
        raise Refusal("invalid_arguments", messages=["[ERROR] missing view"])
    if view.get("type") != kind:
        raise Refusal("invalid_arguments", messages=[f"[ERROR] view.type: must be {kind!r}"])
    if problems := check_view(view):
        raise Refusal("invalid_arguments", messages=[f"[ERROR] {p}" for p in problems])
    return view


def _fault(fault: Fault) -> tuple[int, Answer, dict[str, str]]:
    headers = {} if fault.retry_after is None else {"Retry-After": str(int(fault.retry_after))}
    return fault.status, Refusal(fault.error).answer, headers


def _utc_offset(tz: str) -> int:
    offset = datetime.now(ZoneInfo(tz)).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def public_view(view: dict[str, Any]) -> dict[str, Any]:
    """`view` as Slack sends it to the app: without what the stand-in keeps for the page
    (`_errors`)."""
    return {name: value for name, value in view.items() if not name.startswith("_")}


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
