"""The modals, pure: the create/edit form, the confirmations, the secret view."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.blocks.modals import (
    EXPIRY_DATE_HINT,
    ExpiryOffer,
    GraceOffer,
    confirm_view,
    message_view,
    secret_view,
    token_form,
)
from bot.blocks.notices import Issued
from bot.ids import MenuChoice
from bot.inputs.modal_context import ModalContext
from bot.inputs.payloads import ChosenExpiry, chosen_expiry, chosen_grace
from bot.list_view import ListView
from slack_standin.blockkit import check_view
from slack_standin.client import fill
from storage.fields import DESCRIPTION_MAX, NAME_MAX
from storage.models import CreatedOn, IssuedToken, LastUsedFilter, StateFilter, TokenFilter
from tests.bot.blocks.samples import HOSTILE, token
from tests.bot.blockwalk import all_text, assert_harmless, block_in, blocks_of, interactive

SCOPES = tuple(f"scope{n:02d}:{'x' * 60}" for n in range(100))
SECRET = "tdk_" + "A" * 38
CONFIRMED = (MenuChoice.DUPLICATE, MenuChoice.RESET, MenuChoice.UPGRADE, MenuChoice.DELETE)
TODAY = date(2026, 11, 30)
NEW_SECRET = ExpiryOffer.for_new_secret(today=TODAY, max_lifetime_days=365, default_days=90)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def widest_context() -> ModalContext:
    """As much as a modal ever carries: a token, a response_url, a full filter."""
    return ModalContext.of(
        view=ListView(
            filters=TokenFilter(
                name="n" * 100,
                created_on=CreatedOn.MORE_THAN_30_DAYS,
                state=StateFilter.EXPIRING_SOON,
                last_used=LastUsedFilter.NOT_90_DAYS,
            ),
            offset=9_999_990,
        ),
        response_url="https://hooks.slack.com/actions/" + "x" * 900,
        now=1_800_000_000.0,
        token_id=2**53 - 1,
        row_version=2**53 - 1,
        action=MenuChoice.DUPLICATE,
    )


def as_dict(view: View) -> dict[str, Any]:
    return view.to_dict()


def test_the_create_form_offers_only_the_newest_version_and_fits_slacks_limits() -> None:
    form = as_dict(
        token_form(
            context=widest_context(),
            newest_version="2025-06",
            scopes=SCOPES,
            contact="UCONTACT1",
            expiry=NEW_SECRET,
            name=HOSTILE,
        )
    )
    assert check_view(form) == []
    labels = [b["label"]["text"] for b in blocks_of(form) if b["type"] == "input"]
    assert labels == [
        "Name",
        "Description",
        "API version",
        "Access rights",
        "Primary contact",
        "Works until",
        "Date",
    ]
    version = next(b for b in blocks_of(form) if b["block_id"] == "api_version")["element"]
    assert [o["value"] for o in version["options"]] == ["2025-06"]
    assert version["initial_option"]["value"] == "2025-06"
    name = next(b for b in blocks_of(form) if b["block_id"] == "name")["element"]
    assert name["initial_value"] == HOSTILE and name["max_length"] == NAME_MAX
    assert ModalContext.parse(form["private_metadata"]) == widest_context()
    assert (form["callback_id"], form["submit"]["text"]) == ("token_create", "Create")


def test_the_edit_form_is_prefilled_and_shows_the_version_read_only() -> None:
    hostile = token(
        name=HOSTILE,
        description="d" * DESCRIPTION_MAX,
        api_version="<v1>",
        access_rights=SCOPES[:3],
    )
    form = as_dict(
        token_form(
            context=widest_context(),
            newest_version="v3",
            scopes=SCOPES,
            contact=hostile.primary_contact,
            expiry=ExpiryOffer.for_edit(
                hostile, today=TODAY, max_lifetime_days=365, default_days=90
            ),
            token=hostile,
        )
    )
    assert check_view(form) == []
    assert_harmless(form)
    version = next(b for b in blocks_of(form) if b["block_id"] == "api_version")
    assert version["type"] == "context" and "`&lt;v1&gt;`" in all_text(version)
    rights = next(b for b in blocks_of(form) if b["block_id"] == "access_rights")["element"]
    assert [o["value"] for o in rights["initial_options"]] == list(SCOPES[:3])
    assert (form["callback_id"], form["submit"]["text"]) == ("token_edit", "Save")


@pytest.mark.parametrize("choice", CONFIRMED)
def test_each_confirmation_names_the_token_escaped(choice: MenuChoice) -> None:
    hostile = token(name=HOSTILE, api_version="<v1>")
    view = as_dict(
        confirm_view(
            choice,
            token=hostile,
            newest_version="<v3>",
            context=widest_context(),
            expiry=NEW_SECRET,
            grace=GraceOffer.for_reset(hostile, now=NOW) if choice is MenuChoice.RESET else None,
        )
    )
    assert check_view(view) == []
    issues_a_secret = choice in (MenuChoice.DUPLICATE, MenuChoice.RESET)
    assert any(b.get("block_id") == "expiry" for b in blocks_of(view)) is issues_a_secret
    assert_harmless(view)
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in all_text(view)
    assert view["callback_id"] == "token_confirm" and view["submit"] is not None
    if choice is MenuChoice.UPGRADE:
        assert "`&lt;v1&gt;` to `&lt;v3&gt;`" in all_text(view)


@pytest.mark.parametrize("refresh_failed", [False, True])
def test_the_secret_view_shows_the_secret_once_and_nothing_can_send_it_back(
    refresh_failed: bool,
) -> None:
    issued = IssuedToken(token=token(name=HOSTILE), secret=SECRET)
    view = as_dict(secret_view(issued, why=Issued.RESET, refresh_failed=refresh_failed))
    assert check_view(view) == []
    assert_harmless(view)
    assert SECRET in all_text(view) and "TD00000000000000000001" in all_text(view)
    assert "has a new secret" in all_text(view)
    assert view.get("submit") is None and view["notify_on_close"] is False
    assert interactive(view) == [] and "private_metadata" not in view
    assert ("Run `/tokens` again" in all_text(view)) is refresh_failed


def test_a_message_view_only_closes() -> None:
    view = as_dict(message_view("*Done*"))
    assert check_view(view) == []
    assert view.get("submit") is None and view["close"]["text"] == "Close"


# -- the expiry choice ------------------------------------------------------------------------


def expiry_of(offer: ExpiryOffer) -> tuple[list[tuple[str, str]], str | None, dict[str, Any]]:
    """The Works until options (value, label), the initial one's value, and the date block,
    as the create form renders them."""
    form = as_dict(
        token_form(
            context=ModalContext(),
            newest_version="v3",
            scopes=SCOPES[:1],
            contact="UCONTACT1",
            expiry=offer,
        )
    )
    assert check_view(form) == []
    select = block_in(form, "expiry")
    element = select["element"]
    options = [(o["value"], o["text"]["text"]) for o in element["options"]]
    initial = element.get("initial_option")
    assert initial is None or initial in element["options"]
    return options, None if initial is None else initial["value"], block_in(form, "expiry_date")


def test_the_presets_count_from_today_and_show_their_dates() -> None:
    options, initial, picker = expiry_of(NEW_SECRET)
    assert options == [
        ("2026-12-07", "7 days (7 Dec 2026)"),
        ("2026-12-30", "30 days (30 Dec 2026)"),
        ("2027-01-29", "60 days (29 Jan 2027)"),
        ("2027-02-28", "90 days (28 Feb 2027)"),
        ("2027-11-30", "1 year (30 Nov 2027)"),
        ("on_a_date", "On a date…"),
    ]
    assert initial == "2027-02-28"
    assert picker["optional"] is True and picker["element"]["type"] == "datepicker"
    assert picker["hint"]["text"] == EXPIRY_DATE_HINT
    assert "initial_date" not in picker["element"]


def test_only_presets_within_the_maximum_are_offered() -> None:
    offer = ExpiryOffer.for_new_secret(today=TODAY, max_lifetime_days=60, default_days=30)
    options, initial, _ = expiry_of(offer)
    assert [label for _, label in options] == [
        "7 days (7 Dec 2026)",
        "30 days (30 Dec 2026)",
        "60 days (29 Jan 2027)",
        "On a date…",
    ]
    assert initial == "2026-12-30"


def test_a_default_that_is_no_preset_gets_its_own_option() -> None:
    offer = ExpiryOffer.for_new_secret(today=TODAY, max_lifetime_days=365, default_days=45)
    options, initial, _ = expiry_of(offer)
    assert ("2027-01-14", "45 days (14 Jan 2027)") in options
    assert [value for value, _ in options].index("2027-01-14") == 2
    assert initial == "2027-01-14"


def test_never_is_offered_only_without_a_maximum() -> None:
    capped, _, _ = expiry_of(NEW_SECRET)
    uncapped = ExpiryOffer.for_new_secret(today=TODAY, max_lifetime_days=0, default_days=90)
    options, initial, _ = expiry_of(uncapped)
    assert "never" not in [value for value, _ in capped]
    assert options[-2:] == [("on_a_date", "On a date…"), ("never", "Never")]
    assert len(options) == 7 and initial == "2027-02-28"
    never_first = ExpiryOffer.for_new_secret(today=TODAY, max_lifetime_days=0, default_days=0)
    assert expiry_of(never_first)[1] == "never"


def test_edit_starts_on_the_current_expiry_and_caps_from_the_secrets_issue_day() -> None:
    """Issued 300 days ago with a 365-day maximum: 65 days are left, so 90 days and 1 year
    are not offered, and the hint names the latest allowed date."""
    issued = datetime(2026, 2, 3, 15, 0, tzinfo=UTC)
    current = token(created_at=issued, expires_on=date(2026, 12, 24))
    offer = ExpiryOffer.for_edit(current, today=TODAY, max_lifetime_days=365, default_days=90)
    options, initial, picker = expiry_of(offer)
    assert [value for value, _ in options] == [
        "2026-12-07",
        "2026-12-30",
        "2027-01-29",
        "on_a_date",
    ]
    assert initial == "on_a_date"
    assert picker["element"]["initial_date"] == "2026-12-24"
    form = as_dict(
        token_form(
            context=ModalContext(),
            newest_version="v3",
            scopes=SCOPES[:1],
            contact="UCONTACT1",
            expiry=offer,
            token=current,
        )
    )
    hint = block_in(form, "expiry")["hint"]["text"]
    assert "3 Feb 2027" in hint and "365 days after this secret was issued" in hint


def test_edit_counts_from_the_last_reset() -> None:
    created = datetime(2025, 1, 1, tzinfo=UTC)
    reset = datetime(2026, 11, 20, 23, 59, tzinfo=UTC)
    current = token(created_at=created, reset_at=reset, expires_on=date(2026, 12, 1))
    offer = ExpiryOffer.for_edit(current, today=TODAY, max_lifetime_days=30, default_days=7)
    assert offer.latest == date(2026, 12, 20)
    options, _, _ = expiry_of(offer)
    assert [value for value, _ in options] == ["2026-12-07", "on_a_date"]


def test_edit_past_the_maximum_offers_only_a_date_and_says_reset() -> None:
    stale = token(created_at=datetime(2025, 1, 1, tzinfo=UTC), expires_on=date(2025, 12, 31))
    offer = ExpiryOffer.for_edit(stale, today=TODAY, max_lifetime_days=365, default_days=90)
    options, initial, _ = expiry_of(offer)
    assert options == [("on_a_date", "On a date…")] and initial == "on_a_date"


def test_edit_of_a_token_without_expiry() -> None:
    """Without a maximum it starts on Never; with one, on nothing chosen (the block is
    optional, and left so it keeps the token as it is)."""
    legacy = token(expires_on=None)
    uncapped = ExpiryOffer.for_edit(legacy, today=TODAY, max_lifetime_days=0, default_days=90)
    capped = ExpiryOffer.for_edit(legacy, today=TODAY, max_lifetime_days=365, default_days=90)
    assert expiry_of(uncapped)[1] == "never"
    assert expiry_of(capped)[1] is None
    form = as_dict(
        token_form(
            context=ModalContext(),
            newest_version="v3",
            scopes=SCOPES[:1],
            contact="UCONTACT1",
            expiry=capped,
            token=legacy,
        )
    )
    assert block_in(form, "expiry")["optional"] is True
    create = as_dict(
        token_form(
            context=ModalContext(),
            newest_version="v3",
            scopes=SCOPES[:1],
            contact="UCONTACT1",
            expiry=NEW_SECRET,
        )
    )
    assert block_in(create, "expiry")["optional"] is False


def read_back(values: dict[str, Any], offer: ExpiryOffer = NEW_SECRET) -> ChosenExpiry:
    """What the app reads from the create form submitted with `values` chosen."""
    form = as_dict(
        token_form(
            context=ModalContext(),
            newest_version="v3",
            scopes=SCOPES[:1],
            contact="UCONTACT1",
            expiry=offer,
        )
    )
    return chosen_expiry({"state": {"values": fill(form, values)}})


def test_what_the_user_chooses_is_read_back() -> None:
    assert read_back({}) == ChosenExpiry(date(2027, 2, 28), chosen=True)
    assert read_back({"expiry_choice": "2026-12-07"}) == ChosenExpiry(date(2026, 12, 7), True)
    picked = {"expiry_choice": "on_a_date", "expiry_date": "2027-03-01"}
    assert read_back(picked) == ChosenExpiry(date(2027, 3, 1), chosen=True, on_a_date=True)
    # The picker counts only with On a date…
    assert read_back({"expiry_date": "2027-03-01"}).expires_on == date(2027, 2, 28)
    assert read_back({"expiry_choice": "on_a_date"}) == ChosenExpiry(None, False, on_a_date=True)
    uncapped = ExpiryOffer.for_new_secret(today=TODAY, max_lifetime_days=0, default_days=0)
    assert read_back({}, uncapped) == ChosenExpiry(None, chosen=True)


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"expiry": {}},
        {"expiry": {"expiry_choice": {"selected_option": {"value": "forever"}}}},
        {"expiry": {"expiry_choice": {"selected_option": {"value": "2027-02-30"}}}},
        {"expiry": {"expiry_choice": {"selected_option": {"value": "+2027-01-01"}}}},
        {"expiry": {"expiry_choice": {"selected_option": {"value": 20270101}}}},
        {"expiry": {"expiry_choice": {"selected_option": "never"}}},
        {"expiry": {"expiry_choice": {"selected_option": {"value": ["never"]}}}},
    ],
)
def test_a_malformed_expiry_is_no_choice(values: Any) -> None:
    assert chosen_expiry({"state": {"values": values}}) == ChosenExpiry()


@pytest.mark.parametrize("picked", [None, "", "tomorrow", "2027-13-01", "２０２７-01-01", 5])
def test_a_malformed_date_is_no_date(picked: Any) -> None:
    values = {
        "expiry": {"expiry_choice": {"selected_option": {"value": "on_a_date"}}},
        "expiry_date": {"expiry_date": {"selected_date": picked}},
    }
    assert chosen_expiry({"state": {"values": values}}) == ChosenExpiry(on_a_date=True)


# -- the grace window of a Reset --------------------------------------------------------------


def reset_view(current: Any) -> dict[str, Any]:
    view = as_dict(
        confirm_view(
            MenuChoice.RESET,
            token=current,
            newest_version="v3",
            context=widest_context(),
            expiry=NEW_SECRET,
            grace=GraceOffer.for_reset(current, now=NOW),
        )
    )
    assert check_view(view) == []
    assert_harmless(view)
    return view


def grace_block(view: dict[str, Any]) -> dict[str, Any] | None:
    return next((b for b in blocks_of(view) if b.get("block_id") == "grace"), None)


def test_a_reset_of_a_working_token_offers_a_grace_window_stopping_at_once_by_default() -> None:
    view = reset_view(token(expires_on=date(2027, 1, 31)))
    grace = grace_block(view)
    assert grace is not None and grace["type"] == "input"
    assert grace["label"]["text"] == "Current secret keeps working"
    element = grace["element"]
    assert (element["type"], element["action_id"]) == ("static_select", "grace_choice")
    assert [o["text"]["text"] for o in element["options"]] == [
        "Stop immediately",
        "1 hour",
        "24 hours",
        "3 days",
        "7 days",
    ]
    assert element["initial_option"]["text"]["text"] == "Stop immediately"
    assert "unless you let it keep working" in all_text(view)
    assert "earlier Reset" not in all_text(view)
    ids = [b.get("block_id") for b in blocks_of(view)]
    assert ids.index("grace") < ids.index("expiry")


@pytest.mark.parametrize(
    "current",
    [token(enabled=False), token(expires_on=date(2026, 11, 29))],
    ids=["disabled", "expired"],
)
def test_no_grace_window_is_offered_while_the_current_secret_does_not_work(current: Any) -> None:
    view = reset_view(current)
    assert grace_block(view) is None
    assert "unless you let it keep working" not in all_text(view)
    assert "will stop working as soon as you confirm." in all_text(view)
    assert "posted in Slack" not in all_text(view)


def test_a_reset_of_a_leaked_token_says_why_no_grace_window_is_offered() -> None:
    view = reset_view(token(leaked_at=NOW - timedelta(hours=1), expires_on=date(2027, 1, 31)))
    assert grace_block(view) is None
    text = all_text(view)
    assert "current secret was posted in Slack, so it stops working as soon as you confirm" in text
    assert "unless you let it keep working" not in text


def test_a_reset_during_a_window_says_the_earlier_previous_secret_stops_at_once() -> None:
    until = NOW + timedelta(hours=5)
    view = reset_view(token(previous_secret_hint="Qw12", previous_until=until))
    warning = all_text(blocks_of(view)[1])
    assert "previous secret (ends in `Qw12`) of an earlier Reset" in warning
    assert f"<!date^{int(until.timestamp())}^" in warning and "stops working at once" in warning
    assert grace_block(view) is not None
    ended = reset_view(token(previous_secret_hint="Qw12", previous_until=NOW))
    assert "earlier Reset" not in all_text(ended)


def test_a_reset_must_say_what_becomes_of_the_secrets_in_use() -> None:
    with pytest.raises(ValueError):
        confirm_view(
            MenuChoice.RESET,
            token=token(),
            newest_version="v3",
            context=ModalContext(),
            expiry=NEW_SECRET,
        )


@pytest.mark.parametrize(
    ("picked", "grace"),
    [
        ("stop", None),
        ("1h", timedelta(hours=1)),
        ("24h", timedelta(hours=24)),
        ("3d", timedelta(days=3)),
        ("7d", timedelta(days=7)),
    ],
)
def test_the_grace_choice_is_read_back(picked: str, grace: timedelta | None) -> None:
    view = reset_view(token())
    assert chosen_grace({"state": {"values": fill(blocks_of(view), {"grace_choice": picked})}}) == (
        grace
    )


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"grace": {"grace_choice": {"selected_option": {"value": "30d"}}}},
        {"grace": {"grace_choice": {"selected_option": {"value": 3600}}}},
        {"grace": {"grace_choice": {"selected_option": None}}},
        {"grace": {"grace_choice": "7d"}},
        {"grace": "7d"},
    ],
)
def test_anything_but_an_offered_grace_choice_stops_at_once(values: Any) -> None:
    assert chosen_grace({"state": {"values": values}}) is None
