"""Values inside interaction payloads: button and menu values, the list's `state.values`,
the create/edit form's fields, and the ids Slack adds (response_url, trigger_id).

Numbers never reach int() or SQLite unchecked, and text SQLite cannot store (a lone
surrogate, which JSON can carry) is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from bot.ids import ActionId, BlockId, ExpiryChoice, FormField, GraceChoice, MenuChoice
from bot.inputs.command_text import AUDIT_NAME_MAX
from bot.list_view import ListView
from storage.credentials import has_secret_part
from storage.fields import is_user_id
from storage.models import CreatedOn, LastUsedFilter, StateFilter, TokenEdit, TokenFilter

E = TypeVar("E", bound=StrEnum)
# What a search box or form field may hold before the store's own rules look at it.
TEXT_INPUT_MAX = 10_000
FORM_OPTIONS_MAX = 200


# -- scalars ------------------------------------------------------------------------------


def small_number(text: object, *, digits: int = 7) -> int | None:
    """A non-negative number of at most `digits` ASCII digits, or None."""
    if isinstance(text, str) and re.fullmatch(rf"[0-9]{{1,{digits}}}", text):
        return int(text)
    return None


def plain_text(value: object, limit: int) -> str:
    """Untrusted text cut to `limit`, or "" if it is not text SQLite can store."""
    if not isinstance(value, str):
        return ""
    value = value[:limit]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return value


def enum_member(kind: type[E], value: object) -> E | None:
    try:
        return kind(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _mapping(value: object, key: str) -> Mapping[str, Any]:
    found = value.get(key) if isinstance(value, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def event_group_id(event: Mapping[str, Any]) -> str | None:
    """The user group of a `subteam_members_changed` event."""
    group_id = event.get("subteam_id")
    return group_id if isinstance(group_id, str) else None


def event_user(event: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """The user object of a `user_change` event, with its ID, if that is a user ID."""
    user = event.get("user")
    user_id = user.get("id") if isinstance(user, Mapping) else None
    if not isinstance(user, Mapping) or not isinstance(user_id, str) or not is_user_id(user_id):
        return None
    return user_id, user


def response_url_of(body: Mapping[str, Any]) -> str | None:
    url = body.get("response_url")
    return url if isinstance(url, str) else None


def trigger_id_of(body: Mapping[str, Any]) -> str:
    return str(body.get("trigger_id"))


@dataclass(frozen=True, slots=True)
class HomeClick:
    """A click on Home: its outcome is published there (a Home click has no response_url),
    passing the `hash` of the view it came from, when it had one."""

    view_hash: str | None


def home_click_of(body: Mapping[str, Any]) -> HomeClick | None:
    """The Home view a click came from; None for a click elsewhere."""
    view = _mapping(body, "view")
    if _mapping(body, "container").get("type") != "view" or view.get("type") != "home":
        return None
    view_hash = view.get("hash")
    usable = isinstance(view_hash, str) and 0 < len(view_hash) <= 100
    return HomeClick(view_hash=view_hash if usable else None)


def clicker_of(body: Mapping[str, Any]) -> str | None:
    """The id of the user who clicked or submitted, if it is a Slack user id."""
    user_id = _mapping(body, "user").get("id")
    return user_id if isinstance(user_id, str) and is_user_id(user_id) else None


# -- button and menu values ---------------------------------------------------------------


def token_ref(value: object) -> tuple[int, int] | None:
    """`<token id>:<row version>` from a button value, or None if it is not that."""
    if not isinstance(value, str):
        return None
    token_id, _, row_version = value.partition(":")
    parsed = small_number(token_id, digits=15), small_number(row_version, digits=15)
    if parsed[0] is None or parsed[1] is None:
        return None
    return parsed[0], parsed[1]


def menu_choice(action: Mapping[str, Any]) -> tuple[MenuChoice, int, int] | None:
    """`<choice>:<token id>:<row version>` from the card menu's chosen option, or None."""
    value = _mapping(action, "selected_option").get("value")
    if not isinstance(value, str):
        return None
    choice, _, ref = value.partition(":")
    parsed = token_ref(ref)
    kind = enum_member(MenuChoice, choice)
    if parsed is None or kind is None:
        return None
    return kind, *parsed


def page_offset(action: Mapping[str, Any]) -> int:
    """The offset a Previous or Next button asks for; 0 when it is not a number."""
    return small_number(action.get("value")) or 0


def audit_page(action: Mapping[str, Any]) -> tuple[int, str] | None:
    """`<offset>:<name filter>` from an audit pager button, or None; a name holding any part
    of a secret is dropped, never searched for."""
    value = action.get("value")
    offset_text, _, name_text = value.partition(":") if isinstance(value, str) else ("", "", "")
    offset, name = small_number(offset_text), plain_text(name_text, AUDIT_NAME_MAX)
    if offset is None:
        return None
    return offset, "" if has_secret_part(name) else name


# -- a DM about tokens ---------------------------------------------------------------------
# Its buttons are on a normal message, whose copy comes with the click: where it is, and the
# tokens it lists (its blocks `reminder.<token id>`), so that the outcome updates it in place.

BLOCKS_MAX = 50


def token_dm_of(body: Mapping[str, Any]) -> tuple[str, str, str, list[int]] | None:
    """(kind, channel, ts, token ids) of the DM about tokens a click came from — kind
    "reminder" or "leak", told by its token lines' block ids —, unchecked beyond their
    types (bot.inputs.modal_context.TokenDm checks them); None for a click elsewhere."""
    container = _mapping(body, "container")
    channel, ts = container.get("channel_id"), container.get("message_ts")
    blocks = _mapping(body, "message").get("blocks")
    if container.get("type") != "message" or container.get("is_ephemeral") is not False:
        return None
    if not isinstance(channel, str) or not isinstance(ts, str) or not isinstance(blocks, list):
        return None
    for kind, block in (("reminder", BlockId.REMINDER), ("leak", BlockId.LEAK)):
        prefix = f"{block}."
        token_ids = []
        for listed in blocks[:BLOCKS_MAX]:
            block_id = listed.get("block_id") if isinstance(listed, Mapping) else None
            if isinstance(block_id, str) and block_id.startswith(prefix):
                token_id = small_number(block_id.removeprefix(prefix), digits=15)
                if token_id is not None:
                    token_ids.append(token_id)
        if token_ids:
            return kind, channel, ts, token_ids
    return None


# -- the list's filters and page ----------------------------------------------------------
# An action on an ephemeral message brings no copy of the message, only `state.values`,
# keyed by block id, for its inputs and selects: the list's stateful blocks carry the page
# offset in their ids (see list_view.stateful_block_id), and both are read back here.


def _offset_of(block_id: str) -> int:
    parts = block_id.split(".")
    offset = small_number(parts[1]) if len(parts) == 3 else None
    return offset or 0


def view_from_state(values: Any) -> ListView:
    """The list's filters and page as rendered, read from `state.values`: anything unknown,
    missing or malformed counts as "no filter"."""
    if not isinstance(values, Mapping):
        return ListView()
    name, created_on, state, last_used, offset = "", None, None, None, 0
    for block_id, actions in values.items():
        if not isinstance(block_id, str) or not isinstance(actions, Mapping):
            continue
        if block_id.startswith(f"{BlockId.FILTERS}."):
            offset = _offset_of(block_id)
        for action_id, entry in actions.items():
            if not isinstance(entry, Mapping):
                continue
            selected = _mapping(entry, "selected_option").get("value")
            if action_id == ActionId.FILTER_NAME:
                # Cut to the list's limit only after the secret check (bot.list_message).
                name = plain_text(entry.get("value"), TEXT_INPUT_MAX)
            elif action_id == ActionId.FILTER_CREATED:
                created_on = enum_member(CreatedOn, selected)
            elif action_id == ActionId.FILTER_STATE:
                state = enum_member(StateFilter, selected)
            elif action_id == ActionId.FILTER_LAST_USED:
                last_used = enum_member(LastUsedFilter, selected)
    filters = TokenFilter(
        name=name.strip(), created_on=created_on, state=state, last_used=last_used
    )
    return ListView(filters=filters, offset=offset)


def list_view_of(body: Mapping[str, Any]) -> ListView:
    """The list a click came from, as it was rendered."""
    return view_from_state(_mapping(body, "state").get("values"))


# -- the create/edit form -----------------------------------------------------------------


def _entry(
    view: Mapping[str, Any], block_id: str, action_id: str | None = None
) -> Mapping[str, Any]:
    values = _mapping(_mapping(view, "state"), "values")
    return _mapping(values.get(block_id), action_id or block_id)


def form_fields(view: Mapping[str, Any]) -> TokenEdit:
    """The form's fields as submitted (create and edit share the form); the store checks
    them against its own rules."""
    text = {}
    for field in (FormField.NAME, FormField.DESCRIPTION):
        value = _entry(view, field).get("value")
        text[field] = value[:TEXT_INPUT_MAX] if isinstance(value, str) else ""
    chosen = _entry(view, FormField.ACCESS_RIGHTS).get("selected_options")
    options = chosen[:FORM_OPTIONS_MAX] if isinstance(chosen, list) else []
    contact = _entry(view, FormField.PRIMARY_CONTACT).get("selected_user")
    return TokenEdit(
        name=text[FormField.NAME],
        description=text[FormField.DESCRIPTION],
        access_rights=frozenset(
            str(option.get("value")) for option in options if isinstance(option, Mapping)
        ),
        primary_contact=contact if isinstance(contact, str) else "",
    )


def iso_date(value: object) -> date | None:
    """A `YYYY-MM-DD` date, as a date picker and the expiry choice's options send one."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ChosenExpiry:
    """What a form's `Works until` asks for: `expires_on` (None: Never) when `chosen`;
    otherwise nothing usable was chosen (nothing at all, an option Token Desk never offers,
    or On a date… without a date). `on_a_date`: the date came, or should have come, from
    the date picker, under which its field errors then belong."""

    expires_on: date | None = None
    chosen: bool = False
    on_a_date: bool = False


def chosen_expiry(view: Mapping[str, Any]) -> ChosenExpiry:
    """The expiry a form (create, edit, or a Reset or Duplicate confirmation) asks for. The
    date picker counts only with On a date…; a preset's value is the date it stands for,
    so that the date the user read in its label is the one applied."""
    selected = _mapping(_entry(view, BlockId.EXPIRY, ActionId.EXPIRY_CHOICE), "selected_option")
    choice = selected.get("value")
    if choice == ExpiryChoice.NEVER:
        return ChosenExpiry(expires_on=None, chosen=True)
    if choice == ExpiryChoice.ON_A_DATE:
        picked = _entry(view, BlockId.EXPIRY_DATE, ActionId.EXPIRY_DATE).get("selected_date")
        day = iso_date(picked)
        return ChosenExpiry(expires_on=day, chosen=day is not None, on_a_date=True)
    day = iso_date(choice)
    return ChosenExpiry(expires_on=day, chosen=day is not None)


def chosen_grace(view: Mapping[str, Any]) -> timedelta | None:
    """How long a Reset confirmation lets the current secret keep working; None (stop
    immediately) when it offered no choice, or anything but one of its own options came."""
    selected = _mapping(_entry(view, BlockId.GRACE, ActionId.GRACE_CHOICE), "selected_option")
    choice = enum_member(GraceChoice, selected.get("value"))
    return None if choice is None else choice.grace


def request_key(kind: str, view: Mapping[str, Any]) -> str:
    """The same submission delivered twice has the same view id: applied once."""
    return f"{kind}:{view.get('id')}"
