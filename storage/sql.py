"""What the store's modules ask of a database connection, on SQLite and on PostgreSQL.

The modules write their SQL once, for SQLite, with `?` or `?N` placeholders; the
PostgreSQL backend (storage/postgres.py) numbers the placeholders `$N`. A statement that
needs another spelling on PostgreSQL (a JSON function, the scalar `max`) is written with
`both`, which returns the SQLite text and records the PostgreSQL one beside it, so that a
call site reads the same on both backends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any, Protocol, TypeVar

Row = tuple[Any, ...]
T = TypeVar("T")

_POSTGRES: dict[str, str] = {}


def both(*, sqlite: str, postgres: str) -> str:
    """The statement `sqlite`, to be run as `postgres` on PostgreSQL."""
    _POSTGRES[sqlite] = postgres
    return sqlite


def postgres_text(sql: str) -> str | None:
    """The PostgreSQL spelling recorded for `sql` by `both`, if any."""
    return _POSTGRES.get(sql)


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    async def fetchone(self) -> Any: ...

    async def fetchall(self) -> Iterable[Any]: ...


class Executed(Protocol):
    """A statement sent: awaited for its cursor, or used as `async with … as cursor`."""

    def __await__(self) -> Generator[Any, None, Cursor]: ...

    async def __aenter__(self) -> Cursor: ...

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...


class Connection(Protocol):
    """A connection inside one of the store's transactions (aiosqlite's shape)."""

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Executed: ...

    def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Executed: ...

    def execute_fetchall(
        self, sql: str, parameters: Iterable[Any] | None = None
    ) -> Awaitable[Iterable[Any]]: ...


def as_rows(rows: Iterable[Iterable[Any]]) -> list[Row]:
    return [tuple(row) for row in rows]


Change = Callable[[Connection], Awaitable[T]]


class Database(Protocol):
    """The store's database: reads of committed data, and changes one transaction at a
    time (storage/database.py for SQLite, storage/postgres.py for PostgreSQL)."""

    async def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]: ...

    async def fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> Row | None: ...

    async def transact(self, change: Change[T], *, after_commit: Callable[[T], None]) -> T:
        """Run `change` in one write transaction, then `after_commit` with its result,
        before returning: the in-memory state is exact by the time anyone hears of the
        change."""
        ...

    async def close(self) -> None: ...
