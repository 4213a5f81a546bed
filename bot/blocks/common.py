"""Small pieces every builder uses: escaping, mentions, dates in the viewer's time zone,
messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block, MarkdownTextObject

from storage.fields import is_user_id


def escape(text: str) -> str:
    """mrkdwn-safe user text: `&`, `<`, `>` and nothing else, as Slack asks. The only way user
    text goes into mrkdwn, so that a token name can never become `<!channel>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> MarkdownTextObject:
    """A mrkdwn text Slack shows as written: `verbatim`, so that a bare URL or channel name in
    user text is not turned into a link."""
    return MarkdownTextObject(text=text, verbatim=True)


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


def group_mention(group_id: str) -> str:
    return f"<!subteam^{group_id}>"


@dataclass(frozen=True, slots=True)
class Message:
    """A message's fallback text (notifications, screen readers) and its blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": [block.to_dict() for block in self.blocks]}
