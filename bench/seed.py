"""Token rows for the benchmarks, written straight into a database the real schema created.

Seeding 100k tokens through `TokenLifecycle.create` would take one durable (fsynced) transaction
each, so the rows are written directly with `sqlite3`, in one transaction, into a database
that the Store itself created (and so holds the real schema and key check). Shared by
bench/store.py and bench/list.py, which import it as `seed` (their own directory is first
on `sys.path` when they run as scripts).
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from storage.credentials import SecretHasher, generate_secret, secret_hint
from storage.fields import name_key

API_VERSIONS = ("v1", "v2", "v3")
SCOPES = ("reports:read", "actions:write")
DAY = 86_400
SPREAD_DAYS = 90

# Names are "<Team>-<service>-<number>"; each team owns exactly a tenth of the tokens, so
# searching for a team (in lower case: the search is case-folded) matches a moderate
# fraction, and the service names never contain a team's name.
TEAMS = (
    "Analytics",
    "Billing",
    "Catalog",
    "Delivery",
    "Edge",
    "Finance",
    "Growth",
    "Identity",
    "Journeys",
    "Kiosk",
)
SERVICES = ("api", "cron", "etl", "gateway", "ingest", "mobile", "partner", "web")
DISABLED_EVERY = 20  # one token in 20 is disabled, as on a real account

# Secrets kept in memory for the auth-check benchmark: enough that the loop does not just
# hit the same few cache lines, few enough to keep the last-used flush at close small.
KEPT_SECRETS = 2_000

# The columns storage/tokens.py's `_insert` writes, in its order.
TOKEN_COLUMNS = (
    "sid",
    "name",
    "name_key",
    "description",
    "enabled",
    "api_version",
    "access_rights",
    "primary_contact",
    "secret_hash",
    "secret_hint",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "row_version",
    "last_active_at",
)


@dataclass(frozen=True)
class Seed:
    """The rows of the largest database (smaller ones take a prefix) and some secrets."""

    rows: list[dict[str, Any]]
    digests: list[bytes]
    secrets_by_row: dict[int, str]


def make_seed(count: int, key: bytes, rng: random.Random) -> Seed:
    """`count` token rows (times are set per database), each with the HMAC of a real
    secret; the secrets of some enabled rows within every prefix are kept."""
    hasher = SecretHasher(key)
    rows: list[dict[str, Any]] = []
    digests: list[bytes] = []
    kept: dict[int, str] = {}
    keep_every = max(1, count // KEPT_SECRETS)
    for index in range(count):
        secret = generate_secret()
        digest = hasher.digest(secret)
        name = f"{TEAMS[index % len(TEAMS)]}-{rng.choice(SERVICES)}-{index:06d}"
        enabled = 0 if index % DISABLED_EVERY == DISABLED_EVERY - 1 else 1
        rights = [scope for scope in SCOPES if rng.random() < 0.6] or [SCOPES[0]]
        contact = f"U{1 + index % 50:04d}"
        rows.append(
            {
                "sid": "TD" + secrets.token_hex(10).upper(),
                "name": name,
                "name_key": name_key(name),
                "description": f"Used by the {name} integration." if index % 3 == 0 else "",
                "enabled": enabled,
                "api_version": rng.choice(API_VERSIONS),
                "access_rights": json.dumps(rights),
                "primary_contact": contact,
                "secret_hash": digest,
                "secret_hint": secret_hint(secret),
                "created_by": contact,
                "updated_by": contact,
                "row_version": 1,
            }
        )
        digests.append(digest)
        if enabled and index % keep_every == 0:
            kept[index] = secret
    return Seed(rows=rows, digests=digests, secrets_by_row=kept)


def spread_over_days(rows: Sequence[dict[str, Any]], now: int) -> list[dict[str, Any]]:
    """The rows created one after another over the last SPREAD_DAYS days, as `create`
    would have: ids and creation times rise together, which is what decides how the
    newest-first index walks the table."""
    span = SPREAD_DAYS * DAY
    timed = []
    for index, row in enumerate(rows):
        created_at = now - span + index * span // len(rows)
        timed.append(
            row | {"created_at": created_at, "updated_at": created_at, "last_active_at": created_at}
        )
    return timed


def insert_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            f"INSERT INTO tokens ({', '.join(TOKEN_COLUMNS)})"
            f" VALUES ({', '.join(':' + column for column in TOKEN_COLUMNS)})",
            rows,
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


async def copy_rows(url: str, rows: Sequence[dict[str, Any]]) -> None:
    """`insert_rows` for the PostgreSQL database at `url` (COPY, in one transaction)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.copy_records_to_table(
            "tokens",
            records=[tuple(row[column] for column in TOKEN_COLUMNS) for row in rows],
            columns=list(TOKEN_COLUMNS),
        )
    finally:
        await connection.close()
