"""One SQLite database owned by one process: connections, the instance lock, transactions.

Writes go through one connection, one transaction at a time (an asyncio lock, waited for
a bounded time), and each transaction runs to its end even if the request that started it
is cancelled, so that what is committed and what the in-memory state says never disagree.
Reads use a second connection and so see committed data only (WAL).

A transaction's statements run on the event loop itself, each as it is awaited: a change
is a handful of indexed statements of some microseconds each, while a trip to a
connection's thread costs a turn of the event loop, which under load is milliseconds, and
the write lock is held for all of them. What may wait runs in the writer's own thread
instead: BEGIN when another connection holds the database (the busy timeout), and COMMIT,
which waits for the disk (synchronous = FULL).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class _Executed:
    """A statement, run when awaited or entered with `async with`, as aiosqlite's are: on
    the event loop, or in `thread` if given."""

    def __init__(
        self, run: Callable[[], sqlite3.Cursor], thread: ThreadPoolExecutor | None = None
    ) -> None:
        self._run = run
        self._thread = thread
        self._cursor: sqlite3.Cursor | None = None

    async def _ran(self) -> sqlite3.Cursor:
        if self._thread is None:
            return self._run()
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run)

    async def _cursor_now(self) -> _Cursor:
        return _Cursor(await self._ran())

    def __await__(self) -> Generator[Any, None, _Cursor]:
        return self._cursor_now().__await__()

    async def __aenter__(self) -> _Cursor:
        self._cursor = await self._ran()
        return _Cursor(self._cursor)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._cursor is not None:
            self._cursor.close()


class _WriterConnection:
    """The writer inside a change, in the shape storage/sql.py `Connection` describes: each
    statement runs on the event loop when awaited, but a batch (`executemany`, a flush
    writing every use; `execute_fetchall`, a scheduler pass marking a thousand reminders in
    one statement), which runs in the writer's thread so as not to hold the loop for
    milliseconds."""

    def __init__(self, connection: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._thread = thread

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Executed:
        return _Executed(lambda: self._connection.execute(sql, tuple(parameters or ())))

    def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Executed:
        return _Executed(
            lambda: self._connection.executemany(sql, (tuple(row) for row in parameters)),
            self._thread,
        )

    async def execute_fetchall(
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> list[Any]:
        arguments = tuple(parameters or ())
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: self._connection.execute(sql, arguments).fetchall()
        )


class SqliteDatabase:
    def __init__(
        self,
        *,
        writer: sqlite3.Connection,
        reader: aiosqlite.Connection,
        lock_fd: int | None,
        write_wait_seconds: float = WRITE_WAIT_SECONDS,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._lock_fd = lock_fd
        self._write_lock = asyncio.Lock()
        self._write_wait_seconds = write_wait_seconds
        # One thread, so that what waits of the writer (see the module docstring) never
        # queues behind the default executor's other work.
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="tokendesk-writer")
        self._closed = False

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
            writer = await asyncio.to_thread(_connect_writer, path)
            try:
                reader = await _connect(path, query_only=True)
            except BaseException:
                writer.close()
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
            writer = await asyncio.to_thread(_connect_writer, path)
        except sqlite3.Error as error:
            raise StartupRefused("TOKENDESK_DB", f"cannot be opened ({error})") from None
        try:
            reader = await _connect(path)
        except BaseException:
            writer.close()
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
            self._writer.close()
            self._closed = True
        self._writer_thread.shutdown()
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
        if self._closed:
            # What a closed reader raises as well (aiosqlite's).
            raise ValueError("Connection closed")
        writer = self._writer
        try:
            await self._begin()
            try:
                result = await change(_WriterConnection(writer, self._writer_thread))
                await self._in_writer_thread(writer.execute, "COMMIT")
            except BaseException:
                if writer.in_transaction:
                    writer.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            if is_busy(error):
                raise StoreBusy() from None
            raise
        after_commit(result)
        return result

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE: at once when no other connection holds the database, as is
        usual (the writer's busy timeout is 0); else in the writer's thread, waiting for
        it up to the busy timeout."""
        try:
            self._writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if not is_busy(error):
                raise
            await self._in_writer_thread(_begin_waiting, self._writer)

    async def _in_writer_thread(self, function: Callable[..., Any], *arguments: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writer_thread, function, *arguments)


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


def _connect_writer(path: Path) -> sqlite3.Connection:
    """The writer: used on the event loop and in the writer's thread, one at a time (the
    write lock), never waiting on the loop for another connection (busy timeout 0).

    Opening waits like any connection, though: the first statement reads the schema, which
    another process's connection may hold for a moment (closing the last connection
    checkpoints the WAL under an exclusive lock)."""
    connection = sqlite3.connect(
        file_uri(path, "rw"),
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT_SECONDS,
    )
    try:
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        connection.close()
        raise
    return connection


def _begin_waiting(connection: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting up to the busy timeout for another connection's lock."""
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    try:
        connection.execute("BEGIN IMMEDIATE")
    finally:
        connection.execute("PRAGMA busy_timeout = 0")


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
