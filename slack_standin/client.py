"""Plays Slack's side of HTTP mode (signed requests to the app's request URL) or of Socket
Mode (the same payloads in envelopes over the connection the app opened on the stand-in).

Payloads follow what Slack sends (docs/slack.md, "What Slack sends"); response_urls and trigger
ids are minted on the stand-in so the app's follow-up calls meet Slack's rules there.
Build actions from what the app rendered with `action_for` and modal input with `fill`, so a
test clicks only what the user could click; `click` and `submit_view` do both for what a
person sees on the stand-in (a message, an ephemeral message, their top modal, their Home).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date as calendar_date
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp

from slack_standin.server import SlackStandIn, public_view
from slack_standin.signing import Signing as Signing
from slack_standin.signing import signed_headers as signed_headers


@dataclass(frozen=True)
class Reply:
    """The app's HTTP answer, and what was sent to get it (`sent["response_url"]`, ...)."""

    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON when the app answered JSON, else text ("" for a bare ack)
    sent: dict[str, Any]
    # What Slack refused of the app's answer to `submit_view` (the modals then stay as
    # they were): a bad view, a push past the limit, no ack.
    problems: tuple[str, ...] = ()


Where = tuple[Literal["channel", "ephemeral", "dm", "modal", "home"], str | None]


# -- actions as Slack sends them -------------------------------------------------------


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _option(value: str, text: str | None = None) -> dict[str, Any]:
    return {"text": _plain(text or value), "value": value}


def button(
    action_id: str, value: str | None = None, *, block_id: str, text: str = "Button"
) -> dict[str, Any]:
    action = {"type": "button", "action_id": action_id, "block_id": block_id, "text": _plain(text)}
    return action if value is None else {**action, "value": value}


def overflow(
    action_id: str, value: str, *, block_id: str, text: str | None = None
) -> dict[str, Any]:
    return {
        "type": "overflow",
        "action_id": action_id,
        "block_id": block_id,
        "selected_option": _option(value, text),
    }


def static_select(
    action_id: str, value: str, *, block_id: str, text: str | None = None
) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": action_id,
        "block_id": block_id,
        "selected_option": _option(value, text),
    }


def plain_text_input(action_id: str, value: str, *, block_id: str) -> dict[str, Any]:
    """What a `dispatch_action` input sends when the user presses Enter."""
    return {
        "type": "plain_text_input",
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
    }


def _elements(blocks: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(block_id, element) for every element a user can act on.

    Slack names blocks the app left unnamed; `auto<index>` stands in for its random ids.
    """
    for index, block in enumerate(blocks):
        block_id = block.get("block_id", f"auto{index}")
        candidates = [block.get("accessory"), block.get("element"), *block.get("elements", [])]
        for element in candidates:
            if isinstance(element, dict) and "action_id" in element:
                yield block_id, element


def _options(element: dict[str, Any]) -> list[dict[str, Any]]:
    groups = element.get("option_groups", [])
    return [*element.get("options", []), *(o for g in groups for o in g["options"])]


def _pick(element: dict[str, Any], value: str) -> dict[str, Any]:
    for option in _options(element):
        if option["value"] == value:
            return {"text": option["text"], "value": option["value"]}
    raise LookupError(f"{element['action_id']!r} has no option {value!r}")


def _action(
    element: dict[str, Any], block_id: str, chosen: str | Sequence[str] | None
) -> dict[str, Any]:
    """The action Slack sends for `element`, with its own shape: `chosen` is the button's
    value (LookupError if it is another's), the option(s) picked, the user, the date or the
    text typed."""
    kind, action_id = element["type"], element["action_id"]
    action = {"type": kind, "action_id": action_id, "block_id": block_id}
    if kind == "button":
        if chosen is not None and element.get("value") != chosen:
            raise LookupError(f"{action_id!r} is not the button with value {chosen!r}")
        action["text"] = element["text"]
        if "value" in element:
            action["value"] = element["value"]
        return action
    if kind in {"plain_text_input", "users_select"} and chosen is None:
        action["value" if kind == "plain_text_input" else "selected_user"] = None
        return action
    if chosen is None:
        raise ValueError(f"say what the user chose in {action_id!r}")
    if kind in {"overflow", "static_select", "radio_buttons"}:
        if not isinstance(chosen, str):
            raise ValueError(f"{action_id!r} takes one option")
        action["selected_option"] = _pick(element, chosen)
    elif kind in {"multi_static_select", "checkboxes"}:
        picked = [chosen] if isinstance(chosen, str) else list(chosen)
        action["selected_options"] = [_pick(element, value) for value in picked]
    elif kind in {"plain_text_input", "users_select", "datepicker"}:
        if not isinstance(chosen, str):
            raise ValueError(f"{action_id!r} takes one value")
        if kind == "datepicker":
            calendar_date.fromisoformat(chosen)  # Slack's picker sends only YYYY-MM-DD
        field = {"plain_text_input": "value", "users_select": "selected_user"}
        action[field.get(kind, "selected_date")] = chosen
    else:
        raise NotImplementedError(f"no action built for {kind!r} yet")
    return action


def action_for(
    view_or_blocks: list[dict[str, Any]] | dict[str, Any],
    action_id: str,
    value: str | None = None,
    *,
    block_id: str | None = None,
) -> dict[str, Any]:
    """The action Slack sends when the user uses the rendered element `action_id` of a
    message's blocks or of a view (a modal, a published Home).

    `value` picks the option (overflow, select), the text typed (input), the date, or which
    of several buttons sharing the action_id (one per card) was clicked; `block_id` narrows
    further.
    """
    blocks = view_or_blocks["blocks"] if isinstance(view_or_blocks, dict) else view_or_blocks
    for found_block_id, element in _elements(blocks):
        if element["action_id"] != action_id or block_id not in (None, found_block_id):
            continue
        try:
            return _action(element, found_block_id, value)
        except LookupError:
            if element["type"] in {"button", "overflow"}:  # one per card: try the next card
                continue
            raise
    raise LookupError(f"no element {action_id!r} (value={value!r}, block_id={block_id!r})")


# -- state.values ----------------------------------------------------------------------

_STATEFUL = {
    "plain_text_input": ("value", "initial_value"),
    "email_text_input": ("value", "initial_value"),
    "url_text_input": ("value", "initial_value"),
    "number_input": ("value", "initial_value"),
    "static_select": ("selected_option", "initial_option"),
    "radio_buttons": ("selected_option", "initial_option"),
    "multi_static_select": ("selected_options", "initial_options"),
    "checkboxes": ("selected_options", "initial_options"),
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "channels_select": ("selected_channel", "initial_channel"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
}


def fill(
    view_or_blocks: dict[str, Any] | list[dict[str, Any]], values: Mapping[str, Any]
) -> dict[str, dict[str, dict[str, Any]]]:
    """The `state.values` Slack sends for these blocks after the user typed/chose `values`.

    Keys of `values` are block_ids or action_ids; an option is named by its value (a list of
    values for multi-selects and checkboxes). Untouched elements keep their initial value.
    """
    blocks = view_or_blocks["blocks"] if isinstance(view_or_blocks, dict) else view_or_blocks
    state: dict[str, dict[str, dict[str, Any]]] = {}
    unused = set(values)
    for block_id, element in _elements(blocks):
        kind = element["type"]
        if kind not in _STATEFUL:
            continue
        field, initial = _STATEFUL[kind]
        chosen: Any = element.get(initial)
        for key in (element["action_id"], block_id):
            if key in values:
                unused.discard(key)
                chosen = values[key]
                if field == "selected_option":
                    chosen = _pick(element, chosen)
                elif field == "selected_options":
                    chosen = [_pick(element, v) for v in chosen]
        state.setdefault(block_id, {})[element["action_id"]] = {"type": kind, field: chosen}
    if unused:
        raise KeyError(f"no stateful element for {sorted(unused)}")
    return state


def checked_state(
    view_or_blocks: dict[str, Any] | list[dict[str, Any]],
    values: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """The `state.values` Slack sends for these blocks when the user left them as `values`
    says (`{block_id: {action_id: {field: ...}}}`, as Slack shapes it; an option may be
    named by its value alone). Untouched elements keep their initial value; an element the
    blocks do not hold, or an option they do not offer, raises LookupError."""
    blocks = view_or_blocks["blocks"] if isinstance(view_or_blocks, dict) else view_or_blocks
    state = fill(blocks, {})
    elements = {(block_id, e["action_id"]): e for block_id, e in _elements(blocks)}
    for block_id, actions in values.items():
        for action_id, given in actions.items():
            element = elements.get((block_id, action_id))
            if element is None or element["type"] not in _STATEFUL:
                raise LookupError(f"no stateful element {block_id!r}/{action_id!r}")
            state[block_id][action_id] = _state_entry(element, given)
    return state


def _state_entry(element: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    kind = element["type"]
    field, _ = _STATEFUL[kind]
    chosen = given.get(field)
    if field == "selected_option" and chosen is not None:
        chosen = _pick(element, _option_value(chosen))
    elif field == "selected_options":
        chosen = [_pick(element, _option_value(option)) for option in chosen or []]
    return {"type": kind, field: chosen}


def _option_value(option: Any) -> str:
    return str(option["value"] if isinstance(option, Mapping) else option)


def ephemeral_container(channel_id: str, message_ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": True,
    }


def message_container(channel_id: str, message_ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": False,
    }


def view_container(view_id: str) -> dict[str, Any]:
    return {"type": "view", "view_id": view_id}


# -- the client ------------------------------------------------------------------------


class SlackClient:
    """Sends signed slash commands, block actions and view submissions to the app, or sends
    them in Socket Mode envelopes (`over_socket_mode`)."""

    def __init__(
        self,
        app_url: str,
        *,
        signing_secret: str,
        standin: SlackStandIn,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_url = app_url
        self.signing_secret = signing_secret
        self.standin = standin
        # Real time by default: the app verifies timestamps against its own clock, which
        # the stand-in's `advance` does not move.
        self.clock = clock
        self.socket_mode = False
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def over_socket_mode(
        cls, standin: SlackStandIn, *, clock: Callable[[], float] = time.time
    ) -> SlackClient:
        """A client whose requests go in envelopes over the app's Socket Mode connection; a
        reply's status is 200 once acked (0 if not within the stand-in's ack_timeout) and
        its body the ack's payload ("" for a bare ack). Nothing is signed."""
        client = cls("", signing_secret="", standin=standin, clock=clock)
        client.socket_mode = True
        return client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SlackClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _user(self, user_id: str) -> dict[str, Any]:
        name = self.standin.users.get(user_id, {}).get("name", user_id.lower())
        return {"id": user_id, "username": name, "name": name, "team_id": self.standin.team_id}

    def _team(self) -> dict[str, Any]:
        return {"id": self.standin.team_id, "domain": self.standin.team_domain}

    async def post(
        self, body: bytes, *, content_type: str, signing: Signing = "valid"
    ) -> tuple[int, Mapping[str, str], Any]:
        """Posts a raw body, signed as asked; for crafted requests."""
        if self.socket_mode:
            raise RuntimeError("a Socket Mode client sends envelopes, not HTTP requests")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            "Content-Type": content_type,
            **signed_headers(
                self.signing_secret, body, timestamp=int(self.clock()), signing=signing
            ),
        }
        async with self._session.post(self.app_url, data=body, headers=headers) as response:
            text = await response.text()
            parsed = json.loads(text) if response.content_type == "application/json" else text
            return response.status, response.headers, parsed

    async def _send_form(
        self, form: dict[str, str], signing: Signing, sent: dict[str, Any]
    ) -> Reply:
        if self.socket_mode:
            return await self._over_socket(form, sent, signing)
        body = urlencode(form).encode()
        status, headers, parsed = await self.post(
            body, content_type="application/x-www-form-urlencoded", signing=signing
        )
        return Reply(status, headers, parsed, sent)

    async def _over_socket(
        self, form: dict[str, str], sent: dict[str, Any], signing: Signing
    ) -> Reply:
        """`form` as Slack sends it in Socket Mode: an interaction's JSON payload, or a slash
        command's fields; only a modal's submission and a command accept an ack payload."""
        if signing != "valid":
            raise ValueError("Socket Mode envelopes are not signed")
        if "payload" in form:
            payload = json.loads(form["payload"])
            kind, accepts = "interactive", payload.get("type") == "view_submission"
        else:
            payload, kind, accepts = dict(form), "slash_commands", True
        delivery = await self.standin.send_envelope(kind, payload, accepts_response_payload=accepts)
        body = "" if delivery.ack is None else delivery.ack
        return Reply(200 if delivery.acked else 0, {}, body, sent)

    async def _send_payload(self, payload: dict[str, Any], signing: Signing) -> Reply:
        return await self._send_form({"payload": json.dumps(payload)}, signing, payload)

    async def slash_command(
        self,
        user_id: str,
        text: str = "",
        *,
        command: str = "/tokens",
        channel_id: str = "C0TEST",
        channel_name: str = "token-desk",
        response_url: str | None = None,
        trigger_id: str | None = None,
        signing: Signing = "valid",
    ) -> Reply:
        """`text` goes as given: escape it the way Slack does (`&amp;`, `<@U…|name>`)."""
        form = {
            "token": "verification-token-unused",
            "team_id": self.standin.team_id,
            "team_domain": self.standin.team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": self._user(user_id)["name"],
            "command": command,
            "text": text,
            "api_app_id": self.standin.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url
            or self.standin.response_url(user_id=user_id, channel=channel_id),
            "trigger_id": trigger_id or self.standin.trigger_id(user_id=user_id),
        }
        return await self._send_form(form, signing, dict(form))

    async def block_action(
        self,
        user_id: str,
        action: dict[str, Any],
        *,
        container: dict[str, Any],
        state: dict[str, Any] | None = None,
        view: dict[str, Any] | None = None,
        message: dict[str, Any] | None = None,
        response_url: str | None = None,
        signing: Signing = "valid",
    ) -> Reply:
        """A `block_actions` payload for one action.

        `state` is the `state.values` (see `fill`). In a message container the stand-in's
        copy of a non-ephemeral message is used unless `message` is given; an ephemeral one
        has no `message` key, as with Slack. In a view container (`view_container(id)`, a
        modal's or a published Home's id) the stand-in's view is used unless `view` is
        given, and `state` goes into it; there is no `response_url`, as with Slack.
        """
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user_id),
            "api_app_id": self.standin.app_id,
            "token": "verification-token-unused",
            "container": container,
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "actions": [{**action, "action_ts": action.get("action_ts", f"{self.clock():.6f}")}],
        }
        if container["type"] == "view":
            view = public_view(view or self.standin.find_view(container["view_id"]))
            payload["view"] = {**view, "state": {"values": state or {}}}
            payload["trigger_id"] = self.standin.trigger_id(view_id=view["id"], user_id=user_id)
        else:
            channel_id = container["channel_id"]
            payload["trigger_id"] = self.standin.trigger_id(user_id=user_id)
            payload["channel"] = {"id": channel_id, "name": self._channel_name(channel_id)}
            payload["response_url"] = response_url or self.standin.response_url(
                user_id=user_id,
                channel=channel_id,
                message_ts=container["message_ts"],
                ephemeral=bool(container.get("is_ephemeral")),
            )
            if not container.get("is_ephemeral"):
                key = (channel_id, container["message_ts"])
                payload["message"] = message or self.standin.messages[key]
            payload["state"] = {"values": state or {}}
        return await self._send_payload(payload, signing)

    async def view_submission(
        self,
        user_id: str,
        view: dict[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        state: dict[str, Any] | None = None,
        signing: Signing = "valid",
    ) -> Reply:
        """Submits `view` (best: `standin.latest_view()`) with the user's `values` (see
        `fill`), or with a raw `state.values` for crafted payloads."""
        values_state = state if state is not None else fill(view, values or {})
        view = public_view(view)
        submitted = {
            "id": view.get("id", "V0UNKNOWN"),
            "team_id": self.standin.team_id,
            "type": "modal",
            "private_metadata": "",
            "callback_id": "",
            "hash": view.get("hash", "0.unknown"),
            **view,
            "state": {"values": values_state},
        }
        payload: dict[str, Any] = {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user(user_id),
            "api_app_id": self.standin.app_id,
            "token": "verification-token-unused",
            "trigger_id": self.standin.trigger_id(view_id=submitted["id"], user_id=user_id),
            "view": submitted,
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }
        return await self._send_payload(payload, signing)

    async def submit_view(
        self,
        user_id: str,
        view_id: str,
        values: Mapping[str, Any] | None = None,
        *,
        state: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        signing: Signing = "valid",
    ) -> Reply:
        """`user_id` submits their top modal `view_id` with `values` (see `fill`) or with the
        `state.values` they left (see `checked_state`), and the app's answer is applied to
        their modals as Slack applies it; `problems` says what Slack refused of it."""
        view = self.standin.start_submission(user_id, view_id)
        checked = None if state is None else checked_state(view, state)
        reply = await self.view_submission(user_id, view, values, state=checked, signing=signing)
        if reply.status != 200:
            return dataclasses.replace(reply, problems=(f"not acked: HTTP {reply.status}",))
        problems = self.standin.apply_view_answer(user_id, view_id, reply.body)
        return dataclasses.replace(reply, problems=tuple(problems))

    async def click(
        self,
        user_id: str,
        where: Where,
        block_id: str,
        action_id: str,
        *,
        value: str | None = None,
        selected: str | Sequence[str] | None = None,
        date: str | None = None,
        values: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        signing: Signing = "valid",
    ) -> Reply:
        """`user_id` uses the element `block_id`/`action_id` of what they see at `where`:
        ("channel" | "ephemeral" | "dm", ts), ("modal", view_id) (their top modal) or
        ("home", None). An unnamed block is `auto<index>`.

        `value` is a button's value or the text typed (Enter in a dispatching input),
        `selected` the option value(s) or user picked, `date` a datepicker's YYYY-MM-DD;
        `values` the state of the surface's other inputs (see `checked_state`). What the user
        could not do (no such element, option or surface) raises LookupError.
        """
        kind, key = where
        surface = self.standin.surface(user_id, kind, key)
        element = next(
            (
                e
                for found, e in _elements(surface.blocks)
                if (found, e["action_id"]) == (block_id, action_id)
            ),
            None,
        )
        if element is None:
            raise LookupError(f"{user_id!r} sees no element {block_id!r}/{action_id!r} there")
        chosen = next((c for c in (selected, date, value) if c is not None), None)
        action = _action(element, block_id, chosen)
        state = checked_state(surface.blocks, values or {})
        if element["type"] in _STATEFUL:  # what the user just chose is in the state too
            field, _ = _STATEFUL[element["type"]]
            state[block_id][action_id] = {"type": element["type"], field: action[field]}
        if surface.view_id is not None:
            return await self.block_action(
                user_id,
                action,
                container=view_container(surface.view_id),
                state=state,
                signing=signing,
            )
        assert surface.channel is not None and surface.ts is not None  # a message's surface
        container = (ephemeral_container if kind == "ephemeral" else message_container)(
            surface.channel, surface.ts
        )
        return await self.block_action(
            user_id, action, container=container, state=state, signing=signing
        )

    def _channel_name(self, channel_id: str) -> str:
        if channel_id.startswith("D"):
            return "directmessage"
        known = self.standin.channels.get(channel_id)
        return "token-desk" if known is None else known.name

    async def event(self, event: dict[str, Any], *, signing: Signing = "valid") -> Reply:
        """An Events API `event_callback` (e.g. `subteam_members_changed`)."""
        envelope = {
            "token": "verification-token-unused",
            "team_id": self.standin.team_id,
            "api_app_id": self.standin.app_id,
            "event": {"event_ts": f"{self.clock():.6f}", **event},
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(self.clock()),
        }
        if self.socket_mode:
            delivery = await self.standin.send_envelope(
                "events_api", envelope, accepts_response_payload=False
            )
            body = "" if delivery.ack is None else delivery.ack
            return Reply(200 if delivery.acked else 0, {}, body, envelope)
        status, headers, parsed = await self.post(
            json.dumps(envelope).encode(), content_type="application/json", signing=signing
        )
        return Reply(status, headers, parsed, envelope)
