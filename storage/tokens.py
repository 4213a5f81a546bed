"""The tokens: their lifecycle in SQLite, and the in-memory credentials the auth check uses.

Every change commits through `Database.transact`, whose `after_commit` updates the
in-memory map before the change is returned to anyone: a reset secret, a disabled or a
deleted token, or API access turned off take effect for the very next `verify`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from storage import audit
from storage.credentials import SecretHasher, generate_secret, is_valid_secret, secret_hint
from storage.database import Database, Row
from storage.errors import (
    AlreadyApplied,
    AlreadyNewestVersion,
    InvalidInput,
    NameTaken,
    StaleVersion,
    StoreError,
    TokenNotFound,
)
from storage.fields import (
    clean_access_rights,
    clean_contact,
    clean_description,
    clean_name,
    copy_name,
    name_key,
)
from storage.models import (
    AuthorizedToken,
    CreatedOn,
    IssuedToken,
    Token,
    TokenEdit,
    TokenFilter,
    TokenPage,
    TokenState,
)

logger = logging.getLogger(__name__)

DAY = 86_400
REQUEST_KEY_MAX = 255
PAGE_MAX = 100
_BUCKET_DAYS = {CreatedOn.LAST_7_DAYS: 7, CreatedOn.LAST_30_DAYS: 30}
_COLUMNS = (
    "t.id, t.sid, t.name, t.description, t.enabled, t.api_version, t.access_rights,"
    " t.primary_contact, t.secret_hint, t.created_at, t.created_by, t.updated_at,"
    " t.updated_by, t.reset_at, u.last_used_at, t.row_version"
)
_SELECT = f"SELECT {_COLUMNS} FROM tokens t LEFT JOIN token_usage u ON u.token_id = t.id"
API_ACCESS_SETTING = "api_access"


@dataclass(frozen=True, slots=True)
class TokenChange:
    """A token as it was and as it is; equal when the change had nothing to do."""

    before: Token
    after: Token

    @property
    def changed(self) -> bool:
        return self.before.row_version != self.after.row_version


@dataclass(frozen=True, slots=True)
class Verdict:
    token: AuthorizedToken | None
    reason: str


@dataclass(frozen=True, slots=True)
class _Credential:
    digest: bytes
    enabled: bool
    authorized: AuthorizedToken


@dataclass(slots=True)
class _Update:
    """What one change writes: columns, the audit halves, and a new digest on reset."""

    action: str
    columns: dict[str, Any]
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


def _time(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _token(row: Row) -> Token:
    return Token(
        id=row[0],
        sid=row[1],
        name=row[2],
        description=row[3],
        state=TokenState.ENABLED if row[4] else TokenState.DISABLED,
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
    )


def _snapshot(token: Token) -> dict[str, Any]:
    """The fields an audit record shows."""
    return {
        "name": token.name,
        "description": token.description,
        "state": token.state.value,
        "api_version": token.api_version,
        "access_rights": list(token.access_rights),
        "primary_contact": token.primary_contact,
    }


def _new_sid() -> str:
    return "TD" + secrets.token_hex(10).upper()


def _name_conflict(error: sqlite3.IntegrityError) -> bool:
    return "tokens.name_key" in str(error)


class Tokens:
    def __init__(
        self,
        database: Database,
        *,
        hasher: SecretHasher,
        api_versions: Sequence[str],
        scopes: Sequence[str],
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._hasher = hasher
        self._api_versions = tuple(api_versions)
        self._scopes = tuple(scopes)
        self._clock = clock
        self._by_digest: dict[bytes, _Credential] = {}
        self._by_id: dict[int, _Credential] = {}
        self._api_access = False
        self._last_used: dict[int, int] = {}

    async def load(self) -> None:
        """Fill the in-memory credentials and the API-access switch from the database."""
        rows = await self._database.fetch_all(
            "SELECT id, sid, name, enabled, api_version, access_rights, secret_hash FROM tokens"
        )
        for token_id, sid, name, enabled, api_version, rights, digest in rows:
            self._remember(
                _Credential(
                    digest=digest,
                    enabled=bool(enabled),
                    authorized=AuthorizedToken(
                        id=token_id,
                        sid=sid,
                        name=name,
                        api_version=api_version,
                        access_rights=tuple(json.loads(rights)),
                    ),
                )
            )
        setting = await self._database.fetch_one(
            "SELECT value FROM settings WHERE key = ?", (API_ACCESS_SETTING,)
        )
        self._api_access = setting is not None and setting[0] == "on"

    # The auth check ---------------------------------------------------------------------

    def verify(self, secret: str, sid: str | None = None) -> AuthorizedToken | None:
        """The token `secret` authenticates, if it is enabled and API access is on."""
        return self.check(secret, sid).token

    def check(self, secret: str, sid: str | None = None) -> Verdict:
        """`verify`, with the reason of a refusal (for a debug log line, never for the caller
        of the auth check). A malformed secret or a bad checksum is refused before any
        look-up; the look-up is by HMAC digest, so its timing depends on the keyed digest,
        never on the secret."""
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
        if not self._api_access:
            return Verdict(None, "API access off")
        self._last_used[credential.authorized.id] = int(self._clock())
        return Verdict(credential.authorized, "valid")

    async def find_by_secret(self, *, secret: str) -> Token | None:
        """The token a pasted secret belongs to, whatever its state (for `/tokens search`)."""
        if not is_valid_secret(secret):
            return None
        credential = self._by_digest.get(self._hasher.digest(secret))
        if credential is None:
            return None
        try:
            return await self.get(token_id=credential.authorized.id)
        except TokenNotFound:
            return None

    async def flush_last_used(self) -> int:
        """Write the last-used times gathered since the previous flush; how many tokens."""
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

    # The API-access switch -------------------------------------------------------------

    @property
    def api_access(self) -> bool:
        return self._api_access

    async def set_api_access(self, *, actor: str, enabled: bool) -> bool:
        """Turn account API access on or off; whether anything changed."""
        value = "on" if enabled else "off"

        async def write(connection: aiosqlite.Connection) -> bool:
            # Read under the write lock: of two clicks at once, the second sees the first's
            # change and neither writes nor audits it again.
            async with connection.execute(
                "SELECT value FROM settings WHERE key = ?", (API_ACCESS_SETTING,)
            ) as cursor:
                current = await cursor.fetchone()
            if (current is not None and current[0] == "on") == enabled:
                return False
            await connection.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (API_ACCESS_SETTING, value),
            )
            await audit.append(
                connection,
                at=int(self._clock()),
                actor=actor,
                action="api_access",
                before={"api_access": "off" if enabled else "on"},
                after={"api_access": value},
            )
            return True

        def apply(_: bool) -> None:
            self._api_access = enabled

        return await self._database.transact(write, after_commit=apply)

    # Reading ---------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self._by_id)

    @property
    def newest_version(self) -> str:
        return self._api_versions[-1]

    async def get(self, *, token_id: int) -> Token:
        row = await self._database.fetch_one(f"{_SELECT} WHERE t.id = ?", (token_id,))
        if row is None:
            raise TokenNotFound()
        return self._with_last_used(_token(row))

    async def get_by_sid(self, *, sid: str) -> Token:
        row = await self._database.fetch_one(f"{_SELECT} WHERE t.sid = ?", (sid,))
        if row is None:
            raise TokenNotFound()
        return self._with_last_used(_token(row))

    async def page(
        self, *, filters: TokenFilter | None = None, offset: int = 0, limit: int = 10
    ) -> TokenPage:
        """A page of tokens, newest first, with the number of tokens the filters match."""
        filters = filters or TokenFilter()
        if offset < 0 or not 1 <= limit <= PAGE_MAX:
            raise ValueError("offset must be ≥ 0 and limit between 1 and 100")
        where, parameters = self._where(filters)
        rows = await self._database.fetch_all(
            f"{_SELECT}{where} ORDER BY t.created_at DESC, t.id DESC LIMIT ? OFFSET ?",
            (*parameters, limit, offset),
        )
        if filters.is_empty:
            # Exact (the map follows every commit) and free, where count(*) would read
            # the whole index on every first page.
            total = len(self._by_id)
        else:
            counted = await self._database.fetch_one(
                f"SELECT count(*) FROM tokens t{where}", parameters
            )
            total = counted[0] if counted else 0
        return TokenPage(
            tokens=tuple(self._with_last_used(_token(row)) for row in rows),
            total=total,
            offset=offset,
        )

    def _where(self, filters: TokenFilter) -> tuple[str, tuple[Any, ...]]:
        conditions: list[str] = []
        parameters: list[Any] = []
        if filters.name.strip():
            # instr, not LIKE: `%` and `_` in a search are ordinary characters.
            conditions.append("instr(t.name_key, ?) > 0")
            parameters.append(name_key(filters.name.strip()))
        if filters.created_on is not None:
            days = _BUCKET_DAYS.get(filters.created_on, 30)
            operator = "<" if filters.created_on is CreatedOn.MORE_THAN_30_DAYS else ">="
            conditions.append(f"t.created_at {operator} ?")
            parameters.append(int(self._clock()) - days * DAY)
        if filters.state is not None:
            conditions.append("t.enabled = ?")
            parameters.append(1 if filters.state is TokenState.ENABLED else 0)
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        return where, tuple(parameters)

    def _with_last_used(self, token: Token) -> Token:
        pending = self._last_used.get(token.id)
        if pending is None:
            return token
        known = token.last_used_at.timestamp() if token.last_used_at else 0
        if pending <= known:
            return token
        return replace(token, last_used_at=datetime.fromtimestamp(pending, UTC))

    # Creating --------------------------------------------------------------------------

    async def create(
        self,
        *,
        actor: str,
        name: str,
        description: str = "",
        access_rights: Iterable[str],
        primary_contact: str,
        request_key: str | None = None,
    ) -> IssuedToken:
        """A new enabled token on the newest API version, with its secret (shown once).

        Every change takes an optional `request_key`: a second change with the same key
        raises AlreadyApplied instead of applying again (a Slack retry, a double click)."""
        fields = self._clean(
            name=name,
            description=description,
            access_rights=access_rights,
            primary_contact=primary_contact,
        )
        secret = generate_secret()
        digest = self._hasher.digest(secret)
        now = int(self._clock())

        async def write(connection: aiosqlite.Connection) -> Token:
            await _claim(connection, request_key, now)
            return await _insert(
                connection,
                at=now,
                actor=actor,
                action="create",
                digest=digest,
                hint=secret_hint(secret),
                name=fields["name"],
                description=fields["description"],
                api_version=self._api_versions[-1],
                access_rights=tuple(fields["access_rights"]),
                primary_contact=fields["primary_contact"],
            )

        token = await self._database.transact(
            write, after_commit=lambda token: self._remember_token(token, digest)
        )
        return IssuedToken(token=token, secret=secret)

    async def duplicate(
        self, *, actor: str, token_id: int, row_version: int, request_key: str | None = None
    ) -> IssuedToken:
        """A copy named `<base> (copy)`, `(copy 2)`, …, enabled, with a new SID and secret."""
        secret = generate_secret()
        digest = self._hasher.digest(secret)
        now = int(self._clock())

        async def write(connection: aiosqlite.Connection) -> Token:
            await _claim(connection, request_key, now)
            source = await _check_version_in(connection, token_id, row_version)
            return await _insert(
                connection,
                at=now,
                actor=actor,
                action="duplicate",
                digest=digest,
                hint=secret_hint(secret),
                name=await _free_copy_name(connection, source.name),
                description=source.description,
                api_version=source.api_version,
                access_rights=source.access_rights,
                primary_contact=source.primary_contact,
                copy_of=source.sid,
            )

        token = await self._database.transact(
            write, after_commit=lambda token: self._remember_token(token, digest)
        )
        return IssuedToken(token=token, secret=secret)

    # Changing --------------------------------------------------------------------------

    async def edit(
        self,
        *,
        actor: str,
        token_id: int,
        row_version: int,
        edit: TokenEdit,
        request_key: str | None = None,
    ) -> TokenChange:
        """Apply the fields of `edit` that differ from the token; nothing else moves."""
        cleaned = self._clean(
            name=edit.name,
            description=edit.description,
            access_rights=edit.access_rights,
            primary_contact=edit.primary_contact,
        )

        def plan(token: Token, now: int) -> _Update | None:
            before, after = audit.changes(_snapshot(token), cleaned)
            if not after:
                return None
            columns = dict(after)
            if "name" in columns:
                columns["name_key"] = name_key(columns["name"])
            if "access_rights" in columns:
                columns["access_rights"] = json.dumps(columns["access_rights"])
            return _Update("edit", columns, before, after)

        return await self._change(
            actor=actor,
            token_id=token_id,
            row_version=row_version,
            plan=plan,
            request_key=request_key,
        )

    async def reset(
        self, *, actor: str, token_id: int, row_version: int, request_key: str | None = None
    ) -> IssuedToken:
        """A new secret; from the commit on, the previous one fails `verify`."""
        secret = generate_secret()
        digest = self._hasher.digest(secret)

        def plan(token: Token, now: int) -> _Update:
            return _Update(
                "reset",
                {"secret_hash": digest, "secret_hint": secret_hint(secret), "reset_at": now},
            )

        change = await self._change(
            actor=actor,
            token_id=token_id,
            row_version=row_version,
            plan=plan,
            digest=digest,
            request_key=request_key,
        )
        return IssuedToken(token=change.after, secret=secret)

    async def upgrade(
        self, *, actor: str, token_id: int, row_version: int, request_key: str | None = None
    ) -> Token:
        newest = self._api_versions[-1]

        def plan(token: Token, now: int) -> _Update:
            if token.api_version == newest:
                raise AlreadyNewestVersion(newest)
            return _Update(
                "upgrade",
                {"api_version": newest},
                {"api_version": token.api_version},
                {"api_version": newest},
            )

        change = await self._change(
            actor=actor,
            token_id=token_id,
            row_version=row_version,
            plan=plan,
            request_key=request_key,
        )
        return change.after

    async def set_enabled(self, *, actor: str, token_id: int, enabled: bool) -> TokenChange:
        """Enable or disable whatever state the caller last saw: idempotent, no version."""
        state = TokenState.ENABLED if enabled else TokenState.DISABLED

        def plan(token: Token, now: int) -> _Update | None:
            if token.state is state:
                return None
            return _Update(
                "enable" if enabled else "disable",
                {"enabled": int(enabled)},
                {"state": token.state.value},
                {"state": state.value},
            )

        return await self._change(actor=actor, token_id=token_id, row_version=None, plan=plan)

    async def delete(
        self, *, actor: str, token_id: int, row_version: int, request_key: str | None = None
    ) -> Token:
        """Remove the token completely; the audit log keeps its history."""
        now = int(self._clock())

        async def write(connection: aiosqlite.Connection) -> Token:
            await _claim(connection, request_key, now)
            token = await _check_version_in(connection, token_id, row_version)
            await connection.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
            await audit.append(
                connection,
                at=now,
                actor=actor,
                action="delete",
                token_sid=token.sid,
                token_name=token.name,
                before=_snapshot(token),
            )
            return token

        return await self._database.transact(write, after_commit=self._forget)

    async def _change(
        self,
        *,
        actor: str,
        token_id: int,
        row_version: int | None,
        plan: Callable[[Token, int], _Update | None],
        digest: bytes | None = None,
        request_key: str | None = None,
    ) -> TokenChange:
        """The one path of every in-place change: check the version, let `plan` decide
        from the current row what to write, write it with the audit record, and move the
        row version, all in one transaction."""
        now = int(self._clock())

        async def write(connection: aiosqlite.Connection) -> TokenChange:
            await _claim(connection, request_key, now)
            if row_version is None:
                before = await _read_token(connection, token_id)
            else:
                before = await _check_version_in(connection, token_id, row_version)
            update = plan(before, now)
            if update is None:
                current = self._with_last_used(before)
                return TokenChange(before=current, after=current)
            columns = update.columns | {"updated_at": now, "updated_by": actor}
            assignments = ", ".join(f"{column} = ?" for column in columns)
            try:
                await connection.execute(
                    f"UPDATE tokens SET {assignments}, row_version = row_version + 1 WHERE id = ?",
                    (*columns.values(), token_id),
                )
            except sqlite3.IntegrityError as error:
                if _name_conflict(error):
                    raise NameTaken() from None
                raise
            await audit.append(
                connection,
                at=now,
                actor=actor,
                action=update.action,
                token_sid=before.sid,
                token_name=before.name,
                before=update.before,
                after=update.after,
            )
            after = await _read_token(connection, token_id)
            return TokenChange(
                before=self._with_last_used(before), after=self._with_last_used(after)
            )

        def apply(change: TokenChange) -> None:
            if change.changed:
                known = self._by_id.get(token_id)
                new_digest = digest or (known.digest if known else None)
                if new_digest is not None:
                    self._remember_token(change.after, new_digest)

        return await self._database.transact(write, after_commit=apply)

    def field_errors(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        access_rights: Iterable[str] | None = None,
        primary_contact: str | None = None,
    ) -> dict[str, str]:
        """What `create` or `edit` would refuse in these fields (uniqueness aside)."""
        try:
            self._clean(
                name=name,
                description=description,
                access_rights=access_rights,
                primary_contact=primary_contact,
            )
        except InvalidInput as refused:
            return refused.errors
        return {}

    def _clean(self, **values: Any) -> dict[str, Any]:
        """The given fields in their stored form, or InvalidInput naming every bad one."""
        cleaners: dict[str, Callable[[Any], Any]] = {
            "name": clean_name,
            "description": clean_description,
            "access_rights": lambda rights: list(clean_access_rights(rights, self._scopes)),
            "primary_contact": clean_contact,
        }
        cleaned: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for key, value in values.items():
            if value is None:
                continue
            try:
                cleaned[key] = cleaners[key](value)
            except ValueError as error:
                errors[key] = str(error)
        if errors:
            raise InvalidInput(errors)
        return cleaned

    # The in-memory credentials ---------------------------------------------------------

    def _remember_token(self, token: Token, digest: bytes) -> None:
        self._remember(
            _Credential(
                digest=digest,
                enabled=token.enabled,
                authorized=AuthorizedToken(
                    id=token.id,
                    sid=token.sid,
                    name=token.name,
                    api_version=token.api_version,
                    access_rights=token.access_rights,
                ),
            )
        )

    def _remember(self, credential: _Credential) -> None:
        previous = self._by_id.get(credential.authorized.id)
        if previous is not None:
            del self._by_digest[previous.digest]
        self._by_id[credential.authorized.id] = credential
        self._by_digest[credential.digest] = credential

    def _forget(self, token: Token) -> None:
        credential = self._by_id.pop(token.id, None)
        if credential is not None:
            del self._by_digest[credential.digest]
        self._last_used.pop(token.id, None)


async def _insert(
    connection: aiosqlite.Connection,
    *,
    at: int,
    actor: str,
    action: str,
    digest: bytes,
    hint: str,
    name: str,
    description: str,
    api_version: str,
    access_rights: tuple[str, ...],
    primary_contact: str,
    copy_of: str | None = None,
) -> Token:
    try:
        cursor = await connection.execute(
            "INSERT INTO tokens (sid, name, name_key, description, enabled, api_version,"
            " access_rights, primary_contact, secret_hash, secret_hint, created_at, created_by,"
            " updated_at, updated_by, row_version)"
            " VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                _new_sid(),
                name,
                name_key(name),
                description,
                api_version,
                json.dumps(access_rights),
                primary_contact,
                digest,
                hint,
                at,
                actor,
                at,
                actor,
            ),
        )
    except sqlite3.IntegrityError as error:
        if _name_conflict(error):
            raise NameTaken() from None
        raise
    token = await _read_token(connection, cursor.lastrowid)
    after = _snapshot(token)
    if copy_of is not None:
        after["copy_of"] = copy_of
    await audit.append(
        connection,
        at=at,
        actor=actor,
        action=action,
        token_sid=token.sid,
        token_name=token.name,
        after=after,
    )
    return token


async def _claim(connection: aiosqlite.Connection, request_key: str | None, now: int) -> None:
    """Record `request_key` in the change's own transaction: a change that fails leaves no
    claim behind, and one that commits cannot be applied again."""
    if request_key is None:
        return
    await connection.execute("DELETE FROM applied_requests WHERE at < ?", (now - DAY,))
    try:
        await connection.execute(
            "INSERT INTO applied_requests (key, at) VALUES (?, ?)",
            (request_key[:REQUEST_KEY_MAX], now),
        )
    except sqlite3.IntegrityError:
        raise AlreadyApplied() from None


def _check_version(token: Token, row_version: int) -> None:
    if token.row_version != row_version:
        raise StaleVersion(changed_by=token.updated_by, changed_at=token.updated_at)


async def _read_token(connection: aiosqlite.Connection, token_id: int | None) -> Token:
    async with connection.execute(f"{_SELECT} WHERE t.id = ?", (token_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise TokenNotFound()
    return _token(tuple(row))


async def _check_version_in(
    connection: aiosqlite.Connection, token_id: int, row_version: int
) -> Token:
    token = await _read_token(connection, token_id)
    _check_version(token, row_version)
    return token


async def _free_copy_name(connection: aiosqlite.Connection, name: str) -> str:
    attempt = 1
    while True:
        candidate = copy_name(name, attempt)
        async with connection.execute(
            "SELECT 1 FROM tokens WHERE name_key = ?", (name_key(candidate),)
        ) as cursor:
            if await cursor.fetchone() is None:
                return candidate
        attempt += 1
