"""Grace windows and retired secrets, in the database.

A Reset may leave the replaced secret working for a grace window, as the token's previous
secret (one at most), until `previous_until`: never past the token's stop instant, which
Reset and Edit keep it within. A secret that stops working for good is retired: its HMAC
digest is kept in `retired_secrets` for 30 days, so that the integrations still
presenting it can be found, then purged (Delete purges a token's at once).

A window ends for good by a Reset, End grace, Disable or Delete (in the transaction of
that change), or by time: the auth check compares the clock with `previous_until` on
every check, and the scheduler then moves the lapsed window among the retired, audited as
ended by Token Desk (`retire_lapsed`); so does any change of the token before it.

Every function here runs inside the caller's transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from storage import audit
from storage.errors import InvalidInput
from storage.models import RetiredPresentation
from storage.sql import Connection, both
from storage.token_reads import (
    COLUMNS,
    DAY,
    FROM,
    POSTGRES_COLUMNS,
    presenters_of,
    token_of,
)

# The actor of what Token Desk does by itself.
SYSTEM_ACTOR = "tokendesk"
MAX_GRACE = timedelta(days=7)
RETIRED_KEPT_DAYS = 30

# The scheduler's queries, each through an index (never a scan of every row): windows
# ended by a moment; digests retired before a moment; presented digests not yet reported.
LAPSED_QUERY = both(
    sqlite="SELECT id, sid, name, previous_until FROM tokens WHERE previous_until <= ?",
    # In the order SQLite reads them through the index, which the audit records follow.
    postgres="SELECT id, sid, name, previous_until FROM tokens WHERE previous_until <= $1"
    " ORDER BY previous_until, id",
)
PURGE_QUERY = "DELETE FROM retired_secrets WHERE retired_at < ? RETURNING digest"
# Whether any of the three has work, in one read: a pass usually finds none, and a write
# transaction each would cost the event loop a millisecond.
WORK_QUERY = (
    "SELECT EXISTS (SELECT 1 FROM tokens WHERE previous_until <= ?1),"
    " EXISTS (SELECT 1 FROM retired_secrets WHERE retired_at < ?2),"
    " EXISTS (SELECT 1 FROM retired_secrets WHERE presented > 0 AND notified_at IS NULL)"
)
PRESENTED_QUERY = (
    "UPDATE retired_secrets SET notified_at = ? WHERE presented > 0 AND notified_at IS NULL"
    " RETURNING token_id, last_presented_at, presenters"
)
_RETIRE_PREVIOUS = both(
    sqlite="INSERT INTO retired_secrets (digest, token_id, retired_at)"
    " SELECT previous_secret_hash, id, min(?, previous_until) FROM tokens"
    " WHERE id = ? AND previous_secret_hash IS NOT NULL",
    postgres="INSERT INTO retired_secrets (digest, token_id, retired_at)"
    " SELECT previous_secret_hash, id, LEAST($1, previous_until) FROM tokens"
    " WHERE id = $2 AND previous_secret_hash IS NOT NULL",
)
# The tokens of a JSON list of ids.
_TOKENS_OF_IDS = both(
    sqlite=f"SELECT {COLUMNS}{FROM} WHERE t.id IN (SELECT value FROM json_each(?))",
    postgres=f"SELECT {POSTGRES_COLUMNS}{FROM}"
    " WHERE t.id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)",
)


def grace_seconds(grace: timedelta | None) -> int:
    """A grace window's length in seconds (0: the secret stops at once); InvalidInput
    under `grace` beyond 7 days or below zero."""
    if grace is None:
        return 0
    if not timedelta(0) <= grace <= MAX_GRACE:
        raise InvalidInput({"grace": "a grace window lasts at most 7 days"})
    return int(grace.total_seconds())


async def retire_current(connection: Connection, *, token_id: int, at: int) -> None:
    """Retire the token's current secret (a Reset replacing it without a window)."""
    await connection.execute(
        "INSERT INTO retired_secrets (digest, token_id, retired_at)"
        " SELECT secret_hash, id, ? FROM tokens WHERE id = ?",
        (at, token_id),
    )


async def keep_current_as_previous(connection: Connection, *, token_id: int, until: int) -> None:
    """Make the token's current secret its previous one, working until `until` (a Reset
    replacing it with a window); the token must have no previous secret."""
    await connection.execute(
        "UPDATE tokens SET previous_secret_hash = secret_hash,"
        " previous_secret_hint = secret_hint, previous_until = ? WHERE id = ?",
        (until, token_id),
    )


async def retire_previous(connection: Connection, *, token_id: int, at: int) -> None:
    """Retire the token's previous secret, if it has one, as of `at` (or of the end of its
    window, if that came first)."""
    await connection.execute(_RETIRE_PREVIOUS, (at, token_id))
    await connection.execute(
        "UPDATE tokens SET previous_secret_hash = NULL, previous_secret_hint = NULL,"
        " previous_until = NULL WHERE id = ? AND previous_secret_hash IS NOT NULL",
        (token_id,),
    )
    # NULL: the token's next previous secret has not been used yet.
    await connection.execute(
        "UPDATE token_usage SET previous_last_used_at = NULL"
        " WHERE token_id = ? AND previous_last_used_at IS NOT NULL",
        (token_id,),
    )


async def retire_lapsed(
    connection: Connection, *, now: int, token_id: int | None = None
) -> list[int]:
    """Retire the previous secrets whose window has ended by `now` (of every token, or of
    `token_id` only), each audited as `end_grace` by Token Desk with the reason `ended`;
    the ids of their tokens. Neither a token's row version nor its update time moves: what
    the token does has not changed, its window having ended when it said it would."""
    query, parameters = LAPSED_QUERY, [now]
    if token_id is not None:
        query, parameters = f"{query} AND id = ?", [now, token_id]
    async with connection.execute(query, parameters) as cursor:
        lapsed = list(await cursor.fetchall())
    for lapsed_id, sid, name, until in lapsed:
        await retire_previous(connection, token_id=lapsed_id, at=until)
        await audit.append(
            connection,
            at=now,
            actor=SYSTEM_ACTOR,
            action="end_grace",
            token_sid=sid,
            token_name=name,
            before={"previous_until": audit.iso_time(until)},
            after={"previous_until": None, "reason": "ended"},
        )
    return [row[0] for row in lapsed]


async def purge_retired(connection: Connection, *, now: int, older_than_days: int) -> set[bytes]:
    """Delete the digests retired more than `older_than_days` days before `now`; those."""
    async with connection.execute(PURGE_QUERY, (now - older_than_days * DAY,)) as cursor:
        return {row[0] for row in await cursor.fetchall()}


async def mark_first_presentations(
    connection: Connection, *, now: int
) -> list[RetiredPresentation]:
    """Mark as notified the retired digests presented since their retirement and never
    notified of; their presentations, earliest first."""
    async with connection.execute(PRESENTED_QUERY, (now,)) as cursor:
        marked = sorted(await cursor.fetchall(), key=lambda row: (row[1], row[0]))
    if not marked:
        return []
    async with connection.execute(
        _TOKENS_OF_IDS, (json.dumps(sorted({row[0] for row in marked})),)
    ) as cursor:
        tokens = {row[0]: token_of(tuple(row)) for row in await cursor.fetchall()}
    found = []
    for token_id, presented_at, presenters in marked:
        latest = presenters_of(json.loads(presenters))
        found.append(
            RetiredPresentation(
                token=tokens[token_id],
                presenter=latest[0] if latest else None,
                at=datetime.fromtimestamp(presented_at, UTC),
            )
        )
    return found
