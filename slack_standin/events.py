"""What Slack sends to the app through the Events API, and what became of each sending.

The shapes follow Slack's reference (docs/slack.md, "Events API"): an `event_callback`
around each event, `message` events for posts, edits (`message_changed`) and a thread's
parent re-delivered when someone replies in it (`message_replied`), and `app_home_opened`
when someone opens the app's Home or Messages tab.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

# "acked": acknowledged over Socket Mode; "timeout": no ack in time; "not_sent": Slack sends
# nothing (the app is not in the channel); an int is the app's HTTP status.
Status = int | Literal["acked", "timeout", "not_sent"]
# Fields a thread's parent carries once it has replies.
THREAD_FIELDS = ("thread_ts", "reply_count", "reply_users_count", "latest_reply", "reply_users")


@dataclass(frozen=True)
class Delivery:
    """One sending of a payload to the app, over HTTP or Socket Mode."""

    event_id: str  # the event_callback's (kept by retries); "" for other payloads
    ts: str | None  # the posted or edited message's ts, when there is one
    status: Status
    ack_seconds: float | None  # from sending to the ack (None: no ack)
    payload: dict[str, Any]  # what was sent: the event_callback, command or interaction
    ack: Any = None  # the app's answer: its HTTP body or the ack's payload
    mode: Literal["http", "socket", "none"] = "none"
    kind: str = "events_api"  # the envelope type: events_api, slash_commands, interactive
    envelope_id: str | None = None
    retry_num: int = 0
    retry_reason: str = ""

    @property
    def acked(self) -> bool:
        return self.status in (200, "acked")


def event_id() -> str:
    return f"Ev{uuid.uuid4().hex[:10].upper()}"


def event_callback(
    event: dict[str, Any], *, team_id: str, api_app_id: str, bot_user_id: str, time: int
) -> dict[str, Any]:
    return {
        "token": "verification-token-unused",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id(),
        "event_time": time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def rich_text(text: str) -> list[dict[str, Any]]:
    """The blocks a Slack client attaches to what a person typed."""
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return [{"type": "rich_text", "block_id": uuid.uuid4().hex[:5], "elements": [section]}]


def in_channel(message: dict[str, Any], *, channel: str, channel_type: str) -> dict[str, Any]:
    """`message` as the `message` event of its posting."""
    return {**message, "channel": channel, "channel_type": channel_type, "event_ts": message["ts"]}


def changed(
    new: dict[str, Any], old: dict[str, Any], *, channel: str, channel_type: str, ts: str
) -> dict[str, Any]:
    """The `message_changed` event of an edit made at `ts`."""
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "message": new,
        "previous_message": old,
        "channel": channel,
        "channel_type": channel_type,
        "ts": ts,
        "event_ts": ts,
    }


def replied(
    parent: dict[str, Any], *, channel: str, channel_type: str, ts: str, subtype: str | None
) -> dict[str, Any]:
    """The parent re-delivered after a reply in its thread, at `ts`."""
    event: dict[str, Any] = {
        "type": "message",
        "hidden": True,
        "message": parent,
        "channel": channel,
        "channel_type": channel_type,
        "ts": ts,
        "event_ts": ts,
    }
    if subtype is not None:
        event["subtype"] = subtype
    return event


def app_home_opened(
    user: str, *, channel: str, tab: str, ts: str, view: dict[str, Any] | None
) -> dict[str, Any]:
    """`user` opened the app's Home (`tab` "home") or Messages tab; `view` is the Home view
    published to them, sent only with the Home tab."""
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user,
        "channel": channel,
        "tab": tab,
        "event_ts": ts,
    }
    if tab == "home" and view is not None:
        event["view"] = view
    return event


def envelope(
    kind: str,
    payload: dict[str, Any],
    *,
    accepts_response_payload: bool,
    retry_num: int = 0,
    retry_reason: str = "",
) -> dict[str, Any]:
    """A Socket Mode envelope; events carry their retry count, as Slack sends them."""
    sent: dict[str, Any] = {
        "envelope_id": str(uuid.uuid4()),
        "type": kind,
        "payload": payload,
        "accepts_response_payload": accepts_response_payload,
    }
    if kind == "events_api":
        sent |= {"retry_attempt": retry_num, "retry_reason": retry_reason}
    return sent
