"""Reading what the app rendered: plain functions over Block Kit JSON (messages, views, DMs).

They look only at the JSON a Slack client would get, never at the app's builders, so a test
reads a message the way a user does: its texts, its cards, its notice, its form fields.
Actions to send back are built with `slack_standin.client.action_for` (what the user clicks)
and `fill` (what they typed); the few here name what a user aims at on the token list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from slack_standin.blockkit import check_view
from slack_standin.client import action_for

Body = dict[str, Any]

# Token Desk refuses a user without a role by naming the two roles that may.
ROLES = ("Account Administrators", "Implementation Specialists")
SECRET_SHAPE = re.compile(r"tdk_[0-9A-Za-z]{38}")
RANDOM_PART = slice(4, 36)  # the 32 random characters of a secret, between prefix and checksum
# What a token name could make Slack do in mrkdwn unless escaped: ping, link.
RAW_CONTROL = ("<!channel>", "<!here>", "<!everyone>", "<@U1>", "<https://")
_SID_IN_CARD = re.compile(r"\*SID\* `(TD[0-9A-F]{20})`")


# -- any message or view --------------------------------------------------------------------


def blocks_of(surface: Body) -> list[Body]:
    blocks = surface.get("blocks")
    assert isinstance(blocks, list), surface
    return blocks


def block(blocks: list[Body], block_id: str) -> Body | None:
    return next((b for b in blocks if b.get("block_id") == block_id), None)


def block_in(surface: Body, block_id: str) -> Body:
    """The block `block_id` of a message or view, which must have it."""
    found = block(blocks_of(surface), block_id)
    assert found is not None, f"no {block_id!r} block"
    return found


def block_starting(blocks: list[Body], prefix: str) -> Body:
    """The one block whose id starts with `prefix` (the list's stateful blocks end in a nonce)."""
    found = [b for b in blocks if str(b.get("block_id", "")).startswith(prefix)]
    assert len(found) == 1, f"{len(found)} blocks start with {prefix!r}"
    return found[0]


def text_objects(node: Any) -> Iterator[Body]:
    """Every `mrkdwn` and `plain_text` object, however deep."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_objects(item)


def _fallback(node: Any) -> list[str]:
    """A message's top-level `text`: the notification, and what a client without blocks shows."""
    return [node["text"]] if isinstance(node, dict) and isinstance(node.get("text"), str) else []


def all_text(node: Any) -> str:
    """Every text a user reads in a message or view, and a message's fallback text."""
    return "\n".join([t["text"] for t in text_objects(node)] + _fallback(node))


def mrkdwn_texts(node: Any) -> list[str]:
    """Every text Slack parses as mrkdwn: the mrkdwn objects and a message's fallback text."""
    return [t["text"] for t in text_objects(node) if t["type"] == "mrkdwn"] + _fallback(node)


def plain_texts(node: Any) -> list[str]:
    return [t["text"] for t in text_objects(node) if t["type"] == "plain_text"]


def section_texts(surface: Body) -> list[str]:
    return [
        b["text"]["text"]
        for b in surface.get("blocks", [])
        if b["type"] == "section" and "text" in b
    ]


def interactive(node: Any) -> list[Body]:
    """Every element carrying an action_id: what a user could act on."""
    found: list[Body] = []
    if isinstance(node, dict):
        if "action_id" in node:
            found.append(node)
        for value in node.values():
            found += interactive(value)
    elif isinstance(node, list):
        for item in node:
            found += interactive(item)
    return found


def refused(text: str) -> bool:
    """Whether `text` is Token Desk's refusal of a user without a role."""
    return all(role in text for role in ROLES)


def assert_harmless(node: Any) -> None:
    """User text in mrkdwn is escaped (`&`, `<`, `>`), so a token name cannot ping or link,
    and a mrkdwn text holding `<`, `>` or `&` is `verbatim`, so Slack does not turn a bare URL
    or channel name into a link either."""
    for text in mrkdwn_texts(node):
        for raw in RAW_CONTROL:
            assert raw not in text, f"unescaped {raw!r} in mrkdwn: {text!r}"
    for found in text_objects(node):
        if found["type"] == "mrkdwn" and any(c in found["text"] for c in "<>&"):
            assert found.get("verbatim") is True, found


# -- the token list -------------------------------------------------------------------------


class Card(NamedTuple):
    """A token's card: its header (the name), its details (the menu beside) and its Edit."""

    header: Body
    details: Body
    edit: Body

    @property
    def name(self) -> str:
        return str(self.header["text"]["text"])

    @property
    def token_id(self) -> int:
        return int(str(self.details["block_id"]).split(".")[1])

    @property
    def text(self) -> str:
        return str(self.details["text"]["text"])

    @property
    def sid(self) -> str:
        found = _SID_IN_CARD.search(self.text)
        assert found is not None, self.text
        return found.group(1)

    @property
    def options(self) -> list[str]:
        """The menu's option values, as rendered (`choice:token_id:row_version`)."""
        return [str(option["value"]) for option in self.details["accessory"]["options"]]

    def option(self, choice: str) -> str | None:
        return next((value for value in self.options if value.startswith(f"{choice}:")), None)


def cards(blocks: list[Body]) -> list[Card]:
    return [
        Card(b, blocks[index + 1], blocks[index + 2])
        for index, b in enumerate(blocks)
        if b["type"] == "header" and str(b.get("block_id", "")).startswith("card.")
    ]


def card(blocks: list[Body], token: str | int) -> Card:
    """The card of the token named `token`, or of the token whose id is `token`."""
    for found in cards(blocks):
        if token in (found.name, found.token_id):
            return found
    raise LookupError(f"no card for {token!r} in {card_names(blocks)}")


def card_names(blocks: list[Body]) -> list[str]:
    return [found.name for found in cards(blocks)]


def card_ids(blocks: list[Body]) -> list[int]:
    return [found.token_id for found in cards(blocks)]


def menu_action(blocks: list[Body], token_id: int, choice: str) -> Body:
    """The user picks `choice` in the menu of the card of `token_id`."""
    found = card(blocks, token_id)
    value = found.option(choice)
    assert value is not None, f"no {choice!r} in {found.options}"
    return action_for(blocks, "token_menu", value, block_id=f"details.{token_id}")


def edit_action(blocks: list[Body], token_id: int) -> Body:
    return action_for(blocks, "token_edit", block_id=f"edit.{token_id}")


def create_action(blocks: list[Body]) -> Body:
    return action_for(blocks, "token_create", block_id="create")


def notice_of(blocks: list[Body]) -> str:
    """The text of the list's notice area; empty when there is none."""
    found = block(blocks, "notice")
    return "" if found is None else str(found["text"]["text"])


def search_box(blocks: list[Body]) -> Body:
    element = block_starting(blocks, "search.")["element"]
    assert isinstance(element, dict)
    return element


def chosen(blocks: list[Body], action_id: str) -> str | None:
    """The value a filter select shows as chosen, if any."""
    for element in block_starting(blocks, "filters.")["elements"]:
        if element["action_id"] == action_id:
            option = element.get("initial_option")
            return None if option is None else str(option["value"])
    raise LookupError(action_id)


def stateful_ids(blocks: list[Body]) -> set[str]:
    """The ids of the search box's and the filters' blocks."""
    return {
        str(b["block_id"])
        for b in blocks
        if str(b.get("block_id", "")).startswith(("search.", "filters."))
    }


def range_of(blocks: list[Body]) -> str | None:
    found = block(blocks, "range")
    return None if found is None else str(found["elements"][0]["text"])


def pager(blocks: list[Body]) -> list[str]:
    found = block(blocks, "pager")
    return [] if found is None else [e["text"]["text"] for e in found["elements"]]


def pager_button(blocks: list[Body], label: str) -> tuple[str, str]:
    """The action_id and value of the pager button labelled `label`."""
    found = block(blocks, "pager")
    assert found is not None, "no pager"
    for element in found["elements"]:
        if element["text"]["text"] == label:
            return str(element["action_id"]), str(element["value"])
    raise LookupError(f"no {label!r} button in the pager")


# -- modals -----------------------------------------------------------------------------------


def secret_view_problems(view: Body) -> list[str]:
    """What is wrong with a view showing a new secret once: it must hold exactly that secret,
    say it will not be shown again, and have nothing that could send it back to the app (no
    submit, no input, no interactive element, no notice when closed)."""
    problems = check_view(view)
    if view.get("callback_id") != "token_secret":
        problems.append(f"not the secret view: {view.get('callback_id')!r}")
    if view.get("submit") is not None or view.get("close") is None:
        problems.append("the secret view is not closed with its close button only")
    if view.get("notify_on_close"):
        problems.append("closing the secret view notifies the app")
    if any(b.get("type") == "input" for b in view.get("blocks", [])) or interactive(view):
        problems.append("the secret view has an element a user could send back")
    secrets = set(SECRET_SHAPE.findall(json.dumps(view)))
    if len(secrets) != 1:
        problems.append(f"{len(secrets)} secrets in the secret view")
    text = all_text(view)
    if "Copy it now" not in text or "will not be shown again" not in text:
        problems.append("the secret view does not say it is shown once")
    return problems


def secret_of(view: Body) -> str:
    """The secret a one-time secret view shows, once the view passed every check."""
    assert secret_view_problems(view) == [], secret_view_problems(view)
    (secret,) = set(SECRET_SHAPE.findall(json.dumps(view)))
    return str(secret)
