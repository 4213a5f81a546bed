"""App Home's builders, pure: both views checked against Slack's limits for a home view."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from bot.blocks.home import REASONS, manager_home, no_role_home
from bot.blocks.token_list import Notice, render_token_list
from bot.list_view import ListView
from slack_standin.blockkit import check_view
from slack_standin.client import action_for
from storage.models import Attention, AttentionItem, HomeSummary, Token, TokenPage
from tests.bot.blocks.samples import HOSTILE, WHEN, token
from tests.bot.blocks.test_token_list import LONGEST_NOTICE, worst_card
from tests.bot.blockwalk import (
    all_text,
    assert_harmless,
    block,
    block_in,
    card_ids,
    card_names,
    cards,
    create_action,
    interactive,
    notice_of,
    text_objects,
)

QUIET = HomeSummary(
    enabled=4,
    disabled=0,
    expired=0,
    expiring_soon=0,
    in_grace=0,
    leaked=0,
    unused=0,
    without_expiry=0,
)
BUSY = HomeSummary(
    enabled=1_234,
    disabled=56,
    expired=7,
    expiring_soon=8,
    in_grace=9,
    leaked=2,
    unused=310,
    without_expiry=45,
)


def home(
    attention: list[AttentionItem] | None = None,
    *,
    summary: HomeSummary = QUIET,
    expiry_required: bool = False,
    api_access: bool = True,
    notice: Notice | None = None,
) -> dict[str, Any]:
    view = manager_home(
        summary=summary,
        attention=attention or [],
        newest_version="v3",
        now=WHEN,
        expiry_required=expiry_required,
        api_access=api_access,
        notice=notice,
    )
    assert home_view_problems(view) == []
    return view


def home_view_problems(view: dict[str, Any]) -> list[str]:
    """What Slack would refuse in `view` given to views.publish."""
    problems = check_view(view)
    if view.get("type") != "home":
        problems.append(f"a {view.get('type')!r} view, not a home view")
    problems += [f"a home view has no {key}" for key in ("title", "submit", "close") if key in view]
    if len(view["blocks"]) > 100:
        problems.append(f"{len(view['blocks'])} blocks")
    if len(view.get("private_metadata", "")) > 3000:
        problems.append("private_metadata too long")
    return problems


def item(number: int, reason: Attention = Attention.EXPIRING, **fields: Any) -> AttentionItem:
    return AttentionItem(token=token(number, **fields), reason=reason)


def ids(view: dict[str, Any]) -> list[str | None]:
    return [b.get("block_id") for b in view["blocks"]]


def card_texts(view: dict[str, Any]) -> list[str]:
    return [found.text for found in cards(view["blocks"])]


def summary_lines(view: dict[str, Any]) -> list[str]:
    return [field["text"] for field in block_in(view, "summary")["fields"]]


# -- the manager's Home -----------------------------------------------------------------------


@pytest.mark.parametrize("in_grace", [False, True])
def test_ten_cards_at_their_longest_fit_a_home_view(in_grace: bool) -> None:
    """The longest notice, the banner, every count, ten cards with the longest names and
    every line at its longest (three presenters of an old secret each), escaped the most:
    within a home view's limits."""
    reasons = list(Attention)
    attention = [
        AttentionItem(token=worst_card(number, in_grace=in_grace), reason=reasons[number % 6])
        for number in range(10)
    ]
    view = home(
        attention,
        summary=BUSY,
        expiry_required=True,
        api_access=False,
        notice=Notice(LONGEST_NOTICE.text, offer_reset=attention[0].token),
    )
    assert len(view["blocks"]) == 58
    assert all(text.count("; ") >= 2 for text in card_texts(view))
    assert card_ids(view["blocks"]) == list(range(10))
    assert_harmless(view)


def test_the_view_is_a_home_view_with_its_callback_id() -> None:
    view = home([item(1)])
    assert view["type"] == "home"
    assert view["callback_id"] == "home"
    assert "private_metadata" not in view


def test_the_order_a_manager_reads() -> None:
    view = home([item(1)], api_access=False, notice=Notice("*Token 9* deleted"))
    assert ids(view)[:5] == ["title", "notice", "banner", "summary", "create"]
    assert block_in(view, "title")["text"]["text"] == "API Access Tokens"
    assert ids(view)[5] == "attention"
    attention = block_in(view, "attention")
    assert (attention["type"], attention["text"]["text"]) == ("header", "Needs attention")
    assert ids(view)[-1] == "footer"
    assert "`/tokens`" in block_in(view, "footer")["elements"][0]["text"]


def test_cards_keep_the_order_given_each_under_its_reason() -> None:
    attention = [
        item(5, Attention.LEAKED, leaked_at=WHEN),
        item(2, Attention.EXPIRED),
        item(9, Attention.UNUSED),
    ]
    blocks = home(attention)["blocks"]
    assert card_ids(blocks) == [5, 2, 9]
    for token_id in (5, 2, 9):
        reason = ids({"blocks": blocks}).index(f"reason.{token_id}")
        assert blocks[reason]["type"] == "context"
        assert blocks[reason + 1]["block_id"] == f"card.{token_id}"


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        (Attention.LEAKED, ":rotating_light: *Leaked*"),
        (Attention.EXPIRED, "*Expired*"),
        (Attention.EXPIRING, "*Expiring within 7 days*"),
        (Attention.OLD_SECRET_PRESENTED, ":mag: *Old secret still presented*"),
        (Attention.UNUSED, "*Unused for 30 days or never used*"),
        (Attention.NO_EXPIRY, "*No expiry* while a maximum lifetime is set"),
    ],
)
def test_each_reason_has_its_line(reason: Attention, says: str) -> None:
    view = home([item(3, reason)], expiry_required=True)
    line = block_in(view, "reason.3")["elements"][0]
    assert line["type"] == "mrkdwn"
    assert line["text"] == REASONS[reason]
    assert says in line["text"]


def test_at_most_ten_cards_whatever_is_given() -> None:
    view = home([item(number) for number in range(25)])
    assert card_ids(view["blocks"]) == list(range(10))


def test_every_reason_has_a_distinct_line() -> None:
    assert set(REASONS) == set(Attention)
    assert len(set(REASONS.values())) == len(Attention)


@pytest.mark.parametrize("expiry_required", [False, True])
@pytest.mark.parametrize(
    "card_token",
    [
        token(4, api_version="v2", last_used_at=WHEN),
        token(4, enabled=False, leaked_at=WHEN),
        token(
            4,
            expires_on=WHEN.date() + timedelta(days=20),
            previous_secret_hint="Zz99",
            previous_until=WHEN + timedelta(days=1),
        ),
    ],
)
def test_a_card_is_the_lists_card(card_token: Token, expiry_required: bool) -> None:
    """Same fields, menu, Edit and End grace now as the list's card of the token."""
    view = home([AttentionItem(card_token, Attention.UNUSED)], expiry_required=expiry_required)
    listed = render_token_list(
        page=TokenPage(tokens=(card_token,), total=1, offset=0),
        view=ListView(),
        newest_version="v3",
        api_access=True,
        now=WHEN,
        expiry_required=expiry_required,
        nonce="n0nce",
    ).as_dict()
    for block_id in ("card.4", "details.4", "edit.4"):
        assert block_in(view, block_id) == block_in(listed, block_id)


def test_a_card_can_be_acted_on_from_home() -> None:
    blocks = home([item(6)])["blocks"]
    menu = action_for(blocks, "token_menu", "reset:6:3", block_id="details.6")
    assert menu["selected_option"]["value"] == "reset:6:3"
    assert action_for(blocks, "token_edit", block_id="edit.6")["value"] == "6:3"
    assert create_action(blocks)["action_id"] == "token_create"


@pytest.mark.parametrize("name", [HOSTILE, "*bold* _x_ ~y~ `z`", "🚀" * 100, "مرحبا بالعالم"])
def test_hostile_names_stay_plain_text(name: str) -> None:
    view = home([item(1, name=name)], notice=Notice("done", offer_reset=token(1, name=name)))
    assert card_names(view["blocks"]) == [name]
    assert_harmless(view)
    assert all(
        name not in found["text"] for found in text_objects(view) if found["type"] == "mrkdwn"
    )


def test_nothing_needing_attention_says_all_is_well() -> None:
    view = home([])
    assert block_in(view, "attention") == {
        "type": "section",
        "block_id": "attention",
        "text": {
            "type": "mrkdwn",
            "text": ":white_check_mark: *Nothing needs attention*",
            "verbatim": True,
        },
    }
    assert card_ids(view["blocks"]) == []
    assert "Needs attention" not in all_text(view)
    assert block(view["blocks"], "create") is not None


def test_the_notice_may_offer_a_reset() -> None:
    plain = home([item(1)], notice=Notice("*Token 1* disabled"))
    offering = home([item(1)], notice=Notice("*Token 4* enabled", offer_reset=token(4)))
    assert notice_of(plain["blocks"]) == "*Token 1* disabled"
    assert "accessory" not in block_in(plain, "notice")
    button = block_in(offering, "notice")["accessory"]
    assert (button["text"]["text"], button["action_id"], button["value"]) == (
        "Reset now",
        "token_reset_now",
        "4:3",
    )
    assert block(home([item(1)])["blocks"], "notice") is None


def test_the_banner_shows_only_while_api_access_is_off() -> None:
    off = home([], api_access=False)
    assert block_in(off, "banner")["accessory"]["action_id"] == "api_access_enable"
    assert "API access is off" in block_in(off, "banner")["text"]["text"]
    assert block(home([])["blocks"], "banner") is None


def test_the_summary_shows_every_count_there_is() -> None:
    assert summary_lines(home(summary=BUSY, expiry_required=True)) == [
        ":large_green_circle: *1,234* enabled",
        ":white_circle: *56* disabled",
        ":rotating_light: *2* leaked",
        ":octagonal_sign: *7* expired",
        ":hourglass_flowing_sand: *8* expiring within 7 days",
        ":hourglass: *9* in a grace window",
        ":zzz: *310* unused for 30 days or never used",
        ":warning: *45* without expiry",
    ]


def test_the_summary_leaves_out_the_zeros_but_enabled_and_disabled() -> None:
    assert summary_lines(home(summary=QUIET, expiry_required=True)) == [
        ":large_green_circle: *4* enabled",
        ":white_circle: *0* disabled",
    ]
    nothing = replace(QUIET, enabled=0)
    assert summary_lines(home(summary=nothing)) == [
        ":large_green_circle: *0* enabled",
        ":white_circle: *0* disabled",
    ]


def test_without_expiry_counts_only_while_a_maximum_is_set() -> None:
    assert not any("without expiry" in line for line in summary_lines(home(summary=BUSY)))
    required = summary_lines(home(summary=BUSY, expiry_required=True))
    assert ":warning: *45* without expiry" in required


# -- the Home of someone without a role -------------------------------------------------------


def test_no_role_home_names_the_only_administrator() -> None:
    view = no_role_home(admins=["UADMIN1"])
    assert home_view_problems(view) == []
    assert view["callback_id"] == "home"
    assert ids(view) == ["title", "about", "admins", "access"]
    assert block_in(view, "admins")["text"]["text"] == "*Account Administrators*: <@UADMIN1>"
    text = all_text(view)
    assert "Token Desk" in text and "API access tokens" in text
    assert "ask an Account Administrator for a role" in text
    assert "Implementation Specialist" in text


def test_no_role_home_without_administrators_says_so() -> None:
    view = no_role_home(admins=[])
    assert home_view_problems(view) == []
    assert "there is no Account Administrator yet" in block_in(view, "admins")["text"]["text"]


def test_no_role_home_names_many_administrators_once_each() -> None:
    view = no_role_home(admins=["UADMIN1", "UADMIN2", "UADMIN1", "WADMIN3"])
    assert home_view_problems(view) == []
    assert block_in(view, "admins")["text"]["text"] == (
        "*Account Administrators*: <@UADMIN1>, <@UADMIN2>, <@WADMIN3>"
    )


def test_no_role_home_with_very_many_administrators_stays_within_a_section() -> None:
    admins = [f"U{number:010d}" for number in range(1000)]
    view = no_role_home(admins=admins)
    assert home_view_problems(view) == []
    text = block_in(view, "admins")["text"]["text"]
    shown = text.count("<@U")
    assert 100 < shown < 1000
    assert text.endswith(f" and {1000 - shown} more")


def test_no_role_home_shows_no_token_data_and_nothing_to_act_on() -> None:
    view = no_role_home(admins=["UADMIN1"], notice="You no longer hold a role.")
    assert home_view_problems(view) == []
    assert interactive(view) == []
    assert card_ids(view["blocks"]) == []
    assert block(view["blocks"], "summary") is None
    assert notice_of(view["blocks"]) == "You no longer hold a role."
    assert ids(view)[:2] == ["title", "notice"]


def test_no_role_home_escapes_what_is_not_a_user_id() -> None:
    view = no_role_home(admins=[HOSTILE])
    assert home_view_problems(view) == []
    assert_harmless(view)
