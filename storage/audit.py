"""The append-only audit log: written inside the transaction of the change it records.

Records hold who did what to which token (by SID and name, no foreign key, so history
outlives the token) and a bounded before/after of what changed. Never a secret: the token
fields recorded are validated to contain none, and the secret and its hash are not fields.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

from storage.fields import name_key
from storage.models import AuditEvent, Token
from storage.sql import Connection, Database, Row, both

VALUE_MAX = 200
_EVENTS = (
    "SELECT id, at, actor, action, token_sid, token_name, detail FROM audit_log"
    " ORDER BY id DESC LIMIT ? OFFSET ?"
)
_EVENTS_OF_NAME = both(
    sqlite="SELECT id, at, actor, action, token_sid, token_name, detail FROM audit_log"
    " WHERE instr(token_name_key, ?) > 0 ORDER BY id DESC LIMIT ? OFFSET ?",
    postgres="SELECT id, at, actor, action, token_sid, token_name, detail FROM audit_log"
    " WHERE strpos(token_name_key, $1) > 0 ORDER BY id DESC LIMIT $2 OFFSET $3",
)


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > VALUE_MAX:
        return value[: VALUE_MAX - 1] + "…"
    if isinstance(value, list | tuple):
        return [_bounded(item) for item in value]
    return value


async def append(
    connection: Connection,
    *,
    at: int,
    actor: str,
    action: str,
    token_sid: str | None = None,
    token_name: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    detail = {
        "before": {key: _bounded(value) for key, value in (before or {}).items()},
        "after": {key: _bounded(value) for key, value in (after or {}).items()},
    }
    await connection.execute(
        "INSERT INTO audit_log (at, actor, action, token_sid, token_name, token_name_key,"
        " detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            at,
            actor,
            action,
            token_sid,
            token_name,
            None if token_name is None else name_key(token_name),
            json.dumps(detail, ensure_ascii=False, sort_keys=True),
        ),
    )


def iso_date(day: date | None) -> str | None:
    """How a record shows an expiry date."""
    return None if day is None else day.isoformat()


def iso_time(moment: int | datetime | None) -> str | None:
    """How a record shows an instant (unix seconds or an aware datetime): UTC, ISO 8601."""
    if moment is None:
        return None
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat()


def state_of(token: Token) -> str:
    """The state a token was set to (`enabled` or `disabled`); expiry is recorded apart."""
    return "enabled" if token.enabled else "disabled"


def token_fields(token: Token) -> dict[str, Any]:
    """The fields of a token an audit record shows; its expiry as an ISO date or None."""
    return {
        "name": token.name,
        "description": token.description,
        "state": state_of(token),
        "api_version": token.api_version,
        "access_rights": list(token.access_rights),
        "primary_contact": token.primary_contact,
        "expires_on": iso_date(token.expires_on),
    }


def changes(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields that differ, as the before and after halves of an audit record."""
    changed = [key for key in after if before.get(key) != after[key]]
    return {key: before.get(key) for key in changed}, {key: after[key] for key in changed}


def _event(row: Row) -> AuditEvent:
    detail = json.loads(row[6])
    return AuditEvent(
        id=row[0],
        at=datetime.fromtimestamp(row[1], UTC),
        actor=row[2],
        action=row[3],
        token_sid=row[4],
        token_name=row[5],
        before=detail["before"],
        after=detail["after"],
    )


class AuditLog:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def events(
        self, *, token_name: str | None = None, offset: int = 0, limit: int = 20
    ) -> list[AuditEvent]:
        """The latest events, newest first; `token_name` matches part of a name."""
        if token_name:
            rows = await self._database.fetch_all(
                _EVENTS_OF_NAME, (name_key(token_name), limit, offset)
            )
        else:
            rows = await self._database.fetch_all(_EVENTS, (limit, offset))
        return [_event(row) for row in rows]

    async def since(self, moment: datetime | None = None) -> AsyncIterator[AuditEvent]:
        """Every event from `moment` on, oldest first, read in batches (for exports)."""
        after_id, start = 0, int(moment.timestamp()) if moment else 0
        while True:
            rows = await self._database.fetch_all(
                "SELECT id, at, actor, action, token_sid, token_name, detail FROM audit_log"
                " WHERE id > ? AND at >= ? ORDER BY id LIMIT 1000",
                (after_id, start),
            )
            for row in rows:
                yield _event(row)
            if len(rows) < 1000:
                return
            after_id = rows[-1][0]
