"""Reading tokens: one by id, a filtered page of the list, the one a pasted secret belongs to,
and for App Home the counts of each state and the tokens that need attention.

Reads see committed data only (the database's read connection), with the last-used times
the auth check gathered but has not written yet shown over the stored ones. The token
lifecycle reads tokens inside its transactions with the functions here, too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from storage.credential_index import CredentialIndex
from storage.errors import StaleVersion, TokenNotFound
from storage.fields import copy_name, name_key
from storage.models import (
    EXPIRING_SOON_DAYS,
    PRESENTERS_KEPT,
    Attention,
    AttentionItem,
    CreatedOn,
    HomeSummary,
    LastUsedFilter,
    Presenter,
    RetiredSummary,
    StateFilter,
    Token,
    TokenFilter,
    TokenPage,
)
from storage.sql import Connection, Database, Row, both

DAY = 86_400
PAGE_MAX = 100
_BUCKET_DAYS = {CreatedOn.LAST_7_DAYS: 7, CreatedOn.LAST_30_DAYS: 30}
_TOKEN_COLUMNS = (
    "t.id, t.sid, t.name, t.description, t.enabled, t.api_version, t.access_rights,"
    " t.primary_contact, t.secret_hint, t.created_at, t.created_by, t.updated_at,"
    " t.updated_by, t.reset_at, u.last_used_at, t.row_version, t.expires_at,"
    " t.last_active_at, t.disabled_reason, t.previous_secret_hint, t.previous_until,"
    " u.previous_last_used_at,"
)
# The token's retired secrets that were presented, as JSON, summed up in Python.
_PRESENTED = " FROM retired_secrets r WHERE r.token_id = t.id AND r.presented > 0),"
COLUMNS = (
    f"{_TOKEN_COLUMNS} (SELECT json_group_array(json_array(r.presented, r.last_presented_at,"
    f" json(r.presenters))){_PRESENTED} t.leaked_at"
)
# `COLUMNS` as PostgreSQL spells them: its JSON is NULL, not `[]`, for none presented.
POSTGRES_COLUMNS = (
    f"{_TOKEN_COLUMNS} (SELECT json_agg(json_build_array(r.presented, r.last_presented_at,"
    f" r.presenters::json))::text{_PRESENTED} t.leaked_at"
)
FROM = " FROM tokens t LEFT JOIN token_usage u ON u.token_id = t.id"
_SELECT = f"SELECT {COLUMNS}{FROM}"
_POSTGRES_SELECT = f"SELECT {POSTGRES_COLUMNS}{FROM}"
_BY_ID = both(sqlite=f"{_SELECT} WHERE t.id = ?", postgres=f"{_POSTGRES_SELECT} WHERE t.id = $1")


def _time(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def expiry_date(stops_at: int | None) -> date | None:
    """The date a token works through, from its stop instant (the next 00:00 UTC)."""
    return None if stops_at is None else datetime.fromtimestamp(stops_at - DAY, UTC).date()


def presenters_of(stored: list[dict[str, Any]]) -> tuple[Presenter, ...]:
    """Presenters as `retired_secrets.presenters` keeps them (a JSON list)."""
    return tuple(
        Presenter(
            address=entry["address"],
            user_agent=entry["user_agent"],
            at=datetime.fromtimestamp(entry["at"], UTC),
        )
        for entry in stored
    )


def _retired_summary(stored: str | None) -> RetiredSummary | None:
    """The sum of a token's presented retired secrets, from the `COLUMNS` subquery."""
    if stored is None or stored == "[]":  # most tokens: no JSON to parse
        return None
    rows = json.loads(stored)
    presenters = sorted(
        (presenter for _, _, listed in rows for presenter in presenters_of(listed)),
        key=lambda presenter: presenter.at,
        reverse=True,
    )
    return RetiredSummary(
        presented=sum(presented for presented, _, _ in rows),
        last_presented_at=_time(max((at for _, at, _ in rows if at is not None), default=None)),
        presenters=tuple(presenters[:PRESENTERS_KEPT]),
    )


def token_of(row: Row) -> Token:
    """A token from a row of `COLUMNS` (`token_usage` joined as `u`)."""
    return Token(
        id=row[0],
        sid=row[1],
        name=row[2],
        description=row[3],
        enabled=bool(row[4]),
        api_version=row[5],
        access_rights=tuple(json.loads(row[6])),
        primary_contact=row[7],
        secret_hint=row[8],
        created_at=datetime.fromtimestamp(row[9], UTC),
        created_by=row[10],
        updated_at=datetime.fromtimestamp(row[11], UTC),
        updated_by=row[12],
        reset_at=_time(row[13]),
        last_used_at=_time(row[14]),
        row_version=row[15],
        expires_on=expiry_date(row[16]),
        last_active_at=datetime.fromtimestamp(row[17], UTC),
        disabled_reason=row[18],
        previous_secret_hint=row[19],
        previous_until=_time(row[20]),
        previous_last_used_at=_time(row[21]),
        retired=_retired_summary(row[22]),
        leaked_at=_time(row[23]),
    )


async def read_token(connection: Connection, token_id: int | None) -> Token:
    """The token as stored (no pending last-used time), read on `connection`: inside a
    change's transaction, what that transaction sees."""
    async with connection.execute(_BY_ID, (token_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise TokenNotFound()
    return token_of(tuple(row))


async def read_token_at_version(connection: Connection, token_id: int, row_version: int) -> Token:
    """The token, if it is still at the version the caller saw; StaleVersion if it moved on."""
    token = await read_token(connection, token_id)
    if token.row_version != row_version:
        raise StaleVersion(changed_by=token.updated_by, changed_at=token.updated_at)
    return token


async def free_copy_name(connection: Connection, name: str) -> str:
    """The first of `copy_name(name, 1)`, `copy_name(name, 2)`, … no token has."""
    attempt = 1
    while True:
        candidate = copy_name(name, attempt)
        async with connection.execute(
            "SELECT 1 FROM tokens WHERE name_key = ?", (name_key(candidate),)
        ) as cursor:
            if await cursor.fetchone() is None:
                return candidate
        attempt += 1


class TokenReads:
    def __init__(
        self,
        database: Database,
        *,
        credentials: CredentialIndex,
        api_versions: Sequence[str],
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._credentials = credentials
        self._api_versions = tuple(api_versions)
        self._clock = clock

    @property
    def count(self) -> int:
        return self._credentials.count

    @property
    def newest_version(self) -> str:
        return self._api_versions[-1]

    async def get(self, *, token_id: int) -> Token:
        row = await self._database.fetch_one(_BY_ID, (token_id,))
        if row is None:
            raise TokenNotFound()
        return self._credentials.with_last_used(token_of(row))

    async def find_by_secret(self, *, secret: str) -> Token | None:
        """The token a pasted secret belongs to, whatever its state (for `/tokens search`)."""
        token_id = self._credentials.token_id_of(secret)
        if token_id is None:
            return None
        try:
            return await self.get(token_id=token_id)
        except TokenNotFound:
            return None

    async def page(
        self, *, filters: TokenFilter | None = None, offset: int = 0, limit: int = 10
    ) -> TokenPage:
        """A page of tokens, newest first, with the number of tokens the filters match."""
        filters = filters or TokenFilter()
        if offset < 0 or not 1 <= limit <= PAGE_MAX:
            raise ValueError("offset must be ≥ 0 and limit between 1 and 100")
        where = self._where(
            filters, now=int(self._clock()), by_trigram=await self._finds_few(filters)
        )
        parameters = tuple(where.parameters)
        after = len(parameters)
        rows = await self._database.fetch_all(
            both(
                sqlite=f"{_SELECT}{where.sqlite} ORDER BY t.created_at DESC, t.id DESC"
                " LIMIT ? OFFSET ?",
                postgres=f"{_POSTGRES_SELECT}{where.postgres} ORDER BY t.created_at DESC,"
                f" t.id DESC LIMIT ${after + 1} OFFSET ${after + 2}",
            ),
            (*parameters, limit, offset),
        )
        if filters.is_empty:
            # Exact (the index follows every commit) and free, where count(*) would read
            # the whole index on every first page.
            total = self._credentials.count
        else:
            # The last-used times are joined only for the filter that reads them.
            tables = FROM if filters.last_used is not None else " FROM tokens t"
            counted = await self._database.fetch_one(
                both(
                    sqlite=f"SELECT count(*){tables}{where.sqlite}",
                    postgres=f"SELECT count(*){tables}{where.postgres}",
                ),
                parameters,
            )
            total = counted[0] if counted else 0
        return TokenPage(
            tokens=tuple(self._credentials.with_last_used(token_of(row)) for row in rows),
            total=total,
            offset=offset,
        )

    async def summary(self) -> HomeSummary:
        """How many tokens are in each state now (see `HomeSummary`), counted as the list's
        filters count them, from one snapshot of the database."""
        now = int(self._clock())
        since = now - UNUSED_DAYS * DAY
        recently_used = self._credentials.used_since(since)
        row = await self._database.fetch_one(
            _SUMMARY,
            (
                now,
                now + EXPIRING_SOON_DAYS * DAY,
                since,
                json.dumps(recently_used),
                now // DAY,
            ),
        )
        assert row is not None  # token_counts has its one row from the migration on
        total, disabled, leaked, no_expiry, stored, expired, expiring, in_grace, idle, pending = row
        # Used within the window: by a stored time (a row of token_usage exists only for an
        # existing token, by its foreign key), or by a use not written yet.
        used = stored - idle + pending
        return HomeSummary(
            enabled=total - disabled - expired,
            disabled=disabled,
            expired=expired,
            expiring_soon=expiring,
            in_grace=in_grace,
            leaked=leaked,
            unused=total - used,
            without_expiry=no_expiry,
        )

    async def needing_attention(
        self, *, limit: int = 10, expiry_required: bool
    ) -> list[AttentionItem]:
        """Up to `limit` tokens that need attention now, most urgent first: each once, under
        the most urgent `Attention` it has (NO_EXPIRY only if `expiry_required`: a token
        needs an expiry only while a maximum lifetime is set); a disabled token only if
        leaked. Within a reason: the newest leak, the longest expired, the soonest to
        expire, the old secret most presented, the longest idle, the oldest token first."""
        if not 1 <= limit <= PAGE_MAX:
            raise ValueError("limit must be between 1 and 100")
        now = int(self._clock())
        since = now - UNUSED_DAYS * DAY
        recently_used = json.dumps(self._credentials.used_since(since))
        steps: list[tuple[Attention, str, tuple[Any, ...]]] = [
            (Attention.LEAKED, _LEAKED, ()),
            (Attention.EXPIRED, _EXPIRED, (now,)),
            (Attention.EXPIRING, _EXPIRING, (now, now + EXPIRING_SOON_DAYS * DAY)),
            (Attention.OLD_SECRET_PRESENTED, _OLD_SECRET_PRESENTED, ()),
            (Attention.UNUSED, _IDLE, (since, recently_used)),
            (Attention.UNUSED, _UNUSED_SINCE_EVENT, (since, recently_used)),
        ]
        if expiry_required:
            steps.append((Attention.NO_EXPIRY, _NO_EXPIRY, ()))
        found: dict[int, AttentionItem] = {}
        for reason, query, parameters in steps:
            if len(found) == limit:
                break
            # A step that answers fewer rows than asked answered all its tokens, so every
            # token of an earlier reason is among those found: asking for `limit` rows (as
            # many as are still wanted, and as many more as were found) skips them all.
            rows = await self._database.fetch_all(query, (*parameters, limit))
            for row in rows:
                token = token_of(row)
                if token.id not in found and len(found) < limit:
                    found[token.id] = AttentionItem(self._credentials.with_last_used(token), reason)
        return list(found.values())

    async def _finds_few(self, filters: TokenFilter) -> bool:
        """Whether the name search is best answered by trigram (`_where`): it has some, and
        they find few tokens, each of which is then read and sorted, rather than walking
        the list newest first, which finds a page of many soon, and counting every name."""
        key = name_key(filters.name.strip())
        if not _by_trigram(key):
            return False
        most = max(_FEW_MIN, int(self._credentials.count * _FEW_SHARE))
        found = await self._database.fetch_one(_TRIGRAM_CANDIDATES, (key, most + 1))
        return found is not None and found[0] <= most

    def _where(self, filters: TokenFilter, *, now: int, by_trigram: bool = False) -> _Where:
        """The filters' conditions; the name search's by trigram if `by_trigram` (where
        `_finds_few` says so), else by reading every name."""
        where = _Where()
        if filters.name.strip():
            key = name_key(filters.name.strip())
            if by_trigram and _by_trigram(key):
                # The tokens whose key has the search's trigrams in a row, from the trigram
                # index, then the substring match itself on those only: exactly the tokens
                # it matches, reading none of the others.
                where.add(
                    "t.id IN (SELECT rowid FROM tokens_name_search WHERE tokens_name_search"
                    f" MATCH {_FTS_PHRASE}) AND instr(t.name_key, ?) > 0",
                    key,
                    key,
                    postgres=f"t.name_key LIKE {_LIKE_PATTERN} AND strpos(t.name_key, ?) > 0",
                )
            else:
                # Every key is read. instr, not LIKE: `%` and `_` in a search are ordinary
                # characters.
                where.add("instr(t.name_key, ?) > 0", key, postgres="strpos(t.name_key, ?) > 0")
        if filters.created_on is not None:
            days = _BUCKET_DAYS.get(filters.created_on, 30)
            operator = "<" if filters.created_on is CreatedOn.MORE_THAN_30_DAYS else ">="
            where.add(f"t.created_at {operator} ?", now - days * DAY)
        if filters.state is not None:
            condition, values = _STATE_CONDITIONS[filters.state]
            where.add(condition, *(now + days * DAY for days in values))
        if filters.last_used is not None:
            self._last_used_condition(filters.last_used, now, where)
        return where

    def _last_used_condition(self, last_used: LastUsedFilter, now: int, where: _Where) -> None:
        """Unused within the window (or ever): by the stored time, and not among the uses
        the auth check gathered but has not written yet, which the cards already show."""
        window = last_used.days
        if window is None:
            where.add("u.last_used_at IS NULL")
            since = None
        else:
            since = now - window * DAY
            where.add("(u.last_used_at IS NULL OR u.last_used_at < ?)", since)
        recently_used = self._credentials.used_since(since)
        if recently_used:
            where.add(
                "t.id NOT IN (SELECT value FROM json_each(?))",
                json.dumps(recently_used),
                postgres="t.id NOT IN"
                " (SELECT value::bigint FROM jsonb_array_elements_text(?::jsonb))",
            )


@dataclass(slots=True)
class _Where:
    """A WHERE clause as each backend spells it (none without conditions), and its
    parameters in order. Its texts are few: one per combination of the list's filters."""

    parameters: list[Any] = field(default_factory=list)
    _sqlite: list[str] = field(default_factory=list)
    _postgres: list[str] = field(default_factory=list)

    def add(self, condition: str, *values: Any, postgres: str | None = None) -> None:
        """`condition` with its `?` parameters `values`; `postgres`, with `?` where it has
        one, if PostgreSQL spells it otherwise. Its `?` are numbered `$N` here."""
        numbers = iter(range(len(self.parameters) + 1, len(self.parameters) + len(values) + 1))
        self._sqlite.append(condition)
        self._postgres.append(re.sub(r"\?", lambda _: f"${next(numbers)}", postgres or condition))
        self.parameters.extend(values)

    @property
    def sqlite(self) -> str:
        return " WHERE " + " AND ".join(self._sqlite) if self._sqlite else ""

    @property
    def postgres(self) -> str:
        return " WHERE " + " AND ".join(self._postgres) if self._postgres else ""


# The name search by trigrams (migration 10), for a key of at least 3 characters: on
# SQLite, a phrase of the key's trigrams (the key in double quotes, its own doubled); on
# PostgreSQL, a LIKE pattern of the key, its `%`, `_` and escape character escaped.
_TRIGRAM = 3
_FTS_PHRASE = "'\"' || replace(?, '\"', '\"\"') || '\"'"
_LIKE_PATTERN = (
    "'%' || replace(replace(replace(?, '!', '!!'), '%', '!%'), '_', '!_') || '%' ESCAPE '!'"
)
# Few: up to this share of the tokens (and at least `_FEW_MIN`), reading each candidate
# and sorting them costs less than reading every name (at 100k tokens, about 8 µs a
# candidate against 20 ms).
_FEW_SHARE = 0.02
_FEW_MIN = 100
# How many tokens the trigrams find, counted up to a limit: a search that finds many stops
# early. PostgreSQL's planner weighs its trigram index against reading every name itself:
# none, always (its parameters taken, unused).
_TRIGRAM_CANDIDATES = both(
    sqlite="SELECT count(*) FROM (SELECT 1 FROM tokens_name_search"
    f" WHERE tokens_name_search MATCH {_FTS_PHRASE} LIMIT ?)",
    postgres="SELECT 0 FROM (VALUES ($1::text, $2::bigint)) AS unused (key, most)",
)


def _by_trigram(key: str) -> bool:
    """Whether the search `key` has trigrams to look up; FTS5 reads its query as a C
    string, which a NUL would end."""
    return len(key) >= _TRIGRAM and "\0" not in key


# Each state as a condition, and the day offsets from now of its `?` parameters: expired
# from the stop instant on, as the auth check refuses it.
_STATE_CONDITIONS: dict[StateFilter, tuple[str, tuple[int, ...]]] = {
    StateFilter.ENABLED: ("t.enabled = 1 AND (t.expires_at IS NULL OR t.expires_at > ?)", (0,)),
    StateFilter.EXPIRED: ("t.enabled = 1 AND t.expires_at <= ?", (0,)),
    StateFilter.DISABLED: ("t.enabled = 0", ()),
    StateFilter.EXPIRING_SOON: (
        "t.enabled = 1 AND t.expires_at > ? AND t.expires_at <= ?",
        (0, EXPIRING_SOON_DAYS),
    ),
}

# Unused: not used within this many days, or never (the Last used filter "Not in 30 days").
UNUSED_DAYS = 30

# The summary in one statement, so that its counts come from one snapshot. The counts that
# do not depend on the time are read as the triggers of `token_counts` keep them; expired
# is the sum of the days before today as `token_expiry_days` keeps them (?5: today, in days
# since the epoch, as its triggers divide) plus today's expired so far; the others count
# the entries of an index range that holds only such tokens, reading no token row but one
# per open grace window (for its stop instant): today's expired and expiring soon
# (tokens_by_expiry), in grace (tokens_by_previous_until), last used before the window
# (token_usage_by_time), and the tokens whose use within it is not written yet while their
# stored one is older. The stored uses less those before the window, plus those not written
# yet, are the tokens used within it: the Last used filter shows all the others.
_SUMMARY = both(
    sqlite="SELECT c.tokens, c.disabled, c.leaked, c.without_expiry, c.used,"
    " (SELECT coalesce(sum(tokens), 0) FROM token_expiry_days WHERE day < ?5)"
    " + (SELECT count(*) FROM tokens WHERE enabled = 1 AND expires_at >= ?5 * 86400"
    " AND expires_at <= ?1),"
    " (SELECT count(*) FROM tokens WHERE enabled = 1 AND expires_at > ?1 AND expires_at <= ?2),"
    " (SELECT count(*) FROM tokens WHERE previous_until > ?1"
    " AND (expires_at IS NULL OR expires_at > ?1)),"
    " (SELECT count(*) FROM token_usage WHERE last_used_at < ?3),"
    " (SELECT count(*) FROM json_each(?4) p JOIN tokens t ON t.id = p.value"
    " LEFT JOIN token_usage u ON u.token_id = t.id"
    " WHERE u.last_used_at IS NULL OR u.last_used_at < ?3)"
    " FROM token_counts c",
    postgres="SELECT c.tokens, c.disabled, c.leaked, c.without_expiry, c.used,"
    " (SELECT coalesce(sum(tokens), 0)::bigint FROM token_expiry_days WHERE day < $5)"
    " + (SELECT count(*) FROM tokens WHERE enabled = 1 AND expires_at >= $5 * 86400"
    " AND expires_at <= $1),"
    " (SELECT count(*) FROM tokens WHERE enabled = 1 AND expires_at > $1 AND expires_at <= $2),"
    " (SELECT count(*) FROM tokens WHERE previous_until > $1"
    " AND (expires_at IS NULL OR expires_at > $1)),"
    " (SELECT count(*) FROM token_usage WHERE last_used_at < $3),"
    " (SELECT count(*) FROM jsonb_array_elements_text($4::jsonb) p (value)"
    " JOIN tokens t ON t.id = p.value::bigint"
    " LEFT JOIN token_usage u ON u.token_id = t.id"
    " WHERE u.last_used_at IS NULL OR u.last_used_at < $3)"
    " FROM token_counts c",
)

# The tokens that need attention, one query per reason, each walking an index in the
# reason's order and stopping at its LIMIT; `needing_attention` skips the tokens an earlier
# reason took. Leaked (tokens_leaked), newest leak first, whatever the state.
_LEAKED = both(
    sqlite=f"{_SELECT} WHERE t.leaked_at IS NOT NULL ORDER BY t.leaked_at DESC, t.id DESC LIMIT ?",
    postgres=f"{_POSTGRES_SELECT} WHERE t.leaked_at IS NOT NULL"
    " ORDER BY t.leaked_at DESC, t.id DESC LIMIT $1",
)
# Expired and expiring (tokens_by_expiry: enabled tokens with an expiry), by stop instant.
_EXPIRED = both(
    sqlite=f"{_SELECT} WHERE t.enabled = 1 AND t.expires_at <= ?"
    " ORDER BY t.expires_at, t.id LIMIT ?",
    postgres=f"{_POSTGRES_SELECT} WHERE t.enabled = 1 AND t.expires_at <= $1"
    " ORDER BY t.expires_at, t.id LIMIT $2",
)
_EXPIRING = both(
    sqlite=f"{_SELECT} WHERE t.enabled = 1 AND t.expires_at > ? AND t.expires_at <= ?"
    " ORDER BY t.expires_at, t.id LIMIT ?",
    postgres=f"{_POSTGRES_SELECT} WHERE t.enabled = 1 AND t.expires_at > $1"
    " AND t.expires_at <= $2 ORDER BY t.expires_at, t.id LIMIT $3",
)
# Retired secrets still presented (retired_secrets_presented, summed per token: a few rows
# of the last 30 days' retired secrets), their enabled tokens the most presented first.
_PRESENTED_TOKENS = (
    " JOIN (SELECT token_id, sum(presented) AS times,"
    " max(last_presented_at) AS last FROM retired_secrets WHERE presented > 0"
    " GROUP BY token_id) p ON p.token_id = t.id"
    " WHERE t.enabled = 1 ORDER BY p.times DESC, p.last DESC, t.id LIMIT"
)
_OLD_SECRET_PRESENTED = both(
    sqlite=f"{_SELECT}{_PRESENTED_TOKENS} ?",
    postgres=f"{_POSTGRES_SELECT}{_PRESENTED_TOKENS} $1",
)
# Unused as the Last used filter says, longest idle first (by `last_active_at`, the latest
# of creation, last Reset, last enable and last use), in two steps, as no index holds the
# tokens without a usage row. A token inactive since before the window was not used within
# it (its last use is no later than its activity): tokens_by_activity, oldest first.
_UNUSED_CONDITION = (
    " AND (u.last_used_at IS NULL OR u.last_used_at < ?1)"
    " AND t.id NOT IN (SELECT value FROM json_each(?2))"
    " ORDER BY t.last_active_at, t.id LIMIT ?3"
)
_POSTGRES_UNUSED_CONDITION = (
    " AND (u.last_used_at IS NULL OR u.last_used_at < $1)"
    " AND t.id NOT IN (SELECT value::bigint FROM jsonb_array_elements_text($2::jsonb))"
    " ORDER BY t.last_active_at, t.id LIMIT $3"
)
_IDLE = both(
    sqlite=f"{_SELECT} WHERE t.enabled = 1 AND t.last_active_at < ?1{_UNUSED_CONDITION}",
    postgres=f"{_POSTGRES_SELECT} WHERE t.enabled = 1 AND t.last_active_at < $1"
    f"{_POSTGRES_UNUSED_CONDITION}",
)
# A token active within the window but unused within it was last active by its creation, a
# Reset or an enable, not by a use: tokens_not_used_since_event, whose condition the query
# repeats (the planner uses a partial index only for a query that says so).
_UNUSED_SINCE_EVENT = both(
    sqlite=f"{_SELECT} WHERE t.enabled = 1"
    " AND t.last_active_at = max(t.created_at, coalesce(t.reset_at, 0), coalesce(t.enabled_at, 0))"
    f" AND t.last_active_at >= ?1{_UNUSED_CONDITION}",
    postgres=f"{_POSTGRES_SELECT} WHERE t.enabled = 1 AND t.last_active_at"
    " = GREATEST(t.created_at, coalesce(t.reset_at, 0), coalesce(t.enabled_at, 0))"
    f" AND t.last_active_at >= $1{_POSTGRES_UNUSED_CONDITION}",
)
# Without expiry (tokens_without_expiry), the oldest first.
_NO_EXPIRY = both(
    sqlite=f"{_SELECT} WHERE t.expires_at IS NULL AND t.enabled = 1"
    " ORDER BY t.created_at, t.id LIMIT ?",
    postgres=f"{_POSTGRES_SELECT} WHERE t.expires_at IS NULL AND t.enabled = 1"
    " ORDER BY t.created_at, t.id LIMIT $1",
)
