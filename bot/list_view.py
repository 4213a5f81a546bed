"""ListView: what one token list shows — its filters and its page — and the bounds and
block ids that carry it through Slack.

An action on an ephemeral message brings no copy of the message, only `state.values`, keyed
by block id: so the list's two stateful blocks carry the page offset in their block ids
(`filters.<offset>.<nonce>`), read back by `bot.inputs.view_from_state`. A fresh nonce on
each render makes Slack show exactly the values rendered, which is how Clear All really
clears the search box.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.ids import BlockId
from storage.models import TokenFilter

PAGE_SIZE = 10
ANY = "any"
NAME_FILTER_MAX = 100


@dataclass(frozen=True, slots=True)
class ListView:
    filters: TokenFilter = TokenFilter()
    offset: int = 0

    def at(self, offset: int) -> ListView:
        return replace(self, offset=max(0, offset))


def stateful_block_id(prefix: BlockId, view: ListView, nonce: str) -> str:
    return f"{prefix}.{view.offset}.{nonce}"
