"""The auth check's memory: every token's credential by the digest of its secret, and the
last-used times gathered since they were last written.

The check answers from this index alone, so the index must be exact. It is, because once
`load` has filled it at open, only the token lifecycle (storage/token_lifecycle.py) changes
it, calling `remember` and `forget` from the `after_commit` of the transaction that commits
each change, and `Database.transact` runs that before the change is returned to anyone:
a reset secret, a disabled or a deleted token fails the very next check. The API-access
switch it also obeys is kept exact the same way (storage/account.py).

A valid check notes the time in memory only; the times are written at most once per token
per flush interval, and when the store closes, and never move a token's row version.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import aiosqlite

from storage.account import AccountSettings
from storage.credentials import SecretHasher, is_valid_secret
from storage.database import Database
from storage.errors import StoreError
from storage.models import AuthorizedToken, Token

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The auth check's answer: the token, or None with the reason of the refusal."""

    token: AuthorizedToken | None
    reason: str


@dataclass(frozen=True, slots=True)
class _Credential:
    digest: bytes
    enabled: bool
    stops_at: int | None
    authorized: AuthorizedToken


def _credential(
    *,
    digest: bytes,
    token_id: int,
    sid: str,
    name: str,
    enabled: bool,
    api_version: str,
    access_rights: tuple[str, ...],
    stops_at: int | None,
) -> _Credential:
    """Everything a check may answer, built once per change rather than on every check."""
    return _Credential(
        digest=digest,
        enabled=enabled,
        stops_at=stops_at,
        authorized=AuthorizedToken(
            id=token_id,
            sid=sid,
            name=name,
            api_version=api_version,
            access_rights=access_rights,
            expires_at=None if stops_at is None else datetime.fromtimestamp(stops_at, UTC),
            secret_used="current",
        ),
    )


class CredentialIndex:
    def __init__(
        self,
        database: Database,
        *,
        hasher: SecretHasher,
        account: AccountSettings,
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._hasher = hasher
        self._account = account
        self._clock = clock
        self._by_digest: dict[bytes, _Credential] = {}
        self._by_id: dict[int, _Credential] = {}
        self._last_used: dict[int, int] = {}

    async def load(self) -> None:
        """Fill the index from the database (once, when the store opens)."""
        rows = await self._database.fetch_all(
            "SELECT id, sid, name, enabled, api_version, access_rights, secret_hash, expires_at"
            " FROM tokens"
        )
        for token_id, sid, name, enabled, api_version, rights, digest, stops_at in rows:
            self._put(
                _credential(
                    digest=digest,
                    token_id=token_id,
                    sid=sid,
                    name=name,
                    enabled=bool(enabled),
                    api_version=api_version,
                    access_rights=tuple(json.loads(rights)),
                    stops_at=stops_at,
                )
            )

    # The auth check ---------------------------------------------------------------------

    def check(self, secret: str, sid: str | None = None) -> Verdict:
        """The token `secret` authenticates, if it is enabled, has not reached its stop
        instant by the clock (compared on every check: expiry needs no job to take effect)
        and API access is on; else the reason of the refusal (for a debug log line, never
        for the caller of the auth check). A malformed secret or a bad checksum is refused
        before any look-up; the look-up is by HMAC digest, so its timing depends on the
        keyed digest, never on the secret."""
        if not is_valid_secret(secret):
            return Verdict(None, "malformed or bad checksum")
        credential = self._by_digest.get(self._hasher.digest(secret))
        if credential is None:
            return Verdict(None, "unknown secret")
        if sid is not None and not hmac.compare_digest(
            sid.encode(), credential.authorized.sid.encode()
        ):
            return Verdict(None, "SID does not match")
        if not credential.enabled:
            return Verdict(None, "token disabled")
        now = self._clock()
        if credential.stops_at is not None and now >= credential.stops_at:
            return Verdict(None, "expired")
        if not self._account.api_access:
            return Verdict(None, "API access off")
        self._last_used[credential.authorized.id] = int(now)
        return Verdict(credential.authorized, "valid")

    def token_id_of(self, secret: str) -> int | None:
        """The id of the token `secret` belongs to, whatever its state or API access."""
        if not is_valid_secret(secret):
            return None
        credential = self._by_digest.get(self._hasher.digest(secret))
        return None if credential is None else credential.authorized.id

    @property
    def count(self) -> int:
        """How many tokens exist: exact, since the index follows every commit."""
        return len(self._by_id)

    # Kept exact by the token lifecycle ---------------------------------------------------

    def remember(self, token: Token, digest: bytes | None = None) -> None:
        """Take `token` as committed; `digest` is its new secret's, None to keep the known
        one (a token not known without a digest stays unknown)."""
        if digest is None:
            known = self._by_id.get(token.id)
            if known is None:
                return
            digest = known.digest
        stops_at = token.stops_at
        self._put(
            _credential(
                digest=digest,
                token_id=token.id,
                sid=token.sid,
                name=token.name,
                enabled=token.enabled,
                api_version=token.api_version,
                access_rights=token.access_rights,
                stops_at=None if stops_at is None else int(stops_at.timestamp()),
            )
        )

    def forget(self, token: Token) -> None:
        """Take `token` as deleted: its secret fails, and its pending last-used time goes."""
        credential = self._by_id.pop(token.id, None)
        if credential is not None:
            del self._by_digest[credential.digest]
        self._last_used.pop(token.id, None)

    def _put(self, credential: _Credential) -> None:
        previous = self._by_id.get(credential.authorized.id)
        if previous is not None:
            del self._by_digest[previous.digest]
        self._by_id[credential.authorized.id] = credential
        self._by_digest[credential.digest] = credential

    # Last-used times --------------------------------------------------------------------

    def with_last_used(self, token: Token) -> Token:
        """`token` as read from the database, showing a last-used time not written yet
        (and so active since then)."""
        pending = self._last_used.get(token.id)
        if pending is None:
            return token
        known = token.last_used_at.timestamp() if token.last_used_at else 0
        if pending <= known:
            return token
        used_at = datetime.fromtimestamp(pending, UTC)
        return replace(
            token, last_used_at=used_at, last_active_at=max(token.last_active_at, used_at)
        )

    def pending_use(self, token_id: int) -> int | None:
        """When the token was last used, if that is not written yet."""
        return self._last_used.get(token_id)

    def used_since(self, moment: int | None) -> list[int]:
        """The tokens used at or after `moment` (None: ever) whose use is not written yet."""
        return [
            token_id
            for token_id, used_at in self._last_used.items()
            if moment is None or used_at >= moment
        ]

    async def flush_last_used(self) -> int:
        """Write the last-used times gathered since the previous flush, and the tokens'
        activity with them; how many tokens. Neither moves a row version."""
        pending = dict(self._last_used)
        if not pending:
            return 0

        async def write(connection: aiosqlite.Connection) -> None:
            await connection.executemany(
                "INSERT INTO token_usage (token_id, last_used_at)"
                " SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM tokens WHERE id = ?1)"
                " ON CONFLICT (token_id) DO UPDATE"
                " SET last_used_at = max(last_used_at, excluded.last_used_at)",
                pending.items(),
            )
            await connection.executemany(
                "UPDATE tokens SET last_active_at = max(last_active_at, ?2) WHERE id = ?1",
                pending.items(),
            )

        def forget_written(_: None) -> None:
            for token_id, used_at in pending.items():
                if self._last_used.get(token_id) == used_at:
                    del self._last_used[token_id]

        await self._database.transact(write, after_commit=forget_written)
        return len(pending)

    async def flush_last_used_every(self, seconds: float) -> None:
        """Runs until cancelled: at most one write per token per `seconds`."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.flush_last_used()
            except StoreError as error:
                logger.warning("last-used times not written yet: %s", error)
