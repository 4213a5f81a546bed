"""Small pieces every builder uses: dates in the viewer's time zone, messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block

from bot.text import escape
from storage.fields import is_user_id


def slack_date(moment: datetime, *, with_time: bool = True, ago: bool = False) -> str:
    """A date Slack renders in each viewer's own time zone (or as "3 minutes ago", `ago`);
    the fallback is UTC."""
    tokens = "{date_short_pretty} {time}" if with_time else "{date_short_pretty}"
    if ago:
        tokens = "{ago}"
    fallback = f"{moment:%Y-%m-%d %H:%M} UTC" if with_time else f"{moment:%Y-%m-%d}"
    return f"<!date^{int(moment.timestamp())}^{tokens}|{fallback}>"


def mention(user_id: str) -> str:
    """A user mention; anything that is not a Slack user ID is shown as escaped text."""
    return f"<@{user_id}>" if is_user_id(user_id) else escape(user_id)


@dataclass(frozen=True, slots=True)
class Message:
    """A message's fallback text (notifications, screen readers) and its blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": [block.to_dict() for block in self.blocks]}
