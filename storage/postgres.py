"""The store on PostgreSQL, shared by several Token Desk instances (`TOKENDESK_DATABASE_URL`).

It answers to the store's modules as the SQLite database does (storage/sql.py `Database`):
reads of committed data from a pool, and changes one transaction at a time per instance
through one writer connection. The modules' SQL is written for SQLite; `?` and `?N`
placeholders become `$N` here, and a statement spelled otherwise on PostgreSQL was given
its other spelling with `storage.sql.both`.

Every change transaction starts by advancing the single-row change counter. That row lock
orders the changes of every instance as SQLite's write lock orders one instance's (a
change reads what every change before it committed), and the counter's value names the
change: the triggers installed by `install_change_log` record in `change_log` which tokens
it touched, for the other instances to apply (storage/currency.py). After the commit, the
instance applies the change to its own memory (`after_commit`) and then waits, before
returning, until every other instance has applied it or can no longer answer (see
currency.py): only then may the change be acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from storage.errors import StartupRefused, StoreBusy, StoreUnavailable
from storage.schema import LATEST_VERSION
from storage.schema_postgres import MIGRATIONS, PREAMBLE
from storage.sql import Change, Row, as_rows, postgres_text

URL_VARIABLE = "TOKENDESK_DATABASE_URL"
# How long start-up waits for the server to accept connections.
CONNECT_WAIT_SECONDS = 10.0
# Like SQLite's busy timeout: a change waits this long for the change counter (another
# instance's change) or a row. With the wait for this instance's own queue, and the wait
# for the other instances after the commit (at most 1.5 s: currency.py), a change is
# acknowledged within 2.5 s, inside Slack's 3 s.
LOCK_TIMEOUT_MS = 500
WRITE_WAIT_SECONDS = 0.5
# Any one statement; a change of the store is a few short statements.
STATEMENT_TIMEOUT_MS = 2000
# On the client's side, for a server that stopped answering without closing connections.
CONNECT_SECONDS = 2.0
COMMAND_SECONDS = 2.5
# Where the instances are told that a change committed (storage/currency.py listens).
CHANGES_CHANNEL = "tokendesk_changes"
# Taken by whoever migrates; any 64-bit number no other program uses on this database.
_MIGRATION_LOCK = 0x746F6B656E64736B
T = TypeVar("T")

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    # What a pool connection the server ended may raise on its next use.
    asyncpg.InternalClientError,
)
_CONNECT_ERRORS: tuple[type[Exception], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.TooManyConnectionsError,
    TimeoutError,
)


def parse_url(url: str) -> tuple[str, int]:
    """The host and port of a `postgresql://` URL; StartupRefused naming the variable (never
    the URL, which may hold a password) when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError:
        raise StartupRefused(URL_VARIABLE, "is not a valid URL") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise StartupRefused(URL_VARIABLE, "must be a postgresql:// URL")
    if not parts.path.strip("/"):
        raise StartupRefused(URL_VARIABLE, "must name a database (postgresql://…/NAME)")
    return parts.hostname or "localhost", port


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """`sql`, written for SQLite, as PostgreSQL runs it: its recorded other spelling, or
    the same text with the placeholders numbered `$N` (never inside a quoted literal)."""
    recorded = postgres_text(sql)
    if recorded is not None:
        return recorded
    pieces: list[str] = []
    counter = 0
    for index, piece in enumerate(re.split(r"('(?:[^']|'')*')", sql)):
        if index % 2:  # a quoted literal
            pieces.append(piece)
            continue

        def number(match: re.Match[str]) -> str:
            nonlocal counter
            if match.group(1):
                return f"${match.group(1)}"
            counter += 1
            return f"${counter}"

        pieces.append(re.sub(r"\?(\d*)", number, piece))
    return "".join(pieces)


def _returns_rows(sql: str) -> bool:
    head = sql.lstrip().split(None, 1)[0].upper()
    return head in ("SELECT", "WITH", "VALUES") or " RETURNING " in sql.upper()


@dataclass(slots=True)
class _Cursor:
    rows: list[Row]
    rowcount: int

    async def fetchone(self) -> Row | None:
        return self.rows[0] if self.rows else None

    async def fetchall(self) -> list[Row]:
        return self.rows


class _Executed:
    """A statement sent, awaited or used as `async with`, as aiosqlite's are."""

    def __init__(self, cursor: Coroutine[Any, Any, _Cursor]) -> None:
        self._coroutine = cursor

    def __await__(self) -> Generator[Any, None, _Cursor]:
        return self._coroutine.__await__()

    async def __aenter__(self) -> _Cursor:
        return await self._coroutine

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        return None


class PostgresConnection:
    """The writer connection inside a change, in the shape storage/sql.py `Connection`
    describes."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def _run(self, sql: str, parameters: Iterable[Any] | None) -> _Cursor:
        text = translate(sql)
        arguments = tuple(parameters or ())
        try:
            if _returns_rows(text):
                rows = as_rows(await self._connection.fetch(text, *arguments))
                return _Cursor(rows, len(rows))
            status = await self._connection.execute(text, *arguments)
        except asyncpg.IntegrityConstraintViolationError as error:
            raise sqlite3.IntegrityError(_integrity_message(error)) from None
        count = status.rsplit(" ", 1)[-1]
        return _Cursor([], int(count) if count.isdigit() else 0)

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Executed:
        return _Executed(self._run(sql, parameters))

    async def _run_many(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Cursor:
        rows = [tuple(row) for row in parameters]
        if rows:
            await self._connection.executemany(translate(sql), rows)
        return _Cursor([], len(rows))

    def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Executed:
        return _Executed(self._run_many(sql, parameters))

    async def execute_fetchall(
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> list[Row]:
        return (await self._run(sql, parameters)).rows


def _integrity_message(error: asyncpg.IntegrityConstraintViolationError) -> str:
    """A broken constraint in SQLite's words, which the modules match on (`UNIQUE
    constraint failed: table.column`), from PostgreSQL's error."""
    if not isinstance(error, asyncpg.UniqueViolationError):
        return type(error).__name__
    detail = str(getattr(error, "detail", "") or "")
    match = re.match(r"Key \(([^)]*)\)", detail)
    columns = match.group(1).split(", ") if match else []
    table = getattr(error, "table_name", "") or ""
    return "UNIQUE constraint failed: " + ", ".join(f"{table}.{column}" for column in columns)


class PostgresDatabase:
    """See the module docstring. Open with `PostgresDatabase.open`."""

    def __init__(
        self,
        *,
        url: str,
        pool: asyncpg.Pool,
        writer: asyncpg.Connection,
        write_wait_seconds: float = WRITE_WAIT_SECONDS,
    ) -> None:
        self._url = url
        self._pool = pool
        self._writer: asyncpg.Connection | None = writer
        # Held by a change from its start to its `after_commit`, and by the currency loop
        # while it applies other instances' changes: the two never interleave.
        self.write_lock = asyncio.Lock()
        self._write_wait_seconds = write_wait_seconds
        # Waits after each commit until the other instances have applied it
        # (storage/currency.py); set by the store once the instance is registered.
        self.acknowledge: Callable[[int], Any] | None = None

    @classmethod
    async def open(
        cls, url: str, *, connect_wait_seconds: float = CONNECT_WAIT_SECONDS
    ) -> PostgresDatabase:
        """Connect (waiting a bounded time for the server), migrate under a lock, and open
        the pool. StartupRefused names the host and port, never the password."""
        host, port = parse_url(url)
        first = await _connect_waiting(url, host, port, connect_wait_seconds)
        try:
            await _migrate(first)
        finally:
            await first.close()
        return await cls._connected(url, pool_size=8)

    @classmethod
    async def attach(cls, url: str) -> PostgresDatabase:
        """An operator's connection, beside running instances or not: it never migrates,
        and refuses a database that is not Token Desk's or of another schema version."""
        host, port = parse_url(url)
        first = await _connect_waiting(url, host, port, CONNECT_WAIT_SECONDS)
        try:
            version = None
            if await first.fetchval("SELECT to_regclass('schema_version')") is not None:
                version = await first.fetchval("SELECT version FROM schema_version")
        finally:
            await first.close()
        if version != LATEST_VERSION:
            rule = (
                "is not a Token Desk database"
                if version is None
                else "has another schema version; start Token Desk once to upgrade it"
            )
            raise StartupRefused(URL_VARIABLE, rule)
        return await cls._connected(url, pool_size=2)

    @classmethod
    async def _connected(cls, url: str, *, pool_size: int) -> PostgresDatabase:
        """The reading pool of `pool_size` connections and the writer, on a database ready."""
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=pool_size,
            server_settings=SERVER_SETTINGS,
            timeout=CONNECT_SECONDS,
            command_timeout=COMMAND_SECONDS,
            reset=_keep_session,
        )
        try:
            writer = await _connect(url)
        except BaseException:
            await pool.close()
            raise
        return cls(url=url, pool=pool, writer=writer)

    @property
    def url(self) -> str:
        return self._url

    async def close(self) -> None:
        async with self.write_lock:
            if self._writer is not None:
                await self._writer.close()
                self._writer = None
            await self._pool.close()

    async def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        try:
            async with self._pool.acquire() as connection:
                return as_rows(await connection.fetch(translate(sql), *parameters))
        except CONNECTION_ERRORS:
            raise StoreUnavailable() from None
        except (asyncpg.QueryCanceledError, TimeoutError):
            raise StoreBusy() from None

    async def fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetch_all(sql, parameters)
        return rows[0] if rows else None

    async def transact(self, change: Change[T], *, after_commit: Callable[[T], None]) -> T:
        return await asyncio.shield(self._transact(change, after_commit))

    async def _transact(self, change: Change[T], after_commit: Callable[[T], None]) -> T:
        try:
            async with asyncio.timeout(self._write_wait_seconds):
                await self.write_lock.acquire()
        except TimeoutError:
            raise StoreBusy() from None
        try:
            counter, result = await self._commit(change)
            after_commit(result)
        finally:
            self.write_lock.release()
        if self.acknowledge is not None:
            await self.acknowledge(counter)
        return result

    async def _commit(self, change: Change[T]) -> tuple[int, T]:
        try:
            writer = self._writer
            if writer is None or writer.is_closed():
                writer = self._writer = await _connect(self._url)
            async with writer.transaction():
                # First: the counter row's lock orders this change after every change
                # committed before it, on every instance.
                # The other instances are told at the commit (NOTIFY waits for it).
                counter = await writer.fetchval(
                    "UPDATE change_counter SET value = value + 1 WHERE id = 1"
                    f" RETURNING value, pg_notify('{CHANGES_CHANNEL}', value::text)"
                )
                result = await change(PostgresConnection(writer))
        except CONNECTION_ERRORS:
            raise StoreUnavailable() from None
        except (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError, TimeoutError):
            raise StoreBusy() from None
        return int(counter), result

    @contextlib.asynccontextmanager
    async def exclusive(self, lock: int) -> AsyncIterator[bool]:
        """Whether this instance took the advisory `lock` (held until the block ends); False
        at once when another instance holds it."""
        async with self._pool.acquire() as connection:
            held = await connection.fetchval("SELECT pg_try_advisory_lock($1)", lock)
            try:
                yield bool(held)
            finally:
                if held:
                    await _unlock(connection, lock)

    def acquire(self) -> Any:
        """A connection of the pool, for the currency loop and the operator commands."""
        return self._pool.acquire()


async def _unlock(connection: Any, lock: int) -> None:
    """Release the advisory `lock` the session of `connection` holds. The pool does not
    release it (`_keep_session`): if the unlock fails, the session ends, and the lock with
    it, rather than going back to the pool still held."""
    try:
        await connection.execute("SELECT pg_advisory_unlock($1)", lock)
    except CONNECTION_ERRORS:
        pass  # a lost connection released it with its session
    except BaseException:
        connection.terminate()
        raise


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset of a connection it takes back, in place of asyncpg's, which sends
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release: a round
    trip that each read waited for. The pool's connections leave nothing of that behind:
    their statements set nothing (SERVER_SETTINGS are the session's own), listen to no
    channel and keep no cursor open, and `exclusive` unlocks its lock itself; a transaction
    left open is still rolled back by the pool before this is called."""


# Sent when each connection starts, so that they hold for its whole life: a pool's `RESET
# ALL` on every release would undo a `SET`.
SERVER_SETTINGS = {
    "lock_timeout": f"{LOCK_TIMEOUT_MS}ms",
    "statement_timeout": f"{STATEMENT_TIMEOUT_MS}ms",
    "TimeZone": "UTC",
}


async def _connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(
            url,
            timeout=CONNECT_SECONDS,
            command_timeout=COMMAND_SECONDS,
            server_settings=SERVER_SETTINGS,
        )
    except CONNECTION_ERRORS:
        raise StoreUnavailable() from None


async def _connect_waiting(url: str, host: str, port: int, wait: float) -> asyncpg.Connection:
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await asyncpg.connect(url, timeout=max(0.5, min(5.0, wait)))
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
            raise StartupRefused(
                URL_VARIABLE, f"PostgreSQL at {host}:{port} refused the credentials"
            ) from None
        except asyncpg.InvalidCatalogNameError:
            raise StartupRefused(
                URL_VARIABLE, f"PostgreSQL at {host}:{port} has no such database"
            ) from None
        except _CONNECT_ERRORS as error:
            if asyncio.get_running_loop().time() >= deadline:
                raise StartupRefused(
                    URL_VARIABLE,
                    f"cannot reach PostgreSQL at {host}:{port} after {wait:g} s"
                    f" ({type(error).__name__})",
                ) from None
            await asyncio.sleep(0.25)


async def _migrate(connection: asyncpg.Connection) -> None:
    """Bring the schema to this release's version, once: whoever takes the lock first
    migrates, the others find it done. A schema newer than this release is refused."""
    await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        if await connection.fetchval("SELECT to_regclass('schema_version')") is None:
            async with connection.transaction():
                for statement in PREAMBLE:
                    await connection.execute(statement)
        version = await connection.fetchval("SELECT version FROM schema_version")
        if version > LATEST_VERSION:
            raise StartupRefused(
                URL_VARIABLE,
                f"the database has schema version {version}, newer than this Token Desk"
                f" knows ({LATEST_VERSION}); upgrade Token Desk",
            )
        for number in range(version, LATEST_VERSION):
            async with connection.transaction():
                for statement in MIGRATIONS[number]:
                    await connection.execute(statement)
                await connection.execute("UPDATE schema_version SET version = $1", number + 1)
        async with connection.transaction():
            await install_change_log(connection)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


# Which changes other instances must apply to their memory: a token's row (the columns the
# credential index reads, not its activity), its retired secrets, the account settings.
_INDEXED_COLUMNS = (
    "sid, name, enabled, api_version, access_rights, expires_at,"
    " secret_hash, previous_secret_hash, previous_until"
)
_CHANGE_LOG = (
    """CREATE OR REPLACE FUNCTION tokendesk_log_token() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO change_log (counter, token_id, account)
        SELECT value, CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END, 0
        FROM change_counter WHERE id = 1;
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION tokendesk_log_retired() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO change_log (counter, token_id, account)
        SELECT value, CASE WHEN TG_OP = 'DELETE' THEN OLD.token_id ELSE NEW.token_id END, 0
        FROM change_counter WHERE id = 1;
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION tokendesk_log_account() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO change_log (counter, token_id, account)
        SELECT value, NULL, 1 FROM change_counter WHERE id = 1;
        RETURN NULL;
    END $$""",
    "DROP TRIGGER IF EXISTS tokens_change_log ON tokens",
    "DROP TRIGGER IF EXISTS tokens_indexed_change_log ON tokens",
    "DROP TRIGGER IF EXISTS retired_secrets_change_log ON retired_secrets",
    "DROP TRIGGER IF EXISTS settings_change_log ON settings",
    "CREATE TRIGGER tokens_change_log AFTER INSERT OR DELETE ON tokens"
    " FOR EACH ROW EXECUTE FUNCTION tokendesk_log_token()",
    f"CREATE TRIGGER tokens_indexed_change_log AFTER UPDATE OF {_INDEXED_COLUMNS} ON tokens"
    " FOR EACH ROW EXECUTE FUNCTION tokendesk_log_token()",
    "CREATE TRIGGER retired_secrets_change_log AFTER INSERT OR DELETE ON retired_secrets"
    " FOR EACH ROW EXECUTE FUNCTION tokendesk_log_retired()",
    "CREATE TRIGGER settings_change_log AFTER INSERT OR UPDATE OR DELETE ON settings"
    " FOR EACH ROW EXECUTE FUNCTION tokendesk_log_account()",
)


async def install_change_log(connection: asyncpg.Connection) -> None:
    """(Re)create the triggers that record in `change_log`, under the change counter's
    value, which tokens a change touched (`token_id`) or that it changed the account
    (`account = 1`), for the other instances to apply."""
    for statement in _CHANGE_LOG:
        await connection.execute(statement)
