"""Block Kit as Slack's JSON, written directly: for the messages the app posts in numbers
(a scheduler pass may post a thousand tokens at once), where slack_sdk's models, validating
each block at about a tenth of a millisecond, would hold the event loop. Their bounds are
kept by construction in the builders that use these, and the tests check every message as
Slack would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Block = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A message's fallback text and its blocks, as Slack's JSON."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def mrkdwn(text: str) -> Block:
    """Shown as written (`verbatim`): user text in it is escaped, never turned into links."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def section(text: str, block_id: str | None = None) -> Block:
    if block_id is None:
        return {"type": "section", "text": mrkdwn(text)}
    return {"type": "section", "block_id": block_id, "text": mrkdwn(text)}


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text)]}


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    label = {"type": "plain_text", "text": text, "emoji": True}
    made = {"type": "button", "text": label, "action_id": action_id, "value": value}
    return made | ({"style": style} if style else {})
