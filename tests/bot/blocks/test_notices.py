"""The short answers to a token action, pure: escaped, and fit for the list's notice area."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.blocks import notices
from bot.blocks.token_list import Notice, render_token_list
from bot.list_view import ListView
from slack_standin.blockkit import check_message
from storage.models import Token, TokenPage
from tests.bot.blocks.samples import HOSTILE, WHEN, token
from tests.bot.blockwalk import assert_harmless

NOTICES: dict[str, Callable[[Token], Notice]] = {
    "secret_found": notices.secret_found,
    "secret_issued": lambda t: notices.secret_issued(t.name, notices.Issued.RESET),
    "enabled": lambda t: notices.enabled_changed(t, enabled=True, changed=True),
    "disabled": lambda t: notices.enabled_changed(t, enabled=False, changed=True),
    "already_enabled": lambda t: notices.enabled_changed(t, enabled=True, changed=False),
    "stale_card": notices.stale_card,
    "already_newest": notices.already_newest,
    "saved": lambda t: notices.saved(t.name, changed=True),
    "unchanged": lambda t: notices.saved(t.name, changed=False),
    "upgraded": notices.upgraded,
    "deleted": lambda t: notices.deleted(t.name),
    "grace_ended": lambda t: notices.grace_ended(t, changed=True),
    "grace_already_ended": lambda t: notices.grace_ended(t, changed=False),
    "enable_refused_leaked": notices.enable_refused_leaked,
    "disabled_after_leak": lambda t: notices.disabled_after_leak(t, changed=True),
    "already_disabled_after_leak": lambda t: notices.disabled_after_leak(t, changed=False),
    "reset_after_leak": notices.reset_after_leak,
}


def in_the_list(notice: Notice) -> dict[str, object]:
    page = TokenPage(tokens=(), total=0, offset=0)
    message = render_token_list(
        page=page,
        view=ListView(),
        newest_version="v3",
        api_access=True,
        now=WHEN,
        expiry_required=True,
        notice=notice,
        nonce="n0nce",
    )
    return message.as_dict()


@pytest.mark.parametrize("kind", NOTICES)
def test_every_notice_escapes_the_token_name_and_fits_the_list(kind: str) -> None:
    hostile = token(name=HOSTILE, api_version="<v9>")
    notice = NOTICES[kind](hostile)
    message = in_the_list(notice)
    assert check_message(message) == []
    assert_harmless(message)
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in notice.text


def test_only_an_enable_a_found_secret_and_a_refused_enable_offer_a_reset() -> None:
    offered = {kind for kind, build in NOTICES.items() if build(token()).offer_reset is not None}
    assert offered == {"secret_found", "enabled", "enable_refused_leaked"}


def test_a_refused_enable_says_the_secret_was_posted_and_to_reset_first() -> None:
    text = notices.enable_refused_leaked(token()).text
    assert "was not enabled: its secret was posted in Slack. Reset it first" in text


def test_changed_meanwhile_names_who_and_when_and_that_nothing_was_applied() -> None:
    in_a_modal = notices.changed_meanwhile(by="UOTHER001", at=WHEN)
    in_the_list = notices.changed_meanwhile(by="UOTHER001", at=WHEN, name=HOSTILE)
    for text in (in_a_modal, in_the_list):
        assert "was changed by <@UOTHER001> <!date^1793525400^" in text
    assert "Nothing was applied" in in_a_modal
    assert "nothing was applied" in in_the_list and "&lt;!channel&gt;" in in_the_list
    assert notices.stale_card(token(updated_by="UOTHER001")).text == notices.changed_meanwhile(
        by="UOTHER001", at=WHEN, name="Token 1"
    )


def test_someone_who_is_not_a_user_id_is_shown_as_escaped_text() -> None:
    text = notices.changed_meanwhile(by="cli:<root>", at=WHEN)
    assert "cli:&lt;root&gt;" in text


def test_a_modal_without_its_list_still_shows_the_notice() -> None:
    notice = notices.deleted(HOSTILE)
    shown = notices.list_unreachable(notice)
    assert shown.startswith(notice.text) and "Run `/tokens` again" in shown


def test_an_unexpected_error_shows_only_its_reference() -> None:
    text = notices.something_went_wrong("A1B2C3")
    assert "(ref A1B2C3)" in text and "Traceback" not in text


def test_a_stale_card_is_the_longest_notice() -> None:
    """The list's worst case (tests/bot/blocks/test_token_list.py) counts on it."""
    longest = token(name="&" * 100, updated_by="UCHANGER1")
    lengths = {kind: len(build(longest).text) for kind, build in NOTICES.items()}
    assert max(lengths.values()) == lengths["stale_card"]
