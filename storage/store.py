"""The store: one SQLite database, owned by one process, and what the app asks of it.

Each attribute of `Store` has one job, in one module:
- `credentials` (credential_index.py): the auth check, from memory; last-used times and
  retired secrets' presentations (presentations.py);
- `account` (account.py): the account's API-access switch;
- `token_reads` (token_reads.py): a token, a filtered page, the token of a secret, and App
  Home's summary and the tokens that need attention;
- `tokens` (token_lifecycle.py): create, duplicate, edit, reset (with a grace window,
  retirement.py), end a grace window, upgrade, enable or disable, delete;
- `expiry` (expiry.py): what the scheduler finds due (reminders, idle tokens, grace windows
  ended by time, retired secrets to report or purge) and marks;
- `leaks` (leaks.py): Token Desk secrets found posted in Slack, each reported once per
  message;
- `roles` (roles.py): role mappings, users' Slack statuses, the effective role;
- `audit` (audit.py): the audit log.

The operator commands reach the database another way, beside a running app: its roles
and audit log only, and a backup (operator_store.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from pathlib import Path

from storage.account import AccountSettings
from storage.audit import AuditLog
from storage.credential_index import CredentialIndex, SqliteRows
from storage.credentials import SecretHasher
from storage.currency import Currency, follower
from storage.database import SqliteDatabase
from storage.errors import StartupRefused, StoreError
from storage.expiry import ExpiryWork
from storage.leaks import LeakReports
from storage.postgres import CONNECT_WAIT_SECONDS, PostgresDatabase
from storage.roles import Roles
from storage.sql import Connection, Database, both
from storage.token_lifecycle import TokenLifecycle
from storage.token_reads import TokenReads

KEY_CHECK_SETTING = "key_check"
LAST_USED_FLUSH_SECONDS = 60.0
MAX_LIFETIME_DAYS = 365
_NAMES_SHOWN = 5
# Any 64-bit number no other program takes as an advisory lock on the database.
_SCHEDULER_LOCK = 0x746B64736368


class Store:
    """The app's store over one database (see the list above). Open with `Store.open`."""

    def __init__(
        self,
        *,
        database: Database,
        credentials: CredentialIndex,
        account: AccountSettings,
        token_reads: TokenReads,
        tokens: TokenLifecycle,
        expiry: ExpiryWork,
        leaks: LeakReports,
        roles: Roles,
        audit: AuditLog,
        flush_seconds: float,
        clock: Callable[[], float],
        max_lifetime_days: int,
        currency: Currency | None = None,
        rows: SqliteRows | None = None,
    ) -> None:
        self._database = database
        self._currency = currency
        self._rows = rows
        # What the app reads "now" and the expiry rules from, so that it agrees with the store.
        self.clock = clock
        self.max_lifetime_days = max_lifetime_days
        self.credentials = credentials
        self.account = account
        self.token_reads = token_reads
        self.tokens = tokens
        self.expiry = expiry
        self.leaks = leaks
        self.roles = roles
        self.audit = audit
        self.closed = False
        self._flusher = asyncio.create_task(credentials.flush_last_used_every(flush_seconds))

    @classmethod
    async def open(
        cls,
        *,
        path: Path | None = None,
        database_url: str | None = None,
        secret_key: bytes,
        api_versions: Sequence[str],
        scopes: Sequence[str],
        admins: Collection[str] = (),
        max_lifetime_days: int = MAX_LIFETIME_DAYS,
        clock: Callable[[], float] = time.time,
        flush_seconds: float = LAST_USED_FLUSH_SECONDS,
        connect_wait_seconds: float = CONNECT_WAIT_SECONDS,
    ) -> Store:
        """Lock, create or upgrade, check the key and the catalog, and load the credentials:
        of the SQLite file at `path`, or of the PostgreSQL database at `database_url`
        (which this instance then shares with others, exact together: storage/currency.py).

        `max_lifetime_days` caps the expiry a secret may be given (0: no cap, and tokens
        may have none); `clock` is the wall clock every expiry and idle rule reads;
        `connect_wait_seconds` how long to wait for a PostgreSQL server to answer.

        Raises StartupRefused, with a message naming the variable or file and the rule,
        when another instance holds the database, when it cannot be created or is not a
        usable database, when `secret_key` is not the key it was created with, or when an
        API version or scope still in use is missing from the catalogs."""
        if not api_versions or not scopes:
            raise ValueError("the API version and scope catalogs must not be empty")
        if max_lifetime_days < 0:
            raise ValueError("the maximum lifetime must be 0 (no cap) or a number of days")
        hasher = SecretHasher(secret_key)

        database: Database
        currency: Currency | None = None
        rows: SqliteRows | None = None
        if database_url is not None:
            database = await PostgresDatabase.open(
                database_url, connect_wait_seconds=connect_wait_seconds
            )
        elif path is not None:
            database = await SqliteDatabase.open(path)
            try:
                rows = SqliteRows(path)
            except BaseException:
                await database.close()
                raise
        else:
            raise ValueError("a store needs a database file or a PostgreSQL URL")
        account = AccountSettings(database, clock=clock)
        credentials = CredentialIndex(
            database, hasher=hasher, account=account, clock=clock, read_row=rows
        )
        try:
            await _check_key(database, hasher)
            await _check_catalog(database, api_versions, scopes)
            if isinstance(database, PostgresDatabase):
                currency = Currency(
                    database, follower(credentials, account), credentials.flush_last_used
                )
                # Its first round reads everything, as `load` does.
                await currency.start()
                database.acknowledge = currency.acknowledge
                credentials.holds = currency.holds
            else:
                await account.load()
                await credentials.load()
        except BaseException:
            if currency is not None:
                await currency.close()
            if rows is not None:
                rows.close()
            await database.close()
            raise
        return cls(
            database=database,
            credentials=credentials,
            account=account,
            token_reads=TokenReads(
                database, credentials=credentials, api_versions=api_versions, clock=clock
            ),
            tokens=TokenLifecycle(
                database,
                credentials=credentials,
                hasher=hasher,
                api_versions=api_versions,
                scopes=scopes,
                max_lifetime_days=max_lifetime_days,
                clock=clock,
            ),
            expiry=ExpiryWork(database, credentials=credentials, clock=clock),
            leaks=LeakReports(database, credentials=credentials, clock=clock),
            roles=Roles(database, admins=admins, clock=clock),
            audit=AuditLog(database),
            flush_seconds=flush_seconds,
            clock=clock,
            max_lifetime_days=max_lifetime_days,
            currency=currency,
            rows=rows,
        )

    async def close(self) -> None:
        """Write the pending last-used times, close the database, release the lock."""
        if self.closed:
            return
        self.closed = True
        self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        try:
            await self.credentials.flush_last_used()
        finally:
            if self._currency is not None:
                await self._currency.close()
            if self._rows is not None:
                self._rows.close()
            await self._database.close()

    async def is_healthy(self) -> bool:
        try:
            return await self._database.fetch_one("SELECT 1") is not None
        except (sqlite3.Error, StoreError):
            return False

    @contextlib.asynccontextmanager
    async def scheduled_work(self) -> AsyncIterator[bool]:
        """Whether this instance does the scheduled work (reminders, idle disables, retired
        secrets) now: always on SQLite, its only instance; on PostgreSQL, the one instance
        holding the scheduler's lock until the block ends. What is due is marked in the
        database in any case, so even two passes at once would do each thing once."""
        if not isinstance(self._database, PostgresDatabase):
            yield True
            return
        async with self._database.exclusive(_SCHEDULER_LOCK) as held:
            yield held

    async def gather_uses(self) -> bool:
        """Whether the uses every instance gathered but has not written yet are known
        here, so that an idle period can be judged: always on SQLite (this instance's are
        in its memory); on PostgreSQL, once every instance that may answer has written
        them (False if one did not in time: decide nothing idle then)."""
        if self._currency is None:
            return True
        return await self._currency.gather_uses()

    async def not_ready(self) -> str | None:
        """Why this instance should not be sent requests now, or None when it is ready:
        migrated (it is, once open), the database answering and, on PostgreSQL, its
        currency lease holding."""
        if self._currency is not None and not self._currency.holds():
            return "not current with the database"
        if not await self.is_healthy():
            return "database not answering"
        return None


async def _check_key(database: Database, hasher: SecretHasher) -> None:
    """Store the key check value at first start; refuse another key after."""
    expected = hasher.key_check_value()

    async def write(connection: Connection) -> None:
        # Two instances starting at once on an empty database: one value is kept.
        await connection.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (KEY_CHECK_SETTING, expected),
        )

    query = "SELECT value FROM settings WHERE key = ?"
    row = await database.fetch_one(query, (KEY_CHECK_SETTING,))
    if row is None:
        await database.transact(write, after_commit=lambda _: None)
        row = await database.fetch_one(query, (KEY_CHECK_SETTING,))
    if row is None or row[0] != expected:
        raise StartupRefused(
            "TOKENDESK_SECRET_KEY", "is not the key this database was created with"
        )


def _distinct(column: str) -> str:
    """The distinct values of the tokens' `column` as `used (value)`, a NULL last: one seek
    in its index each (tokens_by_api_version, tokens_by_access_rights), where DISTINCT
    would read every token."""
    return (
        f"WITH RECURSIVE used (value) AS (SELECT min({column}) FROM tokens UNION ALL"
        f" SELECT (SELECT min({column}) FROM tokens WHERE {column} > used.value) FROM used"
        " WHERE used.value IS NOT NULL)"
    )


_VERSIONS_IN_USE = f"{_distinct('api_version')} SELECT value FROM used WHERE value IS NOT NULL"
# The scopes of the few distinct lists of access rights.
_SCOPES_IN_USE = both(
    sqlite=f"{_distinct('access_rights')} SELECT DISTINCT j.value FROM used,"
    " json_each(used.value) j",
    postgres=f"{_distinct('access_rights')} SELECT DISTINCT j.value FROM used,"
    " jsonb_array_elements_text(used.value::jsonb) j (value)",
)
_NAMES_OF_VERSION = "SELECT t.name FROM tokens t WHERE t.api_version = ? ORDER BY t.name LIMIT ?"
_NAMES_OF_SCOPE = both(
    sqlite="SELECT t.name FROM tokens t"
    " WHERE EXISTS (SELECT 1 FROM json_each(t.access_rights) j WHERE j.value = ?)"
    " ORDER BY t.name LIMIT ?",
    postgres="SELECT t.name FROM tokens t WHERE EXISTS (SELECT 1 FROM"
    " jsonb_array_elements_text(t.access_rights::jsonb) j (value) WHERE j.value = $1)"
    " ORDER BY t.name LIMIT $2",
)


async def _check_catalog(
    database: Database, api_versions: Sequence[str], scopes: Sequence[str]
) -> None:
    """Refuse a catalog that dropped a version or scope a token still uses."""
    for variable, query, names_query, catalog in (
        (
            "TOKENDESK_API_VERSIONS",
            _VERSIONS_IN_USE,
            _NAMES_OF_VERSION,
            api_versions,
        ),
        ("TOKENDESK_SCOPES", _SCOPES_IN_USE, _NAMES_OF_SCOPE, scopes),
    ):
        missing = sorted(row[0] for row in await database.fetch_all(query) if row[0] not in catalog)
        if missing:
            rows = await database.fetch_all(names_query, (missing[0], _NAMES_SHOWN + 1))
            shown = ", ".join(row[0] for row in rows[:_NAMES_SHOWN])
            names = shown + (", …" if len(rows) > _NAMES_SHOWN else "")
            raise StartupRefused(
                variable, f"must keep {missing[0]}, which tokens still use ({names})"
            )
