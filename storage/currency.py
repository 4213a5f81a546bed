"""Several instances on one PostgreSQL database, exact together: the currency lease.

A change acknowledged on one instance is in effect for the very next auth check on every
instance, or that instance answers 503. The rule that guarantees it:

- Every change transaction advances the single-row change counter (storage/postgres.py),
  so its value orders the changes, and triggers record which tokens each touched.
- An instance answers from memory only while its lease holds (`holds`). A lease starts at
  the instance's monotonic time read *before* it asks the database for the counter, lasts
  `LEASE_SECONDS`, and is granted only once every change up to that counter is applied to
  memory and confirmed. Every auth check compares a fresh clock reading with the lease's
  end; no timer sets a flag.
- After applying, the instance confirms the counter in its `instances` row, stamped with
  the database server's clock, and takes the lease only if no change committed since it
  read the counter, or if its previous confirmation was still recent (`_confirm` says
  why each case is safe).
- After committing a change, the acting instance waits (`acknowledge`) until every other
  registered instance has confirmed that counter, or until that instance's last
  confirmation is older, on the database's clock, than the lease plus `MARGIN_SECONDS`.

Why it is safe: an instance that confirmed at database time T read the counter before T,
so the lease that confirmation renewed ends before T + LEASE_SECONDS on any clock that runs
at the rate of the database's (the assumption: clocks may be far apart, but none runs
`MARGIN_SECONDS` per second faster than another; monotonic clocks keep running while a
process is stopped). Once the acting instance sees a confirmation older than LEASE +
MARGIN, that instance's lease has lapsed; its next lease needs a read of the counter and a
confirmation: if the read came after the commit it sees the change, and if it came before,
the counter has moved by the time of the confirmation and the previous confirmation is
old, so no lease is taken on it. A frozen,
partitioned or killed instance therefore never approves a revoked secret: it answers 503
until it has caught up. A lost listener connection may have dropped notifications, so the
instance resynchronises (reads everything again) before it confirms again.

The wait is bounded by LEASE + MARGIN (1.5 s), so a change is acknowledged well within
Slack's 3 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from storage.account import API_ACCESS_SETTING, AccountSettings
from storage.credential_index import CREDENTIAL_COLUMNS, RETIRED_COLUMNS, CredentialIndex
from storage.postgres import (
    CHANGES_CHANNEL,
    CONNECT_SECONDS,
    CONNECTION_ERRORS,
    PostgresDatabase,
)
from storage.sql import as_rows

LEASE_SECONDS = 1.0
MARGIN_SECONDS = 0.5
# How often an instance renews its lease when nothing changes: several times a lease.
RENEW_SECONDS = 0.2
# Older change records are deleted; an instance away longer than this reads everything.
CHANGE_LOG_KEPT_SECONDS = 600
FULL_READ_AFTER_SECONDS = 60.0
# An instance not seen for this long is removed from the register.
FORGOTTEN_AFTER_SECONDS = 3600
CONFIRMED_CHANNEL = "tokendesk_confirmed"
FLUSH_CHANNEL = "tokendesk_flush"
# How long `gather_uses` waits for the other instances to write their uses.
GATHER_SECONDS = 3.0

_DATABASE_ERRORS: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Catch:
    """What the instance must apply to catch up: the tokens changed since its last
    confirmation, whether the account settings changed, or everything (`full`)."""

    token_ids: frozenset[int]
    account: bool
    full: bool


# Reads, in the snapshot of the counter's read, what a `Catch` names, and applies it.
Apply = Callable[[asyncpg.Connection, Catch], Awaitable[None]]


class Currency:
    def __init__(
        self,
        database: PostgresDatabase,
        apply: Apply,
        flush_uses: Callable[[], Awaitable[object]],
        *,
        clock: Callable[[], float] = time.monotonic,
        lease_seconds: float = LEASE_SECONDS,
        margin_seconds: float = MARGIN_SECONDS,
    ) -> None:
        self._database = database
        self._apply = apply
        self._flush_uses = flush_uses
        self._flush_due = False
        self._writing: asyncio.Task[None] | None = None
        self._flushed = asyncio.Event()
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._margin_seconds = margin_seconds
        self.instance_id = uuid.uuid4().hex
        self._lease_until = 0.0
        self._applied = 0
        self._applied_at = 0.0
        self._full_read_due = True
        self._wake = asyncio.Event()
        self._confirmed = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._tidy_after = 0.0

    def holds(self) -> bool:
        """Whether this instance may answer from memory now."""
        return self._clock() < self._lease_until

    @property
    def applied(self) -> int:
        return self._applied

    async def start(self) -> None:
        """Register, catch up and take the first lease, then keep renewing it."""
        async with self._database.acquire() as connection:
            await connection.execute(
                "INSERT INTO instances (id, confirmed_counter) VALUES ($1, 0)", self.instance_id
            )
        await self._listen()
        await self.renew()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        for task in (self._task, self._writing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._lease_until = 0.0
        await self._unlisten()
        with contextlib.suppress(*CONNECTION_ERRORS):
            async with self._database.acquire() as connection:
                await connection.execute("DELETE FROM instances WHERE id = $1", self.instance_id)

    async def renew(self) -> None:
        """One round: read the counter, apply what changed up to it, confirm, and take the
        lease that began before the read if the confirmation allows it (`_confirm`)."""
        async with self._database.write_lock, self._database.acquire() as connection:
            started = self._clock()
            full = self._full_read_due or started - self._applied_at > FULL_READ_AFTER_SECONDS
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                counter = await connection.fetchval("SELECT value FROM change_counter WHERE id = 1")
                if full or counter != self._applied:
                    rows = await connection.fetch(
                        "SELECT token_id, account FROM change_log"
                        " WHERE counter > $1 AND counter <= $2",
                        self._applied,
                        counter,
                    )
                    await self._apply(
                        connection,
                        Catch(
                            token_ids=frozenset(row[0] for row in rows if row[0] is not None),
                            account=full or any(row[1] for row in rows),
                            full=full,
                        ),
                    )
            self._applied = counter
            self._applied_at = started
            self._full_read_due = False
        if await self._confirm(counter):
            self._lease_until = started + self._lease_seconds

    async def _confirm(self, counter: int) -> bool:
        """Confirm `counter`; whether a lease that began before it was read may be taken.

        A change committed after that read may have been acknowledged without waiting for
        this instance, if its acting instance looked before this confirmation committed and
        found this instance's last one older than the lease and margin. So the lease is
        taken only if no change committed since the read (the counter is still
        `counter` after this confirmation committed: any later change's acting instance
        sees it, and waits), or if the previous confirmation was recent when this one
        was made (any acting instance that looked before saw that one, and waits for a
        confirmation of its change or for this one to age). An instance no longer
        registered (gone for an hour) registers again and takes no lease this round."""
        async with self._database.acquire() as connection:
            recent = await connection.fetchval(
                "WITH previous AS (SELECT confirmed_at FROM instances WHERE id = $1 FOR UPDATE)"
                " UPDATE instances SET confirmed_counter = $2, confirmed_at = clock_timestamp()"
                " FROM previous WHERE instances.id = $1"
                " RETURNING previous.confirmed_at > clock_timestamp() - make_interval(secs => $3)",
                self.instance_id,
                counter,
                self._lease_seconds + self._margin_seconds,
            )
            if recent is None:
                await connection.execute(
                    "INSERT INTO instances (id, confirmed_counter) VALUES ($1, 0)"
                    " ON CONFLICT (id) DO NOTHING",
                    self.instance_id,
                )
                self._full_read_due = True
                return False
            await connection.execute("SELECT pg_notify($1, $2)", CONFIRMED_CHANNEL, str(counter))
            if recent:
                return True
            now = await connection.fetchval("SELECT value FROM change_counter WHERE id = 1")
            return bool(now == counter)

    async def acknowledge(self, counter: int) -> None:
        """Return once every other registered instance has confirmed `counter` or can no
        longer answer (see the module docstring).

        Waiting LEASE + MARGIN after the commit is always enough (any lease begun before
        the commit has ended by then, any later one read the counter after it), so that
        is what it does when the database cannot be asked."""
        deadline = self._clock() + self._lease_seconds + self._margin_seconds
        # This instance's own change is in memory already; earlier changes of other
        # instances may not be, which its next round reads.
        self._wake.set()
        try:
            while self._clock() < deadline:
                self._confirmed.clear()
                # A connection only for the question: many changes may be waiting at once.
                async with self._database.acquire() as connection:
                    waiting = await connection.fetchval(
                        "SELECT count(*) FROM instances"
                        " WHERE id <> $1 AND confirmed_counter < $2"
                        " AND confirmed_at > clock_timestamp() - make_interval(secs => $3)",
                        self.instance_id,
                        counter,
                        self._lease_seconds + self._margin_seconds,
                    )
                if not waiting:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self._confirmed.wait()
        except Exception:
            # Whatever went wrong, waiting until the deadline is enough.
            await asyncio.sleep(max(0.0, deadline - self._clock()))

    async def gather_uses(self) -> bool:
        """Have every instance that may answer write the uses it gathered but has not
        written yet (the auth check's, for a minute at most); whether all of them did
        within GATHER_SECONDS. A use on any instance ends a token's idle period, so an
        automatic disable is decided only on what they all wrote."""
        async with self._database.acquire() as connection:
            asked_at = await connection.fetchval("SELECT clock_timestamp()")
            await connection.execute("SELECT pg_notify($1, '')", FLUSH_CHANNEL)
        await self._write_uses()
        deadline = self._clock() + GATHER_SECONDS
        while self._clock() < deadline:
            self._flushed.clear()
            async with self._database.acquire() as connection:
                missing = await connection.fetchval(
                    "SELECT count(*) FROM instances WHERE id <> $1 AND flushed_at < $2"
                    " AND confirmed_at > clock_timestamp() - make_interval(secs => $3)",
                    self.instance_id,
                    asked_at,
                    self._lease_seconds + self._margin_seconds,
                )
            if not missing:
                return True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._flushed.wait()
        return False

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing = None
        if not task.cancelled() and task.exception() is not None:
            logger.warning("cannot write the uses asked for: %s", type(task.exception()).__name__)

    async def _write_uses(self) -> None:
        await self._flush_uses()
        async with self._database.acquire() as connection:
            await connection.execute(
                "UPDATE instances SET flushed_at = clock_timestamp() WHERE id = $1",
                self.instance_id,
            )
            await connection.execute("SELECT pg_notify($1, '')", CONFIRMED_CHANNEL)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RENEW_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self._listener is None or self._listener.is_closed():
                    await self._listen()
                await self.renew()
                if self._flush_due and self._writing is None:
                    # Apart from this loop: a write waits for the other instances'
                    # confirmations, and this loop must go on renewing meanwhile.
                    self._flush_due = False
                    self._writing = asyncio.create_task(self._write_uses())
                    self._writing.add_done_callback(self._written)
                await self._tidy()
            except Exception as error:
                # Whatever went wrong, the lease lapses by itself; the loop must never end.
                logger.warning("cannot renew the currency lease: %s", type(error).__name__)
                self._full_read_due = True
                await self._unlisten()
                await asyncio.sleep(RENEW_SECONDS)

    async def _listen(self) -> None:
        listener = await asyncpg.connect(self._database.url, timeout=CONNECT_SECONDS)
        try:
            await listener.add_listener(CHANGES_CHANNEL, self._on_change)
            await listener.add_listener(CONFIRMED_CHANNEL, self._on_confirmed)
            await listener.add_listener(FLUSH_CHANNEL, self._on_flush)
        except BaseException:
            listener.terminate()
            raise
        listener.add_termination_listener(self._on_lost)
        self._listener = listener
        # Notifications sent before this connection listened were lost to it.
        self._full_read_due = True

    async def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            try:
                await listener.close(timeout=CONNECT_SECONDS)
            except _DATABASE_ERRORS:
                listener.terminate()

    def _on_change(self, *_: object) -> None:
        self._wake.set()

    def _on_confirmed(self, *_: object) -> None:
        self._confirmed.set()
        self._flushed.set()

    def _on_flush(self, *_: object) -> None:
        self._flush_due = True
        self._wake.set()

    def _on_lost(self, *_: object) -> None:
        self._full_read_due = True
        self._wake.set()

    async def _tidy(self) -> None:
        """Once a minute: forget old change records and instances long gone."""
        now = self._clock()
        if now < self._tidy_after:
            return
        self._tidy_after = now + 60.0
        async with self._database.acquire() as connection:
            await connection.execute(
                "DELETE FROM change_log WHERE at < now() - make_interval(secs => $1)",
                float(CHANGE_LOG_KEPT_SECONDS),
            )
            await connection.execute(
                "DELETE FROM instances WHERE confirmed_at < now() - make_interval(secs => $1)",
                float(FORGOTTEN_AFTER_SECONDS),
            )


def follower(credentials: CredentialIndex, account: AccountSettings) -> Apply:
    """How this instance applies what other instances committed: to its credential index
    and its account settings."""

    async def apply(connection: asyncpg.Connection, catch: Catch) -> None:
        if catch.full:
            credentials.replace_all(
                as_rows(await connection.fetch(f"SELECT {CREDENTIAL_COLUMNS} FROM tokens")),
                as_rows(await connection.fetch(f"SELECT {RETIRED_COLUMNS} FROM retired_secrets")),
            )
        elif catch.token_ids:
            ids = list(catch.token_ids)
            credentials.follow(
                catch.token_ids,
                as_rows(
                    await connection.fetch(
                        f"SELECT {CREDENTIAL_COLUMNS} FROM tokens WHERE id = ANY($1)", ids
                    )
                ),
                as_rows(
                    await connection.fetch(
                        f"SELECT {RETIRED_COLUMNS} FROM retired_secrets WHERE token_id = ANY($1)",
                        ids,
                    )
                ),
            )
        if catch.account:
            account.take(
                await connection.fetchval(
                    "SELECT value FROM settings WHERE key = $1", API_ACCESS_SETTING
                )
            )

    return apply
