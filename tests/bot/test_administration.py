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
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.app import create_app
from bot.background import drain
from bot.memberships import SlackGroupMemberships
from bot.settings import Settings
from slack_standin.blockkit import check_message
from slack_standin.client import Reply, SlackClient, action_for, ephemeral_container
from slack_standin.server import ResponsePost, SlackStandIn
from storage.models import AuditEvent, Role, TokenEdit
from storage.store import Store
from tests.bot.conftest import ADMIN, SPECIALIST, STRANGER

Body = dict[str, Any]
ROLES = ("Account Administrators", "Implementation Specialists")
ADMIN_ONLY = "Only Account Administrators"
CHANNEL, MESSAGE_TS = "C0TEST", "1700000000.000100"
GROUP_METHOD = "usergroups.users.list"

ALICE, ALICE_MENTION = "U012AB3CD", "<@U012AB3CD|alice>"
GRID_USER, GRID_MENTION = "W012AB3CD", "<@W012AB3CD>"
BOB, BOB_MENTION = "U0BOB0001", "<@U0BOB0001|bob>"
OPS, OPS_MENTION = "S012AB3CD", "<!subteam^S012AB3CD|@ops>"
HOSTILE_NAME = "<!channel> & <@U1>"
HOSTILE_ESCAPED = "&lt;!channel&gt; &amp; &lt;@U1&gt;"


# -- fixtures ---------------------------------------------------------------------------


class FakeClock:
    """The memberships' monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def bootstrap_admins() -> tuple[str, ...]:
    """TOKENDESK_ADMINS; parametrize it with `()` for a workspace without bootstrap admins."""
    return (ADMIN,)


@pytest.fixture
def settings(settings: Settings, bootstrap_admins: tuple[str, ...]) -> Settings:
    return settings.model_copy(update={"tokendesk_admins": bootstrap_admins})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class HeldClient(AsyncWebClient):
    """The members' client, able to hold Slack's answer back: an answer Slack gave before a
    change that reaches the app only after Slack's event about that change."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        self.hold: asyncio.Event | None = None

    async def usergroups_users_list(
        self,
        *,
        usergroup: str,
        include_disabled: bool | None = None,
        team_id: str | None = None,
        **kwargs: Any,
    ) -> AsyncSlackResponse:
        hold = self.hold
        answer = await super().usergroups_users_list(
            usergroup=usergroup, include_disabled=include_disabled, team_id=team_id, **kwargs
        )
        if hold is not None:
            await hold.wait()
        return answer


@pytest.fixture
def members_client(settings: Settings) -> HeldClient:
    return HeldClient(settings)


@pytest.fixture
def memberships(
    members_client: HeldClient, store: Store, clock: FakeClock
) -> SlackGroupMemberships:
    return SlackGroupMemberships(members_client, store, clock=clock)


@pytest.fixture
async def bolt(settings: Settings, store: Store, memberships: SlackGroupMemberships) -> AsyncApp:
    return create_app(settings, store, memberships=memberships)


@pytest.fixture(autouse=True)
def people(standin: SlackStandIn) -> None:
    standin.add_user(ALICE, name="alice")
    standin.add_user(GRID_USER, name="grid")
    standin.add_user(BOB, name="bob")


@pytest.fixture
async def specialist(store: Store) -> str:
    await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    return SPECIALIST


# -- helpers ----------------------------------------------------------------------------


async def eventually(condition: Callable[[], bool], *, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the app did not get there in time"
        await asyncio.sleep(0.005)


async def posted(standin: SlackStandIn, reply: Reply, count: int = 1) -> list[ResponsePost]:
    """What the app posted to the response_url of `reply`'s request, once `count` arrived."""
    url = reply.sent["response_url"]
    await eventually(lambda: len(standin.responses_to(url)) >= count)
    await drain()
    posts = standin.responses_to(url)
    assert all(post.accepted for post in posts), [post.error for post in posts]
    return posts


async def answer(standin: SlackStandIn, reply: Reply) -> Body:
    """The one reply that came through the response_url after a bare ack."""
    assert reply.status == 200 and reply.body == "", reply.body
    posts = await posted(standin, reply)
    assert len(posts) == 1, [post.body for post in posts]
    body: Body = posts[0].body
    assert body["response_type"] == "ephemeral"
    assert check_message(body) == []
    return body


def texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts(item)


def all_text(body: Body) -> str:
    """The fallback text and every text in the blocks."""
    return "\n".join(texts(body))


def refused(body: Body) -> bool:
    return all(role in body.get("text", "") for role in ROLES)


async def has_role(slack: SlackClient, user_id: str) -> bool:
    reply = await slack.slash_command(user_id, "help")
    assert reply.status == 200
    return not refused(reply.body)


async def is_admin(slack: SlackClient, user_id: str) -> bool:
    reply = await slack.slash_command(user_id, "roles")
    assert reply.status == 200
    return bool(reply.body.get("text") == "Token Desk roles")


async def audit_events(store: Store) -> list[AuditEvent]:
    return await store.audit.events(limit=1000)


def sections(body: Body) -> list[str]:
    return [
        block["text"]["text"]
        for block in body.get("blocks", [])
        if block["type"] == "section" and "text" in block
    ]


def role_section(body: Body, role: Role) -> str:
    heading = f"*{role.label}s*"
    found = [text for text in sections(body) if text.startswith(heading)]
    assert len(found) == 1, sections(body)
    return found[0]


def line_of(section: str, subject: str) -> str:
    found = [line for line in section.splitlines() if subject in line]
    assert len(found) == 1, section
    return found[0]


# -- /tokens roles ----------------------------------------------------------------------


async def test_roles_lists_bootstrap_direct_and_group_holders_by_role(
    slack: SlackClient, store: Store
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=GRID_USER, role=Role.ADMIN)
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.ADMIN)
    await store.roles.grant_group(actor=ADMIN, group_id="S0SUPPORT", role=Role.SPECIALIST)

    reply = await slack.slash_command(ADMIN, "roles")

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
    slack: SlackClient, settings: Settings
) -> None:
    """An agency with 500 specialists: the listing may shorten itself, but Slack must take it
    (its cumulative text cap, `msg_blocks_too_long`, is near 12,000 characters)."""
    with closing(sqlite3.connect(settings.tokendesk_db)) as connection, connection:
        connection.executemany(
            "INSERT INTO user_roles (user_id, role, granted_by, granted_at) VALUES (?, ?, ?, ?)",
            [(f"U{number:010d}", "specialist", ADMIN, 1_700_000_000) for number in range(500)],
        )

    reply = await slack.slash_command(ADMIN, "roles")

    assert reply.body["text"] == "Token Desk roles"
    assert check_message(reply.body) == []
    assert f"<@{ADMIN}>" in role_section(reply.body, Role.ADMIN)


async def test_roles_is_refused_to_a_specialist_and_a_stranger(
    slack: SlackClient, standin: SlackStandIn, store: Store, specialist: str
) -> None:
    before = await store.roles.mappings()
    for text in ("roles", f"roles grant {ALICE_MENTION} admin", f"roles revoke <@{ADMIN}|a>"):
        as_specialist = await slack.slash_command(specialist, text)
        assert as_specialist.body["response_type"] == "ephemeral"
        assert as_specialist.body["text"].startswith(ADMIN_ONLY)
        as_stranger = await slack.slash_command(STRANGER, text)
        assert as_stranger.body["response_type"] == "ephemeral"
        assert refused(as_stranger.body)
    await drain()
    assert await store.roles.mappings() == before
    assert standin.calls_to("users.info") == []
    assert standin.responses == []


# -- roles grant ------------------------------------------------------------------------


async def test_grant_is_acked_at_once_and_applies_to_the_next_request(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    assert not await has_role(slack, ALICE)
    standin.delay_next("users.info", 0.6)

    started = time.monotonic()
    reply = await slack.slash_command(ADMIN, f"roles grant {ALICE_MENTION} specialist")
    acked_after = time.monotonic() - started

    assert reply.status == 200 and reply.body == ""
    assert acked_after < 0.45, "the ack waited for Slack's users.info"
    assert standin.responses_to(reply.sent["response_url"]) == []
    body = await answer(standin, reply)
    assert f"<@{ALICE}>" in body["text"] and "Implementation Specialist" in body["text"]
    assert await has_role(slack, ALICE)
    assert not await is_admin(slack, ALICE)

    upgrade = await slack.slash_command(ADMIN, f"roles grant {ALICE_MENTION} ADMIN")
    assert "Account Administrator" in (await answer(standin, upgrade))["text"]
    assert await is_admin(slack, ALICE)

    latest = (await audit_events(store))[:2]
    assert [event.action for event in latest] == ["role.user", "role.user"]
    assert all(event.actor == ADMIN for event in latest)
    assert latest[0].before == {"user_id": ALICE, "role": "specialist"}
    assert latest[0].after == {"user_id": ALICE, "role": "admin"}


async def test_grant_to_an_enterprise_grid_id_without_a_label(
    slack: SlackClient, standin: SlackStandIn
) -> None:
    reply = await slack.slash_command(ADMIN, f"roles grant {GRID_MENTION} specialist")
    assert f"<@{GRID_USER}>" in (await answer(standin, reply))["text"]
    assert await has_role(slack, GRID_USER)


CANNOT_HOLD_A_ROLE: list[tuple[str, dict[str, Any] | None, str]] = [
    ("UBOT00001", {"is_bot": True}, "Bots cannot"),
    ("UGUEST001", {"is_restricted": True}, "Guests cannot"),
    ("UGUEST002", {"is_ultra_restricted": True}, "Guests cannot"),
    ("UGONE0001", {"deleted": True}, "left the workspace"),
    ("UOTHER001", {"team_id": "T0OTHER"}, "another organisation"),
    ("UNOBODY01", None, "does not know"),
]


async def test_grant_to_someone_who_cannot_hold_a_role_changes_nothing(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    mappings, events = await store.roles.mappings(), await audit_events(store)
    for who, profile, why in CANNOT_HOLD_A_ROLE:
        if profile is not None:
            standin.add_user(who, **profile)

        reply = await slack.slash_command(ADMIN, f"roles grant <@{who}|someone> admin")

        body = await answer(standin, reply)
        assert why in body["text"], (who, body["text"])
        assert await store.roles.mappings() == mappings
        assert await audit_events(store) == events
        assert not await has_role(slack, who), who


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
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    mappings = await store.roles.mappings()
    for text, hint in MENTION_MISSING:
        reply = await slack.slash_command(ADMIN, text)
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
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    mappings = await store.roles.mappings()
    for text, usage in USAGE:
        reply = await slack.slash_command(ADMIN, text)
        assert reply.body["response_type"] == "ephemeral"
        assert usage in reply.body["text"], (text, reply.body["text"])
        assert check_message(reply.body) == []
    await drain()
    assert standin.responses == [] and standin.calls_to("users.info") == []
    assert await store.roles.mappings() == mappings


# -- roles revoke -----------------------------------------------------------------------


async def test_a_revoked_user_is_refused_on_their_next_request(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
    assert await has_role(slack, ALICE)

    reply = await slack.slash_command(ADMIN, f"roles revoke {ALICE_MENTION}")

    text = (await answer(standin, reply))["text"]
    assert "no longer an Implementation Specialist" in text
    assert "no role now" in text
    assert not await has_role(slack, ALICE)
    latest = (await audit_events(store))[0]
    assert (latest.actor, latest.action) == (ADMIN, "role.user")
    assert latest.after == {"user_id": ALICE, "role": None}

    again = await slack.slash_command(ADMIN, f"roles revoke {ALICE_MENTION}")
    assert "had no direct role" in (await answer(standin, again))["text"]


async def test_a_bootstrap_admin_cannot_be_revoked_or_downgraded_from_slack(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    mappings = await store.roles.mappings()
    for text in (f"roles revoke <@{ADMIN}|boss>", f"roles grant <@{ADMIN}|boss> specialist"):
        reply = await slack.slash_command(ADMIN, text)
        body = await answer(standin, reply)
        assert "Not changed" in body["text"] and "TOKENDESK_ADMINS" in body["text"]
    assert await store.roles.mappings() == mappings
    assert await is_admin(slack, ADMIN)


async def test_revoke_names_the_sources_that_remain(
    slack: SlackClient, standin: SlackStandIn, store: Store, memberships: SlackGroupMemberships
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.ADMIN)
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE, BOB])
    await memberships.refresh_all()

    reply = await slack.slash_command(ADMIN, f"roles revoke {ALICE_MENTION}")

    text = (await answer(standin, reply))["text"]
    assert "no longer an Account Administrator directly" in text
    assert f"Implementation Specialist through <!subteam^{OPS}>" in text
    assert "no role now" not in text
    assert await has_role(slack, ALICE)
    assert not await is_admin(slack, ALICE)


# -- the last admin ---------------------------------------------------------------------


@pytest.mark.parametrize("bootstrap_admins", [()])
async def test_the_last_admin_cannot_be_revoked_or_downgraded_from_slack(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    await store.roles.grant_user(actor="cli:setup", user_id=ALICE, role=Role.ADMIN)
    assert not await has_role(slack, ADMIN), "TOKENDESK_ADMINS should be empty here"
    mappings = await store.roles.mappings()

    for text in (f"roles revoke {ALICE_MENTION}", f"roles grant {ALICE_MENTION} specialist"):
        reply = await slack.slash_command(ALICE, text)
        body = await answer(standin, reply)
        assert "Not changed" in body["text"] and "no Account Administrator" in body["text"]
    assert await store.roles.mappings() == mappings
    assert await is_admin(slack, ALICE)

    # With a second admin, one of them may step down; then the other is the last again.
    grant = await slack.slash_command(ALICE, f"roles grant {BOB_MENTION} admin")
    assert "Account Administrator" in (await answer(standin, grant))["text"]
    step_down = await slack.slash_command(ALICE, f"roles grant {ALICE_MENTION} specialist")
    assert "Not changed" not in (await answer(standin, step_down))["text"]
    assert await is_admin(slack, BOB) and not await is_admin(slack, ALICE)
    last = await slack.slash_command(BOB, f"roles revoke {BOB_MENTION}")
    assert "no Account Administrator" in (await answer(standin, last))["text"]
    assert await is_admin(slack, BOB)


@pytest.mark.parametrize("bootstrap_admins", [()])
async def test_the_last_admin_group_cannot_be_ungrouped_or_downgraded_from_slack(
    slack: SlackClient, standin: SlackStandIn, store: Store, memberships: SlackGroupMemberships
) -> None:
    await store.roles.grant_group(actor="cli:setup", group_id=OPS, role=Role.ADMIN)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    assert await is_admin(slack, ALICE)

    for text in (f"roles ungroup {OPS_MENTION}", f"roles group {OPS_MENTION} specialist"):
        reply = await slack.slash_command(ALICE, text)
        body = await answer(standin, reply)
        assert "Not changed" in body["text"] and "no Account Administrator" in body["text"]
    assert (await store.roles.mappings()).groups == ((OPS, Role.ADMIN),)
    assert await is_admin(slack, ALICE)


@pytest.mark.parametrize("bootstrap_admins", [()])
@pytest.mark.parametrize("members", [None, [], ["UGUEST001"]], ids=["unknown", "empty", "guests"])
async def test_the_last_admin_cannot_leave_on_a_group_that_makes_nobody_admin(
    slack: SlackClient, standin: SlackStandIn, store: Store, members: list[str] | None
) -> None:
    """A group Slack does not know cannot be mapped; an empty group, or one of guests, is
    mapped but keeps no Account Administrator."""
    standin.add_user("UGUEST001", is_restricted=True)
    if members is not None:
        standin.set_group(OPS, members)
    await store.roles.grant_user(actor="cli:setup", user_id=ALICE, role=Role.ADMIN)

    grouped = await slack.slash_command(ALICE, f"roles group {OPS_MENTION} admin")
    text = (await answer(standin, grouped))["text"]
    if members is None:
        assert "does not know that user group" in text
        assert (await store.roles.mappings()).groups == ()
    else:
        assert (await store.roles.mappings()).groups == ((OPS, Role.ADMIN),)
    await drain()  # the members' look-up the mapping started

    leave = await slack.slash_command(ALICE, f"roles revoke {ALICE_MENTION}")
    assert "no Account Administrator" in (await answer(standin, leave))["text"]
    assert await is_admin(slack, ALICE)


@pytest.mark.parametrize("bootstrap_admins", [()])
async def test_the_last_admin_may_leave_once_a_confirmed_member_is_admin_through_a_group(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    standin.set_group(OPS, [BOB])
    await store.roles.grant_user(actor="cli:setup", user_id=ALICE, role=Role.ADMIN)
    grouped = await slack.slash_command(ALICE, f"roles group {OPS_MENTION} admin")
    assert "Account Administrators" in (await answer(standin, grouped))["text"]
    await drain()

    leave = await slack.slash_command(ALICE, f"roles revoke {ALICE_MENTION}")

    assert "no longer an Account Administrator" in (await answer(standin, leave))["text"]
    assert not await has_role(slack, ALICE)
    assert await is_admin(slack, BOB)


# -- roles group / ungroup and the membership cache -------------------------------------


async def test_a_group_role_follows_group_and_ungroup(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    standin.set_group(OPS, [ALICE])
    assert not await has_role(slack, ALICE)

    grouped = await slack.slash_command(ADMIN, f"roles group {OPS_MENTION} specialist")
    text = (await answer(standin, grouped))["text"]
    assert f"<!subteam^{OPS}>" in text and "Implementation Specialists" in text
    await drain()  # the members' look-up the mapping started
    assert await has_role(slack, ALICE)
    assert not await has_role(slack, BOB)
    listing = await slack.slash_command(ADMIN, "roles")
    assert "group" in line_of(role_section(listing.body, Role.SPECIALIST), f"<!subteam^{OPS}>")

    ungrouped = await slack.slash_command(ADMIN, f"roles ungroup {OPS_MENTION}")
    assert "no longer" in (await answer(standin, ungrouped))["text"]
    assert not await has_role(slack, ALICE)
    await drain()
    assert not await has_role(slack, ALICE)

    latest = (await audit_events(store))[:2]
    assert [event.action for event in latest] == ["role.group", "role.group"]
    assert latest[1].after == {"group_id": OPS, "role": "specialist"}
    assert latest[0].after == {"group_id": OPS, "role": None}

    unknown = await slack.slash_command(ADMIN, f"roles ungroup {OPS_MENTION}")
    assert "had no role" in (await answer(standin, unknown))["text"]


async def test_mapping_a_group_slack_does_not_know_is_refused(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    mappings, events = await store.roles.mappings(), await audit_events(store)

    reply = await slack.slash_command(ADMIN, f"roles group {OPS_MENTION} specialist")

    text = (await answer(standin, reply))["text"]
    assert "Slack does not know that user group" in text and "nothing was changed" in text
    assert [call.args["usergroup"] for call in standin.calls_to(GROUP_METHOD)] == [OPS]
    assert await store.roles.mappings() == mappings
    assert await audit_events(store) == events

    standin.fail_next(GROUP_METHOD, "internal_error", status=200, retry_after=None)
    standin.set_group(OPS, [ALICE])
    again = await slack.slash_command(ADMIN, f"roles group {OPS_MENTION} specialist")
    assert "nothing was changed" in (await answer(standin, again))["text"]
    assert await store.roles.mappings() == mappings


async def test_subteam_members_changed_removes_at_once_and_adds_after_the_refresh(
    slack: SlackClient, standin: SlackStandIn, store: Store, memberships: SlackGroupMemberships
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    assert await has_role(slack, ALICE)

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
    assert not await has_role(slack, ALICE)
    assert not await has_role(slack, BOB)  # not known yet: no role
    assert len(standin.calls_to(GROUP_METHOD)) == fetched

    await drain()
    assert len(standin.calls_to(GROUP_METHOD)) == fetched + 1
    assert await has_role(slack, BOB)
    assert not await has_role(slack, ALICE)


async def test_an_answer_from_before_the_change_does_not_bring_a_removed_member_back(
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    members_client: HeldClient,
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    assert await has_role(slack, ALICE)

    # The periodic refresh asks Slack, which answers "Alice" ...
    release = members_client.hold = asyncio.Event()
    fetched = len(standin.calls_to(GROUP_METHOD))
    in_flight = asyncio.create_task(memberships.refresh_all())
    await eventually(lambda: len(standin.calls_to(GROUP_METHOD)) == fetched + 1)
    members_client.hold = None
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

    assert not await has_role(slack, ALICE), "the answer from before the change was kept"
    await memberships.refresh_all()
    assert await has_role(slack, BOB)
    assert not await has_role(slack, ALICE)


async def test_a_membership_older_than_60_seconds_gives_no_role(
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    clock: FakeClock,
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    clock.advance(59)
    assert await has_role(slack, ALICE)
    clock.advance(2)
    assert not await has_role(slack, ALICE)
    await memberships.refresh_all()
    assert await has_role(slack, ALICE)


async def test_a_membership_is_as_old_as_the_question_not_the_answer(
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    members_client: HeldClient,
    clock: FakeClock,
) -> None:
    """Slack's answer may be slow to arrive: what it says is true as of the question."""
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    release = members_client.hold = asyncio.Event()
    fetched = len(standin.calls_to(GROUP_METHOD))
    in_flight = asyncio.create_task(memberships.refresh(OPS))
    await eventually(lambda: len(standin.calls_to(GROUP_METHOD)) == fetched + 1)
    members_client.hold = None
    clock.advance(30)
    release.set()
    await in_flight
    assert await has_role(slack, ALICE)

    clock.advance(31)  # 61 s after the question, 31 s after the answer
    assert not await has_role(slack, ALICE)


async def test_a_failed_membership_look_up_gives_no_role(
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    clock: FakeClock,
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    standin.fail_next(GROUP_METHOD, "missing_scope", status=200, retry_after=None)
    await memberships.refresh_all()
    assert not await has_role(slack, ALICE)

    await memberships.refresh_all()
    assert await has_role(slack, ALICE)

    # Members known once, then the look-ups fail: what was known expires all the same.
    clock.advance(61)
    standin.fail_next(GROUP_METHOD, "internal_error", status=200, retry_after=None)
    await memberships.refresh_all()
    assert not await has_role(slack, ALICE)


async def test_the_role_gate_never_calls_slack_nor_waits_for_it(
    slack: SlackClient, standin: SlackStandIn, store: Store, memberships: SlackGroupMemberships
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    await memberships.refresh_all()
    fetched = len(standin.calls_to(GROUP_METHOD))

    for user, text in ((ALICE, "list"), (ALICE, "audit"), (STRANGER, "list"), (ADMIN, "roles")):
        reply = await slack.slash_command(user, text)
        assert reply.status == 200
    await drain()
    assert len(standin.calls_to(GROUP_METHOD)) == fetched

    # A look-up in flight (slow, then failing) delays no ack: meanwhile there is no role.
    standin.delay_next(GROUP_METHOD, 0.6)
    standin.fail_next(GROUP_METHOD, "internal_error", status=200, retry_after=None)
    memberships.invalidate(OPS)
    started = time.monotonic()
    reply = await slack.slash_command(ALICE, "list")
    assert time.monotonic() - started < 0.4
    assert refused(reply.body)
    await drain()
    assert len(standin.calls_to(GROUP_METHOD)) == fetched + 1
    assert not await has_role(slack, ALICE)


# -- /tokens access ---------------------------------------------------------------------


async def test_access_alone_tells_the_state(slack: SlackClient, store: Store) -> None:
    off = await slack.slash_command(ADMIN, "access")
    assert off.body["response_type"] == "ephemeral"
    assert "API access is off" in off.body["text"]
    await store.tokens.set_api_access(actor=ADMIN, enabled=True)
    on = await slack.slash_command(ADMIN, "access")
    assert "API access is on" in on.body["text"]


@pytest.mark.parametrize("actor", [ADMIN, SPECIALIST])
async def test_access_on_turns_it_on_audited(slack: SlackClient, store: Store, actor: str) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    reply = await slack.slash_command(actor, "access on")
    assert reply.body["response_type"] == "ephemeral"
    assert "API access is on" in reply.body["text"]
    assert store.tokens.api_access is True
    latest = (await audit_events(store))[0]
    assert (latest.actor, latest.action) == (actor, "api_access")
    assert (latest.before, latest.after) == ({"api_access": "off"}, {"api_access": "on"})

    count = len(await audit_events(store))
    again = await slack.slash_command(actor, "access ON")
    assert "already on" in again.body["text"]
    assert len(await audit_events(store)) == count


async def access_off_prompt(slack: SlackClient, store: Store, actor: str) -> list[Body]:
    await store.tokens.set_api_access(actor=ADMIN, enabled=True)
    count = len(await audit_events(store))
    reply = await slack.slash_command(actor, "access off")
    assert reply.body["response_type"] == "ephemeral"
    assert check_message(reply.body) == []
    assert store.tokens.api_access is True, "turned off before the confirmation"
    assert len(await audit_events(store)) == count
    blocks: list[Body] = reply.body["blocks"]
    return blocks


@pytest.mark.parametrize("actor", [ADMIN, SPECIALIST])
async def test_access_off_asks_to_confirm_then_turns_it_off(
    slack: SlackClient, standin: SlackStandIn, store: Store, actor: str
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    blocks = await access_off_prompt(slack, store, actor)
    prompt = all_text({"blocks": blocks})
    assert "auth check" in prompt and "stop working" in prompt
    turn_off = action_for(blocks, "api_access_off")
    assert turn_off["text"]["text"] == "Turn API access off"
    assert action_for(blocks, "api_access_keep")["text"]["text"] == "Keep it on"

    click = await slack.block_action(
        actor, turn_off, container=ephemeral_container(CHANNEL, MESSAGE_TS)
    )

    body = await answer(standin, click)
    assert body["replace_original"] is True
    assert "API access is off" in body["text"]
    assert store.tokens.api_access is False
    latest = (await audit_events(store))[0]
    assert (latest.actor, latest.action) == (actor, "api_access")
    assert latest.after == {"api_access": "off"}
    already = await slack.slash_command(actor, "access off")
    assert "already off" in already.body["text"]


async def test_keep_it_on_deletes_the_prompt_and_changes_nothing(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    blocks = await access_off_prompt(slack, store, ADMIN)
    count = len(await audit_events(store))
    click = await slack.block_action(
        ADMIN,
        action_for(blocks, "api_access_keep"),
        container=ephemeral_container(CHANNEL, MESSAGE_TS),
    )
    assert click.status == 200 and click.body == ""
    posts = await posted(standin, click)
    assert [post.body.get("delete_original") for post in posts] == [True]
    assert store.tokens.api_access is True
    assert len(await audit_events(store)) == count


async def test_a_stranger_replaying_the_turn_off_click_changes_nothing(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    blocks = await access_off_prompt(slack, store, ADMIN)
    count = len(await audit_events(store))
    for user in (STRANGER, STRANGER):
        click = await slack.block_action(
            user,
            action_for(blocks, "api_access_off"),
            container=ephemeral_container(CHANNEL, MESSAGE_TS),
        )
        posts = await posted(standin, click)
        assert len(posts) == 1
        assert posts[0].body["replace_original"] is False
        assert refused(posts[0].body)
    assert store.tokens.api_access is True
    assert len(await audit_events(store)) == count
    assert refused((await slack.slash_command(STRANGER, "access off")).body)
    assert refused((await slack.slash_command(STRANGER, "access on")).body)
    assert store.tokens.api_access is True


# -- /tokens audit ----------------------------------------------------------------------


def event_lines(body: Body) -> list[str]:
    return [text for text in sections(body) if "<!date^" in text]


def names_in(body: Body) -> list[str]:
    return [re.findall(r"\*([^*]+)\* \(", line)[0] for line in event_lines(body)]


async def create(store: Store, name: str, description: str = "", actor: str = ADMIN) -> int:
    issued = await store.tokens.create(
        actor=actor,
        name=name,
        description=description,
        access_rights=["reports:read"],
        primary_contact=ADMIN,
    )
    return issued.token.id


async def test_audit_shows_who_what_which_when_and_the_change_newest_first(
    slack: SlackClient, store: Store, specialist: str
) -> None:
    token_id = await create(store, "Nightly export", "old words")
    token = await store.tokens.get(token_id=token_id)
    await store.tokens.edit(
        actor=specialist,
        token_id=token_id,
        row_version=token.row_version,
        edit=TokenEdit(description="new words"),
    )
    await store.tokens.set_enabled(actor=ADMIN, token_id=token_id, enabled=False)

    reply = await slack.slash_command(specialist, "audit")

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


async def test_audit_pages_ten_at_a_time_with_older_and_newer(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    for number in range(1, 26):
        await create(store, f"Paging {number:02}")
    expected = [f"Paging {number:02}" for number in range(25, 0, -1)]

    reply = await slack.slash_command(ADMIN, "audit")
    assert names_in(reply.body) == expected[:10]
    with pytest.raises(LookupError):
        action_for(reply.body["blocks"], "audit_previous")

    async def click(blocks: list[Body], action_id: str) -> Body:
        sent = await slack.block_action(
            ADMIN,
            action_for(blocks, action_id),
            container=ephemeral_container(CHANNEL, MESSAGE_TS),
        )
        body = await answer(standin, sent)
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
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    for number in range(1, 13):
        await create(store, f"Alpha feed {number:02}")
        await create(store, f"Beta feed {number:02}")

    reply = await slack.slash_command(ADMIN, "audit ALPHA feed")
    assert names_in(reply.body) == [f"Alpha feed {n:02}" for n in range(12, 2, -1)]
    assert "ALPHA feed" in reply.body["text"]
    older = await slack.block_action(
        ADMIN,
        action_for(reply.body["blocks"], "audit_next"),
        container=ephemeral_container(CHANNEL, MESSAGE_TS),
    )
    body = await answer(standin, older)
    assert names_in(body) == ["Alpha feed 02", "Alpha feed 01"]

    nothing = await slack.slash_command(ADMIN, "audit Gamma")
    assert event_lines(nothing.body) == []
    assert "No audit events" in all_text(nothing.body)


async def test_role_and_access_changes_appear_in_the_audit(
    slack: SlackClient, standin: SlackStandIn
) -> None:
    standin.set_group(OPS, [BOB])
    grant = await slack.slash_command(ADMIN, f"roles grant {ALICE_MENTION} specialist")
    await answer(standin, grant)
    grouped = await slack.slash_command(ADMIN, f"roles group {OPS_MENTION} admin")
    await answer(standin, grouped)
    await slack.slash_command(ADMIN, "access on")

    reply = await slack.slash_command(ADMIN, "audit")

    access, group, role = event_lines(reply.body)
    assert f"<@{ADMIN}>" in access and "API access" in access and "off → on" in access
    assert "group" in group and OPS in group and "admin" in group
    assert "role" in role and ALICE in role and "specialist" in role


async def test_hostile_token_names_are_escaped_in_the_audit(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    token_id = await create(store, HOSTILE_NAME, description="<!here> & <https://evil.example>")
    await store.tokens.set_enabled(actor=ADMIN, token_id=token_id, enabled=False)
    for number in range(10):
        await create(store, f"Filler {number}")

    unfiltered = await slack.slash_command(ADMIN, "audit")
    older = await slack.block_action(
        ADMIN,
        action_for(unfiltered.body["blocks"], "audit_next"),
        container=ephemeral_container(CHANNEL, MESSAGE_TS),
    )
    filtered = await slack.slash_command(ADMIN, "audit &lt;!channel&gt; &amp;")
    for body in (unfiltered.body, await answer(standin, older), filtered.body):
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
    slack: SlackClient, standin: SlackStandIn, store: Store, filler: str
) -> None:
    for number in range(10):
        name = (f"{number} " + filler * 100)[:100].strip()
        token_id = await create(store, name, (filler * 500)[:500])
        token = await store.tokens.get(token_id=token_id)
        await store.tokens.edit(
            actor=ADMIN,
            token_id=token_id,
            row_version=token.row_version,
            edit=TokenEdit(description=(str(number) + filler * 500)[:500]),
        )

    reply = await slack.slash_command(ADMIN, "audit")
    assert check_message(reply.body) == []
    assert len(event_lines(reply.body)) == 10
    older = await slack.block_action(
        ADMIN,
        action_for(reply.body["blocks"], "audit_next"),
        container=ephemeral_container(CHANNEL, MESSAGE_TS),
    )
    body = await answer(standin, older)
    assert len(event_lines(body)) == 10


async def test_the_audit_never_shows_a_secret(
    slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    issued = await store.tokens.create(
        actor=ADMIN, name="Payroll feed", access_rights=["reports:read"], primary_contact=ADMIN
    )
    reset = await store.tokens.reset(
        actor=ADMIN, token_id=issued.token.id, row_version=issued.token.row_version
    )
    secrets = (issued.secret, reset.secret)

    listing = await slack.slash_command(ADMIN, "audit")
    typed = await slack.slash_command(ADMIN, f"audit {reset.secret}")

    assert len(event_lines(listing.body)) == 2
    for body in (listing.body, typed.body):
        assert check_message(body) == []
        shown = json.dumps(body)
        for secret in secrets:
            assert secret not in shown and secret[4:36] not in shown
        assert "tdk_" not in shown


async def test_audit_is_refused_to_a_stranger(slack: SlackClient, standin: SlackStandIn) -> None:
    reply = await slack.slash_command(STRANGER, "audit")
    assert refused(reply.body)
    assert "<!date^" not in all_text(reply.body)
    click = await slack.block_action(
        STRANGER,
        {
            "type": "button",
            "action_id": "audit_next",
            "block_id": "audit_pager",
            "value": "0:",
            "text": {"type": "plain_text", "text": "Older"},
        },
        container=ephemeral_container(CHANNEL, MESSAGE_TS),
    )
    posts = await posted(standin, click)
    assert len(posts) == 1 and refused(posts[0].body)
    assert posts[0].body["replace_original"] is False
