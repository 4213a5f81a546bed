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
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from storage.account import AccountSettings
from storage.audit import AuditLog
from storage.credential_index import CredentialIndex
from storage.credentials import SecretHasher
from storage.database import Database
from storage.errors import StartupRefused
from storage.expiry import ExpiryWork
from storage.leaks import LeakReports
from storage.roles import Roles
from storage.token_lifecycle import TokenLifecycle
from storage.token_reads import TokenReads

KEY_CHECK_SETTING = "key_check"
LAST_USED_FLUSH_SECONDS = 60.0
MAX_LIFETIME_DAYS = 365
_NAMES_SHOWN = 5


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
    ) -> None:
        self._database = database
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
        path: Path,
        secret_key: bytes,
        api_versions: Sequence[str],
        scopes: Sequence[str],
        admins: Collection[str] = (),
        max_lifetime_days: int = MAX_LIFETIME_DAYS,
        clock: Callable[[], float] = time.time,
        flush_seconds: float = LAST_USED_FLUSH_SECONDS,
    ) -> Store:
        """Lock, create or upgrade, check the key and the catalog, and load the credentials.

        `max_lifetime_days` caps the expiry a secret may be given (0: no cap, and tokens
        may have none); `clock` is the wall clock every expiry and idle rule reads.

        Raises StartupRefused, with a message naming the variable or file and the rule,
        when another instance holds the database, when it cannot be created or is not a
        usable database, when `secret_key` is not the key it was created with, or when an
        API version or scope still in use is missing from the catalogs."""
        if not api_versions or not scopes:
            raise ValueError("the API version and scope catalogs must not be empty")
        if max_lifetime_days < 0:
            raise ValueError("the maximum lifetime must be 0 (no cap) or a number of days")
        hasher = SecretHasher(secret_key)

        def check(connection: sqlite3.Connection) -> None:
            _check_key(connection, hasher)
            _check_catalog(connection, api_versions, scopes)

        database = await Database.open(path, prepare=check)
        account = AccountSettings(database, clock=clock)
        credentials = CredentialIndex(database, hasher=hasher, account=account, clock=clock)
        try:
            await account.load()
            await credentials.load()
        except BaseException:
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
            await self._database.close()

    async def is_healthy(self) -> bool:
        try:
            return await self._database.fetch_one("SELECT 1") is not None
        except sqlite3.Error:
            return False


def _check_key(connection: sqlite3.Connection, hasher: SecretHasher) -> None:
    expected = hasher.key_check_value()
    row = connection.execute(
        "SELECT value FROM settings WHERE key = ?", (KEY_CHECK_SETTING,)
    ).fetchone()
    if row is None:
        connection.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)", (KEY_CHECK_SETTING, expected)
        )
    elif row[0] != expected:
        raise StartupRefused(
            "TOKENDESK_SECRET_KEY", "is not the key this database was created with"
        )


def _check_catalog(
    connection: sqlite3.Connection, api_versions: Sequence[str], scopes: Sequence[str]
) -> None:
    """Refuse a catalog that dropped a version or scope a token still uses."""
    versions = connection.execute(
        "SELECT DISTINCT api_version FROM tokens"
        f" WHERE api_version NOT IN ({', '.join('?' * len(api_versions))})",
        tuple(api_versions),
    ).fetchall()
    if versions:
        names = _names(connection, "t.api_version = ?", versions[0][0])
        raise StartupRefused(
            "TOKENDESK_API_VERSIONS",
            f"must keep {versions[0][0]}, which tokens still use ({names})",
        )
    scope_rows = connection.execute(
        "SELECT DISTINCT j.value FROM tokens t, json_each(t.access_rights) j"
        f" WHERE j.value NOT IN ({', '.join('?' * len(scopes))})",
        tuple(scopes),
    ).fetchall()
    if scope_rows:
        names = _names(
            connection,
            "EXISTS (SELECT 1 FROM json_each(t.access_rights) j WHERE j.value = ?)",
            scope_rows[0][0],
        )
        raise StartupRefused(
            "TOKENDESK_SCOPES", f"must keep {scope_rows[0][0]}, which tokens still use ({names})"
        )


def _names(connection: sqlite3.Connection, condition: str, value: str) -> str:
    rows = connection.execute(
        f"SELECT t.name FROM tokens t WHERE {condition} ORDER BY t.name LIMIT ?",
        (value, _NAMES_SHOWN + 1),
    ).fetchall()
    shown = ", ".join(row[0] for row in rows[:_NAMES_SHOWN])
    return shown + (", …" if len(rows) > _NAMES_SHOWN else "")
