"""The token lifecycle: create, duplicate, edit, reset, upgrade, enable or disable, delete.

Each change is one transaction that checks the row version the caller saw, where it
carries one (StaleVersion when the token moved on), claims its request key
(storage/request_keys.py), writes the token and its audit record, and moves the row
version. In-place changes all go through
`_change` (the leak guard's disable, storage/leaks.py, through its `apply_update`);
create, duplicate and delete, which add or remove a row, have their own.
Every one updates the credential index from its `after_commit`, before the change is
returned to anyone: that is what keeps the auth check exact (storage/credential_index.py).

A Reset may leave the replaced secret working for a grace window, as the token's previous
secret (storage/retirement.py): one at most, never past the token's stop instant. A Reset,
End grace, Disable and Delete end a window for good; a change of a token whose window has
ended by time first retires it, as the scheduler would have.

A token whose current secret was posted in Slack is marked leaked (storage/leaks.py)
until a Reset replaces the secret: until then Enable is refused (TokenLeaked), and a Reset
leaves the leaked secret no grace window.

Create, duplicate and reset issue a secret and choose the expiry with it; edit may change
the expiry. Either way the expiry may not lie beyond the maximum lifetime counted from the
day the token's current secret was issued (storage/fields.py), so only a Reset lets a token
live on past that day.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from storage import audit
from storage.credential_index import CredentialIndex
from storage.credentials import SecretHasher, generate_secret, secret_hint
from storage.errors import (
    AlreadyNewestVersion,
    InvalidInput,
    NameTaken,
    StaleVersion,
    TokenLeaked,
)
from storage.fields import clean_token_fields, expiry_error, latest_expiry, name_key
from storage.models import (
    IDLE,
    KEEP,
    IssuedToken,
    KeepExpiry,
    Token,
    TokenChange,
    TokenEdit,
    stop_instant,
)
from storage.request_keys import claim
from storage.retirement import (
    grace_seconds,
    keep_current_as_previous,
    retire_current,
    retire_lapsed,
    retire_previous,
)
from storage.sql import Connection, Cursor, Database
from storage.token_reads import free_copy_name, read_token, read_token_at_version


@dataclass(frozen=True, slots=True)
class _NewToken:
    """What a created or duplicated token is made of, besides its SID and secret."""

    name: str
    description: str
    api_version: str
    access_rights: tuple[str, ...]
    primary_contact: str
    expires_on: date | None
    copy_of: str | None = None


@dataclass(slots=True)
class Update:
    """What one in-place change writes: columns, and the audit record's two halves."""

    action: str
    columns: dict[str, Any]
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    # The token's previous secret, if any, is retired.
    retire_previous: bool = False
    # A Reset's: the replaced secret keeps working until then as the previous one (None:
    # it is retired at once).
    current_until: int | None = None

    def end_window(self, token: Token) -> None:
        """Retire the token's previous secret, if it has one, recording the window's end."""
        if token.previous_until is not None:
            self.retire_previous = True
            self.before["previous_until"] = audit.iso_time(token.previous_until)
            self.after["previous_until"] = None


def _new_sid() -> str:
    return "TD" + secrets.token_hex(10).upper()


def _utc_date(moment: int) -> date:
    return datetime.fromtimestamp(moment, UTC).date()


def _seconds(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def _expiry_columns(expires_on: date | None, now: int) -> dict[str, Any]:
    """The columns of an expiry chosen at `now`."""
    stops_at = None if expires_on is None else int(stop_instant(expires_on).timestamp())
    return {"expires_at": stops_at, "expiry_set_at": now}


class TokenLifecycle:
    def __init__(
        self,
        database: Database,
        *,
        credentials: CredentialIndex,
        hasher: SecretHasher,
        api_versions: Sequence[str],
        scopes: Sequence[str],
        max_lifetime_days: int,
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._credentials = credentials
        self._hasher = hasher
        self._api_versions = tuple(api_versions)
        self._scopes = tuple(scopes)
        self._max_lifetime_days = max_lifetime_days
        self._clock = clock

    # Adding and removing tokens --------------------------------------------------------

    async def create(
        self,
        *,
        actor: str,
        name: str,
        description: str = "",
        access_rights: Iterable[str],
        primary_contact: str,
        expires_on: date | None,
        request_key: str | None = None,
    ) -> IssuedToken:
        """A new enabled token on the newest API version, with its secret (shown once),
        working through `expires_on` (a UTC date; None for no expiry, refused while
        lifetimes are capped).

        Every change takes an optional `request_key`: a second change with the same key
        raises AlreadyApplied instead of applying again (storage/request_keys.py)."""
        now = int(self._clock())
        errors: dict[str, str] = {}
        try:
            fields = clean_token_fields(
                self._scopes,
                name=name,
                description=description,
                access_rights=access_rights,
                primary_contact=primary_contact,
            )
        except InvalidInput as refused:
            errors = refused.errors
        expiry_refused = self._expiry_error(expires_on, now=now, secret_issued_on=_utc_date(now))
        if expiry_refused is not None:
            errors["expires_on"] = expiry_refused
        if errors:
            raise InvalidInput(errors)
        new = _NewToken(
            name=fields["name"],
            description=fields["description"],
            api_version=self._api_versions[-1],
            access_rights=tuple(fields["access_rights"]),
            primary_contact=fields["primary_contact"],
            expires_on=expires_on,
        )

        async def describe(_: Connection) -> _NewToken:
            return new

        return await self._issue(
            "create", actor=actor, request_key=request_key, now=now, new=describe
        )

    async def duplicate(
        self,
        *,
        actor: str,
        token_id: int,
        row_version: int,
        expires_on: date | None,
        request_key: str | None = None,
    ) -> IssuedToken:
        """A copy named `<base> (copy)`, `(copy 2)`, …, enabled, with a new SID and secret,
        working through `expires_on` (its secret is new: the cap counts from today)."""
        now = int(self._clock())
        self._check_expiry(expires_on, now=now, secret_issued_on=_utc_date(now))

        async def describe(connection: Connection) -> _NewToken:
            source = await read_token_at_version(connection, token_id, row_version)
            return _NewToken(
                name=await free_copy_name(connection, source.name),
                description=source.description,
                api_version=source.api_version,
                access_rights=source.access_rights,
                primary_contact=source.primary_contact,
                expires_on=expires_on,
                copy_of=source.sid,
            )

        return await self._issue(
            "duplicate", actor=actor, request_key=request_key, now=now, new=describe
        )

    async def _issue(
        self,
        action: str,
        *,
        actor: str,
        request_key: str | None,
        now: int,
        new: Callable[[Connection], Awaitable[_NewToken]],
    ) -> IssuedToken:
        """Insert the token `new` describes (read inside the transaction), with a new secret."""
        secret = generate_secret()
        digest = self._hasher.digest(secret)

        async def write(connection: Connection) -> Token:
            await claim(connection, request_key, now)
            fields = await new(connection)
            row = {
                "sid": _new_sid(),
                "name": fields.name,
                "name_key": name_key(fields.name),
                "description": fields.description,
                "enabled": 1,
                "api_version": fields.api_version,
                "access_rights": json.dumps(fields.access_rights),
                "primary_contact": fields.primary_contact,
                "secret_hash": digest,
                "secret_hint": secret_hint(secret),
                "created_at": now,
                "created_by": actor,
                "updated_at": now,
                "updated_by": actor,
                "row_version": 1,
                "last_active_at": now,
                **_expiry_columns(fields.expires_on, now),
            }
            cursor = await _write_row(
                connection,
                f"INSERT INTO tokens ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
                " RETURNING id",
                tuple(row.values()),
            )
            (token_id,) = await cursor.fetchone()
            token = await read_token(connection, token_id)
            after = audit.token_fields(token)
            if fields.copy_of is not None:
                after["copy_of"] = fields.copy_of
            await audit.append(
                connection,
                at=now,
                actor=actor,
                action=action,
                token_sid=token.sid,
                token_name=token.name,
                after=after,
            )
            return token

        token = await self._database.transact(
            write, after_commit=lambda token: self._credentials.remember(token, digest)
        )
        return IssuedToken(token=token, secret=secret)

    async def delete(
        self, *, actor: str, token_id: int, row_version: int, request_key: str | None = None
    ) -> Token:
        """Remove the token completely, its previous and retired secrets too; the audit
        log keeps its history."""
        now = int(self._clock())

        async def write(connection: Connection) -> Token:
            await claim(connection, request_key, now)
            await retire_lapsed(connection, now=now, token_id=token_id)
            token = await read_token_at_version(connection, token_id, row_version)
            # Its retired secrets go with it (ON DELETE CASCADE).
            await connection.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
            before = audit.token_fields(token)
            if token.previous_until is not None:
                before["previous_until"] = audit.iso_time(token.previous_until)
            await audit.append(
                connection,
                at=now,
                actor=actor,
                action="delete",
                token_sid=token.sid,
                token_name=token.name,
                before=before,
            )
            return token

        return await self._database.transact(write, after_commit=self._credentials.forget)

    # Changing tokens in place ----------------------------------------------------------

    async def edit(
        self,
        *,
        actor: str,
        token_id: int,
        row_version: int,
        edit: TokenEdit,
        request_key: str | None = None,
    ) -> TokenChange:
        """Apply the fields of `edit` that differ from the token; nothing else moves.

        A new expiry is checked only when it differs from the token's (an expired token's
        other fields stay editable); it counts from the current secret's issue day."""
        cleaned = clean_token_fields(
            self._scopes,
            name=edit.name,
            description=edit.description,
            access_rights=edit.access_rights,
            primary_contact=edit.primary_contact,
        )

        def plan(token: Token, now: int) -> Update | None:
            before, after = audit.changes(audit.token_fields(token), cleaned)
            columns = dict(after)
            if not isinstance(edit.expires_on, KeepExpiry) and edit.expires_on != token.expires_on:
                issued_on = token.secret_issued_at.date()
                self._check_expiry(edit.expires_on, now=now, secret_issued_on=issued_on)
                columns |= _expiry_columns(edit.expires_on, now)
                before["expires_on"] = audit.iso_date(token.expires_on)
                after["expires_on"] = audit.iso_date(edit.expires_on)
                # The previous secret never outlives the token's stop instant, even one
                # moved back: its window ends there.
                stops_at = columns["expires_at"]
                until = _seconds(token.previous_until)
                if until is not None and stops_at is not None and stops_at < until:
                    columns["previous_until"] = stops_at
                    before["previous_until"] = audit.iso_time(until)
                    after["previous_until"] = audit.iso_time(stops_at)
            if not columns:
                return None
            if "name" in columns:
                columns["name_key"] = name_key(columns["name"])
            if "access_rights" in columns:
                columns["access_rights"] = json.dumps(columns["access_rights"])
            return Update("edit", columns, before, after)

        return await self._change(
            actor=actor,
            token_id=token_id,
            row_version=row_version,
            plan=plan,
            request_key=request_key,
        )

    async def reset(
        self,
        *,
        actor: str,
        token_id: int,
        row_version: int,
        expires_on: date | None,
        grace: timedelta | None = None,
        request_key: str | None = None,
    ) -> IssuedToken:
        """A new secret, working through `expires_on` (the cap counts from today, the new
        secret's issue day).

        With a `grace` (at most 7 days; None or zero: none) while the current secret works,
        the replaced secret keeps working as the previous one until the window's end, or
        the stop instant the token had or is given, whichever comes first; otherwise it
        fails the auth check from the commit on. A previous secret the token already had
        is retired at once either way. A leaked secret gets no window: a `grace` then is
        refused (InvalidInput under `grace`); the Reset clears the leaked mark."""
        grace_for = grace_seconds(grace)
        secret = generate_secret()
        digest = self._hasher.digest(secret)

        def plan(token: Token, now: int) -> Update:
            self._check_expiry(expires_on, now=now, secret_issued_on=_utc_date(now))
            if grace_for and token.leaked_at is not None:
                raise InvalidInput(
                    {"grace": "the secret was posted in Slack: it must stop working at once"}
                )
            columns = _expiry_columns(expires_on, now)
            until = None
            if grace_for and token.current_secret_works_at(datetime.fromtimestamp(now, UTC)):
                ends = (now + grace_for, columns["expires_at"], _seconds(token.stops_at))
                until = min(moment for moment in ends if moment is not None)
            update = Update(
                "reset",
                {
                    "secret_hash": digest,
                    "secret_hint": secret_hint(secret),
                    "reset_at": now,
                    "last_active_at": now,
                    **columns,
                },
                retire_previous=token.previous_until is not None,
                current_until=until,
                after={
                    "grace_until": audit.iso_time(until),
                    "previous_retired": token.previous_until is not None,
                },
            )
            if token.leaked_at is not None:
                update.columns["leaked_at"] = None
                update.before["leaked"] = True
                update.after["leaked"] = False
            if expires_on != token.expires_on:
                update.before["expires_on"] = audit.iso_date(token.expires_on)
                update.after["expires_on"] = audit.iso_date(expires_on)
            return update

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

        def plan(token: Token, now: int) -> Update:
            if token.api_version == newest:
                raise AlreadyNewestVersion(newest)
            return Update(
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

    async def end_grace(
        self, *, actor: str, token_id: int, row_version: int, request_key: str | None = None
    ) -> TokenChange:
        """Retire the previous secret now. Idempotent: without an open window nothing is
        written nor audited, whatever version the caller saw; with one, StaleVersion if
        the token moved on since (it may be another window)."""

        def plan(token: Token, now: int) -> Update | None:
            if token.previous_until is None:
                return None
            if token.row_version != row_version:
                raise StaleVersion(changed_by=token.updated_by, changed_at=token.updated_at)
            update = Update("end_grace", {})
            update.end_window(token)
            return update

        return await self._change(
            actor=actor, token_id=token_id, row_version=None, plan=plan, request_key=request_key
        )

    async def set_enabled(
        self,
        *,
        actor: str,
        token_id: int,
        enabled: bool,
        reason: str | None = None,
        idle_since: datetime | None = None,
    ) -> TokenChange:
        """Enable or disable whatever state the caller last saw: idempotent, no version.

        Token Desk disables an unused token itself with `reason` `idle` (actor `tokendesk`)
        and `idle_since`, the activity it found the token idle since. That is checked inside
        the transaction: a token used, reset or enabled since then (its activity moved on,
        a use the auth check gathered but has not written yet included) is left as it is.
        An enable clears the reason and starts a new idle period; an enable of a token
        marked leaked (enabled or not) raises TokenLeaked until a Reset clears the mark."""
        if reason is not None and (enabled or reason != IDLE):
            raise ValueError(f"only a disable has a reason, and it is {IDLE!r}")
        if (reason == IDLE) != (idle_since is not None):
            raise ValueError("an idle disable, and only one, says since when the token is idle")
        pending_use = self._credentials.pending_use

        def plan(token: Token, now: int) -> Update | None:
            if enabled and token.leaked_at is not None:
                raise TokenLeaked()
            if token.enabled is enabled:
                return None
            if idle_since is not None:
                active = max(int(token.last_active_at.timestamp()), pending_use(token.id) or 0)
                if active != int(idle_since.timestamp()):
                    return None
            update = Update(
                "enable" if enabled else "disable",
                {"enabled": int(enabled), "disabled_reason": reason},
                {"state": audit.state_of(token)},
                {"state": "enabled" if enabled else "disabled"},
            )
            if enabled:
                active = max(int(token.last_active_at.timestamp()), now)
                update.columns |= {"enabled_at": now, "last_active_at": active}
            else:
                update.end_window(token)
            if reason is not None:
                update.after["reason"] = reason
            return update

        return await self._change(actor=actor, token_id=token_id, row_version=None, plan=plan)

    async def _change(
        self,
        *,
        actor: str,
        token_id: int,
        row_version: int | None,
        plan: Callable[[Token, int], Update | None],
        digest: bytes | None = None,
        request_key: str | None = None,
    ) -> TokenChange:
        """The one path of every in-place change: check the version, let `plan` decide
        from the current row what to write, write it with the audit record, and move the
        row version, all in one transaction. A window that ended by time is retired first
        (storage/retirement.py), so that `plan` sees none."""
        now = int(self._clock())
        with_last_used = self._credentials.with_last_used

        async def write(connection: Connection) -> TokenChange:
            await claim(connection, request_key, now)
            await retire_lapsed(connection, now=now, token_id=token_id)
            if row_version is None:
                before = await read_token(connection, token_id)
            else:
                before = await read_token_at_version(connection, token_id, row_version)
            update = plan(before, now)
            if update is None:
                current = with_last_used(before)
                return TokenChange(before=current, after=current)
            after = await apply_update(
                connection,
                token=before,
                update=update,
                actor=actor,
                now=now,
                new_secret=digest is not None,
            )
            return TokenChange(before=with_last_used(before), after=after)

        def apply(change: TokenChange) -> None:
            # Unchanged too: a window that ended by time may have been retired.
            self._credentials.remember(change.after, digest)

        change = await self._database.transact(write, after_commit=apply)
        # Uses not written yet are added once the index follows the change: a pending use
        # of a previous secret this change retired is then gone.
        return replace(change, after=with_last_used(change.after))

    # The field rules -------------------------------------------------------------------

    def field_errors(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        access_rights: Iterable[str] | None = None,
        primary_contact: str | None = None,
        expires_on: date | None | KeepExpiry = KEEP,
        secret_issued_on: date | None = None,
    ) -> dict[str, str]:
        """What `create`, `duplicate`, `reset` or `edit` would refuse in these fields
        (uniqueness aside). `expires_on` is checked against the maximum counted from
        `secret_issued_on`: the token's for an edit, today (the default) for a new secret."""
        errors: dict[str, str] = {}
        try:
            clean_token_fields(
                self._scopes,
                name=name,
                description=description,
                access_rights=access_rights,
                primary_contact=primary_contact,
            )
        except InvalidInput as refused:
            errors = refused.errors
        if not isinstance(expires_on, KeepExpiry):
            now = int(self._clock())
            refused_expiry = self._expiry_error(
                expires_on, now=now, secret_issued_on=secret_issued_on or _utc_date(now)
            )
            if refused_expiry is not None:
                errors["expires_on"] = refused_expiry
        return errors

    def _expiry_error(
        self, expires_on: date | None, *, now: int, secret_issued_on: date
    ) -> str | None:
        latest = latest_expiry(
            secret_issued_on=secret_issued_on, max_lifetime_days=self._max_lifetime_days
        )
        return expiry_error(
            expires_on,
            today=_utc_date(now),
            latest=latest,
            max_lifetime_days=self._max_lifetime_days,
        )

    def _check_expiry(self, expires_on: date | None, *, now: int, secret_issued_on: date) -> None:
        """InvalidInput, under the field `expires_on`, for an expiry the rules refuse."""
        refused = self._expiry_error(expires_on, now=now, secret_issued_on=secret_issued_on)
        if refused is not None:
            raise InvalidInput({"expires_on": refused})


async def apply_update(
    connection: Connection,
    *,
    token: Token,
    update: Update,
    actor: str,
    now: int,
    new_secret: bool = False,
) -> Token:
    """Write `update` of `token` (as read in this transaction, its lapsed window retired)
    with its audit record, and move the row version; the token as written. `new_secret`:
    the update replaces the current secret (a Reset), which is retired or kept as the
    previous one. The caller's `after_commit` updates the credential index."""
    if update.retire_previous:
        await retire_previous(connection, token_id=token.id, at=now)
    if new_secret:
        if update.current_until is None:
            await retire_current(connection, token_id=token.id, at=now)
        else:
            await keep_current_as_previous(
                connection, token_id=token.id, until=update.current_until
            )
    columns = update.columns | {"updated_at": now, "updated_by": actor}
    assignments = ", ".join(f"{column} = ?" for column in columns)
    await _write_row(
        connection,
        f"UPDATE tokens SET {assignments}, row_version = row_version + 1 WHERE id = ?",
        (*columns.values(), token.id),
    )
    await audit.append(
        connection,
        at=now,
        actor=actor,
        action=update.action,
        token_sid=token.sid,
        token_name=token.name,
        before=update.before,
        after=update.after,
    )
    return await read_token(connection, token.id)


async def _write_row(connection: Connection, sql: str, parameters: tuple[Any, ...]) -> Cursor:
    """Insert or update a token row; NameTaken when another token has that name."""
    try:
        return await connection.execute(sql, parameters)
    except sqlite3.IntegrityError as error:
        if "tokens.name_key" in str(error):
            raise NameTaken() from None
        raise
