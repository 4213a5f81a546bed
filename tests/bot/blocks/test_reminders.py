"""The scheduler's messages, pure: reminder DMs, idle DMs, the digest, the alerts. Each is a
message Slack takes (blocks, text limits) however many tokens and whatever their names hold,
escaped, and never a secret."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.blocks import reminders
from bot.blocks.raw import RawMessage
from bot.ids import ActionId
from slack_standin.blockkit import check_message
from storage.models import DueReminder, IdleToken, ReminderToken, Role, Token
from tests.bot.blocks.samples import HOSTILE, WHEN, token
from tests.bot.blockwalk import (
    SECRET_SHAPE,
    all_text,
    assert_harmless,
    blocks_of,
    interactive,
)

# WHEN is 2026-11-01 09:30 UTC: a token that works through 2026-11-07 stops at 2026-11-08
# 00:00 UTC, within 7 days.
IN_A_WEEK = date(2026, 11, 7)
YESTERDAY = date(2026, 10, 31)


def expiring(number: int, expires_on: date = IN_A_WEEK, **overrides: Any) -> Token:
    return token(number, expires_on=expires_on, **overrides)


def due(number: int, days: int = 7, **overrides: Any) -> DueReminder:
    """A reminder of a token as `due_reminders` reads it: only what the DM shows."""
    full = expiring(number, **overrides)
    assert full.stops_at is not None
    lean = ReminderToken(
        id=full.id,
        sid=full.sid,
        name=full.name,
        primary_contact=full.primary_contact,
        row_version=full.row_version,
        stops_at=full.stops_at,
        last_used_at=full.last_used_at,
    )
    return DueReminder(token=lean, days=days)


def checked(message: RawMessage) -> dict[str, Any]:
    """The message as Slack gets it, which Slack takes and a reader finds harmless."""
    payload = message.as_dict()
    assert check_message(payload) == [], check_message(payload)
    assert_harmless(payload)
    assert not SECRET_SHAPE.search(all_text(payload))
    return payload


def buttons(payload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for e in interactive(payload) if e["type"] == "button"]


def test_a_manager_gets_extend_and_reset_on_each_token_soonest_first() -> None:
    later = due(2, expires_on=IN_A_WEEK + timedelta(days=20), days=30)
    sooner = due(1, days=7, last_used_at=WHEN - timedelta(days=3))
    payload = checked(reminders.reminder_dm([later, sooner], now=WHEN, may_act=True))
    assert buttons(payload) == [
        (ActionId.REMINDER_EXTEND, "1:3"),
        (ActionId.REMINDER_RESET, "1:3"),
        (ActionId.REMINDER_EXTEND, "2:3"),
        (ActionId.REMINDER_RESET, "2:3"),
    ]
    text = all_text(payload)
    assert "2 of your tokens stop working soon" in payload["text"]
    assert text.index("Token 1") < text.index("Token 2")
    assert "TD00000000000000000001" in text and "stops working in 7 days" in text
    # Works until the stop instant, 2026-11-08 00:00 UTC, in the reader's time zone.
    assert "Works until <!date^1794096000^{date_short_pretty} {time}|" in text
    assert "Last used <!date^" in text and "Last used never" in text
    blocks = [b["block_id"] for b in blocks_of(payload)]
    assert blocks[:5] == [
        "headline",
        "reminder.1",
        "reminder_actions.1",
        "reminder.2",
        "reminder_actions.2",
    ]


def test_a_contact_without_a_role_is_told_whom_to_ask_and_gets_no_button() -> None:
    payload = checked(reminders.reminder_dm([due(1)], now=WHEN, may_act=False))
    assert interactive(payload) == []
    assert "Account Administrator or an Implementation Specialist" in all_text(payload)
    assert "1 of your tokens stops working soon" in payload["text"]


def test_a_stopped_token_is_said_to_have_stopped() -> None:
    stopped = due(1, expires_on=YESTERDAY, days=0)
    soon = due(2)
    payload = checked(reminders.reminder_dm([stopped], now=WHEN, may_act=True))
    assert "1 of your tokens has stopped working" in payload["text"]
    assert "has stopped working" in all_text(payload)
    mixed = checked(reminders.reminder_dm([soon, stopped], now=WHEN, may_act=True))
    assert "2 of your tokens need attention: 1 stopping soon, 1 stopped" in mixed["text"]


@pytest.mark.parametrize("may_act", [True, False])
def test_a_hundred_tokens_with_the_longest_hostile_names_still_fit(may_act: bool) -> None:
    many = [due(n, name=("&" * 90 + HOSTILE)[:100]) for n in range(1, 101)]
    payload = checked(reminders.reminder_dm(many, now=WHEN, may_act=may_act))
    shown = [b for b in blocks_of(payload) if b["block_id"].startswith("reminder.")]
    assert 1 <= len(shown) <= reminders.DM_TOKENS_SHOWN
    assert f"…and {100 - len(shown)} more tokens." in all_text(payload)


@pytest.mark.parametrize(
    "used",
    [
        datetime(2026, 10, 29, 23, 59, 59, tzinfo=UTC),
        datetime(2024, 2, 29, 0, 0, tzinfo=UTC),
        datetime(1999, 12, 31, 12, 5, 30, tzinfo=UTC),
    ],
)
def test_dates_show_in_each_readers_zone_with_utc_to_fall_back_on(used: datetime) -> None:
    payload = checked(reminders.reminder_dm([due(1, last_used_at=used)], now=WHEN, may_act=False))
    text = all_text(payload)
    assert f"Last used <!date^{int(used.timestamp())}^{{ago}}|{used:%Y-%m-%d %H:%M} UTC>" in text
    assert "Works until <!date^1794096000^{date_short_pretty} {time}|2026-11-08 00:00 UTC>" in text


def test_hostile_names_are_escaped() -> None:
    payload = checked(reminders.reminder_dm([due(1, name=HOSTILE)], now=WHEN, may_act=True))
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in all_text(payload)


def test_the_updated_dm_says_what_was_done_and_shows_the_tokens_as_they_are() -> None:
    extended = expiring(1, expires_on=IN_A_WEEK + timedelta(days=80), row_version=4)
    disabled = expiring(2, enabled=False)
    message = reminders.reminder_update(
        [extended, disabled], gone=1, notice=":pencil2: *Token 1* saved."
    )
    payload = checked(message)
    assert payload["text"] == ":pencil2: *Token 1* saved."
    assert (ActionId.REMINDER_EXTEND, "1:4") in buttons(payload)
    text = all_text(payload)
    assert "Works until <!date^1801008000^" in text  # 2027-01-26 00:00 UTC
    assert "*Token 2* `TD00000000000000000002` is disabled" in text
    assert "1 token listed here no longer exists." in text


def test_the_idle_warning_names_the_day_of_the_disable() -> None:
    idle = [
        IdleToken(token=token(n, name=HOSTILE), idle_since=WHEN - timedelta(days=83))
        for n in (1, 2)
    ]
    payload = checked(
        reminders.idle_warning_dm(idle, unused_days=90, disabled_from=WHEN + timedelta(days=7))
    )
    text = all_text(payload)
    assert "2 of your tokens have not been used" in text
    assert f"<!date^{int((WHEN + timedelta(days=7)).timestamp())}^" in text
    assert "unused for 90 days" in text and interactive(payload) == []


def test_the_disabled_dm_says_why_and_who_can_enable_it() -> None:
    payload = checked(reminders.idle_disabled_dm([token(1, enabled=False)], unused_days=90))
    text = all_text(payload)
    assert "Token Desk disabled 1 of your tokens: unused for 90 days" in text
    assert "enables it again in `/tokens`" in text


def test_the_digest_lists_reminders_and_disables_with_their_contacts() -> None:
    payload = checked(
        reminders.digest(
            [due(1, name=HOSTILE), due(2, expires_on=YESTERDAY, days=0)],
            [token(3, enabled=False, primary_contact="UOTHER001")],
            unused_days=90,
            now=WHEN,
        )
    )
    text = all_text(payload)
    assert "2 tokens stopping within 7 days or stopped, 1 token disabled for being unused" in text
    assert "<@UCONTACT1>" in text and "<@UOTHER001>" in text
    assert "has stopped working" in text and "disabled: unused for 90 days" in text
    assert interactive(payload) == []


def test_a_digest_of_a_thousand_tokens_still_fits() -> None:
    many = [due(n, name="&" * 100) for n in range(1, 1001)]
    payload = checked(reminders.digest(many, [], unused_days=0, now=WHEN))
    assert "…and " in all_text(payload)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_api_access_alert_says_who_and_which_way(enabled: bool) -> None:
    payload = checked(reminders.api_access_alert(actor="UACTOR001", enabled=enabled, at=WHEN))
    text = all_text(payload)
    assert "<@UACTOR001>" in text
    assert ("turned *on*" if enabled else "turned *off*") in text


@pytest.mark.parametrize(
    ("group", "before", "after", "expected"),
    [
        (False, None, Role.ADMIN, "<@UACTOR001> gave <@USUBJECT1> the Account Administrator role"),
        (
            False,
            Role.SPECIALIST,
            Role.ADMIN,
            "changed the role of <@USUBJECT1> from Implementation Specialist to Account",
        ),
        (False, Role.ADMIN, None, "revoked the Account Administrator role of <@USUBJECT1>"),
        (True, None, Role.SPECIALIST, "gave the user group `USUBJECT1` the Implementation"),
    ],
)
def test_a_role_alert_says_who_changed_whose_role(
    group: bool, before: Role | None, after: Role | None, expected: str
) -> None:
    message = reminders.role_alert(
        actor="UACTOR001", subject="USUBJECT1", group=group, before=before, after=after
    )
    text = all_text(checked(message))
    assert expected in text
    assert "<!subteam^" not in text, "a user group is never pinged from the alerts channel"
