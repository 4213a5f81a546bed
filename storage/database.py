"""One SQLite database owned by one process: connections, the instance lock, transactions.

Writes go through one connection, one transaction at a time (an asyncio lock, waited for
a bounded time), and each transaction runs to its end even if the request that started it
is cancelled, so that what is committed and what the in-memory state says never disagree.
Reads use a second connection and so see committed data only (WAL).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote

import aiosqlite

from storage.errors import StartupRefused, StoreBusy
from storage.schema import LATEST_VERSION, migrate
from storage.sql import Change, Row

BUSY_TIMEOUT_SECONDS = 1.0
# How long a change waits for the changes queued before it. With the busy timeout on top,
# a change is applied or refused (StoreBusy) well before Slack's 3 s ack deadline.
WRITE_WAIT_SECONDS = 1.5
T = TypeVar("T")


def configure(connection: sqlite3.Connection) -> None:
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    connection.execute("PRAGMA journal_mode = WAL")
    # FULL: a change acknowledged to a user (a secret shown) survives a power loss too.
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")


def is_busy(error: sqlite3.OperationalError) -> bool:
    message = str(error)
    return "locked" in message or "busy" in message


class SqliteDatabase:
    def __init__(
        self,
        *,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        lock_fd: int | None,
        write_wait_seconds: float = WRITE_WAIT_SECONDS,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._lock_fd = lock_fd
        self._write_lock = asyncio.Lock()
        self._write_wait_seconds = write_wait_seconds

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        write_wait_seconds: float = WRITE_WAIT_SECONDS,
    ) -> SqliteDatabase:
        """Create (owner-only) and lock, migrate, then connect.

        Refuses with StartupRefused when another instance holds the database."""
        lock_fd = _lock_database_file(path)
        try:
            await asyncio.to_thread(_migrate, path)
            writer = await _connect(path)
            try:
                reader = await _connect(path, query_only=True)
            except BaseException:
                await writer.close()
                raise
        except BaseException:
            # Only now that no connection of ours is open: see _lock_database_file.
            os.close(lock_fd)
            raise
        return cls(
            writer=writer,
            reader=reader,
            lock_fd=lock_fd,
            write_wait_seconds=write_wait_seconds,
        )

    @classmethod
    async def attach(cls, path: Path) -> SqliteDatabase:
        """An operator's connection, beside a running instance or not: it takes no instance
        lock, never creates a database, and refuses one of another schema version."""
        require_file(path, writable=True)
        try:
            writer = await _connect(path)
        except sqlite3.Error as error:
            raise StartupRefused("TOKENDESK_DB", f"cannot be opened ({error})") from None
        try:
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        database = cls(writer=writer, reader=reader, lock_fd=None)
        try:
            row = await database.fetch_one("PRAGMA user_version")
        except BaseException:
            await database.close()
            raise
        version = row[0] if row else 0
        if version != LATEST_VERSION:
            await database.close()
            rule = (
                "is not a Token Desk database"
                if version == 0
                else "has another schema version; start Token Desk once to upgrade it"
            )
            raise StartupRefused("TOKENDESK_DB", rule)
        return database

    async def close(self) -> None:
        async with self._write_lock:
            await self._reader.close()
            await self._writer.close()
        if self._lock_fd is not None:
            # Last, after the connections: see _lock_database_file.
            os.close(self._lock_fd)

    async def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        try:
            return cast(list[Row], await self._reader.execute_fetchall(sql, parameters))
        except sqlite3.OperationalError as error:
            if is_busy(error):
                raise StoreBusy() from None
            raise

    async def fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetch_all(sql, parameters)
        return rows[0] if rows else None

    async def transact(self, change: Change[T], *, after_commit: Callable[[T], None]) -> T:
        """Run `change` in one write transaction, then `after_commit` with its result, before
        returning: the in-memory state is exact by the time anyone hears of the change."""
        return await asyncio.shield(self._transact(change, after_commit))

    async def _transact(self, change: Change[T], after_commit: Callable[[T], None]) -> T:
        try:
            async with asyncio.timeout(self._write_wait_seconds):
                await self._write_lock.acquire()
        except TimeoutError:
            # The change never started: nothing was applied.
            raise StoreBusy() from None
        try:
            return await self._commit(change, after_commit)
        finally:
            self._write_lock.release()

    async def _commit(self, change: Change[T], after_commit: Callable[[T], None]) -> T:
        try:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                result = await change(self._writer)
                await self._writer.execute("COMMIT")
            except BaseException:
                if self._writer.in_transaction:
                    await self._writer.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            if is_busy(error):
                raise StoreBusy() from None
            raise
        after_commit(result)
        return result


def require_file(path: Path, *, writable: bool) -> None:
    """Refuse, as an operator's command does, a database file that does not exist (never
    to be created by mistake) or that the caller may not read, or write if `writable`."""
    if not path.is_file():
        raise StartupRefused("TOKENDESK_DB", f"{path} does not exist")
    access, able = (
        (os.R_OK | os.W_OK, "readable and writable") if writable else (os.R_OK, "readable")
    )
    if not os.access(path, access):
        raise StartupRefused("TOKENDESK_DB", f"{path} is not {able} by you")


def _lock_database_file(path: Path) -> int:
    """Open the database file, creating it owner-only (SQLite gives the WAL and shared-memory
    files the database file's mode), and lock it for this instance.

    The lock is on the file itself, not on a name: a second instance reaching the same file
    through a symlink, a hard link or a relative path finds it taken. flock(2) locks are
    independent of the POSIX locks SQLite takes on the same file (Linux, local file
    systems), so the operator commands' connections beside the app are not blocked. But
    closing any descriptor of a file drops every POSIX lock its process holds on it, so the
    descriptor returned is closed only once no connection of ours is open."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise StartupRefused(
            "TOKENDESK_DB", f"cannot be opened or created ({error.strerror})"
        ) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise StartupRefused(
            "TOKENDESK_DB", "another Token Desk instance is serving this database"
        ) from None
    return descriptor


def _migrate(path: Path) -> None:
    connection = sqlite3.connect(
        file_uri(path, "rw"), uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
    )
    try:
        configure(connection)
        migrate(connection)
    except sqlite3.DatabaseError as error:
        raise StartupRefused("TOKENDESK_DB", f"is not a usable database ({error})") from None
    finally:
        connection.close()


def file_uri(path: Path, mode: str) -> str:
    """The SQLite URI of the file at `path`, opened with `mode` (`ro`, `rw`).

    Every path reaches SQLite this way: quoted, because a `#` or `?` would cut the path
    short (and drop `mode`, so that SQLite would create a stray file); and as a URI,
    because SQLite may be built to read a plain path that starts with `file:` as one."""
    return f"file:{quote(str(path.resolve()))}?mode={mode}"


async def _connect(path: Path, *, query_only: bool = False) -> aiosqlite.Connection:
    # mode=rw: a connection never creates a database. The app's own was created owner-only
    # when it was locked; an operator's command must never create one by mistake.
    connection = await aiosqlite.connect(
        file_uri(path, "rw"), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, uri=True
    )
    try:
        await connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute("PRAGMA foreign_keys = ON")
        if query_only:
            await connection.execute("PRAGMA query_only = ON")
    except BaseException:
        # An open aiosqlite connection's thread would keep the process alive.
        await connection.close()
        raise
    return connection
