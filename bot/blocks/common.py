"""Small pieces every builder uses: escaping, mentions, dates in the viewer's time zone,
messages, blocks rendered once."""

from __future__ import annotations

import copy
import functools
import pickle
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock

from storage.fields import is_user_id


def escape(text: str) -> str:
    """mrkdwn-safe user text: `&`, `<`, `>` and nothing else, as Slack asks. The only way user
    text goes into mrkdwn, so that a token name can never become `<!channel>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> MarkdownTextObject:
    """A mrkdwn text Slack shows as written: `verbatim`, so that a bare URL or channel name in
    user text is not turned into a link."""
    return MarkdownTextObject(text=text, verbatim=True)


_EPOCH = date(1970, 1, 1)
# "HH:MM" for each minute of a day.
_TIMES_OF_DAY = tuple(f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(24 * 60))


@functools.lru_cache(maxsize=4096)
def _utc_day(days: int) -> str:
    """The date `days` days after 1970-01-01, as YYYY-MM-DD."""
    return (_EPOCH + timedelta(days=days)).isoformat()


def slack_date(moment: datetime, *, with_time: bool = True, ago: bool = False) -> str:
    """A date Slack renders in each viewer's own time zone (or as "3 minutes ago", `ago`);
    the fallback is UTC."""
    tokens = "{date_short_pretty} {time}" if with_time else "{date_short_pretty}"
    if ago:
        tokens = "{ago}"
    seconds = int(moment.timestamp())
    # The fallback is worked out from the seconds (the day's date cached, the time of day
    # from a table) rather than by strftime, at a fifth of the cost: a scheduler pass
    # writes a thousand dates.
    days, second_of_day = divmod(seconds, 86_400)
    if with_time:
        fallback = f"{_utc_day(days)} {_TIMES_OF_DAY[second_of_day // 60]} UTC"
    else:
        fallback = _utc_day(days)
    return f"<!date^{seconds}^{tokens}|{fallback}>"


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


def render_once(part: JsonObject) -> bytes:
    """`part` (a block or an element) as slack_sdk checks it and turns it into its dict,
    kept for `Rendered` and `WithAccessory` to give fresh copies of, at a twentieth of the
    cost of slack_sdk doing it again. For parts shown over and over (a card on every list
    and Home that shows its token), made by a cached function of exactly what they show.

    Pickled: a copy comes back fastest this way, and bytes cost the collector nothing."""
    return pickle.dumps(part.to_dict(), pickle.HIGHEST_PROTOCOL)


class Rendered(Block):
    """`block`, rendered once (`render_once`)."""

    def __init__(self, block: Block) -> None:
        super().__init__(type=block.type, block_id=block.block_id)
        self._rendered = render_once(block)

    def under(self, block_id: str) -> Rendered:
        """The same block under another `block_id` (a list's filters, renamed at each
        render), which slack_sdk checks as it checks any block's."""
        moved = copy.copy(self)
        moved.block_id = block_id
        moved.validate_json()
        return moved

    def to_dict(self, *args: Any) -> dict[str, Any]:
        rendered = cast(dict[str, Any], pickle.loads(self._rendered))
        if self.block_id is not None:
            rendered["block_id"] = self.block_id
        return rendered


class WithAccessory(Block):
    """`section`, checked by slack_sdk as usual, with an accessory rendered once
    (`render_once`): a section's checks never look at its accessory, so a card's text can
    change at every render while its menu is checked once."""

    def __init__(self, section: SectionBlock, accessory: bytes) -> None:
        super().__init__(type=section.type, block_id=section.block_id)
        self._section = section
        self._accessory = accessory

    def to_dict(self, *args: Any) -> dict[str, Any]:
        rendered = self._section.to_dict()
        rendered["accessory"] = pickle.loads(self._accessory)
        return rendered
