"""The schema's forward-only migrations, on real SQLite files at every released version."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.credentials import SecretHasher, generate_secret, secret_hint
from storage.errors import StartupRefused
from storage.fields import name_key
from storage.models import Role, TokenEdit
from storage.schema import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from tests.storage.support_durability import (
    ACTOR,
    KEY,
    START,
    FakeClock,
    create_token,
    opened_store,
    plain_connection,
    user_version,
)
from tests.store_support import token_by_sid, tokens_by_sid, verify

SchemaRow = tuple[str, str, str, str | None]


@dataclass(frozen=True)
class SeededToken:
    sid: str
    name: str
    secret: str
    enabled: bool
    api_version: str
    access_rights: tuple[str, ...]
    created_at: int
    reset_at: int | None
    last_used_at: int | None
    row_version: int


@dataclass(frozen=True)
class Seeded:
    tokens: tuple[SeededToken, ...] = ()
    audit_actions: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()


def schema_of(path: Path) -> list[SchemaRow]:
    connection = plain_connection(path)
    try:
        rows = connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        connection.close()
    return [tuple(row) for row in rows]


def fresh_schema(directory: Path) -> list[SchemaRow]:
    path = directory / "fresh.db"
    connection = plain_connection(path)
    try:
        migrate(connection)
    finally:
        connection.close()
    return schema_of(path)


def row_counts(path: Path) -> dict[str, int]:
    connection = plain_connection(path)
    try:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in tables
        }
    finally:
        connection.close()


def build_at(path: Path, version: int) -> sqlite3.Connection:
    """A database at schema `version`, as an older release left it; the caller closes it."""
    connection = plain_connection(path)
    assert migrate(connection, target=version) == version
    assert schema_version(connection) == version
    return connection


def insert_token(connection: sqlite3.Connection, token: SeededToken) -> None:
    """A token row written with the columns `storage.token_lifecycle` inserts."""
    hasher = SecretHasher(KEY)
    connection.execute(
        "INSERT INTO tokens (sid, name, name_key, description, enabled, api_version,"
        " access_rights, primary_contact, secret_hash, secret_hint, created_at, created_by,"
        " updated_at, updated_by, row_version)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            token.sid,
            token.name,
            name_key(token.name),
            f"Seeded for {token.name}",
            int(token.enabled),
            token.api_version,
            json.dumps(token.access_rights),
            "UCONTACT1",
            hasher.digest(token.secret),
            secret_hint(token.secret),
            token.created_at,
            "ULEGACY01",
            token.created_at,
            "ULEGACY01",
            token.row_version,
        ),
    )
    if token.reset_at is not None:
        connection.execute(
            "UPDATE tokens SET reset_at = ? WHERE sid = ?", (token.reset_at, token.sid)
        )
    if token.last_used_at is not None:
        connection.execute(
            "INSERT INTO token_usage (token_id, last_used_at)"
            " SELECT id, ? FROM tokens WHERE sid = ?",
            (token.last_used_at, token.sid),
        )


def seed(connection: sqlite3.Connection, version: int) -> Seeded:
    """Representative rows for every table that exists at `version`."""
    if version < 1:
        return Seeded()
    tokens = (
        SeededToken(
            sid="TD" + "0" * 19 + "1",
            name="Legacy Export",
            secret=generate_secret(),
            enabled=True,
            api_version="v2",
            access_rights=("reports:read", "actions:write"),
            created_at=int(START) - 86_400,
            reset_at=None,
            last_used_at=int(START) - 3_600,
            row_version=1,
        ),
        SeededToken(
            sid="TD" + "0" * 19 + "2",
            name="Legacy Import",
            secret=generate_secret(),
            enabled=False,
            api_version="v1",
            access_rights=("reports:write",),
            created_at=int(START) - 2 * 86_400,
            reset_at=int(START) - 7_200,
            last_used_at=None,
            row_version=4,
        ),
    )
    connection.execute("BEGIN")
    connection.execute("INSERT INTO settings (key, value) VALUES ('api_access', 'on')")
    for token in tokens:
        insert_token(connection, token)
    audit_actions: tuple[str, ...] = ()
    if version >= 2:
        audit_actions = ("create", "api_access")
        for action in audit_actions:
            connection.execute(
                "INSERT INTO audit_log (at, actor, action, token_sid, token_name,"
                " token_name_key, detail) VALUES (?, 'ULEGACY01', ?, ?, ?, ?, ?)",
                (
                    int(START) - 600,
                    action,
                    tokens[0].sid,
                    tokens[0].name,
                    name_key(tokens[0].name),
                    json.dumps({"before": {}, "after": {"name": tokens[0].name}}),
                ),
            )
    admins: tuple[str, ...] = ()
    if version >= 3:
        admins = ("UADMIN001",)
        connection.execute(
            "INSERT INTO user_roles (user_id, role, granted_by, granted_at)"
            " VALUES ('UADMIN001', 'admin', 'ULEGACY01', ?)",
            (int(START) - 600,),
        )
    connection.execute("COMMIT")
    return Seeded(tokens=tokens, audit_actions=audit_actions, admins=admins)


def at(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


@pytest.mark.parametrize("exists", [False, True], ids=["missing", "empty-file"])
async def test_a_new_database_is_built_to_the_latest_version(tmp_path: Path, exists: bool) -> None:
    path = tmp_path / "tokendesk.db"
    if exists:
        path.touch(mode=0o600)

    async with opened_store(path) as store:
        assert store.token_reads.count == 0
        assert store.account.api_access is False
        issued = await create_token(store, "First Light")
        assert (await store.token_reads.get(token_id=issued.token.id)).name == "First Light"

    assert user_version(path) == LATEST_VERSION
    assert schema_of(path) == fresh_schema(tmp_path)


def test_each_migration_step_records_its_version(tmp_path: Path) -> None:
    connection = plain_connection(tmp_path / "steps.db")
    try:
        assert schema_version(connection) == 0
        for version in range(1, LATEST_VERSION + 1):
            assert migrate(connection, target=version) == version
            assert schema_version(connection) == version
            assert not connection.in_transaction
        # Already there: nothing to apply, and a lower target never goes back.
        assert migrate(connection) == LATEST_VERSION
        assert migrate(connection, target=1) == LATEST_VERSION
    finally:
        connection.close()
    assert len(MIGRATIONS) == LATEST_VERSION


@pytest.mark.parametrize("version", range(LATEST_VERSION))
async def test_an_older_database_is_upgraded_with_its_data(tmp_path: Path, version: int) -> None:
    path = tmp_path / "tokendesk.db"
    connection = build_at(path, version)
    try:
        seeded = seed(connection, version)
    finally:
        connection.close()

    clock = FakeClock()
    async with opened_store(path, clock=clock) as store:
        assert store.token_reads.count == len(seeded.tokens)
        tokens = await tokens_by_sid(store)
        for expected in seeded.tokens:
            token = tokens[expected.sid]
            assert token.name == expected.name
            assert token.description == f"Seeded for {expected.name}"
            assert token.enabled is expected.enabled
            assert token.api_version == expected.api_version
            assert token.access_rights == expected.access_rights
            assert token.secret_hint == expected.secret[-4:]
            assert token.created_at == at(expected.created_at)
            assert token.reset_at == at(expected.reset_at)
            assert token.last_used_at == at(expected.last_used_at)
            assert token.row_version == expected.row_version
            assert token.expires_on is None
            # The hashes written by the older release still authenticate.
            authorized = verify(store, expected.secret, expected.sid)
            if expected.enabled:
                assert authorized is not None and authorized.sid == expected.sid
            else:
                assert authorized is None

        # Every table added after `version` works.
        events = await store.audit.events()
        assert [event.action for event in events] == list(reversed(seeded.audit_actions))
        await store.roles.grant_user(actor=ACTOR, user_id="USPEC0001", role=Role.SPECIALIST)
        assert await store.roles.effective_role(user_id="USPEC0001") is Role.SPECIALIST
        for admin in seeded.admins:
            assert await store.roles.effective_role(user_id=admin) is Role.ADMIN
        issued = await create_token(store, "After The Upgrade")
        # API access was seeded on wherever a settings table existed.
        assert store.account.api_access is (version >= 1)
        assert (verify(store, issued.secret) is not None) is store.account.api_access
        if seeded.tokens:
            old = await token_by_sid(store, seeded.tokens[0].sid)
            change = await store.tokens.edit(
                actor=ACTOR,
                token_id=old.id,
                row_version=old.row_version,
                edit=TokenEdit(description="Edited after the upgrade"),
            )
            assert change.after.row_version == old.row_version + 1
        actions = [event.action for event in await store.audit.events(limit=50)]
        edited = ["edit"] if seeded.tokens else []
        assert actions == [*edited, "create", "role.user", *reversed(seeded.audit_actions)]

    assert user_version(path) == LATEST_VERSION
    assert schema_of(path) == fresh_schema(tmp_path)


async def test_reopening_an_up_to_date_database_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path) as store:
        issued = await create_token(store, "Steady State")
        await store.roles.grant_user(actor=ACTOR, user_id="UADMIN001", role=Role.ADMIN)
    schema, counts = schema_of(path), row_counts(path)

    async with opened_store(path) as store:
        token = await store.token_reads.get(token_id=issued.token.id)
        assert token == issued.token
        assert await store.roles.effective_role(user_id="UADMIN001") is Role.ADMIN

    assert user_version(path) == LATEST_VERSION
    assert schema_of(path) == schema
    assert row_counts(path) == counts


async def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path) as store:
        await create_token(store, "From The Future")
    connection = plain_connection(path)
    try:
        connection.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
        with pytest.raises(StartupRefused) as direct:
            migrate(connection)
        assert direct.value.subject == "TOKENDESK_DB"
    finally:
        connection.close()

    for _ in range(2):  # the refusal releases the instance lock: the second try says the same
        with pytest.raises(StartupRefused) as refused:
            async with opened_store(path):
                pytest.fail("a newer database was opened")
        assert refused.value.subject == "TOKENDESK_DB"
        assert "newer" in refused.value.rule

    assert user_version(path) == LATEST_VERSION + 1
    assert row_counts(path)["tokens"] == 1


@pytest.mark.parametrize(
    "conflict",
    [
        # The first statement of migration 2 fails.
        "CREATE TABLE audit_log (id INTEGER PRIMARY KEY)",
        # A later statement of migration 2 fails, after its table was created.
        "CREATE INDEX audit_log_by_token_name ON settings (value)",
    ],
    ids=["first-statement", "midway"],
)
async def test_a_failed_migration_leaves_the_version_it_had(tmp_path: Path, conflict: str) -> None:
    path = tmp_path / "tokendesk.db"
    connection = build_at(path, 1)
    try:
        seeded = seed(connection, 1)
        connection.execute(conflict)
        before = schema_of(path)

        with pytest.raises(sqlite3.OperationalError):
            migrate(connection)
        assert schema_version(connection) == 1
        assert not connection.in_transaction
    finally:
        connection.close()
    assert schema_of(path) == before

    with pytest.raises(StartupRefused) as refused:
        async with opened_store(path):
            pytest.fail("a database whose migration failed was opened")
    assert refused.value.subject == "TOKENDESK_DB"
    assert user_version(path) == 1
    assert schema_of(path) == before
    assert row_counts(path)["tokens"] == len(seeded.tokens)

    # Once the conflict is gone, the same file upgrades (the lock was released, too).
    connection = plain_connection(path)
    try:
        connection.execute(
            "DROP TABLE audit_log" if "TABLE" in conflict else "DROP INDEX audit_log_by_token_name"
        )
    finally:
        connection.close()
    async with opened_store(path) as store:
        assert store.token_reads.count == len(seeded.tokens)
    assert user_version(path) == LATEST_VERSION
    assert schema_of(path) == fresh_schema(tmp_path)


async def test_tokens_from_before_expiry_keep_none_and_their_activity_is_backfilled(
    tmp_path: Path,
) -> None:
    """Migration 6: no expiry for the tokens already there, and each one active since the
    latest of its creation, its last Reset, its last enable (from the audit log) and its
    last use, so that idle tokens are judged by what happened before the upgrade too."""
    path = tmp_path / "tokendesk.db"
    connection = build_at(path, 5)
    try:
        seeded = seed(connection, 5)
        # The first was used an hour ago; the second was reset two hours ago, then enabled
        # twice since (the later enable counts).
        used, reset = seeded.tokens
        enabled_at = int(START) - 1_800
        for moment in (enabled_at - 60, enabled_at):
            connection.execute(
                "INSERT INTO audit_log (at, actor, action, token_sid, token_name,"
                " token_name_key, detail) VALUES (?, 'ULEGACY01', 'enable', ?, ?, ?, '{}')",
                (moment, reset.sid, reset.name, name_key(reset.name)),
            )
    finally:
        connection.close()

    async with opened_store(path, max_lifetime_days=365) as store:
        tokens = await tokens_by_sid(store)
        assert {token.expires_on for token in tokens.values()} == {None}
        assert {token.disabled_reason for token in tokens.values()} == {None}
        assert tokens[used.sid].last_active_at == at(used.last_used_at)
        assert tokens[reset.sid].last_active_at == at(enabled_at)
        authorized = verify(store, used.secret)
        assert authorized is not None and authorized.expires_at is None
        # No expiry, no reminder; the scheduler's tables are there and empty.
        assert await store.expiry.due_reminders(reminder_days=(30, 7, 1)) == []
        # Editing their other fields under a maximum lifetime leaves them without expiry.
        change = await store.tokens.edit(
            actor=ACTOR,
            token_id=tokens[used.sid].id,
            row_version=used.row_version,
            edit=TokenEdit(description="Edited after the upgrade"),
        )
        assert change.after.expires_on is None
        rows = row_counts(path)
    assert rows["reminder_marks"] == rows["idle_warnings"] == 0
    connection = plain_connection(path)
    try:
        enabled = dict(connection.execute("SELECT sid, enabled_at FROM tokens").fetchall())
    finally:
        connection.close()
    assert enabled == {used.sid: None, reset.sid: enabled_at}


async def test_tokens_from_before_grace_windows_have_none_and_can_open_one(
    tmp_path: Path,
) -> None:
    """Migration 7: no previous secret and nothing retired for the tokens already there;
    their usage rows keep their last-used times; a Reset may then open a window."""
    path = tmp_path / "tokendesk.db"
    connection = build_at(path, 6)
    try:
        used, disabled = seed(connection, 6).tokens
    finally:
        connection.close()

    clock = FakeClock()
    async with opened_store(path, clock=clock) as store:
        tokens = await tokens_by_sid(store)
        for token in tokens.values():
            assert (token.previous_secret_hint, token.previous_until) == (None, None)
            assert (token.previous_last_used_at, token.retired) == (None, None)
        assert tokens[used.sid].last_used_at == at(used.last_used_at)

        token = tokens[used.sid]
        issued = await store.tokens.reset(
            actor=ACTOR,
            token_id=token.id,
            row_version=token.row_version,
            expires_on=None,
            grace=timedelta(hours=1),
        )
        assert issued.token.previous_until == at(int(clock.now) + 3_600)
        old = store.credentials.check(used.secret)
        assert old.token is not None and old.token.secret_used == "previous"
        reset_disabled = await store.tokens.reset(
            actor=ACTOR,
            token_id=tokens[disabled.sid].id,
            row_version=disabled.row_version,
            expires_on=None,
        )
        assert reset_disabled.token.previous_until is None
        assert store.credentials.check(disabled.secret).reason == "retired"

    connection = plain_connection(path)
    try:
        assert connection.execute("SELECT count(*) FROM retired_secrets").fetchone() == (1,)
        # A previous secret comes whole (its end with its digest) and belongs to one token.
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute("UPDATE tokens SET previous_until = 1 WHERE previous_until IS NULL")
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute("UPDATE tokens SET previous_secret_hash = x'00', previous_until = 1")
    finally:
        connection.close()


async def test_tokens_from_before_the_leak_guard_keep_their_state_and_windows(
    tmp_path: Path,
) -> None:
    """Migration 8: the tokens already there are not leaked, keep the reason they were
    disabled for and the grace window a Reset left them; the leak guard then works."""
    path = tmp_path / "tokendesk.db"
    connection = build_at(path, 7)
    try:
        used, disabled = seed(connection, 7).tokens
        previous = generate_secret()
        until = int(START) + 3_600
        connection.execute(
            "UPDATE tokens SET disabled_reason = 'idle' WHERE sid = ?", (disabled.sid,)
        )
        connection.execute(
            "UPDATE tokens SET previous_secret_hash = ?, previous_secret_hint = ?,"
            " previous_until = ? WHERE sid = ?",
            (SecretHasher(KEY).digest(previous), secret_hint(previous), until, used.sid),
        )
    finally:
        connection.close()

    async with opened_store(path, clock=FakeClock()) as store:
        tokens = await tokens_by_sid(store)
        assert {token.leaked_at for token in tokens.values()} == {None}
        assert tokens[disabled.sid].disabled_reason == "idle"
        assert tokens[used.sid].disabled_reason is None
        assert tokens[used.sid].previous_until == at(until)
        window = store.credentials.check(previous)
        assert window.token is not None and window.token.secret_used == "previous"

        (leak,) = await store.leaks.report(
            candidates=[used.secret],
            channel="C0LEAKS01",
            message_ts="1.2",
            poster=None,
            disable=True,
        )
        assert leak.token.disabled_reason == "leaked" and leak.token.leaked_at is not None
        assert store.credentials.check(previous).reason == "retired"
        await store.tokens.delete(
            actor=ACTOR, token_id=leak.token.id, row_version=leak.token.row_version
        )
        assert row_counts(path)["leak_reports"] == 0


async def test_tokens_from_before_app_home_are_counted_and_need_attention(
    tmp_path: Path,
) -> None:
    """Migration 9: the kept counts start from the tokens already there (their states, leaks,
    expiries and uses), and follow the changes after the upgrade."""
    path = tmp_path / "tokendesk.db"
    connection = build_at(path, 8)
    try:
        used = seed(connection, 8).tokens[0]
        connection.execute(
            "UPDATE tokens SET leaked_at = ?, expires_at = ? WHERE sid = ?",
            (int(START) - 600, int(START) + 86_400, used.sid),
        )
    finally:
        connection.close()

    async with opened_store(path, clock=FakeClock()) as store:
        summary = await store.token_reads.summary()
        assert (summary.enabled, summary.disabled, summary.leaked) == (1, 1, 1)
        assert (summary.expiring_soon, summary.without_expiry, summary.unused) == (1, 1, 1)
        attention = await store.token_reads.needing_attention(expiry_required=True)
        assert [(item.token.sid, item.reason.value) for item in attention] == [(used.sid, "leaked")]
        await create_token(store, "After The Upgrade")
        after = await store.token_reads.summary()
        assert (after.enabled, after.without_expiry, after.unused) == (2, 2, 2)
