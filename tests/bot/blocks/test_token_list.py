"""The list builder, pure: no I/O, output compared and checked against Slack's limits."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from bot.blocks import notices
from bot.blocks.token_list import (
    ADDRESS_SHOWN,
    PRESENTERS_SHOWN,
    USER_AGENT_SHOWN,
    Notice,
    render_token_list,
)
from bot.inputs.payloads import view_from_state
from bot.list_view import ListView
from slack_standin.blockkit import check_message
from slack_standin.client import fill
from storage.models import (
    IDLE,
    LEAKED,
    CreatedOn,
    LastUsedFilter,
    Presenter,
    RetiredSummary,
    StateFilter,
    Token,
    TokenFilter,
    TokenPage,
)
from tests.bot.blocks.samples import WHEN, token
from tests.bot.blockwalk import assert_harmless, block_in, mrkdwn_texts


def render(
    tokens: list[Token],
    *,
    total: int | None = None,
    offset: int = 0,
    view: ListView | None = None,
    api_access: bool = True,
    notice: Notice | None = None,
    now: datetime = WHEN,
    expiry_required: bool = False,
) -> dict[str, Any]:
    page = TokenPage(
        tokens=tuple(tokens), total=len(tokens) if total is None else total, offset=offset
    )
    message = render_token_list(
        page=page,
        view=view or ListView(offset=offset),
        newest_version="v3",
        api_access=api_access,
        now=now,
        expiry_required=expiry_required,
        notice=notice,
        nonce="n0nce",
    )
    return message.as_dict()


# The longest notice Token Desk writes: a name of a hundred `&`, escaped five times over.
LONGEST_NOTICE = notices.stale_card(token(name="&" * 100, updated_by="UCHANGER1"))
# Five distinct presenters of an old secret, every field at its longest and escaped the most.
HOSTILE_PRESENTERS = tuple(
    Presenter(address=f"{n}" + "&" * 63, user_agent="<" * 200, at=WHEN) for n in range(5)
)


def worst_card(number: int, *, in_grace: bool) -> Token:
    """A card with every line at its longest: leaked, disabled by Token Desk or in a grace
    window (a token cannot be both), and an old secret presented by many."""
    kind: dict[str, Any] = (
        {
            "previous_secret_hint": "Zz99",
            "previous_until": WHEN + timedelta(days=2),
            "previous_last_used_at": WHEN,
        }
        if in_grace
        else {"enabled": False, "disabled_reason": IDLE}
    )
    return token(
        number,
        name=("🚀" * 100)[: 100 - len(str(number))] + str(number),
        access_rights=tuple(f"scope{n:02d}:{'x' * 25}" for n in range(100)),
        api_version="v1",
        expires_on=WHEN.date() + timedelta(days=3),
        last_used_at=WHEN,
        leaked_at=WHEN,
        retired=RetiredSummary(
            presented=9_999_999, last_presented_at=WHEN, presenters=HOSTILE_PRESENTERS
        ),
        **kind,
    )


@pytest.mark.parametrize("in_grace", [False, True])
def test_the_worst_case_fits_slacks_limits(in_grace: bool) -> None:
    """Banner, the longest notice, every filter set, ten cards at their longest, the pager:
    within 50 blocks and Slack's cap on a message's text."""
    tokens = [worst_card(number, in_grace=in_grace) for number in range(10)]
    message = render(
        tokens,
        total=9_999_999,
        offset=9_999_980,
        view=ListView(
            filters=TokenFilter(
                name="x" * 100,
                created_on=CreatedOn.LAST_30_DAYS,
                state=StateFilter.EXPIRING_SOON,
                last_used=LastUsedFilter.NOT_90_DAYS,
            ),
            offset=9_999_980,
        ),
        api_access=False,
        notice=Notice(LONGEST_NOTICE.text, offer_reset=tokens[0]),
        expiry_required=True,
    )
    assert len(message["blocks"]) <= 50
    assert check_message(message) == []
    assert_harmless(message)
    grace_buttons = [
        element
        for b in message["blocks"]
        if b["type"] == "actions"
        for element in b["elements"]
        if element["action_id"] == "token_end_grace"
    ]
    assert len(grace_buttons) == (10 if in_grace else 0)


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
    disabled = block_in(render([token(enabled=False)]), "details.1")["accessory"]
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


def test_a_leaked_token_offers_no_enable_only_reset() -> None:
    enabled = block_in(render([token(leaked_at=WHEN)]), "details.1")["accessory"]
    disabled = block_in(render([token(leaked_at=WHEN, enabled=False)]), "details.1")["accessory"]
    assert [option["value"] for option in enabled["options"]] == [
        "duplicate:1:3",
        "reset:1:3",
        "upgrade:1:3",
        "disable:1:3",
        "delete:1:3",
    ]
    assert [option["value"] for option in disabled["options"]] == [
        "duplicate:1:3",
        "reset:1:3",
        "upgrade:1:3",
        "delete:1:3",
    ]


def test_a_leaked_token_says_so_first_and_keeps_its_state() -> None:
    text = details(token(leaked_at=WHEN - timedelta(hours=2)))
    since = int((WHEN - timedelta(hours=2)).timestamp())
    first = text.split("\n")[0]
    assert first == (
        f":rotating_light: *Leaked in Slack* <!date^{since}^{{date_short_pretty}}|2026-11-01>"
        " — Reset it now"
    )
    assert state_of(text) == "Enabled"
    assert "Leaked" not in details(token())


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
            name="alpha",
            created_on=CreatedOn.LAST_7_DAYS,
            state=StateFilter.DISABLED,
            last_used=LastUsedFilter.NEVER,
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
    assert selects[2]["initial_option"]["text"]["text"] == "Never used"
    assert selects[3]["action_id"] == "filters_clear"
    assert view_from_state(fill(message["blocks"], {})) == view


def test_cleared_filters_show_placeholders_only() -> None:
    message = render([token()])
    search = block_in(message, "search.0.n0nce")
    assert "initial_value" not in search["element"]
    selects = block_in(message, "filters.0.n0nce")["elements"]
    assert [s["placeholder"]["text"] for s in selects[:3]] == ["Created On", "State", "Last used"]
    assert all("initial_option" not in s for s in selects[:3])
    assert view_from_state(fill(message["blocks"], {})) == ListView()


def test_what_the_user_picks_is_read_back() -> None:
    blocks = render([token()])["blocks"]
    values = fill(
        blocks,
        {
            "filter_name": "  Beta ",
            "filter_created": "more_than_30_days",
            "filter_state": "any",
            "filter_last_used": "not_30_days",
        },
    )
    assert view_from_state(values) == ListView(
        filters=TokenFilter(
            name="Beta",
            created_on=CreatedOn.MORE_THAN_30_DAYS,
            last_used=LastUsedFilter.NOT_30_DAYS,
        )
    )


def test_the_filters_offer_every_state_and_last_use() -> None:
    selects = block_in(render([token()]), "filters.0.n0nce")["elements"]
    options = {
        s["action_id"]: [(o["value"], o["text"]["text"]) for o in s["options"]] for s in selects[:3]
    }
    assert options["filter_state"] == [
        ("any", "Any state"),
        ("enabled", "Enabled"),
        ("expired", "Expired"),
        ("disabled", "Disabled"),
        ("expiring_soon", "Expiring soon"),
    ]
    assert options["filter_last_used"] == [
        ("any", "Any last use"),
        ("never", "Never used"),
        ("not_30_days", "Not in 30 days"),
        ("not_90_days", "Not in 90 days"),
    ]


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
        {"b": {"filter_state": {"selected_option": {"value": "Enabled"}}}},
        {"b": {"filter_last_used": {"selected_option": {"value": "not_7_days"}}}},
        {"b": {"filter_last_used": {"selected_option": {"value": ["never"]}}}},
    ],
)
def test_malformed_state_means_no_filter(values: Any) -> None:
    view = view_from_state(values)
    assert view.offset == 0
    assert view.filters.created_on is None and view.filters.name == ""
    assert view.filters.last_used is None


# -- expiry on the card -----------------------------------------------------------------------


def details(card_token: Token, **options: Any) -> str:
    return str(block_in(render([card_token], **options), "details.1")["text"]["text"])


def state_of(text: str) -> str:
    return text.split("*State* ")[1].split(" ")[0]


def stop_date(day: date) -> str:
    """How a card shows the stop instant of a token working through `day`."""
    stops = datetime.combine(day + timedelta(days=1), datetime.min.time(), WHEN.tzinfo)
    tokens = "{date_short_pretty} {time}"
    return f"<!date^{int(stops.timestamp())}^{tokens}|{stops:%Y-%m-%d} 00:00 UTC>"


def test_a_card_without_expiry_is_flagged_only_while_a_maximum_is_set() -> None:
    uncapped = details(token())
    capped = details(token(), expiry_required=True)
    assert "*Works until* no expiry" in uncapped and ":warning:" not in uncapped
    assert ":warning: *No expiry*" in capped
    assert state_of(capped) == "Enabled"


def test_a_distant_expiry_shows_the_stop_instant_unmarked() -> None:
    day = WHEN.date() + timedelta(days=30)
    text = details(token(expires_on=day))
    assert f"*Works until* {stop_date(day)}" in text
    assert ":hourglass" not in text and state_of(text) == "Enabled"


@pytest.mark.parametrize(("days", "marked"), [(0, True), (6, True), (7, False), (8, False)])
def test_an_expiry_a_week_away_or_less_is_marked(days: int, marked: bool) -> None:
    """Seven days from now (09:30 UTC): a token working through today + 6 stops before
    then, one working through today + 7 after."""
    day = WHEN.date() + timedelta(days=days)
    text = details(token(expires_on=day))
    assert (f":hourglass_flowing_sand: *Works until {stop_date(day)}*" in text) is marked
    assert (f"*Works until* {stop_date(day)}" in text) is not marked
    assert state_of(text) == "Enabled"


@pytest.mark.parametrize(
    ("seconds", "state"), [(-1, "Enabled"), (0, "Expired"), (1, "Expired"), (86_400, "Expired")]
)
def test_a_token_expires_at_its_stop_instant(seconds: int, state: str) -> None:
    """It works through its date and stops at the next 00:00 UTC."""
    day = date(2026, 12, 31)
    stops = datetime(2027, 1, 1, tzinfo=WHEN.tzinfo)
    text = details(token(expires_on=day), now=stops + timedelta(seconds=seconds))
    assert state_of(text) == state
    assert ("*Stopped*" in text) is (state == "Expired")


def test_disabled_wins_over_expired() -> None:
    expired = token(expires_on=WHEN.date() - timedelta(days=1), enabled=False)
    text = details(expired)
    assert state_of(text) == "Disabled" and "*Stopped*" in text
    assert "Disabled by Token Desk" not in text


def test_a_token_disabled_for_being_unused_says_so() -> None:
    idle = token(enabled=False, disabled_reason=IDLE, last_active_at=WHEN - timedelta(days=90))
    text = details(idle)
    since = int((WHEN - timedelta(days=90)).timestamp())
    assert f":zzz: *Disabled by Token Desk*: unused since <!date^{since}^" in text
    assert state_of(text) == "Disabled"
    assert "Disabled by Token Desk" not in details(token(disabled_reason=IDLE))


def test_a_token_disabled_for_its_leak_says_so() -> None:
    text = details(token(enabled=False, disabled_reason=LEAKED, leaked_at=WHEN))
    assert ":no_entry: *Disabled by Token Desk*: its secret was posted in Slack" in text
    assert state_of(text) == "Disabled"
    assert "Disabled by Token Desk" not in details(token(disabled_reason=LEAKED))


def test_every_expiry_state_fits_slacks_limits() -> None:
    today = WHEN.date()
    tokens = [
        token(1),
        token(2, expires_on=today + timedelta(days=300)),
        token(3, expires_on=today + timedelta(days=2)),
        token(4, expires_on=today - timedelta(days=2)),
        token(5, expires_on=today - timedelta(days=2), enabled=False),
        token(6, enabled=False, disabled_reason=IDLE),
    ]
    message = render(tokens, expiry_required=True)
    assert check_message(message) == []
    assert_harmless(message)


# -- a grace window and old secrets on the card ------------------------------------------------


def in_grace(**overrides: Any) -> Token:
    """A token a Reset left a previous secret, working for two more hours at WHEN."""
    fields: dict[str, Any] = {
        "previous_secret_hint": "Qw12",
        "previous_until": WHEN + timedelta(hours=2),
        "row_version": 5,
    }
    return token(**(fields | overrides))


def buttons(message: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (element["text"]["text"], element["action_id"], element["value"])
        for element in block_in(message, "edit.1")["elements"]
    ]


def test_a_grace_window_shows_until_when_and_offers_to_end_it() -> None:
    until = int((WHEN + timedelta(hours=2)).timestamp())
    message = render([in_grace()])
    text = block_in(message, "details.1")["text"]["text"]
    assert f":hourglass: *Previous secret works until* <!date^{until}^" in text
    assert "ends in `Qw12`" in text and "not used since the reset" in text
    assert buttons(message) == [
        ("Edit", "token_edit", "1:5"),
        ("End grace now", "token_end_grace", "1:5"),
    ]
    assert check_message(message) == []


def test_the_previous_secrets_last_use_is_shown() -> None:
    used = WHEN - timedelta(minutes=5)
    text = details(in_grace(previous_last_used_at=used))
    assert f"last used <!date^{int(used.timestamp())}^{{ago}}|" in text
    assert "not used since the reset" not in text


@pytest.mark.parametrize(
    "token_then",
    [
        token(),
        in_grace(previous_until=WHEN),
        in_grace(previous_until=WHEN - timedelta(seconds=1)),
        in_grace(expires_on=WHEN.date() - timedelta(days=1)),
    ],
    ids=["never reset with grace", "window ends now", "window ended", "token expired"],
)
def test_no_grace_line_nor_button_once_the_window_is_closed(token_then: Token) -> None:
    message = render([token_then])
    assert "Previous secret" not in block_in(message, "details.1")["text"]["text"]
    assert [label for label, _, _ in buttons(message)] == ["Edit"]


def test_an_old_secret_still_presented_names_the_count_when_and_who() -> None:
    presenters = (
        Presenter("203.0.113.7", "python-requests/2.31.0", WHEN),
        Presenter("203.0.113.7", "python-requests/2.31.0", WHEN - timedelta(minutes=1)),
        Presenter("2001:db8::1", "curl/8.4.0", WHEN - timedelta(minutes=2)),
    )
    summary = RetiredSummary(presented=1234, last_presented_at=WHEN, presenters=presenters)
    text = details(token(retired=summary))
    assert (
        ":mag: *Old secret still presented* 1,234 times,"
        f" last <!date^{int(WHEN.timestamp())}^{{ago}}|2026-11-01 09:30 UTC>,"
        " from 203.0.113.7 (python-requests/2.31.0); 2001:db8::1 (curl/8.4.0)"
    ) in text
    once = RetiredSummary(presented=1, last_presented_at=WHEN, presenters=presenters[:1])
    assert "presented* 1 time," in details(token(retired=once))
    assert "Old secret" not in details(token(retired=None))


def test_presenters_are_escaped_cut_and_counted() -> None:
    hostile = tuple(
        Presenter(f"<!channel>{n}" + "&" * 60, "<https://evil.example|x>" * 9, WHEN)
        for n in range(5)
    )
    summary = RetiredSummary(presented=5, last_presented_at=WHEN, presenters=hostile)
    message = render([token(retired=summary)])
    assert_harmless(message)
    text = block_in(message, "details.1")["text"]["text"]
    line = text.splitlines()[-1]
    assert f"+{5 - PRESENTERS_SHOWN} more" in line
    for shown in line.split(", from ")[1].split("; "):
        address, _, agent = shown.partition(" (")
        assert len(address) <= ADDRESS_SHOWN and address.endswith("…")
        assert len(agent.split(")")[0]) <= USER_AGENT_SHOWN
    # Cut between characters: every `&` left begins a whole entity.
    assert re.search(r"&(?!amp;|lt;|gt;)", line) is None
    missing = RetiredSummary(1, WHEN, (Presenter("", "", WHEN),))
    assert "from unknown address (no user agent)" in details(token(retired=missing))


def test_a_full_page_names_only_the_latest_presenter() -> None:
    tokens = [replace(worst_card(number, in_grace=True), leaked_at=None) for number in range(10)]
    full = render(tokens[:1])
    crowded = render(tokens, notice=LONGEST_NOTICE)
    first = block_in(full, "details.0")["text"]["text"]
    assert f"+{5 - PRESENTERS_SHOWN} more" in first
    assert "+4 more" in block_in(crowded, "details.0")["text"]["text"]
    assert check_message(crowded) == []


def test_a_full_page_of_the_longest_cards_names_no_presenter_but_counts_them() -> None:
    tokens = [worst_card(number, in_grace=True) for number in range(10)]
    crowded = render(tokens, notice=LONGEST_NOTICE)
    text = block_in(crowded, "details.0")["text"]["text"]
    assert text.endswith(
        ":mag: *Old secret still presented* 9,999,999 times, last"
        " <!date^1793525400^{ago}|2026-11-01 09:30 UTC>"
    )
    assert check_message(crowded) == []
