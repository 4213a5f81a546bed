"""What the scheduler finds due — expiry reminders, idle tokens — and marks as done.

Each kind of work is found by one indexed query (never a scan of every token) and marked
in one transaction before the scheduler tells anyone: a reminder or a warning is marked
at most once, so it is sent at most once, even when two passes race or the process dies
between the mark and the post (then it is lost, never doubled).

Reminders: on each reminder day before a token's stop instant (its moment is the stop
instant less that many days, always a 00:00 UTC) and on the stop instant itself (day 0).
A day whose date was already past or was today when the expiry was chosen is never
reminded of; day 0 always is. A mark is per token, day and stop instant, so a new expiry
date re-arms every day; and it covers the less urgent days too, so that after downtime
only the most urgent reminder of a token is sent.

Idle tokens: enabled, unused since their `last_active_at` (the latest of creation, last
enable, last Reset and last use). Their contact is warned some days before Token Desk
disables them; a warning is for one idle period (one `last_active_at`), so a use ends it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from storage.credential_index import CredentialIndex
from storage.models import DueReminder, IdleToken, ReminderToken, RetiredPresentation, Token
from storage.retirement import (
    RETIRED_KEPT_DAYS,
    WORK_QUERY,
    mark_first_presentations,
    purge_retired,
    retire_lapsed,
)
from storage.sql import Connection, Database, both
from storage.token_reads import COLUMNS, DAY, POSTGRES_COLUMNS, token_of

_FROM = " FROM tokens t LEFT JOIN token_usage u ON u.token_id = t.id"
# Only what a reminder shows (ReminderToken), then the day: a pass may read a thousand rows,
# and a whole Token each (every column, the access rights' JSON, half a dozen datetimes)
# holds the event loop several times as long.
_REMINDER_COLUMNS = (
    "t.id, t.sid, t.name, t.primary_contact, t.row_version, t.expires_at, u.last_used_at"
)


def reminders_query(days: Sequence[int]) -> str:
    """The due reminders' query for the reminder days `days` (0 included, ascending), with
    the parameters (horizon, now): the horizon is now plus the longest reminder day."""
    # One text per setting of the reminder days, which a process keeps: `both` records few.
    return both(
        sqlite=_reminders_query(days, horizon="?1", now="?2", day_seconds=f"{DAY}"),
        # The days are 32-bit literals there: `due` days in seconds is a bigint (it overflows
        # from 24,856 days).
        postgres=_reminders_query(days, horizon="$1", now="$2", day_seconds=f"{DAY}::bigint"),
    )


def _reminders_query(days: Sequence[int], *, horizon: str, now: str, day_seconds: str) -> str:
    # `due`: the smallest reminder day whose moment (the stop instant less that many days)
    # has come. The larger days' moments came earlier: if this one is not armed, none of
    # them is, and if a mark covers it, it covers them too.
    due = (
        "CASE"
        + "".join(f" WHEN t.expires_at - {day * DAY} <= {now} THEN {day}" for day in days)
        + " END"
    )
    return (
        f"SELECT {_REMINDER_COLUMNS}, {due}{_FROM}"
        f" WHERE t.enabled = 1 AND t.expires_at IS NOT NULL AND t.expires_at <= {horizon}"
        f" AND ({due} = 0"
        f" OR t.expires_at - {due} * {day_seconds} > t.expiry_set_at - t.expiry_set_at % {DAY})"
        " AND NOT EXISTS (SELECT 1 FROM reminder_marks m WHERE m.token_id = t.id"
        f" AND m.expires_at = t.expires_at AND m.days <= {due})"
        " ORDER BY t.expires_at, t.id"
    )


# The idle tokens' query, with the parameters: idle since (to warn), idle since (to
# disable), warned by (to disable).
IDLE_QUERY = both(
    sqlite=f"SELECT {COLUMNS}, w.idle_since = t.last_active_at AS warned{_FROM}"
    " LEFT JOIN idle_warnings w ON w.token_id = t.id"
    " WHERE t.enabled = 1 AND t.last_active_at <= ?1"
    " AND (w.idle_since IS NOT t.last_active_at"
    " OR (t.last_active_at <= ?2 AND w.warned_at <= ?3))"
    " ORDER BY t.last_active_at, t.id",
    postgres=f"SELECT {POSTGRES_COLUMNS}, (w.idle_since = t.last_active_at)::int AS warned{_FROM}"
    " LEFT JOIN idle_warnings w ON w.token_id = t.id"
    " WHERE t.enabled = 1 AND t.last_active_at <= $1"
    " AND (w.idle_since IS DISTINCT FROM t.last_active_at"
    " OR (t.last_active_at <= $2 AND w.warned_at <= $3))"
    " ORDER BY t.last_active_at, t.id",
)


# Marks the reminders of a batch of [stop instant, day, [token id, …]] groups (?1) at ?2;
# the tokens marked.
_MARK_REMINDERS = both(
    sqlite="INSERT INTO reminder_marks (token_id, expires_at, days, marked_at)"
    " SELECT t.id, t.expires_at, g.value ->> 1, ?2"
    # CROSS JOIN: in this order, each id looked up by its key (not every token
    # of the stop instant compared with every id of the group).
    " FROM json_each(?1) g CROSS JOIN json_each(g.value, '$[2]') r"
    " CROSS JOIN tokens t ON t.id = r.value"
    " WHERE t.enabled = 1 AND t.expires_at = g.value ->> 0"
    " AND NOT EXISTS (SELECT 1 FROM reminder_marks m WHERE m.token_id = t.id"
    " AND m.expires_at = t.expires_at AND m.days <= g.value ->> 1)"
    " ON CONFLICT DO NOTHING RETURNING token_id",
    postgres="INSERT INTO reminder_marks (token_id, expires_at, days, marked_at)"
    " SELECT t.id, t.expires_at, (g.value ->> 1)::bigint, $2"
    " FROM jsonb_array_elements($1::jsonb) g"
    " CROSS JOIN jsonb_array_elements_text(g.value -> 2) r"
    " JOIN tokens t ON t.id = r.value::bigint"
    " WHERE t.enabled = 1 AND t.expires_at = (g.value ->> 0)::bigint"
    " AND NOT EXISTS (SELECT 1 FROM reminder_marks m WHERE m.token_id = t.id"
    " AND m.expires_at = t.expires_at AND m.days <= (g.value ->> 1)::bigint)"
    " ON CONFLICT DO NOTHING RETURNING token_id",
)
# Marks the warnings of a batch of [token id, idle since] pairs (?1) at ?2; the tokens marked.
_MARK_IDLE_WARNINGS = both(
    sqlite="INSERT INTO idle_warnings (token_id, idle_since, warned_at)"
    " SELECT t.id, t.last_active_at, ?2"
    " FROM json_each(?1) r JOIN tokens t ON t.id = json_extract(r.value, '$[0]')"
    " WHERE t.enabled = 1 AND t.last_active_at = json_extract(r.value, '$[1]')"
    " ON CONFLICT (token_id) DO UPDATE"
    " SET idle_since = excluded.idle_since, warned_at = excluded.warned_at"
    " WHERE idle_since <> excluded.idle_since"
    " RETURNING token_id",
    # The update's condition names its table: PostgreSQL has `excluded` in scope too.
    postgres="INSERT INTO idle_warnings (token_id, idle_since, warned_at)"
    " SELECT t.id, t.last_active_at, $2"
    " FROM jsonb_array_elements($1::jsonb) r JOIN tokens t ON t.id = (r.value ->> 0)::bigint"
    " WHERE t.enabled = 1 AND t.last_active_at = (r.value ->> 1)::bigint"
    " ON CONFLICT (token_id) DO UPDATE"
    " SET idle_since = excluded.idle_since, warned_at = excluded.warned_at"
    " WHERE idle_warnings.idle_since <> excluded.idle_since"
    " RETURNING token_id",
)


@dataclass(frozen=True, slots=True)
class RetiredWork:
    """Which of the upkeep of retired secrets has something to do."""

    lapsed_windows: bool
    purgeable: bool
    first_presentations: bool


class ExpiryWork:
    def __init__(
        self, database: Database, *, credentials: CredentialIndex, clock: Callable[[], float]
    ) -> None:
        self._database = database
        self._credentials = credentials
        self._clock = clock

    # Reminders --------------------------------------------------------------------------

    async def due_reminders(self, *, reminder_days: Sequence[int]) -> list[DueReminder]:
        """For each enabled token with an expiry, its most urgent reminder that is due,
        armed and not marked (see above), soonest stop instant first. Reads only the
        tokens stopping within the longest reminder day from now."""
        if any(days < 1 for days in reminder_days):
            raise ValueError("reminder days are positive numbers of days")
        days = sorted({0, *(int(days) for days in reminder_days)})
        now = int(self._clock())
        rows = await self._database.fetch_all(reminders_query(days), (now + days[-1] * DAY, now))
        pending_use = self._credentials.pending_use
        # The due tokens share a few dozen stop instants: each is made a datetime once.
        stop_instants: dict[int, datetime] = {}
        # The tuples made by tuple's own constructor, fields in order: a NamedTuple's is a
        # Python function, and a pass makes a thousand of each.
        new = tuple.__new__
        found = []
        for token_id, sid, name, contact, row_version, expires_at, used_at, day in rows:
            stops_at = stop_instants.get(expires_at)
            if stops_at is None:
                stops_at = stop_instants[expires_at] = datetime.fromtimestamp(expires_at, UTC)
            pending = pending_use(token_id)
            if pending is not None and (used_at is None or pending > used_at):
                used_at = pending
            last_used_at = None if used_at is None else datetime.fromtimestamp(used_at, UTC)
            token = new(
                ReminderToken, (token_id, sid, name, contact, row_version, stops_at, last_used_at)
            )
            found.append(new(DueReminder, (token, day)))
        return found

    async def mark_reminders(self, *, reminders: Sequence[DueReminder]) -> list[DueReminder]:
        """Mark `reminders` in one transaction, committed before this returns; the ones
        marked now, to be sent. A reminder is dropped when its token was deleted, disabled
        or given another expiry since, or when it or a more urgent one of the same token
        and stop instant was marked first (by another pass)."""
        most_urgent: dict[int, DueReminder] = {}
        for reminder in reminders:
            known = most_urgent.get(reminder.token.id)
            if known is None or reminder.days < known.days:
                most_urgent[reminder.token.id] = reminder
        if not most_urgent:
            return []
        # The reminders by stop instant and day, a few dozen groups for a thousand: the
        # batch is then mostly lists of ids, which JSON writes several times as fast.
        groups: dict[tuple[datetime, int], list[int]] = {}
        for reminder in most_urgent.values():
            token = reminder.token
            ids = groups.get((token.stops_at, reminder.days))
            if ids is None:
                groups[token.stops_at, reminder.days] = [token.id]
            else:
                ids.append(token.id)
        batch = json.dumps(
            [[int(stops_at.timestamp()), days, ids] for (stops_at, days), ids in groups.items()]
        )
        now = int(self._clock())

        async def write(connection: Connection) -> set[int]:
            # One round trip to the database's thread (not execute, fetch, close): each
            # costs the event loop a tenth of a millisecond.
            rows = await connection.execute_fetchall(_MARK_REMINDERS, (batch, now))
            return {row[0] for row in rows}

        marked = await self._database.transact(write, after_commit=_nothing)
        return [reminder for reminder in most_urgent.values() if reminder.token.id in marked]

    # Idle tokens ------------------------------------------------------------------------

    async def idle_tokens(
        self, *, unused_days: int, warn_days_before: int = 7
    ) -> tuple[list[IdleToken], list[IdleToken]]:
        """(To warn, to disable), longest idle first. To warn: idle for at least
        `unused_days` less `warn_days_before` days and not warned about this idle period.
        To disable: idle for at least `unused_days` and warned about this idle period at
        least `warn_days_before` days ago. A use the auth check gathered but has not
        written yet ends an idle period as a written one does."""
        if unused_days < 1 or not 0 <= warn_days_before < unused_days:
            raise ValueError("warn a positive number of days, fewer than unused_days, before")
        now = int(self._clock())
        rows = await self._database.fetch_all(
            IDLE_QUERY,
            (
                now - (unused_days - warn_days_before) * DAY,
                now - unused_days * DAY,
                now - warn_days_before * DAY,
            ),
        )
        to_warn: list[IdleToken] = []
        to_disable: list[IdleToken] = []
        for row in rows:
            token = token_of(row)
            if not self._active_since(token):
                idle = IdleToken(token=token, idle_since=token.last_active_at)
                (to_disable if row[-1] else to_warn).append(idle)
        return to_warn, to_disable

    async def mark_idle_warnings(self, *, tokens: Sequence[IdleToken]) -> list[IdleToken]:
        """Mark the warning of each token's idle period in one transaction, committed
        before this returns; the ones marked now, to be sent. A token is dropped when it
        was deleted, disabled or active since, or its warning was marked first."""
        unused = [idle for idle in tokens if not self._active_since(idle.token)]
        if not unused:
            return []
        batch = json.dumps([[idle.token.id, int(idle.idle_since.timestamp())] for idle in unused])
        now = int(self._clock())

        async def write(connection: Connection) -> set[int]:
            async with connection.execute(_MARK_IDLE_WARNINGS, (batch, now)) as cursor:
                return {row[0] for row in await cursor.fetchall()}

        marked = await self._database.transact(write, after_commit=_nothing)
        return [idle for idle in unused if idle.token.id in marked]

    # Grace windows and retired secrets (storage/retirement.py) --------------------------

    async def retired_work(self, *, older_than_days: int = RETIRED_KEPT_DAYS) -> RetiredWork:
        """What `retire_lapsed_windows`, `purge_retired` and `first_presentations` would find
        now, read in one indexed query: the scheduler runs only those with work."""
        now = int(self._clock())
        row = await self._database.fetch_one(WORK_QUERY, (now, now - older_than_days * DAY))
        assert row is not None
        return RetiredWork(*(bool(found) for found in row))

    async def retire_lapsed_windows(self) -> int:
        """Retire the previous secrets whose window has ended by time (the auth check
        already refuses them), each audited; how many."""
        now = int(self._clock())

        async def write(connection: Connection) -> list[int]:
            return await retire_lapsed(connection, now=now)

        def apply(token_ids: list[int]) -> None:
            for token_id in token_ids:
                self._credentials.retire_previous(token_id)

        retired = await self._database.transact(write, after_commit=apply)
        return len(retired)

    async def purge_retired(self, *, older_than_days: int = RETIRED_KEPT_DAYS) -> int:
        """Delete the digests retired more than `older_than_days` days ago: from then on
        they fail as unknown secrets, uncounted; how many."""
        if older_than_days < 1:
            raise ValueError("retired digests are kept for a positive number of days")
        now = int(self._clock())

        async def write(connection: Connection) -> set[bytes]:
            return await purge_retired(connection, now=now, older_than_days=older_than_days)

        purged = await self._database.transact(write, after_commit=self._credentials.drop_retired)
        return len(purged)

    async def first_presentations(self) -> list[RetiredPresentation]:
        """The retired secrets presented since their retirement whose token's contact has
        not been told yet, marked as told in one transaction committed before this
        returns: each retired secret is reported once (the counts are those written by
        the last flush of `store.credentials`)."""
        now = int(self._clock())

        async def write(connection: Connection) -> list[RetiredPresentation]:
            return await mark_first_presentations(connection, now=now)

        marked = await self._database.transact(write, after_commit=_nothing)
        with_last_used = self._credentials.with_last_used
        return [replace(first, token=with_last_used(first.token)) for first in marked]

    def _active_since(self, token: Token) -> bool:
        """Whether the token was used after its stored activity, by a use not written yet."""
        used_at = self._credentials.pending_use(token.id)
        return used_at is not None and used_at > token.last_active_at.timestamp()


def _nothing(_: object) -> None:
    """Marks change nothing the in-memory state holds."""
