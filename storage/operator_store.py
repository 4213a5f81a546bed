"""The database as the operator commands reach it, beside a running app or not.

They take no instance lock, so they run while the app serves the database; they never
create a database, and refuse one of another schema version (`SqliteDatabase.attach`). They
reach its roles and audit log, and copy it; tokens and API access are not theirs to
change, because the running app's credential index (storage/credential_index.py) would
never hear of a change made by another process.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Collection
from pathlib import Path

from storage.audit import AuditLog
from storage.database import BUSY_TIMEOUT_SECONDS, SqliteDatabase, file_uri, require_file
from storage.errors import BackupFailed, BackupTargetExists
from storage.postgres import PostgresDatabase
from storage.roles import Roles
from storage.sql import Database
from storage.store import KEY_CHECK_SETTING


class OperatorStore:
    """`roles` and `audit` over an attached database. Open with `OperatorStore.attach`."""

    def __init__(
        self, database: Database, *, admins: Collection[str], clock: Callable[[], float]
    ) -> None:
        self._database = database
        self.roles = Roles(database, admins=admins, clock=clock)
        self.audit = AuditLog(database)

    @classmethod
    async def attach(
        cls,
        path: Path | None = None,
        *,
        database_url: str | None = None,
        admins: Collection[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> OperatorStore:
        """The PostgreSQL database at `database_url`, else the SQLite file at `path`;
        `admins` are the app's bootstrap admins, whom the role rules protect here too.
        Raises StartupRefused when it cannot be used."""
        database: Database
        if database_url is not None:
            database = await PostgresDatabase.attach(database_url)
        elif path is not None:
            database = await SqliteDatabase.attach(path)
        else:
            raise ValueError("an operator store needs a database file or a PostgreSQL URL")
        return cls(database, admins=admins, clock=clock)

    async def close(self) -> None:
        await self._database.close()


def write_backup(source: Path, target: Path, *, replace: bool) -> str:
    """Copy the database at `source` consistently, while the app may be writing to it, into
    a private temporary file beside `target`, then move that into place: `target` is never
    a partial copy. Returns the key check value to keep with the copy.

    Raises StartupRefused when `source` is missing or unreadable, BackupTargetExists when
    `target` exists and not `replace`, and BackupFailed otherwise."""
    require_file(source, writable=False)
    if target.exists() and not replace:
        raise BackupTargetExists(target)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as error:
        raise BackupFailed(f"cannot write {target} ({error.strerror})") from None
    try:
        key_check = _copy(source, temporary)
        if key_check is None:
            raise BackupFailed(f"{source} is not a Token Desk database")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except (sqlite3.DatabaseError, OSError) as error:
        raise BackupFailed(f"backup failed: {error}") from None
    finally:
        if temporary.exists():
            temporary.unlink()
    return key_check


def _copy(source: Path, copy_path: Path) -> str | None:
    """Copy `source` into the empty file at `copy_path`; the key check value stored in the
    copy, or None when it is not a Token Desk database."""
    reader = sqlite3.connect(file_uri(source, "ro"), uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        copy = sqlite3.connect(file_uri(copy_path, "rw"), uri=True)
        try:
            reader.backup(copy)
            # One self-contained file: no WAL to forget beside it.
            copy.execute("PRAGMA journal_mode = DELETE")
            row = copy.execute(
                "SELECT value FROM settings WHERE key = ?", (KEY_CHECK_SETTING,)
            ).fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            copy.close()
    finally:
        reader.close()
    return None if row is None else str(row[0])
