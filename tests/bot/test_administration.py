"""`/tokens roles`, `/tokens access` and `/tokens audit` end to end, as Slack sends them: signed
requests, command text escaped (`should_escape: true`), and the Slack stand-in answering
`users.info` and `usergroups.users.list` and taking the response_url posts.

Group membership comes from a real `SlackGroupMemberships` on a fake clock, with no
background refresher: a test decides when members are fetched (`refresh_all`, or the
refresh an invalidation spawns), so it can tell what the role gate knows at every moment.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Callable, Coroutine
from contextlib import closing
from typing import Any

import pytest

from bot.background import drain
from bot.memberships import SlackGroupMemberships
from bot.settings import Settings
from slack_standin.blockkit import check_message
from slack_standin.client import SlackClient, action_for
from slack_standin.server import SlackStandIn
from storage.models import AuditEvent, Role, TokenEdit
from storage.store import Store
from tests.bot.blockwalk import Body, all_text, refused, section_texts
from tests.bot.conftest import (
    ADMIN,
    ALICE,
    ALICE_MENTION,
    BOB,
    BOB_MENTION,
    OPS,
    OPS_MENTION,
    SPECIALIST,
    STRANGER,
    Seed,
)
from tests.bot.doubles import HeldClient, ManualClock
from tests.bot.driver import SlackUser, eventually
from tests.store_support import days_ahead

ADMIN_ONLY = "Only Account Administrators"
GROUP_METHOD = "usergroups.users.list"

GRID_USER, GRID_MENTION = "W012AB3CD", "<@W012AB3CD>"
HOSTILE_NAME = "<!channel> & <@U1>"
HOSTILE_ESCAPED = "&lt;!channel&gt; &amp; &lt;@U1&gt;"

Users = Callable[[str], SlackUser]


@pytest.fixture
def bootstrap_admins() -> tuple[str, ...]:
    """TOKENDESK_ADMINS; parametrize it with `()` for a workspace without bootstrap admins."""
    return (ADMIN,)


@pytest.fixture
def settings(settings: Settings, bootstrap_admins: tuple[str, ...]) -> Settings:
    return settings.model_copy(update={"tokendesk_admins": bootstrap_admins})


@pytest.fixture
def memberships(slack_memberships: SlackGroupMemberships) -> SlackGroupMemberships:
    return slack_memberships


@pytest.fixture(autouse=True)
def grid_user(standin: SlackStandIn) -> None:
    standin.add_user(GRID_USER, name="grid")


async def audit_events(store: Store) -> list[AuditEvent]:
    return await store.audit.events(limit=1000)


def role_section(body: Body, role: Role) -> str:
    heading = f"*{role.label}s*"
    found = [text for text in section_texts(body) if text.startswith(heading)]
    assert len(found) == 1, section_texts(body)
    return found[0]


async def held_back(
    client: HeldClient, standin: SlackStandIn, refresh: Coroutine[Any, Any, None]
) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """Starts `refresh` and lets Slack answer its question about the group's members, but
    holds that answer back from the app until the returned event is set."""
    release = client.hold(GROUP_METHOD)
    asked = len(standin.calls_to(GROUP_METHOD))
    in_flight = asyncio.create_task(refresh)
    await eventually(lambda: len(standin.calls_to(GROUP_METHOD)) == asked + 1)
    client.stop_holding(GROUP_METHOD)
    return release, in_flight


def line_of(section: str, subject: str) -> str:
    found = [line for line in section.splitlines() if subject in line]
    assert len(found) == 1, section
    return found[0]


# -- /tokens roles ----------------------------------------------------------------------


async def test_roles_lists_bootstrap_direct_and_group_holders_by_role(
    admin: SlackUser, store: Store
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=GRID_USER, role=Role.ADMIN)
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.ADMIN)
    await store.roles.grant_group(actor=ADMIN, group_id="S0SUPPORT", role=Role.SPECIALIST)

    reply = await admin.send_command("roles")

    assert reply.status == 200
    assert reply.body["response_type"] == "ephemeral"
    assert check_message(reply.body) == []
    admins = role_section(reply.body, Role.ADMIN)
    assert "bootstrap" in line_of(admins, f"<@{ADMIN}>")
    assert "TOKENDESK_ADMINS" in line_of(admins, f"<@{ADMIN}>")
    assert "direct" in line_of(admins, f"<@{GRID_USER}>")
    assert "group" in line_of(admins, f"<!subteam^{OPS}>")
    specialists = role_section(reply.body, Role.SPECIALIST)
    assert "direct" in line_of(specialists, f"<@{ALICE}>")
    assert "group" in line_of(specialists, "<!subteam^S0SUPPORT>")
    assert ALICE not in admins and GRID_USER not in specialists


async def test_roles_stays_within_slack_limits_with_many_holders(
    admin: SlackUser, settings: Settings
) -> None:
    """An agency with 500 specialists: the listing may shorten itself, but Slack must take it
    (its cumulative text cap, `msg_blocks_too_long`, is near 12,000 characters)."""
    with closing(sqlite3.connect(settings.tokendesk_db)) as connection, connection:
        connection.executemany(
            "INSERT INTO user_roles (user_id, role, granted_by, granted_at) VALUES (?, ?, ?, ?)",
            [(f"U{number:010d}", "specialist", ADMIN, 1_700_000_000) for number in range(500)],
        )

    reply = await admin.send_command("roles")

    assert reply.body["text"] == "Token Desk roles"
    assert check_message(reply.body) == []
    assert f"<@{ADMIN}>" in role_section(reply.body, Role.ADMIN)


async def test_roles_is_refused_to_a_specialist_and_a_stranger(
    standin: SlackStandIn, store: Store, specialist: str, slack_user: Users
) -> None:
    before = await store.roles.mappings()
    for text in ("roles", f"roles grant {ALICE_MENTION} admin", f"roles revoke <@{ADMIN}|a>"):
        as_specialist = await slack_user(specialist).send_command(text)
        assert as_specialist.body["response_type"] == "ephemeral"
        assert as_specialist.body["text"].startswith(ADMIN_ONLY)
        as_stranger = await slack_user(STRANGER).send_command(text)
        assert as_stranger.body["response_type"] == "ephemeral"
        assert refused(as_stranger.body["text"])
    await drain()
    assert await store.roles.mappings() == before
    assert standin.calls_to("users.info") == []
    assert standin.responses == []


# -- roles grant ------------------------------------------------------------------------


async def test_grant_is_acked_at_once_and_applies_to_the_next_request(
    admin: SlackUser, standin: SlackStandIn, store: Store, slack_user: Users
) -> None:
    assert not await slack_user(ALICE).has_role()
    standin.delay_next("users.info", 0.6)

    started = time.monotonic()
    reply = await admin.send_command(f"roles grant {ALICE_MENTION} specialist")
    acked_after = time.monotonic() - started

    assert reply.status == 200 and reply.body == ""
    assert acked_after < 0.45, "the ack waited for Slack's users.info"
    assert standin.responses_to(reply.sent["response_url"]) == []
    body = await admin.answer(reply)
    assert f"<@{ALICE}>" in body["text"] and "Implementation Specialist" in body["text"]
    assert await slack_user(ALICE).has_role()
    assert not await slack_user(ALICE).is_admin()

    upgrade = await admin.send_command(f"roles grant {ALICE_MENTION} ADMIN")
    assert "Account Administrator" in (await admin.answer(upgrade))["text"]
    assert await slack_user(ALICE).is_admin()

    latest = (await audit_events(store))[:2]
    assert [event.action for event in latest] == ["role.user", "role.user"]
    assert all(event.actor == ADMIN for event in latest)
    assert latest[0].before == {"user_id": ALICE, "role": "specialist"}
    assert latest[0].after == {"user_id": ALICE, "role": "admin"}


async def test_grant_to_an_enterprise_grid_id_without_a_label(
    admin: SlackUser, slack_user: Users
) -> None:
    reply = await admin.send_command(f"roles grant {GRID_MENTION} specialist")
    assert f"<@{GRID_USER}>" in (await admin.answer(reply))["text"]
    assert await slack_user(GRID_USER).has_role()


CANNOT_HOLD_A_ROLE: list[tuple[str, dict[str, Any] | None, str]] = [
    ("UBOT00001", {"is_bot": True}, "Bots cannot"),
    ("UGUEST001", {"is_restricted": True}, "Guests cannot"),
    ("UGUEST002", {"is_ultra_restricted": True}, "Guests cannot"),
    ("UGONE0001", {"deleted": True}, "left the workspace"),
    ("UOTHER001", {"team_id": "T0OTHER"}, "another organisation"),
    ("UNOBODY01", None, "does not know"),
]


async def test_grant_to_someone_who_cannot_hold_a_role_changes_nothing(
    admin: SlackUser, standin: SlackStandIn, store: Store, slack_user: Users
) -> None:
    mappings, events = await store.roles.mappings(), await audit_events(store)
    for who, profile, why in CANNOT_HOLD_A_ROLE:
        if profile is not None:
            standin.add_user(who, **profile)

        reply = await admin.send_command(f"roles grant <@{who}|someone> admin")

        body = await admin.answer(reply)
        assert why in body["text"], (who, body["text"])
        assert await store.roles.mappings() == mappings
        assert await audit_events(store) == events
        assert not await slack_user(who).has_role(), who


MENTION_MISSING = [
    ("roles grant @alice admin", "person"),
    ("roles grant alice specialist", "person"),
    ("roles revoke @alice", "person"),
    ("roles group @ops specialist", "user group"),
    ("roles ungroup @ops", "user group"),
    (f"roles group {ALICE_MENTION} admin", "user group"),
    (f"roles grant {OPS_MENTION} admin", "person"),
]


async def test_a_target_without_a_mention_is_explained_in_the_ack(
    admin: SlackUser, standin: SlackStandIn, store: Store
) -> None:
    mappings = await store.roles.mappings()
    for text, hint in MENTION_MISSING:
        reply = await admin.send_command(text)
        assert reply.body["response_type"] == "ephemeral"
        assert "type @" in reply.body["text"] and hint in reply.body["text"], text
    await drain()
    assert standin.responses == [] and standin.calls_to("users.info") == []
    assert await store.roles.mappings() == mappings


USAGE = [
    (f"roles grant {ALICE_MENTION} owner", "`admin` or `specialist`"),
    (f"roles group {OPS_MENTION} everyone", "`admin` or `specialist`"),
    (f"roles grant {ALICE_MENTION}", "roles grant @user admin|specialist"),
    (f"roles grant {ALICE_MENTION} admin please", "roles grant @user admin|specialist"),
    ("roles revoke", "roles revoke @user"),
    (f"roles revoke {ALICE_MENTION} {BOB_MENTION}", "roles revoke @user"),
    (f"roles group {OPS_MENTION}", "roles group @group admin|specialist"),
    (f"roles ungroup {OPS_MENTION} admin", "roles ungroup @group"),
    (f"roles promote {ALICE_MENTION}", "roles grant @user admin|specialist"),
]


async def test_a_wrong_role_word_or_arity_answers_usage(
    admin: SlackUser, standin: SlackStandIn, store: Store
) -> None:
    mappings = await store.roles.mappings()
    for text, usage in USAGE:
        reply = await admin.send_command(text)
        assert reply.body["response_type"] == "ephemeral"
        assert usage in reply.body["text"], (text, reply.body["text"])
        assert check_message(reply.body) == []
    await drain()
    assert standin.responses == [] and standin.calls_to("users.info") == []
    assert await store.roles.mappings() == mappings


# -- roles revoke -----------------------------------------------------------------------


async def test_a_revoked_user_is_refused_on_their_next_request(
    admin: SlackUser, store: Store, slack_user: Users
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
    assert await slack_user(ALICE).has_role()

    reply = await admin.send_command(f"roles revoke {ALICE_MENTION}")

    text = (await admin.answer(reply))["text"]
    assert "no longer an Implementation Specialist" in text
    assert "no role now" in text
    assert not await slack_user(ALICE).has_role()
    latest = (await audit_events(store))[0]
    assert (latest.actor, latest.action) == (ADMIN, "role.user")
    assert latest.after == {"user_id": ALICE, "role": None}

    again = await admin.send_command(f"roles revoke {ALICE_MENTION}")
    assert "had no direct role" in (await admin.answer(again))["text"]


async def test_a_bootstrap_admin_cannot_be_revoked_or_downgraded_from_slack(
    admin: SlackUser, store: Store, slack_user: Users
) -> None:
    mappings = await store.roles.mappings()
    for text in (f"roles revoke <@{ADMIN}|boss>", f"roles grant <@{ADMIN}|boss> specialist"):
        reply = await admin.send_command(text)
        body = await admin.answer(reply)
        assert "Not changed" in body["text"] and "TOKENDESK_ADMINS" in body["text"]
    assert await store.roles.mappings() == mappings
    assert await admin.is_admin()


async def test_revoke_names_the_sources_that_remain(
    admin: SlackUser,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    slack_user: Users,
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.ADMIN)
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE, BOB])
    await memberships.refresh_all()

    reply = await admin.send_command(f"roles revoke {ALICE_MENTION}")

    text = (await admin.answer(reply))["text"]
    assert "no longer an Account Administrator directly" in text
    assert f"Implementation Specialist through <!subteam^{OPS}>" in text
    assert "no role now" not in text
    assert await slack_user(ALICE).has_role()
    assert not await slack_user(ALICE).is_admin()


# -- the last admin ---------------------------------------------------------------------


@pytest.mark.parametrize("bootstrap_admins", [()])
async def test_the_last_admin_cannot_be_revoked_or_downgraded_from_slack(
    admin: SlackUser, store: Store, slack_user: Users
) -> None:
    alice = slack_user(ALICE)
    bob = slack_user(BOB)
    await store.roles.grant_user(actor="cli:setup", user_id=ALICE, role=Role.ADMIN)
    assert not await admin.has_role(), "TOKENDESK_ADMINS should be empty here"
    mappings = await store.roles.mappings()

    for text in (f"roles revoke {ALICE_MENTION}", f"roles grant {ALICE_MENTION} specialist"):
        reply = await alice.send_command(text)
        body = await alice.answer(reply)
        assert "Not changed" in body["text"] and "no Account Administrator" in body["text"]
    assert await store.roles.mappings() == mappings
    assert await alice.is_admin()

    # With a second admin, one of them may step down; then the other is the last again.
    grant = await alice.send_command(f"roles grant {BOB_MENTION} admin")
    assert "Account Administrator" in (await alice.answer(grant))["text"]
    step_down = await alice.send_command(f"roles grant {ALICE_MENTION} specialist")
    assert "Not changed" not in (await alice.answer(step_down))["text"]
    assert await bob.is_admin() and not await alice.is_admin()
    last = await bob.send_command(f"roles revoke {BOB_MENTION}")
    assert "no Account Administrator" in (await bob.answer(last))["text"]
    assert await bob.is_admin()


@pytest.mark.parametrize("bootstrap_admins", [()])
async def test_the_last_admin_group_cannot_be_ungrouped_or_downgraded_from_slack(
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    slack_user: Users,
) -> None:
    alice = slack_user(ALICE)
    await store.roles.grant_group(actor="cli:setup", group_id=OPS, role=Role.ADMIN)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    assert await alice.is_admin()

    for text in (f"roles ungroup {OPS_MENTION}", f"roles group {OPS_MENTION} specialist"):
        reply = await alice.send_command(text)
        body = await alice.answer(reply)
        assert "Not changed" in body["text"] and "no Account Administrator" in body["text"]
    assert (await store.roles.mappings()).groups == ((OPS, Role.ADMIN),)
    assert await alice.is_admin()


@pytest.mark.parametrize("bootstrap_admins", [()])
@pytest.mark.parametrize("members", [None, [], ["UGUEST001"]], ids=["unknown", "empty", "guests"])
async def test_the_last_admin_cannot_leave_on_a_group_that_makes_nobody_admin(
    standin: SlackStandIn,
    store: Store,
    members: list[str] | None,
    slack_user: Users,
) -> None:
    """A group Slack does not know cannot be mapped; an empty group, or one of guests, is
    mapped but keeps no Account Administrator."""
    alice = slack_user(ALICE)
    standin.add_user("UGUEST001", is_restricted=True)
    if members is not None:
        standin.set_group(OPS, members)
    await store.roles.grant_user(actor="cli:setup", user_id=ALICE, role=Role.ADMIN)

    grouped = await alice.send_command(f"roles group {OPS_MENTION} admin")
    text = (await alice.answer(grouped))["text"]
    if members is None:
        assert "does not know that user group" in text
        assert (await store.roles.mappings()).groups == ()
    else:
        assert (await store.roles.mappings()).groups == ((OPS, Role.ADMIN),)
    await drain()  # the members' look-up the mapping started

    leave = await alice.send_command(f"roles revoke {ALICE_MENTION}")
    assert "no Account Administrator" in (await alice.answer(leave))["text"]
    assert await alice.is_admin()


@pytest.mark.parametrize("bootstrap_admins", [()])
async def test_the_last_admin_may_leave_once_a_confirmed_member_is_admin_through_a_group(
    standin: SlackStandIn, store: Store, slack_user: Users
) -> None:
    alice = slack_user(ALICE)
    bob = slack_user(BOB)
    standin.set_group(OPS, [BOB])
    await store.roles.grant_user(actor="cli:setup", user_id=ALICE, role=Role.ADMIN)
    grouped = await alice.send_command(f"roles group {OPS_MENTION} admin")
    assert "Account Administrators" in (await alice.answer(grouped))["text"]
    await drain()

    leave = await alice.send_command(f"roles revoke {ALICE_MENTION}")

    assert "no longer an Account Administrator" in (await alice.answer(leave))["text"]
    assert not await alice.has_role()
    assert await bob.is_admin()


# -- roles group / ungroup and the membership cache -------------------------------------


async def test_a_group_role_follows_group_and_ungroup(
    admin: SlackUser, standin: SlackStandIn, store: Store, slack_user: Users
) -> None:
    standin.set_group(OPS, [ALICE])
    assert not await slack_user(ALICE).has_role()

    grouped = await admin.send_command(f"roles group {OPS_MENTION} specialist")
    text = (await admin.answer(grouped))["text"]
    assert f"<!subteam^{OPS}>" in text and "Implementation Specialists" in text
    await drain()  # the members' look-up the mapping started
    assert await slack_user(ALICE).has_role()
    assert not await slack_user(BOB).has_role()
    listing = await admin.send_command("roles")
    assert "group" in line_of(role_section(listing.body, Role.SPECIALIST), f"<!subteam^{OPS}>")

    ungrouped = await admin.send_command(f"roles ungroup {OPS_MENTION}")
    assert "no longer" in (await admin.answer(ungrouped))["text"]
    assert not await slack_user(ALICE).has_role()
    await drain()
    assert not await slack_user(ALICE).has_role()

    latest = (await audit_events(store))[:2]
    assert [event.action for event in latest] == ["role.group", "role.group"]
    assert latest[1].after == {"group_id": OPS, "role": "specialist"}
    assert latest[0].after == {"group_id": OPS, "role": None}

    unknown = await admin.send_command(f"roles ungroup {OPS_MENTION}")
    assert "had no role" in (await admin.answer(unknown))["text"]


async def test_mapping_a_group_slack_does_not_know_is_refused(
    admin: SlackUser, standin: SlackStandIn, store: Store
) -> None:
    mappings, events = await store.roles.mappings(), await audit_events(store)

    reply = await admin.send_command(f"roles group {OPS_MENTION} specialist")

    text = (await admin.answer(reply))["text"]
    assert "Slack does not know that user group" in text and "nothing was changed" in text
    assert [call.args["usergroup"] for call in standin.calls_to(GROUP_METHOD)] == [OPS]
    assert await store.roles.mappings() == mappings
    assert await audit_events(store) == events

    standin.fail_next(GROUP_METHOD, "internal_error", status=200, retry_after=None)
    standin.set_group(OPS, [ALICE])
    again = await admin.send_command(f"roles group {OPS_MENTION} specialist")
    assert "nothing was changed" in (await admin.answer(again))["text"]
    assert await store.roles.mappings() == mappings


async def test_subteam_members_changed_removes_at_once_and_adds_after_the_refresh(
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    slack_user: Users,
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    assert await slack_user(ALICE).has_role()

    standin.set_group(OPS, [BOB])
    standin.delay_next(GROUP_METHOD, 0.5)
    fetched = len(standin.calls_to(GROUP_METHOD))
    event = await slack.event(
        {
            "type": "subteam_members_changed",
            "subteam_id": OPS,
            "team_id": standin.team_id,
            "date_previous_update": 1_700_000_000,
            "date_update": 1_700_000_100,
            "added_users": [BOB],
            "added_users_count": "1",
            "removed_users": [ALICE],
            "removed_users_count": "1",
        }
    )
    assert event.status == 200

    await eventually(lambda: memberships.groups_of(ALICE) == frozenset())
    assert len(standin.calls_to(GROUP_METHOD)) == fetched, "the refresh already ran"
    assert not await slack_user(ALICE).has_role()
    assert not await slack_user(BOB).has_role()  # not known yet: no role
    assert len(standin.calls_to(GROUP_METHOD)) == fetched

    await drain()
    assert len(standin.calls_to(GROUP_METHOD)) == fetched + 1
    assert await slack_user(BOB).has_role()
    assert not await slack_user(ALICE).has_role()


async def test_an_answer_from_before_the_change_does_not_bring_a_removed_member_back(
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    background_client: HeldClient,
    slack_user: Users,
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    assert await slack_user(ALICE).has_role()

    # The periodic refresh asks Slack, which answers "Alice" ...
    release, in_flight = await held_back(background_client, standin, memberships.refresh_all())
    # ... then Alice leaves the group, and Slack's event overtakes that answer.
    standin.set_group(OPS, [BOB])
    event = await slack.event(
        {"type": "subteam_members_changed", "subteam_id": OPS, "team_id": standin.team_id}
    )
    assert event.status == 200
    await eventually(lambda: memberships.groups_of(ALICE) == frozenset())
    release.set()
    await in_flight
    await drain()

    assert not await slack_user(ALICE).has_role(), "the answer from before the change was kept"
    await memberships.refresh_all()
    assert await slack_user(BOB).has_role()
    assert not await slack_user(ALICE).has_role()


async def test_a_membership_older_than_60_seconds_gives_no_role(
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    clock: ManualClock,
    slack_user: Users,
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    clock.advance(59)
    assert await slack_user(ALICE).has_role()
    clock.advance(2)
    assert not await slack_user(ALICE).has_role()
    await memberships.refresh_all()
    assert await slack_user(ALICE).has_role()


async def test_a_membership_is_as_old_as_the_question_not_the_answer(
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    background_client: HeldClient,
    clock: ManualClock,
    slack_user: Users,
) -> None:
    """Slack's answer may be slow to arrive: what it says is true as of the question."""
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    release, in_flight = await held_back(background_client, standin, memberships.refresh(OPS))
    clock.advance(30)
    release.set()
    await in_flight
    assert await slack_user(ALICE).has_role()

    clock.advance(31)  # 61 s after the question, 31 s after the answer
    assert not await slack_user(ALICE).has_role()


async def test_a_failed_membership_look_up_gives_no_role(
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    clock: ManualClock,
    slack_user: Users,
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    standin.fail_next(GROUP_METHOD, "missing_scope", status=200, retry_after=None)
    await memberships.refresh_all()
    assert not await slack_user(ALICE).has_role()

    await memberships.refresh_all()
    assert await slack_user(ALICE).has_role()

    # Members known once, then the look-ups fail: what was known expires all the same.
    clock.advance(61)
    standin.fail_next(GROUP_METHOD, "internal_error", status=200, retry_after=None)
    await memberships.refresh_all()
    assert not await slack_user(ALICE).has_role()


async def test_the_role_gate_never_calls_slack_nor_waits_for_it(
    standin: SlackStandIn, store: Store, memberships: SlackGroupMemberships, slack_user: Users
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    fetched = len(standin.calls_to(GROUP_METHOD))

    for user, text in ((ALICE, "list"), (ALICE, "audit"), (STRANGER, "list"), (ADMIN, "roles")):
        reply = await slack_user(user).send_command(text)
        assert reply.status == 200
    await drain()
    assert len(standin.calls_to(GROUP_METHOD)) == fetched

    # A look-up in flight (slow, then failing) delays no ack: meanwhile there is no role.
    standin.delay_next(GROUP_METHOD, 0.6)
    standin.fail_next(GROUP_METHOD, "internal_error", status=200, retry_after=None)
    memberships.invalidate(OPS)
    started = time.monotonic()
    reply = await slack_user(ALICE).send_command("list")
    assert time.monotonic() - started < 0.4
    assert refused(reply.body["text"])
    await drain()
    assert len(standin.calls_to(GROUP_METHOD)) == fetched + 1
    assert not await slack_user(ALICE).has_role()


# -- /tokens access ---------------------------------------------------------------------


async def test_access_alone_tells_the_state(admin: SlackUser, store: Store) -> None:
    off = await admin.send_command("access")
    assert off.body["response_type"] == "ephemeral"
    assert "API access is off" in off.body["text"]
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    on = await admin.send_command("access")
    assert "API access is on" in on.body["text"]


@pytest.mark.parametrize("actor", [ADMIN, SPECIALIST])
async def test_access_on_turns_it_on_audited(store: Store, actor: str, slack_user: Users) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    reply = await slack_user(actor).send_command("access on")
    assert reply.body["response_type"] == "ephemeral"
    assert "API access is on" in reply.body["text"]
    assert store.account.api_access is True
    latest = (await audit_events(store))[0]
    assert (latest.actor, latest.action) == (actor, "api_access")
    assert (latest.before, latest.after) == ({"api_access": "off"}, {"api_access": "on"})

    count = len(await audit_events(store))
    again = await slack_user(actor).send_command("access ON")
    assert "already on" in again.body["text"]
    assert len(await audit_events(store)) == count


async def access_off_prompt(user: SlackUser, store: Store) -> list[Body]:
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    count = len(await audit_events(store))
    reply = await user.send_command("access off")
    assert reply.body["response_type"] == "ephemeral"
    assert check_message(reply.body) == []
    assert store.account.api_access is True, "turned off before the confirmation"
    assert len(await audit_events(store)) == count
    blocks: list[Body] = reply.body["blocks"]
    return blocks


@pytest.mark.parametrize("actor", [ADMIN, SPECIALIST])
async def test_access_off_asks_to_confirm_then_turns_it_off(
    store: Store, actor: str, slack_user: Users
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    user = slack_user(actor)
    blocks = await access_off_prompt(user, store)
    prompt = all_text({"blocks": blocks})
    assert "auth check" in prompt and "stop working" in prompt
    turn_off = action_for(blocks, "api_access_off")
    assert turn_off["text"]["text"] == "Turn API access off"
    assert action_for(blocks, "api_access_keep")["text"]["text"] == "Keep it on"

    click = await user.send_click(turn_off, blocks=blocks)

    body = await user.answer(click)
    assert body["replace_original"] is True
    assert "API access is off" in body["text"]
    assert store.account.api_access is False
    latest = (await audit_events(store))[0]
    assert (latest.actor, latest.action) == (actor, "api_access")
    assert latest.after == {"api_access": "off"}
    already = await user.send_command("access off")
    assert "already off" in already.body["text"]


async def test_keep_it_on_deletes_the_prompt_and_changes_nothing(
    admin: SlackUser, store: Store
) -> None:
    blocks = await access_off_prompt(admin, store)
    count = len(await audit_events(store))
    click = await admin.send_click("api_access_keep", blocks=blocks)
    assert click.status == 200 and click.body == ""
    posts = await admin.posted(click)
    assert [post.body.get("delete_original") for post in posts] == [True]
    assert store.account.api_access is True
    assert len(await audit_events(store)) == count


async def test_a_stranger_replaying_the_turn_off_click_changes_nothing(
    admin: SlackUser, store: Store, slack_user: Users
) -> None:
    blocks = await access_off_prompt(admin, store)
    count = len(await audit_events(store))
    stranger = slack_user(STRANGER)
    for _ in range(2):
        click = await stranger.send_click("api_access_off", blocks=blocks)
        posts = await stranger.posted(click)
        assert len(posts) == 1
        assert posts[0].body["replace_original"] is False
        assert refused(posts[0].body["text"])
    assert store.account.api_access is True
    assert len(await audit_events(store)) == count
    assert refused((await stranger.send_command("access off")).body["text"])
    assert refused((await stranger.send_command("access on")).body["text"])
    assert store.account.api_access is True


# -- /tokens audit ----------------------------------------------------------------------


def event_lines(body: Body) -> list[str]:
    return [text for text in section_texts(body) if "<!date^" in text]


def names_in(body: Body) -> list[str]:
    return [re.findall(r"\*([^*]+)\* \(", line)[0] for line in event_lines(body)]


async def test_audit_shows_who_what_which_when_and_the_change_newest_first(
    seed: Seed, store: Store, specialist: str, slack_user: Users
) -> None:
    token_id = (await seed("Nightly export", description="old words")).token.id
    token = await store.token_reads.get(token_id=token_id)
    await store.tokens.edit(
        actor=specialist,
        token_id=token_id,
        row_version=token.row_version,
        edit=TokenEdit(description="new words"),
    )
    await store.tokens.set_enabled(actor=ADMIN, token_id=token_id, enabled=False)

    reply = await slack_user(specialist).send_command("audit")

    assert reply.body["response_type"] == "ephemeral"
    assert check_message(reply.body) == []
    disabled, edited, created, granted = event_lines(reply.body)
    assert "changed a role" in granted and specialist in granted
    for line, who in ((disabled, ADMIN), (edited, specialist), (created, ADMIN)):
        assert f"<@{who}>" in line
        assert "*Nightly export*" in line and token.sid in line
        assert re.search(r"<!date\^\d+\^[^|]+\|\d{4}-\d\d-\d\d \d\d:\d\d UTC>", line)
    assert "disabled" in disabled and "state: enabled → disabled" in disabled
    assert "edited" in edited and "description: old words → new words" in edited
    assert "created" in created and "name: Nightly export" in created
    assert "Older" not in all_text(reply.body) and "Newer" not in all_text(reply.body)


async def test_audit_pages_ten_at_a_time_with_older_and_newer(admin: SlackUser, seed: Seed) -> None:
    for number in range(1, 26):
        await seed(f"Paging {number:02}")
    expected = [f"Paging {number:02}" for number in range(25, 0, -1)]

    reply = await admin.send_command("audit")
    assert names_in(reply.body) == expected[:10]
    with pytest.raises(LookupError):
        action_for(reply.body["blocks"], "audit_previous")

    async def click(blocks: list[Body], action_id: str) -> Body:
        body = await admin.answer(await admin.send_click(action_id, blocks=blocks))
        assert body["replace_original"] is True
        return body

    second = await click(reply.body["blocks"], "audit_next")
    assert names_in(second) == expected[10:20]
    third = await click(second["blocks"], "audit_next")
    assert names_in(third) == expected[20:]
    with pytest.raises(LookupError):
        action_for(third["blocks"], "audit_next")
    back = await click(third["blocks"], "audit_previous")
    assert names_in(back) == expected[10:20]
    first = await click(back["blocks"], "audit_previous")
    assert names_in(first) == expected[:10]
    assert "Events 1–10" in all_text(first) and "Events 11–20" in all_text(back)


async def test_audit_filters_by_name_and_pages_within_the_filter(
    admin: SlackUser, seed: Seed
) -> None:
    for number in range(1, 13):
        await seed(f"Alpha feed {number:02}")
        await seed(f"Beta feed {number:02}")

    reply = await admin.send_command("audit ALPHA feed")
    assert names_in(reply.body) == [f"Alpha feed {n:02}" for n in range(12, 2, -1)]
    assert "ALPHA feed" in reply.body["text"]
    older = await admin.send_click("audit_next", blocks=reply.body["blocks"])
    body = await admin.answer(older)
    assert names_in(body) == ["Alpha feed 02", "Alpha feed 01"]

    nothing = await admin.send_command("audit Gamma")
    assert event_lines(nothing.body) == []
    assert "No audit events" in all_text(nothing.body)


async def test_role_and_access_changes_appear_in_the_audit(
    admin: SlackUser, standin: SlackStandIn
) -> None:
    standin.set_group(OPS, [BOB])
    grant = await admin.send_command(f"roles grant {ALICE_MENTION} specialist")
    await admin.answer(grant)
    grouped = await admin.send_command(f"roles group {OPS_MENTION} admin")
    await admin.answer(grouped)
    await admin.send_command("access on")

    reply = await admin.send_command("audit")

    access, group, role = event_lines(reply.body)
    assert f"<@{ADMIN}>" in access and "API access" in access and "off → on" in access
    assert "group" in group and OPS in group and "admin" in group
    assert "role" in role and ALICE in role and "specialist" in role


async def test_hostile_token_names_are_escaped_in_the_audit(
    admin: SlackUser, seed: Seed, store: Store
) -> None:
    hostile = await seed(HOSTILE_NAME, description="<!here> & <https://evil.example>")
    token_id = hostile.token.id
    await store.tokens.set_enabled(actor=ADMIN, token_id=token_id, enabled=False)
    for number in range(10):
        await seed(f"Filler {number}")

    unfiltered = await admin.send_command("audit")
    older = await admin.send_click("audit_next", blocks=unfiltered.body["blocks"])
    filtered = await admin.send_command("audit &lt;!channel&gt; &amp;")
    for body in (unfiltered.body, await admin.answer(older), filtered.body):
        assert check_message(body) == []
        shown = all_text(body)
        for raw in ("<!channel>", "<@U1>", "<!here>", "<https://evil"):
            assert raw not in shown
    assert len(event_lines(filtered.body)) == 2
    assert HOSTILE_ESCAPED in event_lines(filtered.body)[0]
    assert "&lt;!channel&gt; &amp;" in filtered.body["text"]


@pytest.mark.parametrize(
    "filler",
    [
        pytest.param("Quarterly figures for the partner portal. ", id="prose"),
        pytest.param("<&>", id="markup"),
    ],
)
async def test_audit_stays_within_slack_limits_with_long_changes(
    admin: SlackUser, seed: Seed, store: Store, filler: str
) -> None:
    for number in range(10):
        name = (f"{number} " + filler * 100)[:100].strip()
        token_id = (await seed(name, description=(filler * 500)[:500])).token.id
        token = await store.token_reads.get(token_id=token_id)
        await store.tokens.edit(
            actor=ADMIN,
            token_id=token_id,
            row_version=token.row_version,
            edit=TokenEdit(description=(str(number) + filler * 500)[:500]),
        )

    reply = await admin.send_command("audit")
    assert check_message(reply.body) == []
    assert len(event_lines(reply.body)) == 10
    older = await admin.send_click("audit_next", blocks=reply.body["blocks"])
    body = await admin.answer(older)
    assert len(event_lines(body)) == 10


async def test_the_audit_never_shows_a_secret(admin: SlackUser, seed: Seed, store: Store) -> None:
    issued = await seed("Payroll feed")
    reset = await store.tokens.reset(
        actor=ADMIN,
        token_id=issued.token.id,
        row_version=issued.token.row_version,
        expires_on=days_ahead(clock=store.clock),
    )
    secrets = (issued.secret, reset.secret)

    listing = await admin.send_command("audit")
    typed = await admin.send_command(f"audit {reset.secret}")

    assert len(event_lines(listing.body)) == 2
    for body in (listing.body, typed.body):
        assert check_message(body) == []
        shown = json.dumps(body)
        for secret in secrets:
            assert secret not in shown and secret[4:36] not in shown
        assert "tdk_" not in shown


async def test_audit_is_refused_to_a_stranger(slack_user: Users) -> None:
    stranger = slack_user(STRANGER)
    reply = await stranger.send_command("audit")
    assert refused(reply.body["text"])
    assert "<!date^" not in all_text(reply.body)
    click = await stranger.send_click(
        {
            "type": "button",
            "action_id": "audit_next",
            "block_id": "audit_pager",
            "value": "0:",
            "text": {"type": "plain_text", "text": "Older"},
        },
        blocks=[],
    )
    posts = await stranger.posted(click)
    assert len(posts) == 1 and refused(posts[0].body["text"])
    assert posts[0].body["replace_original"] is False
