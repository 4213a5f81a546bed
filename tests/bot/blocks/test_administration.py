"""The administration messages and replies, pure: roles, API access, the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.blocks import administration
from bot.inputs.command_text import RolesProblem
from slack_standin.blockkit import check_message
from storage.models import AuditEvent, Role, RoleMappings, RoleSource
from tests.bot.blocks.samples import HOSTILE, WHEN
from tests.bot.blockwalk import all_text, assert_harmless, interactive

USERS = tuple(f"U{n:08d}" for n in range(2000))


def event(number: int, **overrides: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "id": number,
        "at": WHEN - timedelta(minutes=number),
        "actor": "UACTOR001",
        "action": "edit",
        "token_sid": "TD00000000000000000001",
        "token_name": "Nightly export",
        "before": {"description": "old"},
        "after": {"description": "new"},
    }
    return AuditEvent(**(fields | overrides))


def test_the_roles_page_lists_each_source_and_stays_within_slacks_limits() -> None:
    mappings = RoleMappings(
        bootstrap_admins=("UBOOT0001",),
        users=tuple((user, Role.SPECIALIST) for user in USERS),
        groups=(("S0GROUP01", Role.ADMIN),),
    )
    message = administration.roles_message(mappings).as_dict()
    assert check_message(message) == []
    text = all_text(message)
    assert "<@UBOOT0001>  _bootstrap (TOKENDESK_ADMINS)_" in text
    assert "<!subteam^S0GROUP01>  _user group_" in text
    assert "more: `tokendesk roles list` shows everyone." in text


def test_nobody_yet_is_said_for_an_empty_role() -> None:
    message = administration.roles_message(RoleMappings((), (), ())).as_dict()
    assert all_text(message).count("• nobody yet") == 2


def test_an_audit_page_of_hostile_events_is_escaped_and_fits() -> None:
    huge = {"description": "<!here> " + "&" * 3000, "access_rights": ["a:b"] * 100}
    events = [
        event(n, token_name=HOSTILE, action="<!channel>", before=huge, after=huge)
        for n in range(administration.AUDIT_PAGE_SIZE)
    ]
    message = administration.audit_message(events, name=HOSTILE, offset=10, has_more=True).as_dict()
    assert check_message(message) == []
    assert_harmless(message)
    buttons = [(b["action_id"], b["value"]) for b in interactive(message)]
    assert buttons == [("audit_previous", f"10:{HOSTILE}"), ("audit_next", f"10:{HOSTILE}")]


def test_an_event_says_who_did_what_to_which_token() -> None:
    message = administration.audit_message([event(1)], name="", offset=0, has_more=False)
    text = all_text(message.as_dict())
    assert "<@UACTOR001> edited *Nightly export* (`TD00000000000000000001`)" in text
    assert "description: old → new" in text
    assert interactive(message.as_dict()) == []


def test_an_empty_audit_log_says_how_to_filter() -> None:
    text = all_text(administration.audit_message([], name="", offset=0, has_more=False).as_dict())
    assert "No audit events." in text and "`/tokens audit [NAME]`" in text


def test_turning_api_access_off_asks_first() -> None:
    message = administration.access_off_confirmation().as_dict()
    assert check_message(message) == []
    actions = [(b["action_id"], b.get("style")) for b in interactive(message)]
    assert actions == [("api_access_off", "danger"), ("api_access_keep", None)]


@pytest.mark.parametrize("problem", RolesProblem)
def test_every_roles_usage_problem_is_explained(problem: RolesProblem) -> None:
    text = administration.roles_usage(problem, "grant")
    assert text and "{" not in text


def test_a_revoke_names_the_roles_that_remain() -> None:
    remaining = [
        RoleSource("group", Role.SPECIALIST, "S0GROUP01"),
        RoleSource("bootstrap", Role.ADMIN),
    ]
    text = administration.user_revoked("UALICE001", Role.ADMIN, remaining)
    assert text == (
        "<@UALICE001> is no longer an Account Administrator directly. They are still:"
        " Implementation Specialist through <!subteam^S0GROUP01>; Account Administrator"
        " (bootstrap)."
    )
    assert administration.user_revoked("UALICE001", None, []).endswith("They hold no role now.")
