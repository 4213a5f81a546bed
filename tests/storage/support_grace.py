"""Helpers of the grace-window and retired-secret tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from storage.credential_index import RETIRED
from storage.credentials import SecretHasher
from storage.models import IssuedToken, Token
from storage.store import Store
from tests.storage.support_durability import ACTOR, KEY, plain_connection

HOUR = 3_600
DIGEST = SecretHasher(KEY).digest


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def reset(
    store: Store,
    token: Token,
    *,
    grace: timedelta | None = None,
    actor: str = ACTOR,
    expires_on: date | None = None,
) -> IssuedToken:
    """Reset `token` at the version it has, keeping no expiry unless told otherwise."""
    return await store.tokens.reset(
        actor=actor,
        token_id=token.id,
        row_version=token.row_version,
        expires_on=expires_on,
        grace=grace,
    )


def secret_used(store: Store, secret: str, sid: str | None = None) -> str | None:
    """Which of its token's secrets `secret` passed as, or None when it was refused."""
    verdict = store.credentials.check(secret, sid)
    return None if verdict.token is None else verdict.token.secret_used


def retired_rows(path: Path) -> dict[bytes, tuple[int, int, int, int | None, str, int | None]]:
    """`retired_secrets` by digest: (token, retired at, presented, last presented at,
    presenters, notified at)."""
    connection = plain_connection(path)
    try:
        rows = connection.execute(
            "SELECT digest, token_id, retired_at, presented, last_presented_at, presenters,"
            " notified_at FROM retired_secrets"
        ).fetchall()
    finally:
        connection.close()
    return {row[0]: tuple(row[1:]) for row in rows}


@dataclass(frozen=True)
class StoredSecrets:
    token_id: int
    enabled: bool
    expires_at: int | None
    current: bytes
    previous: bytes | None
    previous_until: int | None


def stored_secrets(path: Path) -> dict[int, StoredSecrets]:
    connection = plain_connection(path)
    try:
        rows = connection.execute(
            "SELECT id, enabled, expires_at, secret_hash, previous_secret_hash, previous_until"
            " FROM tokens"
        ).fetchall()
    finally:
        connection.close()
    return {row[0]: StoredSecrets(row[0], bool(row[1]), *row[2:]) for row in rows}


def assert_index_agrees_with_database(
    store: Store, path: Path, secrets: Iterable[str], now: float
) -> None:
    """Every secret in `secrets` gets the verdict the committed rows call for (API access
    on): the index holds exactly what the database does."""
    tokens = stored_secrets(path)
    retired = retired_rows(path)
    for secret in secrets:
        digest = DIGEST(secret)
        verdict = store.credentials.check(secret)
        current = [t for t in tokens.values() if t.current == digest]
        previous = [t for t in tokens.values() if t.previous == digest]
        if current:
            (token,) = current
            live = token.enabled and (token.expires_at is None or now < token.expires_at)
            assert (verdict.token is not None) is live, verdict
            assert verdict.token is None or verdict.token.secret_used == "current"
        elif previous:
            (token,) = previous
            assert token.previous_until is not None
            if now < token.previous_until:
                assert verdict.token is not None and verdict.token.secret_used == "previous"
            else:
                assert (verdict.reason, verdict.retired_token_id) == (RETIRED, token.token_id)
        elif digest in retired:
            assert (verdict.reason, verdict.retired_token_id) == (RETIRED, retired[digest][0])
        else:
            assert verdict.reason == "unknown secret", verdict
