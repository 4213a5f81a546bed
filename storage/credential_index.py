"""The auth check's memory: every token's credentials by the digest of their secrets (the
current one and, during a grace window, the previous one), the digests of retired secrets,
and the last-used times and retired secrets' presentations gathered since they were last
written.

The check answers from this index, so the index must be exact. It is, because once
`load` has filled it at open, only the token lifecycle (storage/token_lifecycle.py) and the
scheduler's retirements and purges (storage/expiry.py) change it, from the `after_commit`
of the transaction that commits each change, and `Database.transact` runs that before the
change is returned to anyone: a reset secret, a disabled or a deleted token fails the very
next check. The API-access
switch it also obeys is kept exact the same way (storage/account.py).

Which digest is whose is known from the start, so an unknown or retired secret is refused
from memory; but a token's credentials are made on the first check of one of its secrets
(`_build`), not at open, where making them all took most of a large store's start-up:
from its row read then on SQLite, from the row the currency's first round read on
PostgreSQL. From then on, that token is answered from memory too.

A previous secret passes while its window is open, compared with the clock on every check
(a window needs no job to end); once it has ended, the secret is answered as a retired
one, until the scheduler moves it among the retired (`retire_previous`). A retired secret
is refused like an unknown one, but its verdict says whose it was, so that the caller can
count the presentation (`record_retired`, storage/presentations.py) off the success path.

A valid check notes the time in memory only; the times are written at most once per token
per flush interval, and when the store closes, and never move a token's row version.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from storage.account import AccountSettings
from storage.credentials import SecretHasher, is_valid_secret
from storage.database import file_uri, is_busy
from storage.errors import StoreBusy, StoreError
from storage.models import AuthorizedToken, SecretUsed, Token
from storage.presentations import RetiredPresentations, Taken, write_presentations
from storage.sql import Connection, Database, Row, both

# What `load` and `follow` read of each token and each retired secret.
CREDENTIAL_COLUMNS = (
    "id, sid, name, enabled, api_version, access_rights, expires_at,"
    " secret_hash, previous_secret_hash, previous_until"
)
RETIRED_COLUMNS = "digest, token_id"
# What `load` reads on SQLite: each token's secret's digest and id (from the digests' unique
# index alone), and the few previous secrets (their partial index).
_SECRETS = "SELECT secret_hash, id FROM tokens"
_PREVIOUS_SECRETS = (
    "SELECT previous_secret_hash, id, previous_until FROM tokens"
    " WHERE previous_secret_hash IS NOT NULL"
)
# A token's row, read on the first check of one of its secrets (`SqliteRows`).
_ROW_OF_TOKEN = f"SELECT {CREDENTIAL_COLUMNS} FROM tokens WHERE id = ?"
_FIRST, _SECOND = itemgetter(0), itemgetter(1)
# A `CREDENTIAL_COLUMNS` row's id, secret's digest and previous secret's digest.
_ROW_ID, _ROW_SECRET, _ROW_PREVIOUS = itemgetter(0), itemgetter(7), itemgetter(8)
# What a flush writes, each with the parameters (token id, unix seconds).
_WRITE_LAST_USED = both(
    sqlite="INSERT INTO token_usage (token_id, last_used_at)"
    " SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM tokens WHERE id = ?1)"
    " ON CONFLICT (token_id) DO UPDATE"
    " SET last_used_at = max(last_used_at, excluded.last_used_at)",
    postgres="INSERT INTO token_usage (token_id, last_used_at)"
    " SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM tokens WHERE id = $1)"
    " ON CONFLICT (token_id) DO UPDATE"
    " SET last_used_at = GREATEST(token_usage.last_used_at, excluded.last_used_at)",
)
_WRITE_PREVIOUS_LAST_USED = both(
    sqlite="UPDATE token_usage SET previous_last_used_at ="
    " max(coalesce(previous_last_used_at, 0), ?2) WHERE token_id = ?1",
    postgres="UPDATE token_usage SET previous_last_used_at ="
    " GREATEST(coalesce(previous_last_used_at, 0), $2) WHERE token_id = $1",
)
_WRITE_LAST_ACTIVE = both(
    sqlite="UPDATE tokens SET last_active_at = max(last_active_at, ?2) WHERE id = ?1",
    postgres="UPDATE tokens SET last_active_at = GREATEST(last_active_at, $2) WHERE id = $1",
)

logger = logging.getLogger(__name__)
# The reason of the refusal of a retired secret, or of a previous one out of its window.
RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The auth check's answer: the token, or None with the reason of the refusal; for a
    retired secret, the id of its token and its digest, to count the presentation."""

    token: AuthorizedToken | None
    reason: str
    retired_token_id: int | None = None
    # A handle for `record_retired`, not part of the answer.
    retired_digest: bytes | None = field(default=None, repr=False, compare=False)


# The check's answers are built ahead, never on a check: refusals here, and each secret's
# own answers with its credential.
_MALFORMED = Verdict(None, "malformed or bad checksum")
_UNKNOWN = Verdict(None, "unknown secret")
_SID_MISMATCH = Verdict(None, "SID does not match")
_DISABLED = Verdict(None, "token disabled")
_EXPIRED = Verdict(None, "expired")
_API_ACCESS_OFF = Verdict(None, "API access off")


def _retired_verdict(token_id: int, digest: bytes) -> Verdict:
    return Verdict(None, RETIRED, token_id, digest)


class LiveSecret(NamedTuple):
    """A live secret's token and which of its secrets it is, with its digest (the handle
    the database knows it by)."""

    token_id: int
    which: SecretUsed
    digest: bytes


# A NamedTuple rather than a frozen dataclass: as immutable, and cheaper to make (`load`
# makes one per token).
class _Credential(NamedTuple):
    digest: bytes
    enabled: bool
    stops_at: int | None
    # None for a current secret; for a previous one, the end of its window (a float, as
    # the clock is: the check compares them without a conversion).
    until: float | None
    authorized: AuthorizedToken
    valid: Verdict
    # A previous secret's answer once its window has ended. A current secret is never
    # answered so (a Reset retires it through `remember`, with an answer of its own), and
    # shares `_UNKNOWN` here: one verdict less to make per token.
    retired: Verdict


def _credential(
    digest: bytes,
    token_id: int,
    sid: str,
    name: str,
    enabled: bool,
    api_version: str,
    access_rights: tuple[str, ...],
    stops_at: int | None,
    expires_at: datetime | None,
    until: int | None,
) -> _Credential:
    """Everything a check may answer, built once per change rather than on every check;
    `expires_at` is `stops_at` as a datetime; `until` is None for a current secret, the
    end of its window for a previous one. Its arguments, and those it passes on, are
    positional: `load` calls it once per token, and a keyword call costs more."""
    if until is None:
        retired = _UNKNOWN
    else:
        retired = _retired_verdict(token_id, digest)
    authorized = AuthorizedToken(
        token_id,
        sid,
        name,
        api_version,
        access_rights,
        expires_at,
        "current" if until is None else "previous",
    )
    return _Credential(
        digest,
        enabled,
        stops_at,
        None if until is None else float(until),
        authorized,
        Verdict(authorized, "valid"),
        retired,
    )


def _credential_of(token: Token, *, digest: bytes, until: datetime | None = None) -> _Credential:
    stops_at = token.stops_at
    return _credential(
        digest,
        token.id,
        token.sid,
        token.name,
        token.enabled,
        token.api_version,
        token.access_rights,
        None if stops_at is None else int(stops_at.timestamp()),
        stops_at,
        None if until is None else int(until.timestamp()),
    )


class _Rights(dict[str, tuple[str, ...]]):
    """Access rights by their stored JSON, each list parsed once: tokens share a few."""

    def __missing__(self, stored: str) -> tuple[str, ...]:
        rights = self[stored] = tuple(json.loads(stored))
        return rights


class _Instants(dict[int | None, datetime | None]):
    """Stop instants as datetimes, each converted once: tokens share days."""

    def __missing__(self, stops_at: int | None) -> datetime | None:
        instant = self[stops_at] = (
            None if stops_at is None else datetime.fromtimestamp(stops_at, UTC)
        )
        return instant


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector held off: the objects a load makes all live on, and
    its passes over them as they are made would cost more than making them."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True, slots=True)
class _Flushed:
    """What one flush wrote, to be forgotten once it is committed."""

    uses: dict[int, int]
    previous_uses: dict[int, int]
    presentations: dict[bytes, Taken]
    presented: set[bytes]


class SqliteRows:
    """`read_row` for a SQLite file: a token's row as committed, read on the event loop
    (by primary key: microseconds, and a reader in WAL mode does not wait for the writer),
    on a connection of its own that never sees a change before it commits."""

    # Longer than a reader could be held up (a moment of the WAL's recovery), much shorter
    # than the event loop may wait.
    _BUSY_TIMEOUT_SECONDS = 0.05

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(
            file_uri(path, "rw"),
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=self._BUSY_TIMEOUT_SECONDS,
        )
        self._connection.execute("PRAGMA query_only = ON")

    def __call__(self, token_id: int) -> Row | None:
        try:
            row: Row | None = self._connection.execute(_ROW_OF_TOKEN, (token_id,)).fetchone()
        except sqlite3.OperationalError as error:
            if is_busy(error):
                raise StoreBusy() from None
            raise
        return row

    def close(self) -> None:
        self._connection.close()


class CredentialIndex:
    def __init__(
        self,
        database: Database,
        *,
        hasher: SecretHasher,
        account: AccountSettings,
        clock: Callable[[], float],
        read_row: Callable[[int], Row | None] | None = None,
    ) -> None:
        """`read_row` reads a token's `CREDENTIAL_COLUMNS` row as committed, at once (None
        if it has none): `load` then reads each token's row on the first check of one of
        its secrets, not every row at start-up."""
        self._database = database
        self._hasher = hasher
        self._account = account
        self._clock = clock
        self._read_row = read_row
        # Current and previous secrets' credentials, by digest; current ones and previous
        # ones by id.
        self._by_digest: dict[bytes, _Credential] = {}
        self._by_id: dict[int, _Credential] = {}
        self._previous_by_id: dict[int, _Credential] = {}
        # The tokens whose credentials are not made yet (a token is here or above, never
        # both): the id of each of their secrets' digests, each one's current digest and
        # previous one with the end of its window, and the rows `_fill` was given.
        self._unbuilt: dict[bytes, int] = {}
        self._unbuilt_current: dict[int, bytes] = {}
        self._unbuilt_previous: dict[int, tuple[bytes, int]] = {}
        self._rows: dict[int, Row] = {}
        self._rights = _Rights()
        self._instants = _Instants()
        # Retired secrets' digests, and the check's answer to each (naming its token).
        self._retired: dict[bytes, Verdict] = {}
        self._last_used: dict[int, int] = {}
        self._previous_used: dict[int, int] = {}
        self._presentations = RetiredPresentations()
        # Whether the index may answer now: always on SQLite; on PostgreSQL, while this
        # instance's currency lease holds (storage/currency.py).
        self.holds: Callable[[], bool] = _always

    async def load(self) -> None:
        """Fill the index from the database (once, when the store opens, before anything
        else runs: the collector is held off while the rows are read too). With `read_row`,
        only the digests are read: each token's credentials are made on the first check
        of one of its secrets (`_build`), from its row then."""
        with _collector_paused():
            retired = await self._database.fetch_all(
                f"SELECT {RETIRED_COLUMNS} FROM retired_secrets"
            )
            if self._read_row is None:
                tokens = await self._database.fetch_all(f"SELECT {CREDENTIAL_COLUMNS} FROM tokens")
                self._fill(tokens, retired)
                return
            self._stash(
                await self._database.fetch_all(_SECRETS),
                await self._database.fetch_all(_PREVIOUS_SECRETS),
                retired,
            )

    def follow(
        self, token_ids: Collection[int], tokens: Iterable[Row], retired: Iterable[Row]
    ) -> None:
        """Take what another instance committed for `token_ids`: `tokens` and `retired` are
        their rows now (`CREDENTIAL_COLUMNS`, `RETIRED_COLUMNS`), a token without a row
        having been deleted."""
        tokens, retired = list(tokens), list(retired)
        present = {row[0] for row in tokens}
        for token_id in token_ids:
            if token_id in present:
                self._drop_secrets(token_id)
            else:
                self._forget_id(token_id)
        self._fill(tokens, retired)

    def replace_all(self, tokens: Iterable[Row], retired: Iterable[Row]) -> None:
        """Take every token and retired secret as committed now (`CREDENTIAL_COLUMNS`,
        `RETIRED_COLUMNS`), after this instance may have missed changes; what is pending
        of a token that is gone goes with it."""
        tokens = list(tokens)
        present = {row[0] for row in tokens}
        for token_id in (self._by_id.keys() | self._unbuilt_current.keys()) - present:
            self._forget_id(token_id)
        for known in (
            self._by_digest,
            self._by_id,
            self._previous_by_id,
            self._unbuilt,
            self._unbuilt_current,
            self._unbuilt_previous,
            self._rows,
            self._retired,
            self._rights,
            self._instants,
        ):
            known.clear()
        self._fill(tokens, retired)

    def _fill(self, tokens: Iterable[Row], retired: Iterable[Row]) -> None:
        """Take `tokens` (`CREDENTIAL_COLUMNS` rows) as they are, their credentials made
        from them on first use, and `retired` (`RETIRED_COLUMNS`)."""
        tokens = tokens if isinstance(tokens, list) else list(tokens)
        with _collector_paused():
            self._rows.update(zip(map(_ROW_ID, tokens), tokens, strict=True))
            self._stash(
                list(zip(map(_ROW_SECRET, tokens), map(_ROW_ID, tokens), strict=True)),
                [(row[8], row[0], row[9]) for row in filter(_ROW_PREVIOUS, tokens)],
                retired,
            )

    def _stash(self, secrets: list[Row], previous: Iterable[Row], retired: Iterable[Row]) -> None:
        """Take the tokens of `secrets` (digest, id) and `previous` (digest, id, end of its
        window) as not built yet, and the `retired` secrets (digest, id). A store opens
        with every token, most not checked for a while: the maps are made by C loops
        (update, zip, map), no Python code running per token, and `_build` makes each
        token's credentials when first needed."""
        self._unbuilt.update(secrets)
        self._unbuilt_current.update(zip(map(_SECOND, secrets), map(_FIRST, secrets), strict=True))
        for digest, token_id, until in previous:
            self._unbuilt[digest] = token_id
            self._unbuilt_previous[token_id] = (digest, until)
        for digest, token_id in retired:
            self._retired[digest] = _retired_verdict(token_id, digest)

    def _build(self, token_id: int) -> bool:
        """Make the credentials of the token `token_id`, not built yet, from its row: the
        one `_fill` kept, else the one `read_row` reads now. False, the token left as it
        is, if it has no row any more: it was deleted, and `forget` is about to take that.

        The row read is as committed, so may be newer than the index while a change's
        `after_commit` is under way: its state is taken with the digests the index knows,
        as `remember`, which follows at once, takes the change."""
        row = self._rows.pop(token_id, None)
        if row is None and self._read_row is not None:
            row = self._read_row(token_id)
        if row is None:
            return False
        _, sid, name, enabled, version, stored, stops_at, *_ = row
        # The versions, rights and instants are shared: a few of each, many tokens.
        token = (
            token_id,
            sid,
            name,
            bool(enabled),
            sys.intern(version),
            self._rights[stored],
            stops_at,
            self._instants[stops_at],
        )
        current = self._unbuilt_current.pop(token_id)
        del self._unbuilt[current]
        self._put(_credential(current, *token, None))
        previous = self._unbuilt_previous.pop(token_id, None)
        if previous is not None:
            digest, until = previous
            del self._unbuilt[digest]
            self._put_previous(_credential(digest, *token, until))
        return True

    # The auth check ---------------------------------------------------------------------

    def check(self, secret: str, sid: str | None = None) -> Verdict:
        """The token `secret` authenticates, if it is enabled, has not reached its stop
        instant by the clock (compared on every check: expiry needs no job to take effect)
        and API access is on; else the reason of the refusal (for a debug log line, never
        for the caller of the auth check). A malformed secret or a bad checksum is refused
        before any look-up; the look-up is by HMAC digest, so its timing depends on the
        keyed digest, never on the secret."""
        if not is_valid_secret(secret):
            return _MALFORMED
        digest = self._hasher.digest(secret)
        credential = self._by_digest.get(digest)
        if credential is None:
            # Its token's first check since the store opened, or an unknown or retired secret.
            token_id = self._unbuilt.get(digest)
            if token_id is None or not self._build(token_id):
                return self._retired.get(digest, _UNKNOWN)
            credential = self._by_digest[digest]
        now = self._clock()
        # A secret that no longer works is counted as presented, whatever the SID with it.
        until = credential.until
        if until is not None and now >= until:
            return credential.retired
        if sid is not None and not hmac.compare_digest(
            sid.encode(), credential.authorized.sid.encode()
        ):
            return _SID_MISMATCH
        if not credential.enabled:
            return _DISABLED
        if credential.stops_at is not None and now >= credential.stops_at:
            return _EXPIRED
        if not self._account.api_access:
            return _API_ACCESS_OFF
        token_id = credential.authorized.id
        used_at = int(now)
        self._last_used[token_id] = used_at
        if until is not None:
            self._previous_used[token_id] = used_at
        return credential.valid

    def record_retired(self, verdict: Verdict, presenter: Callable[[], tuple[str, str]]) -> None:
        """Count a presentation of the retired secret `verdict` refused; `presenter` gives
        who presented it, `(client address, user agent)` as the gateway said (untrusted
        input: bounded, and never kept if it looks like a secret), and is called at most
        once per second per secret. Written with the next flush. Any other verdict, or one
        whose secret was deleted since, records nothing."""
        digest, token_id = verdict.retired_digest, verdict.retired_token_id
        if verdict.reason != RETIRED or digest is None or token_id is None:
            return
        if not self._knows_retired(digest):
            return
        self._presentations.record(
            digest=digest, token_id=token_id, at=int(self._clock()), presenter=presenter
        )

    def token_id_of(self, secret: str) -> int | None:
        """The id of the token `secret` belongs to (as its current secret or its previous
        one), whatever its state or API access."""
        if not is_valid_secret(secret):
            return None
        digest = self._hasher.digest(secret)
        credential = self._by_digest.get(digest)
        return self._unbuilt.get(digest) if credential is None else credential.authorized.id

    def live_secret(self, secret: str) -> LiveSecret | None:
        """Whose `secret` is while it is live: the current secret of any token, whatever
        its state or API access (enabling the token would revive it), or a previous one
        until its window ends by the clock. None, before any look-up for a malformed
        secret, for a retired or unknown one, and for a previous one past its window."""
        if not is_valid_secret(secret):
            return None
        digest = self._hasher.digest(secret)
        credential = self._by_digest.get(digest)
        if credential is not None:
            token_id, which, until = (
                credential.authorized.id,
                credential.authorized.secret_used,
                credential.until,
            )
        else:
            unbuilt = self._unbuilt.get(digest)
            if unbuilt is None:
                return None
            token_id, which, until = unbuilt, "current", None
            if self._unbuilt_current[token_id] != digest:
                which, until = "previous", self._unbuilt_previous[token_id][1]
        if until is not None and self._clock() >= until:
            return None
        return LiveSecret(token_id, which, digest)

    @property
    def count(self) -> int:
        """How many tokens exist: exact, since the index follows every commit."""
        return len(self._by_id) + len(self._unbuilt_current)

    # Kept exact by the token lifecycle ---------------------------------------------------

    def remember(self, token: Token, digest: bytes | None = None) -> None:
        """Take `token` as committed; `digest` is its new secret's, None to keep the known
        one (a token not known without a digest stays unknown).

        Its previous secret follows the token's window: a Reset that opened one (a new
        digest, and `previous_until` set) makes the replaced secret the previous one; a
        digest the token no longer has as current or previous is retired (a Reset without
        a window, End grace, Disable)."""
        known, earlier_digest = self._take_secrets(token.id)
        if digest is None:
            if known is None:
                return
            digest = known
        replaced = None if known is None or known == digest else known
        previous = None
        if token.previous_until is not None:
            previous = replaced if replaced is not None else earlier_digest
        self._put(_credential_of(token, digest=digest))
        if previous is not None:
            self._put_previous(_credential_of(token, digest=previous, until=token.previous_until))
        for gone in (replaced, earlier_digest):
            if gone is not None and gone != previous:
                self._retired[gone] = _retired_verdict(token.id, gone)
        if previous != earlier_digest:
            self._previous_used.pop(token.id, None)

    def retire_previous(self, token_id: int) -> None:
        """Take the token's previous secret as retired (its window ended by time)."""
        earlier = self._previous_by_id.pop(token_id, None)
        if earlier is not None:
            del self._by_digest[earlier.digest]
            self._retired[earlier.digest] = earlier.retired
        unbuilt = self._unbuilt_previous.pop(token_id, None)
        if unbuilt is not None:
            digest = unbuilt[0]
            del self._unbuilt[digest]
            self._retired[digest] = _retired_verdict(token_id, digest)
        self._previous_used.pop(token_id, None)

    def drop_retired(self, digests: set[bytes]) -> None:
        """Forget retired digests whose rows were purged: they are unknown from now on."""
        for digest in digests:
            self._retired.pop(digest, None)
        self._presentations.drop(self._knows_retired)

    def forget(self, token: Token) -> None:
        """Take `token` as deleted: its secrets, retired ones included, fail as unknown,
        and what was pending of it goes."""
        self._forget_id(token.id)

    def _forget_id(self, token_id: int) -> None:
        self._drop_secrets(token_id)
        self._presentations.drop_token(token_id)
        self._last_used.pop(token_id, None)
        self._previous_used.pop(token_id, None)

    def _drop_secrets(self, token_id: int) -> None:
        self._take_secrets(token_id)
        for digest in [
            digest
            for digest, verdict in self._retired.items()
            if verdict.retired_token_id == token_id
        ]:
            del self._retired[digest]

    def _take_secrets(self, token_id: int) -> tuple[bytes | None, bytes | None]:
        """Remove the token's current and previous secrets, built or not; their digests."""
        current = self._by_id.pop(token_id, None)
        if current is not None:
            del self._by_digest[current.digest]
            previous = self._previous_by_id.pop(token_id, None)
            if previous is None:
                return current.digest, None
            del self._by_digest[previous.digest]
            return current.digest, previous.digest
        self._rows.pop(token_id, None)
        digest = self._unbuilt_current.pop(token_id, None)
        if digest is None:
            return None, None
        del self._unbuilt[digest]
        unbuilt = self._unbuilt_previous.pop(token_id, None)
        if unbuilt is None:
            return digest, None
        del self._unbuilt[unbuilt[0]]
        return digest, unbuilt[0]

    def _put(self, credential: _Credential) -> None:
        self._by_id[credential.authorized.id] = credential
        self._by_digest[credential.digest] = credential

    def _put_previous(self, credential: _Credential) -> None:
        self._previous_by_id[credential.authorized.id] = credential
        self._by_digest[credential.digest] = credential

    def _knows_retired(self, digest: bytes) -> bool:
        """Whether `digest` is retired, or a previous secret (whose window may have ended)."""
        if digest in self._retired:
            return True
        credential = self._by_digest.get(digest)
        if credential is not None:
            return credential.until is not None
        token_id = self._unbuilt.get(digest)
        return token_id is not None and self._unbuilt_current[token_id] != digest

    # Last-used times --------------------------------------------------------------------

    def with_last_used(self, token: Token) -> Token:
        """`token` as read from the database, showing a last-used time not written yet
        (and so active since then), of the token and of its previous secret."""
        changes: dict[str, Any] = {}
        pending = self._last_used.get(token.id)
        if pending is not None and pending > _seconds(token.last_used_at):
            used_at = datetime.fromtimestamp(pending, UTC)
            changes["last_used_at"] = used_at
            changes["last_active_at"] = max(token.last_active_at, used_at)
        pending = self._previous_used.get(token.id)
        # A use of the previous secret counts from the Reset that made it previous, that
        # second included (a pending use of the secret before it is dropped when the Reset
        # commits: `remember`).
        if (
            pending is not None
            and token.previous_until is not None
            and pending > _seconds(token.previous_last_used_at)
            and pending >= _seconds(token.reset_at)
        ):
            changes["previous_last_used_at"] = datetime.fromtimestamp(pending, UTC)
        return replace(token, **changes) if changes else token

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
        """Write the last-used times gathered since the previous flush (of the tokens and
        of their previous secrets), the tokens' activity with them, and the retired
        secrets' presentations; how many tokens and retired secrets. None of it moves a
        row version."""
        if not self._last_used and not self._presentations:
            return 0

        async def write(connection: Connection) -> _Flushed:
            # Taken inside the transaction: no change commits between this and the write,
            # so a previous secret's use is written for the previous secret it was of.
            flushed = _Flushed(
                uses=dict(self._last_used),
                previous_uses=dict(self._previous_used),
                presentations=self._presentations.take(),
                presented=set(),
            )
            await connection.executemany(_WRITE_LAST_USED, flushed.uses.items())
            await connection.executemany(_WRITE_PREVIOUS_LAST_USED, flushed.previous_uses.items())
            await connection.executemany(_WRITE_LAST_ACTIVE, flushed.uses.items())
            flushed.presented.update(await write_presentations(connection, flushed.presentations))
            return flushed

        def forget_written(flushed: _Flushed) -> None:
            for pending, written in (
                (self._last_used, flushed.uses),
                (self._previous_used, flushed.previous_uses),
            ):
                for token_id, used_at in written.items():
                    if pending.get(token_id) == used_at:
                        del pending[token_id]
            self._presentations.written(flushed.presentations, flushed.presented)
            self._presentations.drop(self._knows_retired)

        flushed = await self._database.transact(write, after_commit=forget_written)
        return len(flushed.uses) + len(flushed.presented)

    async def flush_last_used_every(self, seconds: float) -> None:
        """Runs until cancelled: at most one write per token per `seconds`."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.flush_last_used()
            except StoreError as error:
                logger.warning("last-used times not written yet: %s", error)


def _always() -> bool:
    return True


def _seconds(moment: datetime | None) -> float:
    return 0 if moment is None else moment.timestamp()
