"""Guests, bots, deactivated users and people of another organisation hold no role, whenever
Slack says so: the role check reads their last known Slack status from the store, which the
app learns off the request path (at grant time, with a group's members, in the background
refresh, and at once from Slack's `user_change` event) and keeps across a restart.

Group members and statuses come from a real `SlackGroupMemberships` with no background
refresher: a test decides when Slack is asked (`refresh_all`), on clocks moved by hand.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import create_app
from bot.background import drain
from bot.memberships import LOOKUPS_AT_ONCE, SlackGroupMemberships
from bot.server import create_web_app
from bot.settings import Settings
from slack_standin.client import SlackClient
from slack_standin.server import SlackStandIn
from storage.models import Role, SlackStatus
from storage.store import Store
from tests.bot.conftest import (
    ADMIN,
    ALICE,
    ALICE_MENTION,
    BOB,
    OPS,
    SIGNING_SECRET,
    OpenStore,
    serve,
)
from tests.bot.doubles import HeldClient, ManualClock, WallClock
from tests.bot.driver import SlackUser, eventually, settle

ROOT = Path(__file__).resolve().parents[2]

GUEST, GUEST_MENTION = "U0GUEST01", "<@U0GUEST01|guest>"
USERS_INFO = "users.info"

NO_ROLE_PROFILES: list[tuple[dict[str, Any], SlackStatus]] = [
    ({"is_restricted": True}, SlackStatus.GUEST),
    ({"is_ultra_restricted": True}, SlackStatus.GUEST),
    ({"is_bot": True}, SlackStatus.BOT),
    ({"deleted": True}, SlackStatus.DEACTIVATED),
    ({"team_id": "T0OTHER"}, SlackStatus.OTHER_ORGANISATION),
]


@pytest.fixture
def memberships(slack_memberships: SlackGroupMemberships) -> SlackGroupMemberships:
    return slack_memberships


@pytest.fixture(autouse=True)
def guest(standin: SlackStandIn) -> None:
    standin.add_user(GUEST, name="guest", is_restricted=True)


class RequestPath:
    """Role checks through signed requests, each proven not to call Slack on the way."""

    def __init__(self, slack: SlackClient) -> None:
        self.slack = slack

    async def has_role(self, user_id: str) -> bool:
        calls = self.slack.standin.calls
        before = len(calls)
        held = await SlackUser(self.slack, user_id).has_role()
        # Bolt checks its own token once (`auth.test`); nothing else may be asked.
        asked = [call.method for call in calls[before:]]
        assert set(asked) <= {"auth.test"}, f"the role check called Slack: {asked}"
        return held


@pytest.fixture
def request_path(slack: SlackClient) -> RequestPath:
    return RequestPath(slack)


async def change_user(
    slack: SlackClient, standin: SlackStandIn, user_id: str, **fields: Any
) -> None:
    """Slack changes the user, then tells the app with `user_change`."""
    standin.users[user_id].update(fields)
    reply = await slack.event({"type": "user_change", "user": dict(standin.users[user_id])})
    assert reply.status == 200


# -- a member made a guest ----------------------------------------------------------------


async def test_a_member_made_a_guest_loses_the_role_at_the_next_refresh(
    request_path: RequestPath,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    wall_clock: WallClock,
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
    await memberships.refresh_all()
    assert await request_path.has_role(ALICE)

    standin.users[ALICE]["is_restricted"] = True
    assert await request_path.has_role(ALICE), "Slack was asked on the request path"
    wall_clock.advance(36)
    await memberships.refresh_all()

    assert not await request_path.has_role(ALICE)
    assert (await store.roles.mappings()).users == ((ALICE, Role.SPECIALIST),)


@pytest.mark.parametrize(("profile", "status"), NO_ROLE_PROFILES)
async def test_user_change_takes_the_role_away_at_once(
    request_path: RequestPath,
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    profile: dict[str, Any],
    status: SlackStatus,
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.ADMIN)
    assert await request_path.has_role(ALICE)

    await change_user(slack, standin, ALICE, **profile)
    await eventually(lambda: _status_is(store, ALICE, status))
    # Their Home, republished without token data, is the event's doing, not the check's.
    await settle()
    assert standin.home_of(ALICE) is not None

    assert not await request_path.has_role(ALICE)
    assert standin.calls_to(USERS_INFO) == []


async def test_a_bootstrap_admin_made_a_guest_holds_no_role(
    request_path: RequestPath, slack: SlackClient, standin: SlackStandIn, store: Store
) -> None:
    assert await request_path.has_role(ADMIN)
    await change_user(slack, standin, ADMIN, is_restricted=True)
    await eventually(lambda: _status_is(store, ADMIN, SlackStatus.GUEST))
    await settle()
    assert not await request_path.has_role(ADMIN)

    await change_user(slack, standin, ADMIN, is_restricted=False)
    await eventually(lambda: _status_is(store, ADMIN, SlackStatus.MEMBER))
    assert await request_path.has_role(ADMIN)


async def test_user_change_events_that_name_nobody_change_nothing(
    slack: SlackClient, store: Store
) -> None:
    for user in (ADMIN, {"name": "no id"}, {"id": "not-an-id", "is_restricted": True}, None):
        reply = await slack.event({"type": "user_change", "user": user})
        assert reply.status == 200
    await drain()
    assert await store.roles.statuses(user_ids=[ADMIN, "not-an-id"]) == {}


async def test_an_answer_asked_for_before_user_change_does_not_undo_it(
    request_path: RequestPath,
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    background_client: HeldClient,
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
    # The refresh asks Slack about Alice, who is still a member ...
    release = background_client.hold(USERS_INFO)
    refreshing = asyncio.create_task(memberships.refresh_all())
    await eventually(lambda: _answered(standin, ALICE))
    # ... then she is made a guest, and Slack's event overtakes that answer.
    await change_user(slack, standin, ALICE, is_restricted=True)
    await eventually(lambda: _status_is(store, ALICE, SlackStatus.GUEST))
    release.set()
    await refreshing

    assert await store.roles.status_of(user_id=ALICE) is SlackStatus.GUEST
    assert not await request_path.has_role(ALICE)


# -- user groups --------------------------------------------------------------------------


async def test_a_guest_in_a_mapped_group_holds_no_role(
    request_path: RequestPath,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE, GUEST])

    await memberships.refresh_all()

    assert memberships.groups_of(GUEST) == {OPS}
    assert await store.roles.status_of(user_id=GUEST) is SlackStatus.GUEST
    assert await request_path.has_role(ALICE)
    assert not await request_path.has_role(GUEST)


async def test_a_group_member_whose_status_is_unknown_gets_no_role_from_the_group(
    request_path: RequestPath,
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
) -> None:
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [ALICE])
    standin.fail_next(USERS_INFO, "internal_error", status=200, retry_after=None)

    await memberships.refresh(OPS)

    assert memberships.groups_of(ALICE) == {OPS}, "the members are known all the same"
    assert not await request_path.has_role(ALICE)
    await memberships.refresh_all()
    assert await request_path.has_role(ALICE)


async def test_statuses_are_asked_again_within_a_minute_and_no_sooner_than_needed(
    standin: SlackStandIn,
    store: Store,
    memberships: SlackGroupMemberships,
    clock: ManualClock,
    wall_clock: WallClock,
) -> None:
    """Every role holder: bootstrap admins, direct mappings and members of mapped groups."""
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    standin.set_group(OPS, [BOB, GUEST])
    holders = {ADMIN, ALICE, BOB, GUEST}

    await memberships.refresh_all()
    assert _asked_about(standin) == sorted(holders)

    # 25 s later (the next round): nothing is old enough to be asked again.
    standin.calls.clear()
    clock.advance(25)
    wall_clock.advance(25)
    await memberships.refresh_all()
    assert _asked_about(standin) == []

    # 50 s after the first round: everyone, so no status is ever older than 60 s.
    clock.advance(25)
    wall_clock.advance(25)
    await memberships.refresh_all()
    assert _asked_about(standin) == sorted(holders)
    known = await store.roles.statuses(user_ids=holders)
    assert {user: status.status for user, status in known.items()} == {
        ADMIN: SlackStatus.MEMBER,
        ALICE: SlackStatus.MEMBER,
        BOB: SlackStatus.MEMBER,
        GUEST: SlackStatus.GUEST,
    }


async def test_a_rate_limit_ends_the_round_and_the_rest_keep_their_last_known_status(
    standin: SlackStandIn, store: Store, memberships: SlackGroupMemberships, wall_clock: WallClock
) -> None:
    users = [f"U0MEMBER{number:02d}" for number in range(10)]
    for user in users:
        standin.add_user(user)
        await store.roles.grant_user(actor=ADMIN, user_id=user, role=Role.SPECIALIST)
    await memberships.refresh_all()
    for user in users:
        standin.users[user]["is_restricted"] = True
    wall_clock.advance(36)
    # The client here does not retry: Slack's `ratelimited` reaches the refresh at once.
    standin.fail_next(USERS_INFO, "ratelimited", status=429, retry_after=30)
    asked = len(standin.calls_to(USERS_INFO))

    await memberships.refresh_all()

    assert len(standin.calls_to(USERS_INFO)) - asked == LOOKUPS_AT_ONCE
    known = await store.roles.statuses(user_ids=users)
    guests = [user for user in users if known[user].status is SlackStatus.GUEST]
    assert 0 < len(guests) < len(users)
    for user in set(users) - set(guests):
        assert known[user].status is SlackStatus.MEMBER

    # The next round asks the rest first.
    await memberships.refresh_all()
    known = await store.roles.statuses(user_ids=users)
    assert {status.status for status in known.values()} == {SlackStatus.GUEST}


# -- kept in the database ------------------------------------------------------------------


async def test_a_restart_keeps_every_status(
    slack: SlackClient,
    standin: SlackStandIn,
    settings: Settings,
    store: Store,
    open_store: OpenStore,
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
    await store.roles.grant_user(actor=ADMIN, user_id=BOB, role=Role.SPECIALIST)
    await change_user(slack, standin, ALICE, is_restricted=True)
    await eventually(lambda: _status_is(store, ALICE, SlackStatus.GUEST))
    await drain()
    await store.close()

    reopened = await open_store()
    runner, url = await serve(
        create_web_app(reopened, create_app(settings, reopened), serve_slack_events=True)
    )
    try:
        async with SlackClient(
            f"{url}/slack/events", signing_secret=SIGNING_SECRET, standin=standin
        ) as restarted:
            path = RequestPath(restarted)
            assert not await path.has_role(ALICE)
            assert await path.has_role(BOB)
            assert await path.has_role(ADMIN)
    finally:
        await drain()
        await runner.cleanup()


# -- granting -------------------------------------------------------------------------------


async def test_a_grant_keeps_what_slack_said(admin: SlackUser, store: Store) -> None:
    grant = await admin.send_command(f"roles grant {ALICE_MENTION} specialist")
    assert "Implementation Specialist" in (await admin.answer(grant))["text"]
    assert await store.roles.status_of(user_id=ALICE) is SlackStatus.MEMBER

    refused = await admin.send_command(f"roles grant {GUEST_MENTION} specialist")
    assert "Guests cannot" in (await admin.answer(refused))["text"]
    assert await store.roles.status_of(user_id=GUEST) is SlackStatus.GUEST


def test_the_manifest_subscribes_to_user_change() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert "user_change" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert "users:read" in manifest["oauth_config"]["scopes"]["bot"]


# -- helpers ---------------------------------------------------------------------------------


async def _status_is(store: Store, user_id: str, status: SlackStatus) -> bool:
    return await store.roles.status_of(user_id=user_id) is status


async def _answered(standin: SlackStandIn, user_id: str) -> bool:
    return any(call.args.get("user") == user_id for call in standin.calls_to(USERS_INFO))


def _asked_about(standin: SlackStandIn) -> list[str]:
    return sorted(str(call.args.get("user")) for call in standin.calls_to(USERS_INFO))
