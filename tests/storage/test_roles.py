from __future__ import annotations

import pytest

from storage.errors import RoleChangeRefused
from storage.models import Role, RoleSource
from storage.store import Store
from tests.storage.conftest import BOOTSTRAP_ADMIN, OpenStore


async def test_nobody_has_a_role_by_default(store: Store) -> None:
    assert await store.roles.effective_role(user_id="USTRANGER") is None


async def test_bootstrap_admins_are_admins(store: Store) -> None:
    assert await store.roles.effective_role(user_id=BOOTSTRAP_ADMIN) is Role.ADMIN


async def test_the_effective_role_is_the_highest_source(store: Store) -> None:
    await store.roles.grant_user(actor=BOOTSTRAP_ADMIN, user_id="UALICE001", role=Role.SPECIALIST)
    await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="SADMINS01", role=Role.ADMIN)
    await store.roles.grant_group(actor=BOOTSTRAP_ADMIN, group_id="SSPECS001", role=Role.SPECIALIST)

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
    assert await store.roles.revoke_user(actor="UALICE001", user_id="UALICE001") is Role.ADMIN
    with pytest.raises(RoleChangeRefused):
        await store.roles.revoke_group(actor="UALICE001", group_id="SADMINS01")


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
