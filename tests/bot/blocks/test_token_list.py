"""The list builder, pure: no I/O, output compared and checked against Slack's limits."""

from __future__ import annotations

from typing import Any

import pytest

from bot.blocks.token_list import Notice, render_token_list
from bot.inputs.payloads import view_from_state
from bot.list_view import ListView
from slack_standin.blockkit import check_message
from slack_standin.client import fill
from storage.models import CreatedOn, Token, TokenFilter, TokenPage, TokenState
from tests.bot.blocks.samples import WHEN, token
from tests.bot.blockwalk import block_in, mrkdwn_texts


def render(
    tokens: list[Token],
    *,
    total: int | None = None,
    offset: int = 0,
    view: ListView | None = None,
    api_access: bool = True,
    notice: Notice | None = None,
) -> dict[str, Any]:
    page = TokenPage(
        tokens=tuple(tokens), total=len(tokens) if total is None else total, offset=offset
    )
    message = render_token_list(
        page=page,
        view=view or ListView(offset=offset),
        newest_version="v3",
        api_access=api_access,
        notice=notice,
        nonce="n0nce",
    )
    return message.as_dict()


def test_the_worst_case_fits_slacks_limits() -> None:
    hostile = "🚀" * 100
    tokens = [
        token(
            number,
            name=hostile[: 100 - len(str(number))] + str(number),
            access_rights=tuple(f"scope{n:02d}:{'x' * 25}" for n in range(100)),
            api_version="v1",
            state=TokenState.DISABLED,
            last_used_at=WHEN,
        )
        for number in range(10)
    ]
    message = render(
        tokens,
        total=9_999_999,
        offset=9_999_980,
        view=ListView(
            filters=TokenFilter(
                name="x" * 100, created_on=CreatedOn.LAST_30_DAYS, state=TokenState.DISABLED
            ),
            offset=9_999_980,
        ),
        api_access=False,
        notice=Notice("n" * 2900, offer_reset=tokens[0]),
    )
    assert len(message["blocks"]) <= 50
    assert check_message(message) == []


def test_a_card_shows_every_field() -> None:
    message = render([token(7, api_version="v2", last_used_at=WHEN)])
    header = block_in(message, "card.7")
    assert header["type"] == "header"
    assert header["text"] == {"type": "plain_text", "text": "Token 7", "emoji": False}
    details = block_in(message, "details.7")["text"]
    assert details["verbatim"] is True
    text = details["text"]
    for expected in (
        "TD00000000000000000007",
        "Enabled",
        "`v2` (upgrade to `v3` available)",
        "`reports:read`",
        "<!date^1793525400^{date_short_pretty}|2026-11-01>",
        "by <@UCREATOR1>",
        "*Last used* <!date^1793525400^{ago}|2026-11-01 09:30 UTC>",
        "ends in `Ab9Z`",
        "<@UCONTACT1>",
    ):
        assert expected in text
    edit = block_in(message, "edit.7")["elements"][0]
    assert (edit["action_id"], edit["value"]) == ("token_edit", "7:3")


def test_a_card_never_used_says_so_and_a_newest_version_has_no_marker() -> None:
    text = block_in(render([token()]), "details.1")["text"]["text"]
    assert "*Last used* never" in text
    assert "upgrade" not in text


def test_the_menu_holds_the_five_actions_in_order() -> None:
    enabled = block_in(render([token()]), "details.1")["accessory"]
    disabled = block_in(render([token(state=TokenState.DISABLED)]), "details.1")["accessory"]
    assert enabled["type"] == "overflow"
    assert [option["text"]["text"] for option in enabled["options"]] == [
        "Duplicate",
        "Reset",
        "Upgrade Version",
        "Disable",
        "Delete",
    ]
    assert [option["value"] for option in disabled["options"]] == [
        "duplicate:1:3",
        "reset:1:3",
        "upgrade:1:3",
        "enable:1:3",
        "delete:1:3",
    ]
    assert disabled["options"][3]["text"]["text"] == "Enable"


def test_many_access_rights_are_shortened() -> None:
    rights = ("a:1", "b:2", "c:3", "d:4", "e:5")
    text = block_in(render([token(access_rights=rights)]), "details.1")["text"]["text"]
    assert "`a:1`, `b:2`, `c:3` +2 more" in text


@pytest.mark.parametrize(
    "name",
    ["<!channel> & <@U1>", "*bold* _x_ ~y~ `z`", "<https://evil.example|click>", "مرحبا بالعالم"],
)
def test_hostile_names_stay_plain_text(name: str) -> None:
    message = render([token(name=name)], notice=None)
    assert block_in(message, "card.1")["text"]["text"] == name
    for text in mrkdwn_texts(message):
        assert name not in text
        assert "<!channel>" not in text and "<@U1>" not in text and "<https://evil" not in text


def test_the_banner_shows_only_while_api_access_is_off() -> None:
    off = render([token()], api_access=False)
    assert block_in(off, "banner")["accessory"]["action_id"] == "api_access_enable"
    assert all(b.get("block_id") != "banner" for b in render([token()])["blocks"])


def test_the_notice_area_comes_first_after_the_header() -> None:
    message = render([token()], notice=Notice("*Token 1* disabled"))
    ids = [b.get("block_id") for b in message["blocks"]]
    assert ids[:3] == ["title", "notice", "create"]
    assert "accessory" not in block_in(message, "notice")


def test_a_notice_may_offer_a_reset() -> None:
    notice = block_in(render([token(4)], notice=Notice("enabled", offer_reset=token(4))), "notice")
    assert notice["accessory"]["text"]["text"] == "Reset now"
    assert (notice["accessory"]["action_id"], notice["accessory"]["value"]) == (
        "token_reset_now",
        "4:3",
    )


def test_the_pager_offers_only_the_pages_that_exist() -> None:
    tokens = [token(number) for number in range(10)]
    first = render(tokens, total=25)
    middle = render(tokens, total=25, offset=10)
    last = render(tokens[:5], total=25, offset=20)
    single = render(tokens[:3])
    pager = lambda message: [  # noqa: E731
        (button["text"]["text"], button["value"])
        for button in block_in(message, "pager")["elements"]
    ]
    assert pager(first) == [("Next", "10")]
    assert pager(middle) == [("Previous", "0"), ("Next", "20")]
    assert pager(last) == [("Previous", "10")]
    assert block_in(middle, "range")["elements"][0]["text"] == "11–20 of 25"
    assert all(b.get("block_id") != "pager" for b in single["blocks"])
    assert middle["text"] == "API Access Tokens: 11–20 of 25"


def test_empty_states_say_what_to_do_next() -> None:
    nothing = block_in(render([]), "empty")
    no_match = block_in(render([], view=ListView(filters=TokenFilter(name="zz"))), "empty")
    assert "No tokens yet" in nothing["text"]["text"]
    assert nothing["accessory"]["action_id"] == "token_create"
    assert "No tokens match" in no_match["text"]["text"]
    assert no_match["accessory"]["action_id"] == "filters_clear"


def test_filters_show_their_values_and_carry_the_page() -> None:
    view = ListView(
        filters=TokenFilter(
            name="alpha", created_on=CreatedOn.LAST_7_DAYS, state=TokenState.DISABLED
        ),
        offset=20,
    )
    message = render([token()], total=30, offset=20, view=view)
    search = block_in(message, "search.20.n0nce")
    assert search["dispatch_action"] is True
    assert search["element"]["initial_value"] == "alpha"
    selects = block_in(message, "filters.20.n0nce")["elements"]
    assert selects[0]["initial_option"]["text"]["text"] == "Last 7 days"
    assert selects[1]["initial_option"]["text"]["text"] == "Disabled"
    assert selects[2]["action_id"] == "filters_clear"
    assert view_from_state(fill(message["blocks"], {})) == view


def test_cleared_filters_show_placeholders_only() -> None:
    message = render([token()])
    search = block_in(message, "search.0.n0nce")
    assert "initial_value" not in search["element"]
    selects = block_in(message, "filters.0.n0nce")["elements"]
    assert [s["placeholder"]["text"] for s in selects[:2]] == ["Created On", "State"]
    assert all("initial_option" not in s for s in selects[:2])
    assert view_from_state(fill(message["blocks"], {})) == ListView()


def test_what_the_user_picks_is_read_back() -> None:
    blocks = render([token()])["blocks"]
    values = fill(
        blocks,
        {"filter_name": "  Beta ", "filter_created": "more_than_30_days", "filter_state": "any"},
    )
    assert view_from_state(values) == ListView(
        filters=TokenFilter(name="Beta", created_on=CreatedOn.MORE_THAN_30_DAYS)
    )


@pytest.mark.parametrize(
    "values",
    [
        None,
        "text",
        {"filters.x.y": {}},
        {"filters.99999999999.n": {"filter_state": {"selected_option": {"value": "enabled"}}}},
        {"b": {"filter_created": {"selected_option": {"value": "yesterday"}}}},
        {"b": {"filter_name": {"value": 42}}},
        {"b": {"filter_state": {"selected_option": "enabled"}}},
    ],
)
def test_malformed_state_means_no_filter(values: Any) -> None:
    view = view_from_state(values)
    assert view.offset == 0
    assert view.filters.created_on is None and view.filters.name == ""
