"""The direct messages about a token, pure: who, what and when, escaped, never a secret."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from bot.blocks import notifications
from bot.blocks.common import Message
from slack_standin.blockkit import check_message
from storage.models import Presenter, RetiredPresentation, Token
from tests.bot.blocks.samples import HOSTILE, WHEN, token
from tests.bot.blockwalk import SECRET_SHAPE, all_text, assert_harmless, plain_texts

DMS: dict[str, Callable[[Token], Message]] = {
    "reset": lambda t: notifications.token_reset(t, actor="UACTOR001", at=WHEN),
    "reset_with_grace": lambda t: notifications.token_reset(
        replace(t, previous_until=WHEN + timedelta(days=3)), actor="UACTOR001", at=WHEN
    ),
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


def test_a_reset_dm_says_until_when_the_old_value_works() -> None:
    at_once = all_text(DMS["reset"](token()).as_dict())
    until = WHEN + timedelta(days=3)
    with_grace = all_text(DMS["reset_with_grace"](token()).as_dict())
    assert "The previous secret no longer works" in at_once
    assert f"keeps working until <!date^{int(until.timestamp())}^" in with_grace
    assert "no longer works" not in with_grace


HOSTILE_PRESENTER = Presenter("<!channel> 203.0.113.7", "<https://evil.example|x> &", WHEN)


def presented(
    presented_token: Token | None = None, presenter: Presenter | None = HOSTILE_PRESENTER
) -> dict[str, Any]:
    presentation = RetiredPresentation(
        token=presented_token or token(name=HOSTILE), presenter=presenter, at=WHEN
    )
    return notifications.retired_secret_presented(presentation).as_dict()


def test_the_first_presentation_dm_names_the_token_when_and_from_where() -> None:
    message = presented()
    assert check_message(message) == []
    assert_harmless(message)
    text = all_text(message)
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in message["text"]
    assert "TD00000000000000000001" in text and "<!date^1793525400^" in text
    # What the gateway said is untrusted: shown as plain text, never parsed as mrkdwn.
    assert "From <!channel> 203.0.113.7" in plain_texts(message)
    assert "User agent: <https://evil.example|x> &" in plain_texts(message)
    assert not SECRET_SHAPE.search(text)


def test_the_first_presentation_dm_without_a_presenter() -> None:
    message = presented(presenter=None)
    assert check_message(message) == []
    assert len(message["blocks"]) == 1
    longest = presented(token(name="&" * 100), Presenter("&" * 64, "&" * 200, WHEN))
    assert check_message(longest) == []
