"""What the leak guard posts, pure: each message Slack takes, escaped, never a secret; the
thread reply and the poster's DM without token data; the buttons only where they apply."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bot.blocks import leaks, notices
from bot.blocks.raw import RawMessage
from bot.ids import ActionId
from slack_standin.blockkit import check_message
from storage.models import LeakReport, SecretUsed, Token
from tests.bot.blocks.samples import HOSTILE, WHEN, token
from tests.bot.blockwalk import (
    SECRET_SHAPE,
    all_text,
    assert_harmless,
    block_in,
    interactive,
    mrkdwn_texts,
)

CHANNEL = "C0LEAKS01"
POSTER = "UPOSTER01"
PERMALINK = "https://acme.slack.com/archives/C0LEAKS01/p1793525400000100?thread_ts=1&cid=C0LEAKS01"
# How the DM writes it: a link, its `&` escaped as Slack writes it.
LINK = (
    "<https://acme.slack.com/archives/C0LEAKS01/p1793525400000100?thread_ts=1&amp;cid=C0LEAKS01"
    "|view the message>"
)
# A name with every character escaping makes longer, at the longest a name may be.
LONGEST_NAME = ("&" * 90 + HOSTILE)[:100]


def leaked(number: int = 1, **overrides: Any) -> Token:
    return token(number, leaked_at=WHEN, **overrides)


def report(
    which: SecretUsed = "current", *, disabled: bool = False, **overrides: Any
) -> LeakReport:
    fields: dict[str, Any] = {"name": HOSTILE}
    if which == "current":
        fields["leaked_at"] = WHEN
    if disabled:
        fields |= {"enabled": False, "disabled_reason": "leaked"}
    return LeakReport(token=token(**(fields | overrides)), which=which, disabled=disabled)


def checked(message: RawMessage, *, permalink: str | None = PERMALINK) -> dict[str, Any]:
    """The message as Slack gets it: taken by Slack, no secret, and harmless to read once
    the one link Token Desk writes, to the message, is set aside."""
    payload = message.as_dict()
    assert check_message(payload) == [], check_message(payload)
    assert not SECRET_SHAPE.search(json.dumps(payload))
    if permalink is not None:
        assert any(LINK in text for text in mrkdwn_texts(payload))
    assert_harmless(json.loads(json.dumps(payload).replace(LINK, "a message")))
    return payload


def buttons(payload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for e in interactive(payload) if e["type"] == "button"]


def dm(
    leak: LeakReport,
    *,
    may_act: bool = True,
    permalink: str | None = PERMALINK,
    poster: str | None = POSTER,
) -> dict[str, Any]:
    message = leaks.leak_dm(
        leak,
        channel=CHANNEL,
        permalink=permalink,
        poster=poster,
        may_act=may_act,
        disabled=leak.disabled,
    )
    return checked(message, permalink=permalink)


# -- the reply in the message's thread ----------------------------------------------------


@pytest.mark.parametrize("disabled", [False, True])
def test_the_thread_reply_asks_to_delete_the_message_and_names_nothing(disabled: bool) -> None:
    payload = checked(leaks.thread_reply(disabled=disabled), permalink=None)
    text = all_text(payload)
    assert "This message contains a Token Desk secret" in text and "Delete it" in text
    assert ("disabled the token" in text) is disabled
    assert "TD" not in text and "`" not in text
    assert interactive(payload) == []


# -- the DM naming the token --------------------------------------------------------------


def test_a_manager_reads_which_token_where_and_by_whom_and_may_reset_or_disable() -> None:
    payload = dm(report())
    text = all_text(payload)
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in payload["text"]
    assert "`TD00000000000000000001`: its current secret was posted" in text
    assert f"posted in <#{CHANNEL}> by <@{POSTER}> ({LINK})." in text
    assert "It is marked *leaked*: it cannot be enabled again until it is reset." in text
    assert "still enabled" in text
    assert buttons(payload) == [(ActionId.LEAK_RESET, "1:3"), (ActionId.LEAK_DISABLE, "1:3")]
    assert block_in(payload, "leak.1")["type"] == "section"
    assert block_in(payload, "leak_actions.1")["elements"][0]["style"] == "danger"
    assert "*Reset now* issues a new secret" in text


def test_a_token_disabled_by_the_leak_says_so_and_offers_reset_only() -> None:
    payload = dm(report(disabled=True))
    text = all_text(payload)
    assert "Token Desk *disabled* the token at once" in text
    assert buttons(payload) == [(ActionId.LEAK_RESET, "1:3")]
    assert "*Disable now*" not in text


def test_a_token_already_disabled_is_said_to_be_so() -> None:
    payload = dm(report(enabled=False))
    text = all_text(payload)
    assert "The token was already disabled." in text and "*disabled* the token" not in text
    assert buttons(payload) == [(ActionId.LEAK_RESET, "1:3")]


def test_a_reader_without_a_role_is_told_whom_to_ask_and_gets_no_button() -> None:
    payload = dm(report(), may_act=False)
    assert interactive(payload) == []
    assert leaks.ASK_FOR_A_RESET in all_text(payload)


@pytest.mark.parametrize("may_act", [True, False])
def test_a_leaked_previous_secret_ended_its_window_and_leaves_the_current_one(
    may_act: bool,
) -> None:
    payload = dm(report("previous", previous_until=None), may_act=may_act)
    text = all_text(payload)
    assert "its previous secret was posted" in text
    assert "its grace window has ended" in text and "current secret is not affected" in text
    assert "leaked*" not in text and interactive(payload) == []


def test_without_a_permalink_or_poster_the_channel_is_still_named() -> None:
    payload = dm(report(name="Nightly export"), permalink=None, poster=None)
    text = all_text(payload)
    assert f"its current secret was posted in <#{CHANNEL}>." in text
    assert " by <@" not in text and "https://" not in text


@pytest.mark.parametrize(
    "permalink",
    ["javascript:alert(1)", "https://evil.example|click", "https://a.example/<!channel>", ""],
)
def test_a_permalink_of_another_shape_is_not_linked(permalink: str) -> None:
    message = leaks.leak_dm(
        report(name="Nightly export"),
        channel=CHANNEL,
        permalink=permalink,
        poster=POSTER,
        may_act=True,
        disabled=False,
    )
    payload = checked(message, permalink=None)
    assert f"posted in <#{CHANNEL}> by <@{POSTER}>." in all_text(payload)
    assert "evil" not in json.dumps(payload) and "javascript" not in json.dumps(payload)


def test_a_channel_or_poster_of_another_shape_is_shown_escaped() -> None:
    message = leaks.leak_dm(
        report(),
        channel="<!here>",
        permalink=None,
        poster="<!channel>",
        may_act=True,
        disabled=False,
    )
    payload = checked(message, permalink=None)
    assert "posted in &lt;!here&gt; by &lt;!channel&gt;." in all_text(payload)


@pytest.mark.parametrize("which", ["current", "previous"])
@pytest.mark.parametrize("disabled", [False, True])
def test_the_longest_name_still_fits(which: SecretUsed, disabled: bool) -> None:
    leak = report(which, disabled=disabled and which == "current", name=LONGEST_NAME)
    dm(leak)
    checked(
        leaks.leak_alert(
            leak, channel=CHANNEL, permalink=PERMALINK, poster=POSTER, disabled=leak.disabled
        )
    )


# -- the poster without a role ------------------------------------------------------------


@pytest.mark.parametrize("disabled", [False, True])
@pytest.mark.parametrize("permalink", [PERMALINK, None])
def test_a_poster_without_a_role_is_told_to_delete_it_without_token_data(
    disabled: bool, permalink: str | None
) -> None:
    message = leaks.poster_dm(channel=CHANNEL, permalink=permalink, disabled=disabled)
    payload = checked(message, permalink=permalink)
    text = all_text(payload)
    link = f" ({LINK})" if permalink else ""
    assert f"You posted a Token Desk secret in <#{CHANNEL}>{link}. Delete it now" in text
    assert "Its owners have been told" in text
    assert ("disabled the token" in text) is disabled
    assert "TD0" not in text and interactive(payload) == []


# -- the alerts channel -------------------------------------------------------------------


def test_the_alert_names_the_token_the_channel_the_poster_and_the_contact() -> None:
    leak = report(disabled=True)
    message = leaks.leak_alert(
        leak, channel=CHANNEL, permalink=PERMALINK, poster=POSTER, disabled=True
    )
    payload = checked(message)
    text = all_text(payload)
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in payload["text"]
    assert f"`TD00000000000000000001`: its current secret was posted in <#{CHANNEL}>" in text
    assert f" by <@{POSTER}> ({LINK})" in text
    assert "Its primary contact, <@UCONTACT1>, has been told" in text
    assert "Token Desk *disabled* the token" in text and "marked *leaked*" in text
    assert interactive(payload) == []


def test_the_alert_of_a_previous_secret_says_the_current_one_is_not_affected() -> None:
    message = leaks.leak_alert(
        report("previous"), channel=CHANNEL, permalink=None, poster=None, disabled=False
    )
    text = all_text(checked(message, permalink=None))
    assert "its previous secret was posted" in text and "current secret is not affected" in text


# -- the DM after Reset now or Disable now ------------------------------------------------


def test_after_disable_now_the_dm_keeps_reset_now_while_the_token_is_leaked() -> None:
    disabled = leaked(name=HOSTILE, enabled=False, row_version=4)
    notice = notices.disabled_after_leak(disabled, changed=True)
    payload = checked(leaks.leak_dm_update(disabled, notice=notice.text), permalink=None)
    assert payload["text"] == notice.text
    assert block_in(payload, "headline")["text"]["text"] == notice.text
    text = all_text(payload)
    assert "is disabled." in text and "Still marked *leaked*" in text
    assert buttons(payload) == [(ActionId.LEAK_RESET, "1:4")]


def test_after_reset_now_the_dm_shows_the_token_without_buttons() -> None:
    reset = token(name=HOSTILE, reset_at=WHEN, row_version=5)
    notice = notices.reset_after_leak(reset)
    payload = checked(leaks.leak_dm_update(reset, notice=notice.text), permalink=None)
    text = all_text(payload)
    assert "is enabled." in text and "The secret posted in Slack no longer works" in text
    assert "leaked*" not in text and interactive(payload) == []


def test_an_update_of_a_leaked_enabled_token_keeps_both_buttons() -> None:
    payload = checked(leaks.leak_dm_update(leaked(row_version=6), notice="Done."), permalink=None)
    assert buttons(payload) == [(ActionId.LEAK_RESET, "1:6"), (ActionId.LEAK_DISABLE, "1:6")]


def test_an_update_of_a_gone_token_says_so() -> None:
    notice = notices.TOKEN_GONE
    payload = checked(leaks.leak_dm_update(None, notice=notice), permalink=None)
    assert "no longer exists" in all_text(payload) and interactive(payload) == []


def test_the_updated_dm_fits_with_the_longest_name() -> None:
    longest = leaked(name=LONGEST_NAME)
    notice = notices.disabled_after_leak(replace(longest, enabled=False), changed=True)
    checked(leaks.leak_dm_update(longest, notice=notice.text), permalink=None)
