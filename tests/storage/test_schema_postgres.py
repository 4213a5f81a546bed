"""The PostgreSQL migrations against SQLite's: the same tables, columns, keys and indexes,
the same data after the data migrations, the same counts kept by the triggers, and the same
constraints refusing the same rows. Each test runs both: a real SQLite file migrated by
storage/schema.py and a fresh database of the private test cluster migrated by
storage/schema_postgres.py."""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage import schema, schema_postgres

Params = Sequence[Any]
Row = tuple[Any, ...]

# The PREAMBLE's tables, which SQLite has no need of.
POSTGRES_ONLY_TABLES = {"schema_version", "change_counter", "change_log", "instances"}
# The name search's trigrams: an FTS5 table kept by triggers on SQLite (tokens_name_search,
# a virtual table and its shadow tables), an index on PostgreSQL.
SQLITE_ONLY_TRIGGERS = {
    "tokens_name_search_insert",
    "tokens_name_search_delete",
    "tokens_name_search_update",
}
POSTGRES_ONLY_INDEXES = {"tokens_name_trigrams"}
SQLITE_TYPES = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea", "REAL": "double precision"}
TOKEN_COLUMNS = (
    "sid, name, name_key, description, enabled, api_version, access_rights, primary_contact,"
    " secret_hash, secret_hint, created_at, created_by, updated_at, updated_by, reset_at,"
    " row_version"
)
DAY = 86_400
T0 = 1_700_000_000


def numbered(sql: str) -> str:
    """`sql` with SQLite's `?` placeholders as PostgreSQL's `$1`, `$2`, ..."""
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


def token_values(number: int, *, enabled: int = 1, created_at: int = T0) -> tuple[Any, ...]:
    return (
        f"sid{number}",
        f"Token {number}",
        f"token {number}",
        "",
        enabled,
        "v1",
        '["read"]',
        "U0001",
        bytes([number]) * 32,
        f"…{number:04d}",
        created_at,
        "U0001",
        created_at,
        "U0001",
        None,
        1,
    )


class Backends:
    """The same database on SQLite and on PostgreSQL, kept at the same version."""

    def __init__(self, sqlite: sqlite3.Connection, postgres: asyncpg.Connection) -> None:
        self.sqlite = sqlite
        self.postgres = postgres
        self.version = 0

    async def migrate(self, target: int) -> None:
        schema.migrate(self.sqlite, target=target)
        if self.version == 0:
            async with self.postgres.transaction():
                for statement in schema_postgres.PREAMBLE:
                    await self.postgres.execute(statement)
        for version in range(self.version + 1, target + 1):
            async with self.postgres.transaction():
                for statement in schema_postgres.MIGRATIONS[version - 1]:
                    await self.postgres.execute(statement)
                await self.postgres.execute(
                    "UPDATE schema_version SET version = $1 WHERE id = 1", version
                )
        self.version = target

    async def execute(self, sql: str, params: Params = ()) -> None:
        self.sqlite.execute(sql, params)
        await self.postgres.execute(numbered(sql), *params)

    async def same_rows(self, sql: str) -> list[Row]:
        """The rows `sql` reads, the same on SQLite and on PostgreSQL."""
        on_sqlite = [tuple(row) for row in self.sqlite.execute(sql).fetchall()]
        on_postgres = [tuple(row) for row in await self.postgres.fetch(sql)]
        assert on_postgres == on_sqlite, sql
        return on_sqlite

    async def insert_token(self, number: int, **values: Any) -> None:
        await self.execute(
            f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ({', '.join('?' * 16)})",
            token_values(number, **values),
        )


@pytest.fixture
async def backends(tmp_path: Path, postgres_url: str) -> AsyncIterator[Backends]:
    sqlite = sqlite3.connect(tmp_path / "tokendesk.db", isolation_level=None)
    sqlite.execute("PRAGMA foreign_keys = ON")
    postgres = await asyncpg.connect(postgres_url)
    try:
        yield Backends(sqlite, postgres)
    finally:
        await postgres.close()
        sqlite.close()


@pytest.fixture
async def migrated(backends: Backends) -> Backends:
    await backends.migrate(schema.LATEST_VERSION)
    return backends


# The structure ---------------------------------------------------------------------------


def test_there_is_a_postgres_migration_for_each_sqlite_one() -> None:
    assert len(schema_postgres.MIGRATIONS) == len(schema.MIGRATIONS)
    assert all(schema_postgres.MIGRATIONS)


def sqlite_tables(connection: sqlite3.Connection) -> list[str]:
    """The ordinary tables: neither virtual ones nor their shadow tables."""
    return [
        name
        for (name,) in connection.execute(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'"
            " AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]


def sqlite_columns(connection: sqlite3.Connection) -> dict[str, list[Row]]:
    """Each table's columns in order: name, PostgreSQL type, NOT NULL, default."""
    columns: dict[str, list[Row]] = {}
    for table in sqlite_tables(connection):
        columns[table] = [
            # A STRICT table's primary key columns are NOT NULL, as PostgreSQL's are.
            (name, SQLITE_TYPES[kind], bool(notnull or pk), default)
            for _, name, kind, notnull, default, pk in connection.execute(
                "SELECT * FROM pragma_table_info(?)", (table,)
            )
        ]
    return columns


async def postgres_columns(connection: asyncpg.Connection) -> dict[str, list[Row]]:
    columns: dict[str, list[Row]] = {}
    for table, name, kind, nullable, default in await connection.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public'"
        " ORDER BY table_name, ordinal_position"
    ):
        if table not in POSTGRES_ONLY_TABLES:
            text_default = None if default is None else default.removesuffix("::text")
            columns.setdefault(table, []).append((name, kind, nullable == "NO", text_default))
    return columns


async def test_the_same_tables_and_columns_as_on_sqlite(migrated: Backends) -> None:
    on_sqlite = sqlite_columns(migrated.sqlite)
    on_postgres = await postgres_columns(migrated.postgres)
    assert sorted(on_postgres) == sorted(on_sqlite)
    for table, columns in on_sqlite.items():
        assert on_postgres[table] == columns, table
    tables = {
        name
        for (name,) in await migrated.postgres.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert tables == set(on_sqlite) | POSTGRES_ONLY_TABLES


async def test_the_same_keys_as_on_sqlite(migrated: Backends) -> None:
    primary_keys: set[Row] = set()
    foreign_keys: set[Row] = set()
    for table in sqlite_tables(migrated.sqlite):
        key = migrated.sqlite.execute(
            "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (table,)
        ).fetchall()
        primary_keys.add((table, tuple(name for (name,) in key)))
        foreign_keys.update(
            (table, column, target, target_column, on_delete)
            for column, target, target_column, on_delete in migrated.sqlite.execute(
                'SELECT "from", "table", "to", on_delete FROM pragma_foreign_key_list(?)',
                (table,),
            )
        )
    keys = await migrated.postgres.fetch(
        "SELECT c.conrelid::regclass::text, c.contype::text,"
        " array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k (attnum, n)"
        "  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY n),"
        " c.confrelid::regclass::text,"
        " (SELECT a.attname::text FROM pg_attribute a"
        "  WHERE a.attrelid = c.confrelid AND a.attnum = c.confkey[1]),"
        " c.confdeltype::text"
        " FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE n.nspname = 'public' AND c.contype IN ('p', 'f')"
    )
    actions = {"c": "CASCADE", "a": "NO ACTION"}
    assert {
        (table, tuple(columns))
        for table, kind, columns, *_ in keys
        if kind == "p" and table not in POSTGRES_ONLY_TABLES
    } == primary_keys
    assert {
        (table, columns[0], target, target_column, actions[action])
        for table, kind, columns, target, target_column, action in keys
        if kind == "f"
    } == foreign_keys


async def test_the_same_indexes_as_on_sqlite(migrated: Backends) -> None:
    """Named indexes by name, and UNIQUE constraints (SQLite's unnamed indexes) by table and
    columns; each as unique or not, partial or not."""
    named: set[Row] = set()
    constraints: set[Row] = set()
    for table in sqlite_tables(migrated.sqlite):
        for _, name, unique, origin, partial in migrated.sqlite.execute(
            "SELECT * FROM pragma_index_list(?)", (table,)
        ):
            columns = tuple(
                column
                for (column,) in migrated.sqlite.execute(
                    "SELECT name FROM pragma_index_info(?) ORDER BY seqno", (name,)
                )
            )
            if origin == "c":
                named.add((name, table, columns, bool(unique), bool(partial)))
            elif origin == "u":
                constraints.add((table, columns))
    indexes = await migrated.postgres.fetch(
        "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text,"
        " array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k (attnum, n)"
        "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY n),"
        " i.indisunique, i.indpred IS NOT NULL, c.contype::text"
        " FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace"
        " LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid"
        " WHERE n.nspname = 'public'"
    )
    assert {
        (name, table, tuple(columns), unique, partial)
        for name, table, columns, unique, partial, constraint in indexes
        if constraint is None
        and table not in POSTGRES_ONLY_TABLES
        and name not in POSTGRES_ONLY_INDEXES
    } == named
    assert {
        (table, tuple(columns))
        for _, table, columns, _, _, constraint in indexes
        if constraint == "u"
    } == constraints


async def test_the_triggers_are_sqlite_s_but_for_replace_and_truncate(migrated: Backends) -> None:
    on_sqlite = migrated.sqlite.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    on_postgres = await migrated.postgres.fetch(
        "SELECT DISTINCT tgname FROM pg_trigger WHERE NOT tgisinternal"
    )
    # PostgreSQL has no REPLACE, and TRUNCATE fires no row trigger.
    assert {name for (name,) in on_postgres} == {name for (name,) in on_sqlite} - {
        "audit_log_no_replace"
    } - SQLITE_ONLY_TRIGGERS | {
        "audit_log_no_truncate",
        "token_counts_truncate",
        "token_expiry_days_truncate",
    }


async def test_a_query_repeating_the_condition_reads_the_partial_index(
    migrated: Backends,
) -> None:
    """As storage/token_reads.py's read of the tokens unused since an event, with GREATEST
    for SQLite's scalar max."""
    await migrated.postgres.execute("SET enable_seqscan = off")
    plan = await migrated.postgres.fetch(
        "EXPLAIN SELECT t.id FROM tokens t WHERE t.enabled = 1"
        " AND t.last_active_at = GREATEST(t.created_at, coalesce(t.reset_at, 0),"
        " coalesce(t.enabled_at, 0)) AND t.last_active_at >= $1",
        T0,
    )
    assert "tokens_not_used_since_event" in "\n".join(line for (line,) in plan)


async def test_the_preamble_starts_the_version_and_the_change_counter_at_zero(
    migrated: Backends,
) -> None:
    version = await migrated.postgres.fetch("SELECT id, version FROM schema_version")
    counter = await migrated.postgres.fetch("SELECT id, value FROM change_counter")
    assert [tuple(row) for row in version] == [(1, schema.LATEST_VERSION)]
    assert [tuple(row) for row in counter] == [(1, 0)]


# The data migrations ---------------------------------------------------------------------


async def test_the_data_migrations_leave_the_same_rows_as_on_sqlite(backends: Backends) -> None:
    await backends.migrate(5)
    for number in range(1, 5):
        await backends.insert_token(number, enabled=number % 2, created_at=T0 + number * DAY)
    await backends.execute("UPDATE tokens SET reset_at = ? WHERE id = 2", (T0 + 9 * DAY,))
    await backends.execute(
        "INSERT INTO token_usage (token_id, last_used_at) VALUES (1, ?), (3, ?)",
        (T0 + 20 * DAY, T0 + 2 * DAY),
    )
    for sid, at in (("sid3", T0 + 5 * DAY), ("sid3", T0 + 7 * DAY), ("sid4", T0 + 50 * DAY)):
        await backends.execute(
            "INSERT INTO audit_log (at, actor, action, token_sid, detail)"
            " VALUES (?, 'U0001', 'enable', ?, '{}')",
            (at, sid),
        )
    await backends.execute(
        "INSERT INTO audit_log (at, actor, action, token_sid, detail)"
        " VALUES (?, 'U0001', 'disable', 'sid1', '{}')",
        (T0 + 90 * DAY,),
    )
    await backends.migrate(7)
    await backends.execute(
        "UPDATE tokens SET enabled = 0, disabled_reason = 'idle', expires_at = ? WHERE id = 3",
        (T0 + 100 * DAY,),
    )
    await backends.migrate(schema.LATEST_VERSION)

    await backends.same_rows("SELECT * FROM tokens ORDER BY id")
    activity = await backends.same_rows(
        "SELECT id, enabled_at, last_active_at, disabled_reason FROM tokens ORDER BY id"
    )
    # enabled_at from the last 'enable' record; last_active_at the latest of creation,
    # Reset, enable and use.
    # disabled_reason carried over by migration 8.
    assert activity == [
        (1, None, T0 + 20 * DAY, None),
        (2, None, T0 + 9 * DAY, None),
        (3, T0 + 7 * DAY, T0 + 7 * DAY, "idle"),
        (4, T0 + 50 * DAY, T0 + 50 * DAY, None),
    ]
    counts = await backends.same_rows("SELECT * FROM token_counts")
    assert counts == [(1, 4, 3, 0, 3, 2)]


# The counts' triggers --------------------------------------------------------------------

COUNT_STEPS: tuple[tuple[str, Params], ...] = (
    ("UPDATE tokens SET enabled = 0 WHERE id = 1", ()),
    ("UPDATE tokens SET enabled = 0 WHERE id = 1", ()),
    ("UPDATE tokens SET enabled = 1, expires_at = NULL WHERE id = 2", ()),
    ("UPDATE tokens SET leaked_at = NULL, enabled = 0 WHERE id = 3", ()),
    ("UPDATE tokens SET leaked_at = ? WHERE id IN (1, 2)", (T0 + 3 * DAY,)),
    ("UPDATE tokens SET expires_at = ? WHERE expires_at IS NULL", (T0 + 60 * DAY,)),
    ("UPDATE tokens SET last_active_at = last_active_at + 1, row_version = 2", ()),
    ("UPDATE tokens SET enabled = 1 - enabled", ()),
    (
        "INSERT INTO token_usage (token_id, last_used_at) VALUES (?, ?)"
        " ON CONFLICT (token_id) DO UPDATE SET last_used_at = excluded.last_used_at",
        (1, T0 + 30 * DAY),
    ),
    (
        "INSERT INTO token_usage (token_id, last_used_at) VALUES (?, ?)"
        " ON CONFLICT (token_id) DO UPDATE SET last_used_at = excluded.last_used_at",
        (1, T0 + 31 * DAY),
    ),
    ("INSERT INTO token_usage (token_id, last_used_at) VALUES (2, ?), (3, ?)", (T0, T0)),
    ("UPDATE token_usage SET last_used_at = last_used_at + 1", ()),
    ("DELETE FROM token_usage WHERE token_id = 3", ()),
    # The cascade to token_usage takes its count with it.
    ("DELETE FROM tokens WHERE id = 1", ()),
    ("DELETE FROM tokens WHERE id = 99", ()),
    ("DELETE FROM tokens", ()),
)


async def recount(backends: Backends) -> list[Row]:
    rows = await backends.postgres.fetch(
        "SELECT 1, count(*), count(*) FILTER (WHERE enabled = 0),"
        " count(*) FILTER (WHERE leaked_at IS NOT NULL),"
        " count(*) FILTER (WHERE expires_at IS NULL),"
        " (SELECT count(*) FROM token_usage) FROM tokens"
    )
    return [tuple(row) for row in rows]


async def test_token_counts_follow_the_tokens_as_on_sqlite(migrated: Backends) -> None:
    await migrated.insert_token(1)
    await migrated.insert_token(2, enabled=0)
    await migrated.execute("UPDATE tokens SET expires_at = ? WHERE id = 2", (T0 + DAY,))
    await migrated.insert_token(3)
    await migrated.execute("UPDATE tokens SET leaked_at = ? WHERE id = 3", (T0,))
    seen = [await migrated.same_rows("SELECT * FROM token_counts")]
    for sql, params in COUNT_STEPS:
        await migrated.execute(sql, params)
        counts = await migrated.same_rows("SELECT * FROM token_counts")
        assert counts == await recount(migrated), sql
        seen.append(counts)
    # Every count moved both ways, and none stayed behind.
    for column in range(1, 6):
        values = [counts[0][column] for counts in seen]
        assert max(values) >= 2 and values[-1] == 0, column

    await migrated.insert_token(4)
    # A deleted token's id is never given to a new one.
    assert await migrated.same_rows("SELECT id FROM tokens") == [(4,)]


async def test_truncate_empties_the_counts(migrated: Backends) -> None:
    for number in range(1, 4):
        await migrated.insert_token(number, enabled=number % 2)
    await migrated.execute("INSERT INTO token_usage (token_id, last_used_at) VALUES (1, 0)")
    await migrated.postgres.execute("TRUNCATE token_usage")
    assert await recount(migrated) == [(1, 3, 1, 0, 3, 0)]
    assert [tuple(row) for row in await migrated.postgres.fetch("SELECT * FROM token_counts")] == [
        (1, 3, 1, 0, 3, 0)
    ]
    await migrated.execute("INSERT INTO token_usage (token_id, last_used_at) VALUES (2, 0)")
    await migrated.execute("UPDATE tokens SET expires_at = ?", (T0,))
    await migrated.postgres.execute("TRUNCATE tokens CASCADE")
    rows = await migrated.postgres.fetch("SELECT * FROM token_counts")
    assert [tuple(row) for row in rows] == [(1, 0, 0, 0, 0, 0)]
    assert await migrated.postgres.fetch("SELECT * FROM token_expiry_days") == []


async def expiry_days(backends: Backends) -> list[Row]:
    """The days `token_expiry_days` counts tokens on, the same on both, checked against a
    count of the tokens themselves (a day's row stays at zero once emptied)."""
    kept = await backends.same_rows(
        "SELECT day, tokens FROM token_expiry_days WHERE tokens <> 0 ORDER BY day"
    )
    counted = await backends.same_rows(
        "SELECT expires_at / 86400, count(*) FROM tokens"
        " WHERE enabled = 1 AND expires_at IS NOT NULL GROUP BY expires_at / 86400 ORDER BY 1"
    )
    assert kept == counted
    return kept


# T0 is 80,000 s into its UTC day: +60 s stays on it, +7,000 s is the next.
EXPIRY_DAY_STEPS: tuple[tuple[str, Params], ...] = (
    ("UPDATE tokens SET expires_at = ? WHERE id = 1", (T0 + DAY,)),
    ("UPDATE tokens SET expires_at = ? WHERE id = 2", (T0 + DAY + 1,)),  # disabled
    ("UPDATE tokens SET enabled = 1 WHERE id = 2", ()),
    ("UPDATE tokens SET expires_at = expires_at + 60 WHERE id = 1", ()),  # the same day
    ("UPDATE tokens SET expires_at = expires_at + 7000 WHERE id = 1", ()),  # the next
    ("UPDATE tokens SET expires_at = ?, enabled = 0 WHERE id = 3", (T0 - 40 * DAY,)),
    ("UPDATE tokens SET enabled = 1 - enabled", ()),
    ("UPDATE tokens SET enabled = 1", ()),
    ("UPDATE tokens SET last_active_at = last_active_at + 1, row_version = 2", ()),
    (
        f"INSERT INTO tokens ({TOKEN_COLUMNS}, expires_at) VALUES ({', '.join('?' * 17)})",
        (*token_values(4), T0 + DAY),
    ),
    ("UPDATE tokens SET expires_at = NULL WHERE id = 2", ()),
    ("DELETE FROM tokens WHERE id = 1", ()),
    ("DELETE FROM tokens", ()),
)


async def test_expiry_days_follow_the_tokens_as_on_sqlite(backends: Backends) -> None:
    """Filled by the migration from the tokens there are, then kept by every change: each
    token counted once, on its expiry's day, while enabled."""
    await backends.migrate(10)
    for number in range(1, 4):
        await backends.insert_token(number, enabled=int(number != 2))
    await backends.execute("UPDATE tokens SET expires_at = ? WHERE id IN (1, 2)", (T0,))
    await backends.migrate(11)
    assert await expiry_days(backends) == [(T0 // DAY, 1)]
    seen = []
    for sql, params in EXPIRY_DAY_STEPS:
        await backends.execute(sql, params)
        seen.append(await expiry_days(backends))
    # Two tokens on a day, three days at once, and nothing left.
    assert max(count for days in seen for _, count in days) == 2
    assert max(map(len, seen)) == 3 and seen[-1] == []
    assert await backends.same_rows("SELECT count(*) FROM token_expiry_days WHERE tokens < 0") == [
        (0,)
    ]


# The audit log ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'UMALLORY1'",
        "UPDATE audit_log SET detail = '{}' WHERE action = 'create'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE action = 'create'",
        "TRUNCATE audit_log",
        "TRUNCATE audit_log RESTART IDENTITY CASCADE",
        "INSERT INTO audit_log (id, at, actor, action, detail)"
        " VALUES (1, 0, 'UMALLORY1', 'x', '{}')"
        " ON CONFLICT (id) DO UPDATE SET actor = excluded.actor",
    ],
)
async def test_the_audit_log_refuses_updates_deletes_and_truncate(
    migrated: Backends, statement: str
) -> None:
    for action in ("create", "enable"):
        await migrated.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, 'U0001', ?, '{}')",
            (T0, action),
        )
    before = await migrated.postgres.fetch("SELECT * FROM audit_log ORDER BY id")
    with pytest.raises(asyncpg.RestrictViolationError, match="the audit log is append-only"):
        await migrated.postgres.execute(statement)
    assert await migrated.postgres.fetch("SELECT * FROM audit_log ORDER BY id") == before
    # A record still appends, after the last.
    await migrated.postgres.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (0, 'U0001', 'delete', '{}')"
    )
    ids = await migrated.postgres.fetch("SELECT id FROM audit_log ORDER BY id")
    assert [id_ for (id_,) in ids] == [1, 2, 3]


async def test_the_audit_log_refuses_a_record_in_another_s_place(migrated: Backends) -> None:
    await migrated.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (0, 'U0001', 'create', '{}')"
    )
    with pytest.raises(asyncpg.UniqueViolationError):
        await migrated.postgres.execute(
            "INSERT INTO audit_log (id, at, actor, action, detail)"
            " VALUES (1, 0, 'UMALLORY1', 'create', '{}')"
        )
    rows = await migrated.postgres.fetch("SELECT id, actor FROM audit_log")
    assert [tuple(row) for row in rows] == [(1, "U0001")]


# The constraints -------------------------------------------------------------------------

REFUSED: tuple[tuple[str, Params], ...] = (
    ("UPDATE tokens SET enabled = 2", ()),
    ("UPDATE tokens SET enabled = -1", ()),
    ("UPDATE tokens SET disabled_reason = 'expired'", ()),
    ("UPDATE tokens SET previous_until = 5", ()),
    ("UPDATE tokens SET previous_secret_hash = ?", (b"\x09" * 32,)),
    ("UPDATE tokens SET previous_secret_hash = ?, previous_until = 5", (b"\x02" * 32,)),
    ("UPDATE tokens SET name_key = 'token 2' WHERE id = 1", ()),
    ("UPDATE tokens SET sid = 'sid2' WHERE id = 1", ()),
    ("UPDATE tokens SET secret_hash = ? WHERE id = 1", (b"\x02" * 32,)),
    ("UPDATE tokens SET description = NULL", ()),
    ("INSERT INTO user_roles VALUES ('U1', 'owner', 'U2', 0)", ()),
    ("INSERT INTO group_roles VALUES ('S1', 'viewer', 'U2', 0)", ()),
    ("INSERT INTO user_statuses VALUES ('U1', 'alien', 0.5)", ()),
    ("INSERT INTO reminder_marks VALUES (1, 0, -1, 0)", ()),
    ("INSERT INTO reminder_marks VALUES (99, 0, 1, 0)", ()),
    ("INSERT INTO idle_warnings VALUES (99, 0, 0)", ()),
    ("INSERT INTO token_usage (token_id, last_used_at) VALUES (99, 0)", ()),
    ("INSERT INTO retired_secrets (digest, token_id, retired_at) VALUES (?, 99, 0)", (b"r",)),
    (
        "INSERT INTO retired_secrets (digest, token_id, retired_at, presented)"
        " VALUES (?, 1, 0, -1)",
        (b"r",),
    ),
    ("INSERT INTO leak_reports VALUES ('C1', '1.0', ?, 99, 0)", (b"d",)),
    ("INSERT INTO token_counts VALUES (2, 0, 0, 0, 0, 0)", ()),
    ("INSERT INTO settings VALUES ('k', NULL)", ()),
)


@pytest.mark.parametrize(("sql", "params"), REFUSED)
async def test_the_constraints_refuse_what_sqlite_refuses(
    migrated: Backends, sql: str, params: Params
) -> None:
    await migrated.insert_token(1)
    await migrated.insert_token(2)
    await migrated.execute(
        "UPDATE tokens SET previous_secret_hash = ?, previous_until = 9 WHERE id = 2",
        (b"\x09" * 32,),
    )
    before = await migrated.same_rows("SELECT * FROM tokens ORDER BY id")
    with pytest.raises(sqlite3.IntegrityError):
        migrated.sqlite.execute(sql, params)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await migrated.postgres.execute(numbered(sql), *params)
    assert await migrated.same_rows("SELECT * FROM tokens ORDER BY id") == before


async def test_the_constraints_let_through_what_sqlite_lets_through(migrated: Backends) -> None:
    await migrated.insert_token(1)
    for sql, params in (
        ("UPDATE tokens SET enabled = 0, disabled_reason = 'leaked', leaked_at = 5", ()),
        ("UPDATE tokens SET disabled_reason = 'idle'", ()),
        ("UPDATE tokens SET previous_secret_hash = ?, previous_until = 9", (b"\x07" * 32,)),
        ("UPDATE tokens SET previous_secret_hash = NULL, previous_until = NULL", ()),
        ("INSERT INTO user_roles VALUES ('U1', 'admin', 'U2', 0)", ()),
        ("INSERT INTO group_roles VALUES ('S1', 'specialist', 'U2', 0)", ()),
        ("INSERT INTO user_statuses VALUES ('U1', 'other_organisation', 0.5)", ()),
        ("INSERT INTO reminder_marks VALUES (1, 0, 0, 0)", ()),
        ("INSERT INTO retired_secrets (digest, token_id, retired_at) VALUES (?, 1, 0)", (b"r",)),
        ("INSERT INTO leak_reports VALUES ('C1', '1.0', ?, 1, 0)", (b"d",)),
    ):
        await migrated.execute(sql, params)
    await migrated.same_rows("SELECT * FROM tokens")
    await migrated.same_rows("SELECT * FROM retired_secrets")
    await migrated.execute("DELETE FROM tokens")
    for table in ("reminder_marks", "retired_secrets", "leak_reports"):
        assert await migrated.same_rows(f"SELECT count(*) FROM {table}") == [(0,)]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO schema_version VALUES (2, 0)",
        "UPDATE schema_version SET id = 2",
        "INSERT INTO change_counter VALUES (2, 0)",
        "INSERT INTO change_log (counter, token_id, account) VALUES (1, NULL, 2)",
        "INSERT INTO instances (id) VALUES ('i1')",
    ],
)
async def test_the_preamble_s_constraints_hold(migrated: Backends, sql: str) -> None:
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await migrated.postgres.execute(sql)
