"""The direct messages about a token, pure: who, what and when, escaped, never a secret."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.blocks import notifications
from bot.blocks.common import Message
from slack_standin.blockkit import check_message
from storage.models import Token
from tests.bot.blocks.samples import HOSTILE, WHEN, token
from tests.bot.blockwalk import SECRET_SHAPE, all_text, assert_harmless

DMS: dict[str, Callable[[Token], Message]] = {
    "reset": lambda t: notifications.token_reset(t, actor="UACTOR001", at=WHEN),
    "disabled": lambda t: notifications.token_disabled(t, actor="UACTOR001", at=WHEN),
    "deleted": lambda t: notifications.token_deleted(t, actor="UACTOR001", at=WHEN),
    "now_contact": lambda t: notifications.contact_changed(
        t, actor="UACTOR001", at=WHEN, now_contact=True
    ),
    "no_longer_contact": lambda t: notifications.contact_changed(
        t, actor="UACTOR001", at=WHEN, now_contact=False
    ),
}


@pytest.mark.parametrize("kind", DMS)
def test_every_dm_names_the_token_the_actor_and_the_time(kind: str) -> None:
    message = DMS[kind](token(name=HOSTILE)).as_dict()
    assert check_message(message) == []
    assert_harmless(message)
    text = all_text(message)
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in message["text"]
    assert "TD00000000000000000001" in text
    assert "<@UACTOR001>" in text and "<!date^1793525400^" in text
    assert not SECRET_SHAPE.search(text)


def test_the_old_contact_is_told_who_took_over() -> None:
    message = DMS["no_longer_contact"](token(primary_contact="UNEWCONT1")).as_dict()
    assert "<@UNEWCONT1>" in all_text(message) and "instead of you" in all_text(message)


def test_the_longest_name_still_fits() -> None:
    message = DMS["reset"](token(name="&" * 100)).as_dict()
    assert check_message(message) == []
