"""Request keys: a change delivered twice (a Slack retry, a double click) is applied once.

A change that takes a request key claims it in its own transaction: a change that fails
leaves no claim behind, and one that commits cannot be applied again; a second change with
the same key raises AlreadyApplied instead. Claims are kept for a day, far longer than any
retry.
"""

from __future__ import annotations

import sqlite3

from storage.errors import AlreadyApplied
from storage.sql import Connection

REQUEST_KEY_MAX = 255
KEPT_SECONDS = 86_400


async def claim(connection: Connection, request_key: str | None, now: int) -> None:
    """Record `request_key` (if any) in the transaction of `connection`."""
    if request_key is None:
        return
    await connection.execute("DELETE FROM applied_requests WHERE at < ?", (now - KEPT_SECONDS,))
    try:
        await connection.execute(
            "INSERT INTO applied_requests (key, at) VALUES (?, ?)",
            (request_key[:REQUEST_KEY_MAX], now),
        )
    except sqlite3.IntegrityError:
        raise AlreadyApplied() from None
