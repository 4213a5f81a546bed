"""The usage listing, pure."""

from __future__ import annotations

from typing import Any

from bot.blocks.help import USAGE, help_message
from slack_standin.blockkit import check_message
from tests.bot.blockwalk import all_text, assert_harmless


def as_dict(unknown: str | None = None) -> dict[str, Any]:
    text, blocks = help_message(unknown=unknown)
    return {"text": text, "blocks": [block.to_dict() for block in blocks]}


def test_the_listing_names_every_sub_command() -> None:
    message = as_dict()
    assert check_message(message) == []
    for usage, _ in USAGE:
        assert f"`{usage}`" in all_text(message)
    verbs = {usage.split()[1] for usage, _ in USAGE if " " in usage}
    assert verbs == {"search", "create", "access", "roles", "audit", "help"}


def test_an_unknown_word_is_named_escaped_and_cut() -> None:
    message = as_dict(unknown="<!channel>" + "x" * 200)
    assert check_message(message) == []
    assert_harmless(message)
    assert "“&lt;!channel&gt;" in message["text"]
    assert "x" * 41 not in all_text(message)
