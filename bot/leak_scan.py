"""The leak guard's scan of a channel message: which Token Desk secrets it holds, if any.

Token Desk reads the messages of the public and private channels it has been invited to,
nothing else (no DMs, no files). A message's text, its blocks' and attachments' text, and an
edit's new text are scanned in memory, never stored, logged or put in an exception: every
`tdk_` run with a valid checksum is a candidate, however many there are (a forged checksum
cannot hide a real secret), and only a candidate goes on to a look-up. Token Desk's own
messages are ignored. A message without a candidate is answered None here, before any
database work.

The event is untrusted: any JSON shape gives an answer, never an exception, and the walk of
blocks and attachments is bounded (depth and number of values), so that hostile nesting
cannot slow the ack. The message's own text is always scanned to its end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.credentials import PREFIX, SECRET_LENGTH, is_valid_secret
from storage.fields import is_user_id

# The walk of a message's blocks and attachments stops this deep, and after this many
# values. Block Kit nests a rich text's leaves about ten levels down inside an attachment,
# and a 50-block message of heavily formatted rich text has a few thousand values; past
# that it is a crafted payload. A user's message carries its whole text in `text` as well,
# which is scanned to its end whatever these bounds cut.
WALK_DEPTH_MAX = 24
WALK_VALUES_MAX = 20_000

# A message's identity is stored with each report and used in Web API calls: only the
# shapes Slack sends. A `D` channel is a DM, which Token Desk never reads.
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,24}")
_MESSAGE_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}")

# Tuples, not sets: an untrusted value may be unhashable, and `in` a tuple compares only.
_READ_CHANNEL_TYPES = ("channel", "group")


@dataclass(frozen=True, slots=True)
class ScannedMessage:
    """A channel message holding at least one candidate secret."""

    channel: str
    # The message's identity within the channel: the inner message's ts for an edit or a
    # re-delivered parent, else the event's own.
    message_ts: str
    # Where the guard replies: the message's thread, else the message itself.
    thread_ts: str
    poster: str | None
    # Distinct valid-checksum secrets, never logged, not even in a repr: in order of
    # appearance in the text, then in blocks and attachments level by level (_walk).
    candidates: tuple[str, ...] = field(repr=False)


def candidates(text: str) -> list[str]:
    """Every `tdk_` followed by 38 base62 characters with a valid checksum, wherever it sits
    (in a word, a code span, a link, a URL), in order and with repeats. What follows the 38
    characters does not matter: a secret run into other text is still leaked."""
    found: list[str] = []
    # A plain substring search, then a fixed-length check at each hit: linear in the text,
    # with no pattern that could backtrack. `tdk_` cannot overlap itself, and a secret holds
    # no `_`, so the next hit is searched for right after this one's prefix.
    start = text.find(PREFIX)
    while start >= 0:
        chunk = text[start : start + SECRET_LENGTH]
        if is_valid_secret(chunk):
            found.append(chunk)
        start = text.find(PREFIX, start + len(PREFIX))
    return found


def scan_event(
    event: Mapping[str, Any], *, own_bot_id: str | None, own_user_id: str | None
) -> ScannedMessage | None:
    """The message a `message` event brings and its candidate secrets, or None when there
    is nothing to look up: another event, a deletion, a DM, Token Desk's own message, a
    message without a candidate, or one whose channel or ts is not Slack's."""
    if not isinstance(event, Mapping) or event.get("type") != "message":
        return None
    # A deletion carries the deleted message, which is no news.
    if event.get("subtype") == "message_deleted":
        return None
    if "channel_type" in event and event.get("channel_type") not in _READ_CHANNEL_TYPES:
        return None
    # An edit (`message_changed`) brings the message as it now is, and a re-delivered
    # parent (`message_replied`, or none) the parent: either is the message scanned.
    inner = event.get("message")
    if isinstance(inner, Mapping):
        message: Mapping[str, Any] = inner
    elif event.get("subtype") == "message_changed":
        return None
    else:
        message = event
    if _is_own(event, own_bot_id, own_user_id) or _is_own(message, own_bot_id, own_user_id):
        return None
    found = _message_candidates(message)
    if not found:
        return None
    channel = _shaped(_CHANNEL_ID, event.get("channel"))
    message_ts = _shaped(_MESSAGE_TS, message.get("ts"))
    if channel is None or message_ts is None:
        return None
    poster = message.get("user")
    return ScannedMessage(
        channel=channel,
        message_ts=message_ts,
        thread_ts=_shaped(_MESSAGE_TS, message.get("thread_ts")) or message_ts,
        poster=poster if isinstance(poster, str) and is_user_id(poster) else None,
        candidates=tuple(dict.fromkeys(found)),
    )


def _is_own(message: Mapping[str, Any], own_bot_id: str | None, own_user_id: str | None) -> bool:
    bot_id, user = message.get("bot_id"), message.get("user")
    return (own_bot_id is not None and bot_id == own_bot_id) or (
        own_user_id is not None and user == own_user_id
    )


def _shaped(shape: re.Pattern[str], value: object) -> str | None:
    """`value` if it is a string of that shape, else None."""
    return value if isinstance(value, str) and shape.fullmatch(value) else None


def _message_candidates(message: Mapping[str, Any]) -> list[str]:
    """The candidates of the message's text (to its end), then of its blocks and its
    attachments, in one walk bounded for both."""
    found: list[str] = []
    text = message.get("text")
    if isinstance(text, str) and PREFIX in text:
        found.extend(candidates(text))
    _walk(message.get("blocks"), message.get("attachments"), found)
    return found


def _walk(blocks: object, attachments: object, found: list[str]) -> None:
    """Scan every string value under `blocks` and `attachments`, whatever its key: Block Kit
    has many element types and keeps adding some, and a secret in any of them (a section's
    field, a rich text leaf, a link's url, a button's value, an attachment's pretext or
    footer) is in the channel's history all the same, while the `tdk_` test costs little
    next to the walk itself. Keys are not scanned: Slack shows none of them.

    Breadth first, one level at a time, each level in document order: a level's containers
    are opened by `list.extend`, which costs about half of what a depth-first walk does per
    value on the path every message takes, the one without a candidate. No recursion;
    decoded JSON holds only dicts and lists, anything else is a leaf. A level is cut to what
    is left of the budget (the payload's own size, already decoded, bounds the copy)."""
    level: list[object] = [blocks, attachments]
    budget = WALK_VALUES_MAX - len(level)
    for _ in range(WALK_DEPTH_MAX):
        deeper: list[object] = []
        for value in level:
            if isinstance(value, str):
                if PREFIX in value:
                    found.extend(candidates(value))
            elif isinstance(value, dict):
                deeper.extend(value.values())
            elif isinstance(value, list):
                deeper.extend(value)
        level = deeper[:budget]
        budget -= len(level)
        if not level:
            return
