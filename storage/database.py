"""One SQLite database owned by one process: connections, the instance lock, transactions.

Writes go through one connection, one transaction at a time (an asyncio lock), and each
transaction runs to its end even if the request that started it is cancelled, so that what
is committed and what the in-memory state says never disagree. Reads use a second
connection and so see committed data only (WAL).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote

import aiosqlite

from storage.errors import StartupRefused, StoreBusy
from storage.schema import LATEST_VERSION, migrate

BUSY_TIMEOUT_SECONDS = 1.0
T = TypeVar("T")
Row = tuple[Any, ...]
Change = Callable[[aiosqlite.Connection], Awaitable[T]]


def lock_file_for(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def create_private_file(path: Path) -> None:
    """Create `path` owner-only if it does not exist. SQLite gives the WAL and shared-memory
    files the database file's mode, so this keeps all three private."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(descriptor)


def configure(connection: sqlite3.Connection) -> None:
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    connection.execute("PRAGMA journal_mode = WAL")
    # FULL: a change acknowledged to a user (a secret shown) survives a power loss too.
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")


def is_busy(error: sqlite3.OperationalError) -> bool:
    message = str(error)
    return "locked" in message or "busy" in message


class Database:
    def __init__(
        self,
        *,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        lock_fd: int | None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._lock_fd = lock_fd
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, path: Path, *, prepare: Callable[[sqlite3.Connection], None] | None = None
    ) -> Database:
        """Lock, create (owner-only), migrate, let `prepare` check the data, then connect.

        Refuses with StartupRefused when another instance holds the database."""
        lock_fd = _acquire_instance_lock(path)
        try:
            await asyncio.to_thread(_create_and_migrate, path, prepare)
            writer = await _connect(path)
            reader = await _connect(path)
            await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(writer=writer, reader=reader, lock_fd=lock_fd)

    @classmethod
    async def attach(cls, path: Path) -> Database:
        """An operator's connection, beside a running instance or not: it takes no instance
        lock, never creates a database, and refuses one of another schema version."""
        if not path.is_file():
            raise StartupRefused("TOKENDESK_DB", f"{path} does not exist")
        if not os.access(path, os.R_OK | os.W_OK):
            raise StartupRefused("TOKENDESK_DB", f"{path} is not readable and writable by you")
        try:
            writer = await _connect(path, create=False)
        except sqlite3.Error as error:
            raise StartupRefused("TOKENDESK_DB", f"cannot be opened ({error})") from None
        try:
            reader = await _connect(path, create=False)
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
        async with self._write_lock:
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


def _acquire_instance_lock(path: Path) -> int:
    lock_path = lock_file_for(path)
    try:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise StartupRefused("TOKENDESK_DB", f"cannot be opened ({error.strerror})") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise StartupRefused(
            "TOKENDESK_DB", "another Token Desk instance is serving this database"
        ) from None
    return descriptor


def _create_and_migrate(path: Path, prepare: Callable[[sqlite3.Connection], None] | None) -> None:
    try:
        create_private_file(path)
    except OSError as error:
        raise StartupRefused("TOKENDESK_DB", f"cannot be created ({error.strerror})") from None
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        configure(connection)
        migrate(connection)
        if prepare is not None:
            prepare(connection)
    except sqlite3.DatabaseError as error:
        raise StartupRefused("TOKENDESK_DB", f"is not a usable database ({error})") from None
    finally:
        connection.close()


async def _connect(path: Path, *, create: bool = True) -> aiosqlite.Connection:
    # mode=rw: an operator's command must never create a database by mistake.
    target = str(path) if create else f"file:{quote(str(path.resolve()))}?mode=rw"
    connection = await aiosqlite.connect(
        target, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, uri=not create
    )
    try:
        await connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        # An open aiosqlite connection's thread would keep the process alive.
        await connection.close()
        raise
    return connection
