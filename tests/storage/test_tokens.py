from __future__ import annotations

import asyncio
import json

import pytest

from storage.credentials import is_valid_secret
from storage.errors import (
    AlreadyApplied,
    AlreadyNewestVersion,
    InvalidInput,
    NameTaken,
    StaleVersion,
    TokenNotFound,
)
from storage.models import CreatedOn, StateFilter, TokenEdit, TokenFilter
from storage.store import Store
from tests.storage.conftest import DAY_SECONDS, FakeClock, OpenStore
from tests.storage.support_durability import create_token
from tests.store_support import token_by_sid, verify

ADMINS = ("UADMIN001", "UADMIN002", "UADMIN003")


async def test_create_issues_an_enabled_token_on_the_newest_version(store: Store) -> None:
    issued = await create_token(store, description="Nightly exports", actor="UALICE001")
    token = issued.token

    assert is_valid_secret(issued.secret)
    assert token.secret_hint == issued.secret[-4:]
    assert token.enabled
    assert token.api_version == "v3"
    assert token.access_rights == ("reports:read",)
    assert token.primary_contact == "UCONTACT1"
    assert (token.created_by, token.updated_by) == ("UALICE001", "UALICE001")
    assert token.last_used_at is None and token.reset_at is None
    assert token.row_version == 1
    assert await store.token_reads.get(token_id=token.id) == token
    assert await token_by_sid(store, token.sid) == token
    assert issued.secret not in repr(issued)


async def test_get_unknown_token_raises(store: Store) -> None:
    with pytest.raises(TokenNotFound):
        await store.token_reads.get(token_id=12345)
    with pytest.raises(TokenNotFound):
        await token_by_sid(store, "TDNOPE")


async def test_create_reports_every_bad_field_at_once(store: Store) -> None:
    with pytest.raises(InvalidInput) as refused:
        await store.tokens.create(
            actor="UACTOR001",
            name="  ",
            description="x" * 501,
            access_rights=["admin:everything"],
            primary_contact="not-a-user",
            expires_on=None,
        )
    assert set(refused.value.errors) == {
        "name",
        "description",
        "access_rights",
        "primary_contact",
    }


async def test_a_pasted_secret_is_refused_without_being_echoed(store: Store) -> None:
    secret = (await create_token(store)).secret
    for field in ("name", "description"):
        values = {"name": "Fine", "description": ""} | {field: f"see {secret} here"}
        with pytest.raises(InvalidInput) as refused:
            await create_token(store, values["name"], description=values["description"])
        assert field in refused.value.errors
        assert secret not in str(refused.value)
        assert secret[4:36] not in str(refused.value.errors)


@pytest.mark.parametrize(
    ("first", "second"),
    [("Lifecycle Alpha", "LIFECYCLE ALPHA"), ("ＡＢＣ", "abc"), ("Straße", "STRASSE")],
)
async def test_names_are_unique_case_folded(store: Store, first: str, second: str) -> None:
    await create_token(store, first)
    with pytest.raises(NameTaken):
        await create_token(store, second)


async def test_two_concurrent_creates_of_one_name_make_one_token(store: Store) -> None:
    results = await asyncio.gather(
        create_token(store, "Race"), create_token(store, "race"), return_exceptions=True
    )
    assert sum(isinstance(result, NameTaken) for result in results) == 1
    assert (await store.token_reads.page()).total == 1


async def test_two_concurrent_resets_one_wins_and_the_other_names_the_winner(
    store: Store,
) -> None:
    token = (await create_token(store)).token
    await store.account.set_api_access(actor="UADMIN001", enabled=True)
    results = await asyncio.gather(
        store.tokens.reset(actor="UFIRST001", token_id=token.id, row_version=1, expires_on=None),
        store.tokens.reset(actor="USECOND01", token_id=token.id, row_version=1, expires_on=None),
        return_exceptions=True,
    )
    winners = [result for result in results if not isinstance(result, BaseException)]
    losers = [result for result in results if isinstance(result, StaleVersion)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].changed_by == winners[0].token.updated_by
    assert losers[0].changed_at == winners[0].token.updated_at
    assert verify(store, winners[0].secret) is not None


async def test_reset_replaces_the_secret_and_keeps_the_sid(store: Store, clock: FakeClock) -> None:
    issued = await create_token(store)
    await store.account.set_api_access(actor="UADMIN001", enabled=True)
    clock.advance(60)

    reset = await store.tokens.reset(
        actor="URESET001", token_id=issued.token.id, row_version=1, expires_on=None
    )

    assert verify(store, issued.secret) is None
    assert verify(store, reset.secret) is not None
    assert reset.token.sid == issued.token.sid
    assert reset.token.secret_hint == reset.secret[-4:]
    assert reset.token.reset_at is not None and reset.token.reset_at.timestamp() == clock.now
    assert (reset.token.updated_by, reset.token.row_version) == ("URESET001", 2)


async def test_a_stale_row_version_is_refused_naming_who_changed_the_token(
    store: Store, clock: FakeClock
) -> None:
    token = (await create_token(store)).token
    clock.advance(30)
    await store.tokens.edit(
        actor="UEDITOR01", token_id=token.id, row_version=1, edit=TokenEdit(description="new")
    )
    for change in (
        store.tokens.reset(actor="ULATE0001", token_id=token.id, row_version=1, expires_on=None),
        store.tokens.upgrade(actor="ULATE0001", token_id=token.id, row_version=1),
        store.tokens.duplicate(
            actor="ULATE0001", token_id=token.id, row_version=1, expires_on=None
        ),
        store.tokens.delete(actor="ULATE0001", token_id=token.id, row_version=1),
        store.tokens.edit(
            actor="ULATE0001", token_id=token.id, row_version=1, edit=TokenEdit(name="Other")
        ),
    ):
        with pytest.raises(StaleVersion) as refused:
            await change
        assert refused.value.changed_by == "UEDITOR01"
        assert refused.value.changed_at.timestamp() == clock.now
    current = await store.token_reads.get(token_id=token.id)
    assert (current.name, current.row_version) == ("Lifecycle Alpha", 2)


async def test_changes_to_a_deleted_token_raise_not_found(store: Store) -> None:
    token = (await create_token(store)).token
    await store.tokens.delete(actor="UACTOR001", token_id=token.id, row_version=1)
    with pytest.raises(TokenNotFound):
        await store.tokens.reset(
            actor="UACTOR001", token_id=token.id, row_version=1, expires_on=None
        )
    with pytest.raises(TokenNotFound):
        await store.tokens.set_enabled(actor="UACTOR001", token_id=token.id, enabled=False)


async def test_edit_applies_only_what_changed(store: Store) -> None:
    token = (await create_token(store, description="old")).token
    change = await store.tokens.edit(
        actor="UEDITOR01",
        token_id=token.id,
        row_version=1,
        edit=TokenEdit(
            name="Lifecycle Alpha",
            description="new",
            access_rights=frozenset({"actions:write", "reports:read"}),
            primary_contact="UCONTACT1",
        ),
    )
    assert change.changed
    assert change.after.description == "new"
    assert change.after.access_rights == ("reports:read", "actions:write")
    assert change.after.row_version == 2
    (event, *_) = await store.audit.events()
    assert event.action == "edit"
    assert event.before == {"description": "old", "access_rights": ["reports:read"]}
    assert event.after == {
        "description": "new",
        "access_rights": ["reports:read", "actions:write"],
    }


async def test_an_edit_that_changes_nothing_moves_nothing(store: Store) -> None:
    token = (await create_token(store)).token
    change = await store.tokens.edit(
        actor="UEDITOR01",
        token_id=token.id,
        row_version=1,
        edit=TokenEdit(name=" Lifecycle Alpha "),
    )
    assert not change.changed
    assert (await store.token_reads.get(token_id=token.id)).row_version == 1
    assert [event.action for event in await store.audit.events()] == ["create"]


async def test_edit_to_a_taken_name_is_refused(store: Store) -> None:
    await create_token(store, "Taken")
    token = (await create_token(store, "Mine")).token
    with pytest.raises(NameTaken):
        await store.tokens.edit(
            actor="UEDITOR01", token_id=token.id, row_version=1, edit=TokenEdit(name="TAKEN")
        )


async def test_edit_may_change_a_name_only_in_case(store: Store) -> None:
    token = (await create_token(store, "mine")).token
    change = await store.tokens.edit(
        actor="UEDITOR01", token_id=token.id, row_version=1, edit=TokenEdit(name="Mine")
    )
    assert change.after.name == "Mine"


async def test_duplicate_copies_the_fields_with_a_new_sid_and_secret(store: Store) -> None:
    source = await create_token(
        store, description="desc", access_rights=("reports:read", "actions:write")
    )
    await store.tokens.set_enabled(actor="UACTOR001", token_id=source.token.id, enabled=False)
    disabled = await store.token_reads.get(token_id=source.token.id)

    copy = await store.tokens.duplicate(
        actor="UCOPIER01",
        token_id=source.token.id,
        row_version=disabled.row_version,
        expires_on=None,
    )

    assert copy.token.name == "Lifecycle Alpha (copy)"
    assert copy.token.sid != source.token.sid
    assert copy.secret != source.secret
    assert copy.token.enabled
    assert copy.token.description == "desc"
    assert copy.token.access_rights == source.token.access_rights
    assert copy.token.primary_contact == source.token.primary_contact
    assert copy.token.created_by == "UCOPIER01"


async def test_duplicates_are_numbered_from_the_base_name(store: Store) -> None:
    source = (await create_token(store, "Report")).token
    names = []
    for _ in range(3):
        copy = await store.tokens.duplicate(
            actor="U0COPY001", token_id=source.id, row_version=1, expires_on=None
        )
        names.append(copy.token.name)
    again = await store.tokens.duplicate(
        actor="U0COPY001", token_id=copy.token.id, row_version=1, expires_on=None
    )
    assert names == ["Report (copy)", "Report (copy 2)", "Report (copy 3)"]
    assert again.token.name == "Report (copy 4)"


async def test_a_duplicate_of_a_long_name_fits_100_characters(store: Store) -> None:
    source = (await create_token(store, "x" * 100)).token
    first = await store.tokens.duplicate(
        actor="U0COPY001", token_id=source.id, row_version=1, expires_on=None
    )
    second = await store.tokens.duplicate(
        actor="U0COPY001", token_id=source.id, row_version=1, expires_on=None
    )
    assert first.token.name == "x" * 93 + " (copy)"
    assert second.token.name == "x" * 91 + " (copy 2)"


async def test_upgrade_moves_to_the_newest_version(open_store: OpenStore) -> None:
    old = await open_store(api_versions=("v1",))
    token = (await create_token(old)).token
    await old.close()
    store = await open_store()

    upgraded = await store.tokens.upgrade(actor="UACTOR001", token_id=token.id, row_version=1)

    assert (upgraded.api_version, upgraded.row_version) == ("v3", 2)
    with pytest.raises(AlreadyNewestVersion):
        await store.tokens.upgrade(actor="UACTOR001", token_id=token.id, row_version=2)
    (event, *_) = await store.audit.events()
    assert (event.action, event.before, event.after) == (
        "upgrade",
        {"api_version": "v1"},
        {"api_version": "v3"},
    )


async def test_disable_and_enable_are_idempotent_and_need_no_version(store: Store) -> None:
    issued = await create_token(store)
    await store.account.set_api_access(actor="UADMIN001", enabled=True)
    token_id = issued.token.id

    disabled = await store.tokens.set_enabled(actor="UACTOR001", token_id=token_id, enabled=False)
    again = await store.tokens.set_enabled(actor="UACTOR001", token_id=token_id, enabled=False)
    assert disabled.changed and not again.changed
    assert not again.after.enabled and again.after.row_version == 2
    assert verify(store, issued.secret) is None

    enabled = await store.tokens.set_enabled(actor="UACTOR001", token_id=token_id, enabled=True)
    assert enabled.changed and enabled.after.row_version == 3
    assert verify(store, issued.secret) is not None
    actions = [event.action for event in await store.audit.events()]
    assert actions[:2] == ["enable", "disable"]


async def test_delete_removes_the_token_and_keeps_its_history(store: Store) -> None:
    issued = await create_token(store)
    await store.account.set_api_access(actor="UADMIN001", enabled=True)

    deleted = await store.tokens.delete(actor="UACTOR001", token_id=issued.token.id, row_version=1)

    assert deleted.sid == issued.token.sid
    assert verify(store, issued.secret) is None
    assert await store.token_reads.find_by_secret(secret=issued.secret) is None
    with pytest.raises(TokenNotFound):
        await store.token_reads.get(token_id=issued.token.id)
    events = await store.audit.events(token_name="lifecycle")
    assert [(event.action, event.token_sid) for event in events] == [
        ("delete", issued.token.sid),
        ("create", issued.token.sid),
    ]
    assert (await store.token_reads.page()).total == 0


async def test_verify_needs_a_valid_secret_an_enabled_token_and_api_access(
    store: Store,
) -> None:
    issued = await create_token(store)
    assert store.account.api_access is False
    assert verify(store, issued.secret) is None

    await store.account.set_api_access(actor="UADMIN001", enabled=True)
    authorized = verify(store, issued.secret)
    assert authorized is not None
    assert (authorized.sid, authorized.name, authorized.api_version) == (
        issued.token.sid,
        "Lifecycle Alpha",
        "v3",
    )
    assert verify(store, issued.secret, sid=issued.token.sid) == authorized
    assert verify(store, issued.secret, sid="TDSOMEONEELSE") is None
    tampered = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    for bad in ("", "tdk_", tampered, issued.secret + "x", issued.secret.upper(), "é" * 42):
        assert verify(store, bad) is None

    await store.account.set_api_access(actor="UADMIN001", enabled=False)
    assert verify(store, issued.secret) is None


async def test_verify_sees_edits_at_once(store: Store) -> None:
    issued = await create_token(store)
    await store.account.set_api_access(actor="UADMIN001", enabled=True)
    await store.tokens.edit(
        actor="UACTOR001",
        token_id=issued.token.id,
        row_version=1,
        edit=TokenEdit(name="Renamed", access_rights=frozenset({"actions:write"})),
    )
    authorized = verify(store, issued.secret)
    assert authorized is not None
    assert (authorized.name, authorized.access_rights) == ("Renamed", ("actions:write",))


async def test_find_by_secret_finds_the_token_whatever_its_state(store: Store) -> None:
    issued = await create_token(store)
    await store.tokens.set_enabled(actor="UACTOR001", token_id=issued.token.id, enabled=False)
    found = await store.token_reads.find_by_secret(secret=issued.secret)
    assert found is not None and found.sid == issued.token.sid
    assert await store.token_reads.find_by_secret(secret="tdk_nothing") is None


async def test_api_access_is_off_by_default_persisted_and_audited(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    assert store.account.api_access is False
    assert await store.account.set_api_access(actor="UADMIN001", enabled=True)
    assert not await store.account.set_api_access(actor="UADMIN001", enabled=True)
    await store.close()

    reopened = await open_store()
    assert reopened.account.api_access is True
    (event,) = await reopened.audit.events()
    assert (event.action, event.actor, event.after) == (
        "api_access",
        "UADMIN001",
        {"api_access": "on"},
    )


@pytest.mark.parametrize("enabled", [True, False])
async def test_simultaneous_switches_to_the_same_state_apply_and_audit_once(
    store: Store, enabled: bool
) -> None:
    if not enabled:
        await store.account.set_api_access(actor="UADMIN001", enabled=True)
    before = len(await store.audit.events())
    changed = await asyncio.gather(
        *(store.account.set_api_access(actor=actor, enabled=enabled) for actor in ADMINS)
    )
    assert sorted(changed) == [False, False, True]
    assert store.account.api_access is enabled
    events = await store.audit.events()
    assert len(events) == before + 1
    assert events[0].after == {"api_access": "on" if enabled else "off"}


async def test_an_invisible_mark_makes_no_second_token_of_a_name(store: Store) -> None:
    await create_token(store, "Lifecycle Alpha")
    for look_alike in ("Lifecycle Alpha\u034f", "Lifecycle\u2800Alpha", "\u3164"):
        with pytest.raises(InvalidInput) as refused:
            await create_token(store, look_alike)
        assert set(refused.value.errors) == {"name"}
        assert "visible" in refused.value.errors["name"]
    assert store.token_reads.count == 1


async def seed(store: Store, clock: FakeClock, count: int) -> None:
    """`count` tokens a day apart, the oldest first; every third one disabled."""
    for number in range(count):
        token = (await create_token(store, f"Token {number:02d}")).token
        if number % 3 == 0:
            await store.tokens.set_enabled(actor="UACTOR001", token_id=token.id, enabled=False)
        clock.advance(DAY_SECONDS)


async def test_list_pages_newest_first_with_the_total(store: Store, clock: FakeClock) -> None:
    await seed(store, clock, 25)
    pages = [await store.token_reads.page(offset=offset, limit=10) for offset in (0, 10, 20)]
    names = [token.name for page in pages for token in page.tokens]
    assert names == [f"Token {number:02d}" for number in reversed(range(25))]
    assert [len(page.tokens) for page in pages] == [10, 10, 5]
    assert {page.total for page in pages} == {25}
    assert (await store.token_reads.page(offset=30)).tokens == ()


async def test_list_filters_alone_and_combined(store: Store, clock: FakeClock) -> None:
    await seed(store, clock, 40)

    async def names(**filters: object) -> tuple[list[str], int]:
        page = await store.token_reads.page(filters=TokenFilter(**filters), limit=100)  # type: ignore[arg-type]
        return [token.name for token in page.tokens], page.total

    # Token 39 was created one day ago, Token 00 forty days ago.
    last_7, total = await names(created_on=CreatedOn.LAST_7_DAYS)
    assert last_7 == [f"Token {n}" for n in range(39, 32, -1)] and total == 7
    assert (await names(created_on=CreatedOn.LAST_30_DAYS))[1] == 30
    assert (await names(created_on=CreatedOn.MORE_THAN_30_DAYS))[1] == 10
    assert (await names(state=StateFilter.DISABLED))[1] == 14
    assert (await names(state=StateFilter.ENABLED))[1] == 26
    assert await names(name="token 1") == ([f"Token {n}" for n in range(19, 9, -1)], 10)
    combined = await names(
        name="token 3", state=StateFilter.DISABLED, created_on=CreatedOn.LAST_7_DAYS
    )
    assert combined == (["Token 39", "Token 36", "Token 33"], 3)
    assert await names(name="nothing like it") == ([], 0)


async def test_name_search_takes_wildcards_literally(store: Store) -> None:
    for name in ("100% sure", "1000 sure", "snake_case", "snakeXcase"):
        await create_token(store, name)
    for query, expected in (("0%", ["100% sure"]), ("_", ["snake_case"]), ("%", ["100% sure"])):
        page = await store.token_reads.page(filters=TokenFilter(name=query))
        assert [token.name for token in page.tokens] == expected
        assert page.total == len(expected)


async def test_name_search_is_case_insensitive_on_the_folded_form(store: Store) -> None:
    await create_token(store, "Große Straße")
    for query in ("STRASSE", "große", "ＧＲＯ"):
        page = await store.token_reads.page(filters=TokenFilter(name=query))
        assert [token.name for token in page.tokens] == ["Große Straße"]


async def test_list_refuses_out_of_range_paging(store: Store) -> None:
    for offset, limit in ((-1, 10), (0, 0), (0, 101)):
        with pytest.raises(ValueError):
            await store.token_reads.page(offset=offset, limit=limit)


async def test_no_audit_record_holds_a_secret(store: Store) -> None:
    issued = await create_token(store)
    reset = await store.tokens.reset(
        actor="UACTOR001", token_id=issued.token.id, row_version=1, expires_on=None
    )
    copy = await store.tokens.duplicate(
        actor="UACTOR001", token_id=issued.token.id, row_version=2, expires_on=None
    )
    events = json.dumps([(event.before, event.after) for event in await store.audit.events()])
    for secret in (issued.secret, reset.secret, copy.secret):
        assert secret[4:36] not in events
        assert secret[-4:] not in events


async def test_a_request_delivered_twice_is_applied_once(store: Store) -> None:
    first = await store.tokens.create(
        actor="UACTOR001",
        name="Once",
        access_rights=["reports:read"],
        primary_contact="UCONTACT1",
        request_key="V0VIEW001",
        expires_on=None,
    )
    with pytest.raises(AlreadyApplied):
        await store.tokens.create(
            actor="UACTOR001",
            name="Once again",
            access_rights=["reports:read"],
            primary_contact="UCONTACT1",
            request_key="V0VIEW001",
            expires_on=None,
        )
    token_id = first.token.id
    await store.tokens.reset(
        actor="UACTOR001", token_id=token_id, row_version=1, request_key="R1", expires_on=None
    )
    with pytest.raises(AlreadyApplied):
        await store.tokens.reset(
            actor="UACTOR001", token_id=token_id, row_version=2, request_key="R1", expires_on=None
        )
    assert (await store.token_reads.page()).total == 1
    assert (await store.token_reads.get(token_id=token_id)).row_version == 2


async def test_a_failed_change_leaves_its_request_key_unused(store: Store) -> None:
    token = (await create_token(store)).token
    with pytest.raises(StaleVersion):
        await store.tokens.delete(
            actor="UACTOR001", token_id=token.id, row_version=9, request_key="D1"
        )
    await store.tokens.delete(actor="UACTOR001", token_id=token.id, row_version=1, request_key="D1")
    with pytest.raises(InvalidInput):
        await create_token(store, "")
    await store.tokens.create(
        actor="UACTOR001",
        name="Fine",
        access_rights=["reports:read"],
        primary_contact="UCONTACT1",
        request_key="D2",
        expires_on=None,
    )


async def test_a_deleted_tokens_id_is_never_given_again(store: Store) -> None:
    first = (await create_token(store, "test")).token
    await store.tokens.delete(actor="UACTOR001", token_id=first.id, row_version=1)
    second = (await create_token(store, "prod")).token
    assert second.id != first.id
    with pytest.raises(TokenNotFound):
        await store.tokens.set_enabled(actor="UACTOR001", token_id=first.id, enabled=False)
    assert (await store.token_reads.get(token_id=second.id)).enabled
