from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.errors import RoleChangeRefused
from storage.models import Role, RoleSource, SlackStatus, UserStatus
from storage.store import Store
from tests.storage.conftest import BOOTSTRAP_ADMIN, OpenStore
from tests.storage.support_durability import START, FakeClock

NO_ROLE_STATUSES = [status for status in SlackStatus if status is not SlackStatus.MEMBER]


def learned(user_id: str, status: SlackStatus, at: float = START) -> UserStatus:
    return UserStatus(user_id, status, datetime.fromtimestamp(at, UTC))


async def members(store: Store, *user_ids: str) -> None:
    await store.roles.record_statuses(
        statuses=[learned(user, SlackStatus.MEMBER) for user in user_ids]
    )


async def test_nobody_has_a_role_by_default(store: Store) -> None:
    assert await store.roles.effective_role(user_id="USTRANGER") is None


async def test_bootstrap_admins_are_admins(store: Store) -> None:
    assert await store.roles.effective_role(user_id=BOOTSTRAP_ADMIN) is Role.ADMIN


async def test_the_effective_role_is_the_highest_source(store: Store) -> None:
    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001", role=Role.SPECIALIST)
    await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="SADMINS01", role=Role.ADMIN)
    await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="SSPECS001", role=Role.SPECIALIST)
    await members(store, "UALICE001", "UBOB00001")

    assert await store.roles.effective_role(user_id="UALICE001") is Role.SPECIALIST
    assert (
        await store.roles.effective_role(user_id="UALICE001", group_ids=["SADMINS01"]) is Role.ADMIN
    )
    assert await store.roles.effective_role(user_id="UBOB00001", group_ids=["SSPECS001"]) is (
        Role.SPECIALIST
    )
    assert await store.roles.effective_role(user_id="UBOB00001", group_ids=["SOTHER001"]) is None
    assert await store.roles.sources(user_id="UALICE001", group_ids=["SSPECS001", "SADMINS01"]) == [
        RoleSource("direct", Role.SPECIALIST),
        RoleSource("group", Role.ADMIN, "SADMINS01"),
        RoleSource("group", Role.SPECIALIST, "SSPECS001"),
    ]


async def test_a_change_applies_to_the_very_next_read(store: Store, open_store: OpenStore) -> None:
    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001", role=Role.ADMIN)
    assert await store.roles.effective_role(user_id="UALICE001") is Role.ADMIN
    previous = await store.roles.revoke_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001")
    assert previous is Role.ADMIN
    assert await store.roles.effective_role(user_id="UALICE001") is None
    assert await store.roles.revoke_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001") is None


async def test_mappings_list_every_source(store: Store) -> None:
    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001", role=Role.ADMIN)
    await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="SSPECS001", role=Role.SPECIALIST)
    mappings = await store.roles.mappings()
    assert mappings.bootstrap_admins == (BOOTSTRAP_ADMIN,)
    assert mappings.users == (("UALICE001", Role.ADMIN),)
    assert mappings.groups == (("SSPECS001", Role.SPECIALIST),)


async def test_bootstrap_admins_cannot_be_changed(store: Store) -> None:
    with pytest.raises(RoleChangeRefused, match="TOKENDESK_ADMINS"):
        await store.roles.revoke_user(actor="UALICE001", user_id=BOOTSTRAP_ADMIN)
    with pytest.raises(RoleChangeRefused, match="TOKENDESK_ADMINS"):
        await store.roles.grant_user(
            actor="UALICE001", user_id=BOOTSTRAP_ADMIN, role=Role.SPECIALIST
        )


async def test_the_last_admin_is_protected_without_bootstrap_admins(
    open_store: OpenStore,
) -> None:
    store = await open_store(admins=())
    await store.roles.grant_user(actor="cli:ops", user_id="UALICE001", role=Role.ADMIN)
    with pytest.raises(RoleChangeRefused, match="no Account Administrator"):
        await store.roles.revoke_user(actor="UALICE001", user_id="UALICE001")
    with pytest.raises(RoleChangeRefused, match="no Account Administrator"):
        await store.roles.grant_user(actor="UALICE001", user_id="UALICE001", role=Role.SPECIALIST)
    assert await store.roles.effective_role(user_id="UALICE001") is Role.ADMIN

    await store.roles.grant_group(actor="UALICE001", group_id="SADMINS01", role=Role.ADMIN)
    await members(store, "UBOB00001")
    confirmed = {"SADMINS01": {"UBOB00001"}}
    assert (
        await store.roles.revoke_user(
            actor="UALICE001", user_id="UALICE001", group_members=confirmed
        )
        is Role.ADMIN
    )
    with pytest.raises(RoleChangeRefused):
        await store.roles.revoke_group(
            actor="UALICE001", group_id="SADMINS01", group_members=confirmed
        )


@pytest.mark.parametrize(
    "group_members",
    [{}, {"SADMINS01": set()}, {"SADMINS01": {"UGUEST001"}}, {"SOTHER001": {"UBOB00001"}}],
    ids=["members-unknown", "empty", "guests-only", "another-group"],
)
async def test_an_admin_group_without_a_confirmed_admin_keeps_nobody(
    open_store: OpenStore, group_members: dict[str, set[str]]
) -> None:
    """A mapping alone is no Account Administrator: not of a group Slack does not know or
    whose members are not known, not of an empty group, not of a group of guests."""
    store = await open_store(admins=())
    await store.roles.grant_user(actor="cli:ops", user_id="UALICE001", role=Role.ADMIN)
    await store.roles.grant_group(actor="UALICE001", group_id="SADMINS01", role=Role.ADMIN)
    await store.roles.record_statuses(
        statuses=[learned("UGUEST001", SlackStatus.GUEST), learned("UBOB00001", SlackStatus.MEMBER)]
    )

    with pytest.raises(RoleChangeRefused, match="no Account Administrator"):
        await store.roles.revoke_user(
            actor="UALICE001", user_id="UALICE001", group_members=group_members
        )
    assert await store.roles.effective_role(user_id="UALICE001") is Role.ADMIN


@pytest.mark.parametrize("status", NO_ROLE_STATUSES)
async def test_a_direct_admin_who_cannot_hold_a_role_keeps_nobody(
    open_store: OpenStore, status: SlackStatus
) -> None:
    store = await open_store(admins=())
    for user in ("UALICE001", "UBOB00001"):
        await store.roles.grant_user(actor="cli:ops", user_id=user, role=Role.ADMIN)
    await store.roles.record_statuses(statuses=[learned("UBOB00001", status)])

    with pytest.raises(RoleChangeRefused, match="no Account Administrator"):
        await store.roles.revoke_user(actor="UALICE001", user_id="UALICE001")


@pytest.mark.parametrize("status", NO_ROLE_STATUSES)
async def test_a_status_that_allows_no_role_outweighs_every_source(
    store: Store, status: SlackStatus
) -> None:
    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001", role=Role.ADMIN)
    await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="SADMINS01", role=Role.ADMIN)
    await store.roles.record_statuses(
        statuses=[learned(user, status) for user in ("UALICE001", "UBOB00001", BOOTSTRAP_ADMIN)]
    )

    for user in ("UALICE001", "UBOB00001", BOOTSTRAP_ADMIN):
        assert await store.roles.effective_role(user_id=user, group_ids=["SADMINS01"]) is None
        assert await store.roles.sources(user_id=user, group_ids=["SADMINS01"]) == []
    # The mappings stay: the role comes back if Slack says they are a member again.
    await members(store, "UALICE001")
    assert await store.roles.effective_role(user_id="UALICE001") is Role.ADMIN


async def test_without_a_known_status_only_a_group_gives_no_role(store: Store) -> None:
    """Bootstrap and direct roles were given by name (the status follows within a minute);
    a group's members are vouched for by nobody until Slack said who they are."""
    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001", role=Role.SPECIALIST)
    await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="SADMINS01", role=Role.ADMIN)

    assert await store.roles.effective_role(user_id=BOOTSTRAP_ADMIN) is Role.ADMIN
    assert (
        await store.roles.effective_role(user_id="UALICE001", group_ids=["SADMINS01"])
        is Role.SPECIALIST
    )
    assert await store.roles.effective_role(user_id="UBOB00001", group_ids=["SADMINS01"]) is None

    await members(store, "UALICE001", "UBOB00001")
    assert (
        await store.roles.effective_role(user_id="UALICE001", group_ids=["SADMINS01"]) is Role.ADMIN
    )
    assert await store.roles.effective_role(user_id="UBOB00001", group_ids=["SADMINS01"]) is (
        Role.ADMIN
    )


async def test_many_roles_at_once_follow_the_same_rules_as_one(store: Store) -> None:
    """The scheduler asks about every recipient of a pass in one query: each answer is the
    one `effective_role` gives, whatever mix of bootstrap, direct and group roles, known
    status and groups the user has."""
    await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="SADMINS01", role=Role.ADMIN)
    await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="SSPECS001", role=Role.SPECIALIST)
    group_choices = [(), ("SADMINS01",), ("SSPECS001",), ("SNOMAP001",), ("SSPECS001", "SADMINS01")]
    groups_by_user: dict[str, tuple[str, ...]] = {}
    statuses = []
    for d, direct in enumerate([None, Role.SPECIALIST, Role.ADMIN]):
        for s, status in enumerate([None, *SlackStatus]):
            for g, groups in enumerate(group_choices):
                user = f"U{d}{s}{g}00000"
                groups_by_user[user] = groups
                if direct is not None:
                    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id=user, role=direct)
                if status is not None:
                    statuses.append(learned(user, status))
    await store.roles.record_statuses(statuses=statuses)

    for status in [None, *SlackStatus]:
        if status is not None:
            await store.roles.record_statuses(statuses=[learned(BOOTSTRAP_ADMIN, status)])
        groups_by_user[BOOTSTRAP_ADMIN] = ("SSPECS001",)
        roles = await store.roles.effective_roles(groups_by_user=groups_by_user)
        expected = {
            user: await store.roles.effective_role(user_id=user, group_ids=groups)
            for user, groups in groups_by_user.items()
        }
        assert roles == expected
        assert {role for role in roles.values()} == {None, Role.SPECIALIST, Role.ADMIN}
    assert await store.roles.effective_roles(groups_by_user={}) == {}


async def test_an_earlier_status_never_overwrites_a_later_one(store: Store) -> None:
    """A slow look-up asked before Slack's `user_change` event must not undo it."""
    await store.roles.record_statuses(statuses=[learned("UALICE001", SlackStatus.GUEST, START - 2)])
    await store.roles.record_statuses(
        statuses=[learned("UALICE001", SlackStatus.MEMBER, START - 2.4)]
    )
    assert await store.roles.status_of(user_id="UALICE001") is SlackStatus.GUEST

    await store.roles.record_statuses(statuses=[learned("UALICE001", SlackStatus.MEMBER, START)])
    known = await store.roles.statuses(user_ids=["UALICE001", "UNOBODY01"])
    assert known == {"UALICE001": learned("UALICE001", SlackStatus.MEMBER, START)}


async def test_a_status_kept_from_before_the_clock_was_set_back_blocks_nothing(
    store: Store, clock: FakeClock
) -> None:
    await store.roles.record_statuses(statuses=[learned("UALICE001", SlackStatus.MEMBER, START)])
    clock.advance(-3600)
    await store.roles.record_statuses(
        statuses=[learned("UALICE001", SlackStatus.GUEST, START - 3600)]
    )
    assert await store.roles.status_of(user_id="UALICE001") is SlackStatus.GUEST


async def test_statuses_outlive_a_restart(store: Store, open_store: OpenStore) -> None:
    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001", role=Role.ADMIN)
    await store.roles.record_statuses(statuses=[learned("UALICE001", SlackStatus.GUEST)])
    await store.close()

    reopened = await open_store()
    assert await reopened.roles.status_of(user_id="UALICE001") is SlackStatus.GUEST
    assert await reopened.roles.effective_role(user_id="UALICE001") is None


async def test_ids_are_checked(store: Store) -> None:
    with pytest.raises(RoleChangeRefused):
        await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="alice", role=Role.ADMIN)
    with pytest.raises(RoleChangeRefused):
        await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="UALICE001", role=Role.ADMIN)


async def test_role_changes_are_audited(store: Store) -> None:
    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001", role=Role.SPECIALIST)
    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001", role=Role.SPECIALIST)
    await store.roles.revoke_user(actor="cli:ops", user_id="UALICE001")
    events = await store.audit.events()
    assert [(event.actor, event.action, event.before, event.after) for event in events] == [
        (
            "cli:ops",
            "role.user",
            {"user_id": "UALICE001", "role": "specialist"},
            {"user_id": "UALICE001", "role": None},
        ),
        (
            BOOTSTRAP_ADMIN,
            "role.user",
            {"user_id": "UALICE001", "role": None},
            {"user_id": "UALICE001", "role": "specialist"},
        ),
    ]
