"""Block Kit checks on raw dicts, as Slack applies them.

slack_sdk validates only its model objects, and only some limits; a raw dict sent by the app
reaches Slack unchecked. These functions return a list of problems (empty when the payload
would be accepted) so that the stand-in can refuse what Slack would refuse, and tests can
assert on builders directly. The limits, each with Slack's reference page, are listed in
docs/slack.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Surface = Literal["message", "modal"]

MAX_BLOCKS: dict[Surface, int] = {"message": 50, "modal": 100}
MAX_ID = 255  # action_id, block_id, callback_id, external_id
MAX_MESSAGE_TEXT = 4000  # top-level `text` must stay below this
MAX_CUMULATIVE_TEXT = 12000  # Slack's undocumented `msg_blocks_too_long` cap
MAX_PRIVATE_METADATA = 3000
MAX_MODAL_BUTTON = 24  # modal title, submit, close

BLOCK_TYPES = {"section", "header", "divider", "actions", "context", "input", "image", "rich_text"}
SELECTS = {
    "static_select",
    "multi_static_select",
    "external_select",
    "multi_external_select",
    "users_select",
    "multi_users_select",
    "conversations_select",
    "multi_conversations_select",
    "channels_select",
    "multi_channels_select",
}
CHOICES = {"checkboxes", "radio_buttons", "datepicker", "timepicker"}
TEXT_INPUTS = {"plain_text_input", "email_text_input", "url_text_input", "number_input"}
# Where each interactive element may sit.
ACCESSORY_TYPES = {"button", "overflow", "image"} | SELECTS | CHOICES
ACTIONS_TYPES = {"button", "overflow"} | SELECTS | CHOICES
INPUT_TYPES = TEXT_INPUTS | SELECTS | CHOICES


@dataclass(frozen=True)
class ElementRule:
    """Limits of one element type: text objects, plain strings and its option list."""

    texts: dict[str, int] = field(default_factory=dict)  # all plain_text only
    required_texts: tuple[str, ...] = ()
    strings: dict[str, int] = field(default_factory=dict)
    options: tuple[int, int] | None = None  # (min, max) count
    option_mrkdwn: bool = False  # checkboxes / radio buttons accept mrkdwn labels


_SELECT = ElementRule(texts={"placeholder": 150})
_STATIC_SELECT = ElementRule(texts={"placeholder": 150}, options=(1, 100))
ELEMENTS: dict[str, ElementRule] = {
    "button": ElementRule(
        texts={"text": 75}, required_texts=("text",), strings={"value": 2000, "url": 3000}
    ),
    "overflow": ElementRule(options=(1, 5)),
    "checkboxes": ElementRule(options=(1, 10), option_mrkdwn=True),
    "radio_buttons": ElementRule(options=(1, 10), option_mrkdwn=True),
    "datepicker": _SELECT,
    "timepicker": _SELECT,
    "image": ElementRule(strings={"image_url": 3000, "alt_text": 2000}),
    **{kind: _SELECT for kind in SELECTS | TEXT_INPUTS},
    "static_select": _STATIC_SELECT,
    "multi_static_select": _STATIC_SELECT,
}


@dataclass
class _Walk:
    problems: list[str] = field(default_factory=list)
    text_total: int = 0

    def add(self, path: str, problem: str) -> None:
        self.problems.append(f"{path}: {problem}")

    def string(self, value: Any, path: str, max_len: int) -> None:
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {type(value).__name__}")
        elif len(value) > max_len:
            self.add(path, f"{len(value)} chars, max {max_len}")

    def text(self, obj: Any, path: str, max_len: int, *, plain: bool = False) -> None:
        """A text object: {"type": "plain_text" | "mrkdwn", "text": 1..max_len chars}."""
        if not isinstance(obj, dict):
            self.add(path, "must be a text object")
            return
        kinds = {"plain_text"} if plain else {"plain_text", "mrkdwn"}
        if obj.get("type") not in kinds:
            self.add(path, f"text type {obj.get('type')!r} not in {sorted(kinds)}")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.add(f"{path}.text", "must be a non-empty string")
            return
        self.text_total += len(text)
        if len(text) > max_len:
            self.add(f"{path}.text", f"{len(text)} chars, max {max_len}")

    def count(self, items: Any, path: str, low: int, high: int) -> list[Any]:
        if not isinstance(items, list):
            self.add(path, "must be a list")
            return []
        if not low <= len(items) <= high:
            self.add(path, f"{len(items)} items, allowed {low}-{high}")
        return items

    def option(self, option: Any, path: str, *, mrkdwn: bool) -> None:
        if not isinstance(option, dict):
            self.add(path, "must be an option object")
            return
        self.text(option.get("text"), f"{path}.text", 75, plain=not mrkdwn)
        self.string(option.get("value"), f"{path}.value", 150)
        if "description" in option:
            self.text(option["description"], f"{path}.description", 75, plain=not mrkdwn)

    def confirm(self, confirm: Any, path: str) -> None:
        if not isinstance(confirm, dict):
            self.add(path, "must be a confirm object")
            return
        self.text(confirm.get("title"), f"{path}.title", 100, plain=True)
        self.text(confirm.get("text"), f"{path}.text", 300)
        self.text(confirm.get("confirm"), f"{path}.confirm", 30, plain=True)
        self.text(confirm.get("deny"), f"{path}.deny", 30, plain=True)

    def element(self, element: Any, path: str, allowed: set[str]) -> str | None:
        """Checks one element; returns its action_id (None when it has none)."""
        if not isinstance(element, dict):
            self.add(path, "must be an element object")
            return None
        kind = element.get("type")
        if kind not in allowed:
            self.add(path, f"element type {kind!r} not allowed here")
            return None
        rule = ELEMENTS[str(kind)]
        for name, max_len in rule.texts.items():
            if name in element or name in rule.required_texts:
                self.text(element.get(name), f"{path}.{name}", max_len, plain=True)
        for name, max_len in rule.strings.items():
            if name in element:
                self.string(element[name], f"{path}.{name}", max_len)
        if rule.options is not None:
            self.options(element, path, rule)
        if kind == "plain_text_input":
            for name in ("max_length", "min_length"):
                value = element.get(name)
                if value is not None and not (isinstance(value, int) and 0 <= value <= 3000):
                    self.add(f"{path}.{name}", f"{value!r} outside 0-3000")
        if "confirm" in element:
            self.confirm(element["confirm"], f"{path}.confirm")
        action_id = element.get("action_id")
        if action_id is not None:
            self.string(action_id, f"{path}.action_id", MAX_ID)
        return action_id if isinstance(action_id, str) else None

    def options(self, element: dict[str, Any], path: str, rule: ElementRule) -> None:
        assert rule.options is not None
        low, high = rule.options
        if "option_groups" in element:
            groups = self.count(element["option_groups"], f"{path}.option_groups", 1, high)
            for g, group in enumerate(groups):
                group_path = f"{path}.option_groups[{g}]"
                if not isinstance(group, dict):
                    self.add(group_path, "must be an option group object")
                    continue
                self.text(group.get("label"), f"{group_path}.label", 75, plain=True)
                options = self.count(group.get("options"), f"{group_path}.options", 1, high)
                for o, option in enumerate(options):
                    self.option(option, f"{group_path}.options[{o}]", mrkdwn=False)
            return
        for o, option in enumerate(
            self.count(element.get("options"), f"{path}.options", low, high)
        ):
            self.option(option, f"{path}.options[{o}]", mrkdwn=rule.option_mrkdwn)

    def rich_text(self, node: Any) -> None:
        """Rich text has no per-field limits we rely on; it only adds to the total."""
        if isinstance(node, dict):
            if node.get("type") in {"text", "link"} and isinstance(node.get("text"), str):
                self.text_total += len(node["text"])
            self.rich_text(node.get("elements"))
        elif isinstance(node, list):
            for child in node:
                self.rich_text(child)

    def block(self, block: Any, path: str) -> None:
        if not isinstance(block, dict):
            self.add(path, "must be a block object")
            return
        if "block_id" in block:
            self.string(block["block_id"], f"{path}.block_id", MAX_ID)
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            self.add(path, f"unknown block type {kind!r}")
            return
        if kind == "section":
            if "text" not in block and "fields" not in block:
                self.add(path, "section needs text or fields")
            if "text" in block:
                self.text(block["text"], f"{path}.text", 3000)
            if "fields" in block:
                for f, item in enumerate(self.count(block["fields"], f"{path}.fields", 1, 10)):
                    self.text(item, f"{path}.fields[{f}]", 2000)
            if "accessory" in block:
                self.element(block["accessory"], f"{path}.accessory", ACCESSORY_TYPES)
        elif kind == "header":
            self.text(block.get("text"), f"{path}.text", 150, plain=True)
        elif kind == "actions":
            elements = self.count(block.get("elements"), f"{path}.elements", 1, 25)
            ids = [
                self.element(e, f"{path}.elements[{i}]", ACTIONS_TYPES)
                for i, e in enumerate(elements)
            ]
            for action_id, seen in Counter(i for i in ids if i is not None).items():
                if seen > 1:
                    self.add(path, f"duplicate action_id {action_id!r}")
        elif kind == "context":
            for i, item in enumerate(self.count(block.get("elements"), f"{path}.elements", 1, 10)):
                if isinstance(item, dict) and item.get("type") == "image":
                    self.element(item, f"{path}.elements[{i}]", {"image"})
                else:
                    self.text(item, f"{path}.elements[{i}]", 3000)
        elif kind == "input":
            self.text(block.get("label"), f"{path}.label", 2000, plain=True)
            if "hint" in block:
                self.text(block["hint"], f"{path}.hint", 2000, plain=True)
            self.element(block.get("element"), f"{path}.element", INPUT_TYPES)
        elif kind == "image":
            self.element({**block, "type": "image"}, path, {"image"})
            if "title" in block:
                self.text(block["title"], f"{path}.title", 2000, plain=True)
        elif kind == "rich_text":
            self.rich_text(block.get("elements"))


def check_blocks(blocks: list[dict[str, Any]], *, surface: Surface) -> list[str]:
    """Problems Slack would report for these blocks on this surface; [] when fine."""
    walk = _Walk()
    blocks = walk.count(blocks, "blocks", 0, MAX_BLOCKS[surface])
    for b, block in enumerate(blocks):
        walk.block(block, f"blocks[{b}]")
    block_ids = [b.get("block_id") for b in blocks if isinstance(b, dict) and "block_id" in b]
    for block_id, seen in Counter(i for i in block_ids if isinstance(i, str)).items():
        if seen > 1:
            walk.add("blocks", f"duplicate block_id {block_id!r}")
    if surface == "message" and walk.text_total > MAX_CUMULATIVE_TEXT:
        walk.add("blocks", f"{walk.text_total} chars of text in all, max {MAX_CUMULATIVE_TEXT}")
    return walk.problems


def check_view(view: dict[str, Any]) -> list[str]:
    """Problems of a modal or App Home view as given to views.open / update / push."""
    walk = _Walk()
    kind = view.get("type")
    if kind not in {"modal", "home"}:
        walk.add("view.type", f"{kind!r} is not modal or home")
    if kind == "modal":
        walk.text(view.get("title"), "view.title", MAX_MODAL_BUTTON, plain=True)
    if kind == "home":
        # The Home tab is a page, not a dialog: Slack refuses a title or buttons on it.
        for name in ("title", "submit", "close"):
            if view.get(name) is not None:
                walk.add(f"view.{name}", "a home view has none")
    else:
        for name in ("submit", "close"):
            if view.get(name) is not None:
                walk.text(view[name], f"view.{name}", MAX_MODAL_BUTTON, plain=True)
    for name, max_len in {
        "callback_id": MAX_ID,
        "external_id": MAX_ID,
        "private_metadata": MAX_PRIVATE_METADATA,
    }.items():
        if name in view:
            walk.string(view[name], f"view.{name}", max_len)
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        walk.add("view.blocks", "must be a list")
        return walk.problems
    has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if kind == "modal" and has_input and view.get("submit") is None:
        walk.add("view.submit", "a modal with input blocks needs a submit button")
    return walk.problems + check_blocks(blocks, surface="modal")


def check_message(payload: dict[str, Any]) -> list[str]:
    """Problems of a chat.* argument set or a response_url body."""
    if payload.get("delete_original"):
        return []
    problems = []
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        # Slack only warns, but without it notifications and screen readers show nothing.
        problems.append("text: the top-level fallback text is required")
    elif len(text) >= MAX_MESSAGE_TEXT:
        problems.append(f"text: {len(text)} chars, must stay under {MAX_MESSAGE_TEXT}")
    if payload.get("response_type", "ephemeral") not in {"ephemeral", "in_channel"}:
        problems.append(f"response_type: {payload['response_type']!r} is not a response type")
    if "blocks" in payload:
        blocks = payload["blocks"]
        if not isinstance(blocks, list):
            return [*problems, "blocks: must be a list"]
        problems += check_blocks(blocks, surface="message")
    return problems
