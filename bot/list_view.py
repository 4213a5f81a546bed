"""What a token list shows (its filters and page), and how it rides along in Slack payloads.

An action on an ephemeral message brings no copy of the message, only `state.values`, keyed
by block id, for the inputs and selects. So the list's two stateful blocks carry the page
offset in their block ids (`filters.<offset>.<nonce>`), and every action reads the filters
and the page back from `state.values`. A fresh nonce on each render makes Slack show exactly
the values rendered, which is how Clear All really clears the search box.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

from bot.ids import ActionId, BlockId, MenuChoice
from storage.models import CreatedOn, TokenFilter, TokenState

E = TypeVar("E", bound=StrEnum)
PAGE_SIZE = 10
ANY = "any"
NAME_FILTER_MAX = 100
NAME_INPUT_MAX = 10_000


@dataclass(frozen=True, slots=True)
class ListView:
    filters: TokenFilter = TokenFilter()
    offset: int = 0

    def at(self, offset: int) -> ListView:
        return replace(self, offset=max(0, offset))


def stateful_block_id(prefix: BlockId, view: ListView, nonce: str) -> str:
    return f"{prefix}.{view.offset}.{nonce}"


def _selected(entry: Mapping[str, Any]) -> str | None:
    option = entry.get("selected_option")
    value = option.get("value") if isinstance(option, Mapping) else None
    return value if isinstance(value, str) else None


def small_number(text: object, *, digits: int = 7) -> int | None:
    """A non-negative number of at most `digits` ASCII digits, or None: untrusted values
    never reach int() or SQLite otherwise."""
    if isinstance(text, str) and re.fullmatch(rf"[0-9]{{1,{digits}}}", text):
        return int(text)
    return None


def _offset_of(block_id: str) -> int:
    parts = block_id.split(".")
    offset = small_number(parts[1]) if len(parts) == 3 else None
    return offset or 0


def plain_text(value: object, limit: int) -> str:
    """Untrusted text cut to `limit`, or "" if it is not text SQLite can store (a lone
    surrogate, which JSON can carry)."""
    if not isinstance(value, str):
        return ""
    value = value[:limit]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return value


def view_from_state(values: Any) -> ListView:
    """The list's filters and page as rendered, read from untrusted `state.values`:
    anything unknown, missing or malformed counts as "no filter"."""
    if not isinstance(values, Mapping):
        return ListView()
    name, created_on, state, offset = "", None, None, 0
    for block_id, actions in values.items():
        if not isinstance(block_id, str) or not isinstance(actions, Mapping):
            continue
        if block_id.startswith(f"{BlockId.FILTERS}."):
            offset = _offset_of(block_id)
        for action_id, entry in actions.items():
            if not isinstance(entry, Mapping):
                continue
            if action_id == ActionId.FILTER_NAME:
                typed = entry.get("value")
                # Cut to the list's limit only after the secret check (bot.listing).
                name = plain_text(typed, NAME_INPUT_MAX)
            elif action_id == ActionId.FILTER_CREATED:
                created_on = _enum(CreatedOn, _selected(entry))
            elif action_id == ActionId.FILTER_STATE:
                state = _enum(TokenState, _selected(entry))
    filters = TokenFilter(name=name.strip(), created_on=created_on, state=state)
    return ListView(filters=filters, offset=offset)


def _enum(kind: type[E], value: str | None) -> E | None:
    try:
        return kind(value) if value is not None else None
    except ValueError:
        return None


def token_ref(value: object) -> tuple[int, int] | None:
    """`<token id>:<row version>` from a button value, or None if it is not that."""
    if not isinstance(value, str):
        return None
    token_id, _, row_version = value.partition(":")
    parsed = small_number(token_id, digits=15), small_number(row_version, digits=15)
    if parsed[0] is None or parsed[1] is None:
        return None
    return parsed[0], parsed[1]


def menu_choice(value: object) -> tuple[MenuChoice, int, int] | None:
    """`<choice>:<token id>:<row version>` from an overflow option, or None."""
    if not isinstance(value, str):
        return None
    choice, _, ref = value.partition(":")
    parsed = token_ref(ref)
    if parsed is None or choice not in MenuChoice.__members__.values():
        return None
    return MenuChoice(choice), *parsed
