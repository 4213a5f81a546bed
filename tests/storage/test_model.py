"""The store against a simple in-memory model of the token rules and the token actions.

A Hypothesis state machine drives one store per example through create, edit, duplicate,
reset (with a grace window or none), End grace now, upgrade, disable/enable, delete, the
API-access switch, the auth check (with current, previous and retired secrets), the list
with its filters and paging, look-ups by id, SID and secret, flushing last-used times, the
scheduler's upkeep of windows and retired secrets, reopening (possibly with a newer API
version in the catalog), the audit log and a clock that moves (by seconds, hours and days,
to either side of midnight UTC and of a window's end, too), and after every step compares
everything the store shows with what the model predicts.

The model is written from the product rules, not from the store's code: names are NFKC,
trimmed, one visible line of 1–100 characters, unique case-folded; a reference to a token
(its id, as a card's button carries it) names that token forever; a stale row version
changes nothing; the same request key is applied once (for a day). A token works through
its expiry date (UTC) and stops at the next 00:00 UTC; the expiry is never in the past,
none only without a maximum lifetime, and at most the maximum after the day its current
secret was issued. The State filter partitions the tokens (Enabled, Expired, Disabled);
Expiring soon is the enabled ones stopping within 7 days; Last used counts the uses the
auth check gathered as soon as it gathered them.

A Reset may leave the replaced secret working as the previous one for a grace window (1
hour, 24 hours, 3 days or 7 days; at most 7 days), only while the current secret works
(enabled, not expired; a grace otherwise is refused and nothing changes). The previous
secret passes the check (which says so) until the window's end or the token's stop
instant, whichever comes first, compared with the clock on every check; an Edit moving the
stop instant before the window's end ends the window there. One previous secret at most:
a Reset retires the earlier one at once. End grace now (idempotent; a stale version
changes nothing while a window is open), a second Reset, Disable and Delete end a window
for good; API access off only suspends both secrets. A window ended by time stays on the
card until a change of its token or the scheduler retires it, audited as ended by Token
Desk. A retired secret fails the check like an unknown one but is named as retired (so
that its presentations count) until its digest is purged, 30 days after its retirement,
or its token is deleted. The card shows the previous secret's hint, until when it works
and when it last passed (None: not since the Reset).

The same model runs on SQLite (a new file per example) and on PostgreSQL (one database of
the test cluster, as freshly migrated at the start of every example), where a second
instance may share the database instead of being refused.

Short by default (CI); `TOKENDESK_LONG_TESTS=1` runs many more and longer examples.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import unicodedata
import zlib
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from storage.credential_index import RETIRED
from storage.errors import (
    AlreadyApplied,
    AlreadyNewestVersion,
    InvalidInput,
    NameTaken,
    StaleVersion,
    StartupRefused,
    StoreError,
    TokenNotFound,
)
from storage.models import (
    IDLE,
    KEEP,
    AuthorizedToken,
    CreatedOn,
    IssuedToken,
    KeepExpiry,
    LastUsedFilter,
    SecretUsed,
    StateFilter,
    Token,
    TokenEdit,
    TokenFilter,
)
from storage.postgres import PostgresDatabase
from storage.store import Store
from tests.storage.conftest import DAY_SECONDS
from tests.storage.support_durability import KEY, SCOPES, START, FakeClock
from tests.store_support import token_by_sid, verify

LONG = os.environ.get("TOKENDESK_LONG_TESTS") == "1"
MAX_EXAMPLES = {"sqlite": 1000 if LONG else 50, "postgresql": 100 if LONG else 4}
STEPS = 50 if LONG else 30

T = TypeVar("T")
# The actor of what Token Desk does by itself.
SYSTEM_ACTOR = "tokendesk"

ALL_VERSIONS = ("v1", "v2", "v3")
NAME_MAX = 100
DESCRIPTION_MAX = 500
PAGE_MAX = 100
HOUR = 3600
MAX_GRACE = timedelta(days=7)
RETIRED_KEPT = 30 * DAY_SECONDS  # how long a retired secret's digest is kept

# ---------------------------------------------------------------------------------------
# The model's own reading of the field rules, independent of storage.fields.

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SECRET_RUN = re.compile(r"tdk_[0-9A-Za-z]{38}")
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
_COPY_SUFFIX = re.compile(r" \(copy(?: [1-9][0-9]*)?\)\Z")


def _checksum(random_part: str) -> str:
    number, digits = zlib.crc32(random_part.encode("ascii")), ""
    while number:
        number, remainder = divmod(number, 62)
        digits = _BASE62[remainder] + digits
    return digits.rjust(6, "0")


def _holds_secret(text: str) -> bool:
    return any(
        _checksum(match.group()[4:36]) == match.group()[36:] for match in _SECRET_RUN.finditer(text)
    )


PASTED_SECRET = "tdk_" + "Q" * 32 + _checksum("Q" * 32)
BAD_CHECKSUM = "tdk_" + "Q" * 32 + ("000000" if _checksum("Q" * 32) != "000000" else "000001")


def key_of(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def _visible(text: str, *, newlines: bool) -> bool:
    return not any(
        unicodedata.category(c) in _FORBIDDEN and not (newlines and c == "\n") for c in text
    )


def model_name(raw: str) -> str | None:
    """The stored form of a name, or None when the name is refused."""
    name = unicodedata.normalize("NFKC", raw).strip()
    if _holds_secret(raw) or _holds_secret(name):
        return None
    if not name or len(name) > NAME_MAX or not _visible(name, newlines=False):
        return None
    return name


def model_description(raw: str) -> str | None:
    text = unicodedata.normalize("NFKC", raw.replace("\r\n", "\n")).strip()
    if _holds_secret(raw) or _holds_secret(text):
        return None
    if len(text) > DESCRIPTION_MAX or not _visible(text, newlines=True):
        return None
    return text


def model_rights(chosen: frozenset[str]) -> tuple[str, ...] | None:
    if not chosen or not chosen <= frozenset(SCOPES):
        return None
    return tuple(scope for scope in SCOPES if scope in chosen)


def model_contact(user_id: str) -> str | None:
    return user_id if _USER_ID.fullmatch(user_id) else None


def model_copy_name(name: str, taken: set[str]) -> str:
    """`<base> (copy)`, `(copy 2)`, …: the first free one; `<base>` without an earlier copy
    suffix, shortened (and not left ending in a space) so that the result fits 100."""
    base = _COPY_SUFFIX.sub("", name)
    attempt = 1
    while True:
        suffix = " (copy)" if attempt == 1 else f" (copy {attempt})"
        candidate = base[: NAME_MAX - len(suffix)].rstrip() + suffix
        if key_of(candidate) not in taken:
            return candidate
        attempt += 1


def unused(*tokens: Token) -> tuple[Token, ...]:
    """Tokens as a change returns them: compared without their last-used times (and the
    activity they make), which some change results take from the database only, not from
    the times not yet flushed (`get` and `page` merge those; the model checks them there)."""
    epoch = datetime.fromtimestamp(0, UTC)
    return tuple(
        replace(token, last_used_at=None, last_active_at=epoch, previous_last_used_at=None)
        for token in tokens
    )


def in_any_pass_order(
    records: list[tuple[str, str | None, str]],
) -> list[tuple[str, str | None, str]]:
    """Audit records with each run of windows Token Desk ended sorted: a scheduler pass
    retires them in no particular order."""
    ordered: list[tuple[str, str | None, str]] = []
    run: list[tuple[str, str | None, str]] = []
    for record in records:
        if record[0] == "end_grace" and record[2] == SYSTEM_ACTOR:
            run.append(record)
        else:
            ordered += [*sorted(run, key=str), record]
            run = []
    return ordered + sorted(run, key=str)


def _at(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def utc_day(seconds: int) -> date:
    return datetime.fromtimestamp(seconds, UTC).date()


def stop_of(expires_on: date) -> int:
    """The stop instant: 00:00 UTC of the day after the expiry date."""
    return (
        int(datetime(expires_on.year, expires_on.month, expires_on.day, tzinfo=UTC).timestamp())
        + DAY_SECONDS
    )


# ---------------------------------------------------------------------------------------
# Inputs: small alphabets, so that collisions (also case-folded ones) happen often.

VALID_NAMES = [
    "alpha",
    "Alpha",
    "ALPHA",
    "ＡＬＰＨＡ",  # fullwidth: NFKC makes it ALPHA
    "beta",
    "ß",
    "ss",
    "SS",
    "Straße",
    "STRASSE",
    "x",
    "X",
    "x (copy)",
    "X (COPY 3)",
    "x (copy 1)",
    " gamma ",
    "gamma",
    "50% off",
    "a_b",
    # The last four are also seeded often: long names and copies are where duplicates
    # are named with care.
    "ﬀ" * 50,  # 100 characters once NFKC turns each ligature into "ff"
    "x (copy 2)",
    "y" * NAME_MAX,
    "z" * 92 + " " + "w" * 7,  # shortening its copy leaves a trailing space to drop
]
INVALID_NAMES = [
    "",
    "   ",
    "n" * (NAME_MAX + 1),
    "ﬀ" * 51,  # 51 characters typed, 102 once normalised
    "two\nlines",
    "bidi\u202eoverride",
    "zero\u200bwidth",
    f"key {PASTED_SECRET}",
]


def draw_bool(data: st.DataObject, label: str) -> bool:
    return data.draw(st.booleans(), label=label)


def mostly(valid: st.SearchStrategy[T], invalid: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """A valid value nine times out of ten, so that whole inputs are often accepted."""
    return st.integers(0, 9).flatmap(lambda n: invalid if n == 0 else valid)


NAMES = mostly(st.sampled_from(VALID_NAMES), st.sampled_from(INVALID_NAMES))
DESCRIPTIONS = mostly(
    st.sampled_from(
        ["", "Nightly exports", "  padded  ", "line one\r\nline two", "d" * DESCRIPTION_MAX]
    ),
    st.sampled_from(
        ["d" * (DESCRIPTION_MAX + 1), "tab\there", "bidi\u202e", f"uses {PASTED_SECRET}"]
    ),
)
RIGHTS = mostly(
    st.frozensets(st.sampled_from(SCOPES), min_size=1),
    st.sampled_from([frozenset(), frozenset({"admin:everything"}), frozenset({*SCOPES, "x:y"})]),
)
CONTACTS = mostly(
    st.sampled_from(["UCONTACT1", "UALICE001", "WBOB00001"]),
    st.sampled_from(["not-a-user", "B0T000001", "U1"]),
)
ACTORS = st.sampled_from(["UALICE001", "UBOB00001"])
REQUEST_KEYS = st.sampled_from([None] * 6 + ["k1", "k2"])
VERSION_DELTAS = st.sampled_from([0, 0, 0, -1, 1])
# An expiry as days from today (None: no expiry); around the maximum lifetimes chosen below.
EXPIRIES = st.sampled_from([None, -1, 0, 1, 2, 7, 8, 29, 30, 31, 365, 366])
EDITED_EXPIRIES = st.sampled_from(["keep", "keep", "keep"]) | EXPIRIES
MAX_LIFETIMES = st.sampled_from([0, 30, 365])
# The Reset confirmation's choices (None: stop immediately), a window more often than not;
# beyond 7 days or below zero is refused.
GRACE_CHOICES = (None, timedelta(hours=1), timedelta(hours=24), timedelta(days=3), MAX_GRACE)
GRACES = mostly(
    st.sampled_from(GRACE_CHOICES) | st.sampled_from(GRACE_CHOICES[1:]),
    st.sampled_from([MAX_GRACE + timedelta(seconds=1), timedelta(seconds=-1)]),
)
ADVANCES = st.sampled_from(
    [
        0,
        0.5,
        1,
        59,
        HOUR,
        2 * HOUR,
        DAY_SECONDS - 1,
        DAY_SECONDS,
        3 * DAY_SECONDS,
        6 * DAY_SECONDS,
        7 * DAY_SECONDS,
        23 * DAY_SECONDS,
        30 * DAY_SECONDS,
        31 * DAY_SECONDS,
    ]
)
SEARCHES = st.sampled_from(
    [
        "",
        "   ",
        "alpha",
        "ALP",
        "ＡＬＰ",
        "ß",
        "ss",
        "SS",
        "%",
        "_",
        "50%",
        "a_b",
        "copy",
        "(copy 2)",
        " gamma ",
        "x",
        "ff",
        "zzz",
    ]
)


# ---------------------------------------------------------------------------------------
# The model.


@dataclass(repr=False)
class ModelToken:
    id: int
    sid: str
    name: str
    description: str
    enabled: bool
    api_version: str
    access_rights: tuple[str, ...]
    primary_contact: str
    secret: str
    created_at: int
    created_by: str
    updated_at: int
    updated_by: str
    reset_at: int | None
    last_used_at: int | None
    row_version: int
    expires_on: date | None
    active_at: int  # creation, last enable or last reset; a use counts on top
    disabled_reason: str | None = None
    # The secret a Reset left working until `previous_until` (a window that ended by time
    # stays until a change or the scheduler retires it), and when it last passed.
    previous_secret: str | None = None
    previous_until: int | None = None
    previous_last_used_at: int | None = None

    def __repr__(self) -> str:
        return f"<token {self.name[:30]!r} id={self.id} v{self.row_version}>"

    def expected(self) -> Token:
        return Token(
            id=self.id,
            sid=self.sid,
            name=self.name,
            description=self.description,
            enabled=self.enabled,
            api_version=self.api_version,
            access_rights=self.access_rights,
            primary_contact=self.primary_contact,
            secret_hint=self.secret[-4:],
            created_at=datetime.fromtimestamp(self.created_at, UTC),
            created_by=self.created_by,
            updated_at=datetime.fromtimestamp(self.updated_at, UTC),
            updated_by=self.updated_by,
            reset_at=_at(self.reset_at),
            last_used_at=_at(self.last_used_at),
            row_version=self.row_version,
            expires_on=self.expires_on,
            last_active_at=datetime.fromtimestamp(max(self.active_at, self.last_used_at or 0), UTC),
            disabled_reason=self.disabled_reason,
            previous_secret_hint=None
            if self.previous_secret is None
            else self.previous_secret[-4:],
            previous_until=_at(self.previous_until),
            previous_last_used_at=_at(self.previous_last_used_at),
        )

    def authorized(self, secret_used: SecretUsed) -> AuthorizedToken:
        return AuthorizedToken(
            id=self.id,
            sid=self.sid,
            name=self.name,
            api_version=self.api_version,
            access_rights=self.access_rights,
            expires_at=None if self.stops_at is None else _at(self.stops_at),
            secret_used=secret_used,
        )

    @property
    def stops_at(self) -> int | None:
        return None if self.expires_on is None else stop_of(self.expires_on)

    @property
    def secret_issued_on(self) -> date:
        return utc_day(self.reset_at if self.reset_at is not None else self.created_at)

    def expired(self, now: int) -> bool:
        return self.stops_at is not None and self.stops_at <= now

    def works(self, now: int) -> bool:
        """Whether the current secret passes the check at `now`, API access aside."""
        return self.enabled and not self.expired(now)

    def window_open(self, now: int) -> bool:
        """Whether the previous secret works at `now` (its token's state aside)."""
        return self.previous_until is not None and now < self.previous_until

    def touch(self, actor: str, now: int) -> None:
        self.row_version += 1
        self.updated_at = now
        self.updated_by = actor


@dataclass(frozen=True)
class Check:
    """What the auth check answers for a secret: the token it passes as and which of its
    secrets it is, or a refusal, naming the token for a retired secret."""

    owner: ModelToken | None = None
    secret_used: SecretUsed = "current"
    retired_of: int | None = None

    def authorized(self) -> AuthorizedToken | None:
        return None if self.owner is None else self.owner.authorized(self.secret_used)


@dataclass(frozen=True)
class MigratedDatabase:
    """A PostgreSQL database that every example starts from as it was right after
    migrating: every row deleted (no instance registered), the rows the migrations wrote
    put back (the change counter at 0, the token counts), and the identities restarted.
    A new database per example would cost its creation and a migration besides; TRUNCATE
    makes new files for every table and index, several times slower than DELETE here."""

    url: str
    tables: tuple[str, ...]
    rows: tuple[tuple[str, tuple[tuple[Any, ...], ...]], ...]  # by table, those with rows

    @classmethod
    async def migrate(cls, url: str) -> MigratedDatabase:
        """Migrate the empty database at `url`, and note what the migrations wrote."""
        await (await PostgresDatabase.open(url)).close()
        connection = await asyncpg.connect(url)
        try:
            tables = tuple(
                row[0]
                for row in await connection.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
                )
            )
            rows = [
                (
                    table,
                    tuple(tuple(row) for row in await connection.fetch(f"SELECT * FROM {table}")),
                )
                for table in tables
            ]
        finally:
            await connection.close()
        return cls(url, tables, tuple((table, found) for table, found in rows if found))

    async def restore(self) -> None:
        """Back to what `migrate` left, in one transaction."""
        connection = await asyncpg.connect(self.url)
        try:
            async with connection.transaction():
                # Triggers and foreign-key checks off: the audit log's trigger refuses
                # DELETE, and the rows put back are the migrations' own, counted already.
                await connection.execute("SET LOCAL session_replication_role = replica")
                for table in self.tables:
                    await connection.execute(f"DELETE FROM {table}")
                for table, rows in self.rows:
                    await connection.copy_records_to_table(table, records=rows)
                await connection.execute(
                    "SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false)"
                    " FROM pg_sequences WHERE schemaname = 'public'"
                )
        finally:
            await connection.close()


class StoreModel(RuleBasedStateMachine):
    """The model of one store: on a new SQLite file, or on `database` as freshly migrated."""

    def __init__(self, database: MigratedDatabase | None = None) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.database = database
        self.directory: Path | None = None
        self.where: dict[str, Any]  # Store.open's database argument
        if database is None:
            self.directory = Path(tempfile.mkdtemp(prefix="tokendesk-model-"))
            self.where = {"path": self.directory / "tokendesk.db"}
        else:
            self.where = {"database_url": database.url}
        self.clock = FakeClock(START)
        self.store: Store | None = None
        self.versions: tuple[str, ...] = ALL_VERSIONS
        self.max_lifetime = 0
        # The model.
        self.tokens: dict[str, ModelToken] = {}  # the live tokens, by SID
        self.ever: list[ModelToken] = []  # every token ever created, deleted ones too
        self.secrets: list[tuple[str, str]] = []  # every secret issued, with its token's SID
        self.retired: dict[str, int] = {}  # retired secrets still kept → when retired
        self.api_access = False
        self.claims: dict[str, int] = {}  # request key → when a committed change used it
        self.unflushed: set[str] = set()  # SIDs used since the last flush
        self.audit: list[tuple[str, str | None, str]] = []  # (action, SID, actor)

    # Driving the async store ---------------------------------------------------------

    def run(self, awaitable: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(awaitable)

    @property
    def s(self) -> Store:
        assert self.store is not None
        return self.store

    def outcome(
        self,
        what: str,
        awaitable: Coroutine[Any, Any, T],
        expected: type[StoreError] | None,
        fields: set[str] | None = None,
    ) -> T | None:
        """Run a store call; check it raised exactly what the model expects (None: success)."""
        wanted = expected.__name__ if expected else "success"
        event(f"{what.split()[0].rstrip(':')}: {wanted}")  # shown by --hypothesis-show-statistics
        try:
            result = self.run(awaitable)
        except StoreError as error:
            assert type(error) is expected, f"{what}: store raised {error!r}, model: {wanted}"
            if expected is InvalidInput:
                assert isinstance(error, InvalidInput)
                assert set(error.errors) == fields, f"{what}: fields {error.errors}"
            return None
        assert expected is None, f"{what}: store succeeded ({result!r}), model: {wanted}"
        return result

    async def _open(self) -> Store:
        return await Store.open(
            **self.where,
            secret_key=KEY,
            api_versions=self.versions,
            scopes=SCOPES,
            clock=self.clock,
            flush_seconds=3600.0,
            max_lifetime_days=self.max_lifetime,
        )

    def teardown(self) -> None:
        try:
            if self.store is not None:
                self.run(self.store.close())
            self.run(self.loop.shutdown_asyncgens())
            self.run(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)

    # Model helpers ------------------------------------------------------------------

    @property
    def now(self) -> int:
        return int(self.clock.now)

    def claimed(self, request_key: str | None) -> bool:
        if request_key is None or request_key not in self.claims:
            return False
        return self.claims[request_key] >= self.now - DAY_SECONDS

    def expiry(self, days: int | None) -> date | None:
        return None if days is None else utc_day(self.now) + timedelta(days=days)

    def expiry_refused(self, expires_on: date | None, issued_on: date) -> bool:
        """Whether the rules refuse `expires_on` for a secret issued on `issued_on`."""
        if expires_on is None:
            return self.max_lifetime > 0
        if expires_on < utc_day(self.now):
            return True
        return self.max_lifetime > 0 and expires_on > issued_on + timedelta(self.max_lifetime)

    def claim(self, request_key: str | None) -> None:
        if request_key is not None:
            self.claims[request_key] = self.now

    def live_keys(self, *, besides: str | None = None) -> set[str]:
        return {key_of(t.name) for t in self.tokens.values() if t.sid != besides}

    def pick(self, data: st.DataObject) -> ModelToken:
        """A reference to a token as a card or a confirmation holds it: mostly a live one,
        sometimes one deleted since."""
        live = [t for t in self.ever if t.sid in self.tokens]  # creation order: replayable
        if live and data.draw(st.integers(0, 4), label="live?") > 0:
            return data.draw(st.sampled_from(live), label="token")
        return data.draw(st.sampled_from(self.ever), label="token")

    def refusal(
        self, token: ModelToken, row_version: int, request_key: str | None
    ) -> type[StoreError] | None:
        """What refuses a change that carries a row version: a request already applied, a
        token deleted since, or one changed since."""
        if self.claimed(request_key):
            return AlreadyApplied
        if token.sid not in self.tokens:
            return TokenNotFound
        if row_version != token.row_version:
            return StaleVersion
        return None

    def issued(
        self,
        issued: IssuedToken,
        actor: str,
        *,
        name: str,
        description: str,
        api_version: str,
        access_rights: tuple[str, ...],
        primary_contact: str,
        expires_on: date | None,
    ) -> ModelToken:
        """Add a token the store just created (by create or duplicate), after checking what
        the model cannot predict: its id, SID and secret are new ones."""
        token, secret, what = issued.token, issued.secret, f"new token {name!r}"
        assert token.sid not in {t.sid for t in self.ever}, f"{what}: SID {token.sid} reused"
        earlier = [t for t in self.ever if t.id == token.id]
        assert not earlier, (
            f"{what}: id {token.id} was the id of deleted token {earlier[0].sid}; a stale"
            " card button or confirmation for that token now acts on this one"
        )
        assert re.fullmatch(r"tdk_[0-9A-Za-z]{38}", secret) and _holds_secret(secret)
        assert all(secret != known for known, _ in self.secrets), f"{what}: secret reused"
        created = ModelToken(
            id=token.id,
            sid=token.sid,
            name=name,
            description=description,
            enabled=True,
            api_version=api_version,
            access_rights=access_rights,
            primary_contact=primary_contact,
            secret=secret,
            created_at=self.now,
            created_by=actor,
            updated_at=self.now,
            updated_by=actor,
            reset_at=None,
            last_used_at=None,
            row_version=1,
            expires_on=expires_on,
            active_at=self.now,
        )
        self.ever.append(created)
        self.tokens[created.sid] = created
        self.secrets.append((secret, created.sid))
        assert token == created.expected(), what
        return created

    def verdict(self, secret: str, sid: str | None) -> Check:
        """A secret of a deleted token, or one retired and purged, is unknown; a retired one
        (a previous one whose window has ended, too) is refused whatever the SID."""
        owner_sid = next((o for s, o in self.secrets if s == secret), None)
        owner = self.tokens.get(owner_sid) if owner_sid else None
        if owner is None:
            return Check()
        secret_used: SecretUsed = "current"
        if secret == owner.previous_secret:
            if not owner.window_open(self.now):
                return Check(retired_of=owner.id)
            secret_used = "previous"
        elif secret != owner.secret:
            return Check(retired_of=owner.id if secret in self.retired else None)
        if sid is not None and sid != owner.sid:
            return Check()
        if not owner.works(self.now) or not self.api_access:
            return Check()
        return Check(owner, secret_used)

    def check(self, secret: str, sid: str | None, what: str) -> Check:
        """Run the auth check, compare it with the model's, and count a pass as a use."""
        expected = self.verdict(secret, sid)
        verdict = self.s.credentials.check(secret, sid)
        assert verdict.token == expected.authorized(), what
        assert verdict.retired_token_id == expected.retired_of, f"{what}: {verdict.reason}"
        assert (verdict.reason == RETIRED) == (expected.retired_of is not None), what
        owner = expected.owner
        if expected.retired_of is not None:
            event("check: refused as retired")
        if owner is not None:
            event(f"check: passes as {expected.secret_used}")
            owner.last_used_at = self.now
            if expected.secret_used == "previous":
                owner.previous_last_used_at = self.now
            self.unflushed.add(owner.sid)
        return expected

    def lapse(self, token: ModelToken) -> None:
        """What a committed change of `token`, or the scheduler, does first: retire a
        previous secret whose window has ended by time, audited as ended by Token Desk."""
        if token.previous_until is not None and token.previous_until <= self.now:
            self.end_window(token, at=token.previous_until)
            self.audit.append(("end_grace", token.sid, SYSTEM_ACTOR))

    def end_window(self, token: ModelToken, *, at: int | None = None) -> None:
        """Retire the previous secret, if there is one (as of now, or `at`)."""
        if token.previous_secret is not None:
            self.retired[token.previous_secret] = self.now if at is None else at
        token.previous_secret = token.previous_until = token.previous_last_used_at = None

    # Set-up ------------------------------------------------------------------------------

    @initialize(
        versions=st.sampled_from([ALL_VERSIONS, ALL_VERSIONS[:1], ALL_VERSIONS[:2]]),
        max_lifetime=MAX_LIFETIMES,
        seed=st.lists(
            st.tuples(
                st.sampled_from(VALID_NAMES) | st.sampled_from(VALID_NAMES[-4:]),
                st.sampled_from([0, 1, 7, 23, 30]),
                st.sampled_from(GRACE_CHOICES),
            ),
            max_size=4,
        ),
        api_access=st.sampled_from([True, True, False]),
    )
    def open_store(
        self,
        versions: tuple[str, ...],
        max_lifetime: int,
        seed: list[tuple[str, int, timedelta | None]],
        api_access: bool,
    ) -> None:
        """Open the store (on PostgreSQL, on the database as freshly migrated; maybe on an
        older catalog, so that Upgrade has work to do; with or without a maximum lifetime)
        with a few tokens already, some created in the same second, some days apart (bucket
        boundaries), most reset at once with a grace window (some of which end before the
        example starts), so that every example has something to act on."""
        self.versions = versions
        self.max_lifetime = max_lifetime
        if self.database is not None:
            self.run(self.database.restore())
        self.store = self.run(self._open())
        self.set_api_access("UALICE001", api_access)
        for name, days, grace in seed:
            created = len(self.ever)
            self.create("UALICE001", name, "", frozenset(SCOPES[:1]), "UCONTACT1", 7, None)
            if len(self.ever) > created and grace is not None:
                token = self.ever[-1]
                self.reset_token(token, "UALICE001", 0, token.expires_on, grace, None)
            self.clock.advance(days * DAY_SECONDS)

    # Rules -------------------------------------------------------------------------------

    @rule(seconds=ADVANCES)
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(days=st.sampled_from([1, 2, 8]), offset=st.sampled_from([-1, 0, 1]))
    def advance_to_midnight(self, days: int, offset: int) -> None:
        """To a second before, at or after 00:00 UTC `days` days from now: where tokens stop."""
        midnight = (self.now // DAY_SECONDS + days) * DAY_SECONDS
        self.clock.now = midnight + offset

    @precondition(lambda self: any(t.previous_until is not None for t in self.tokens.values()))
    @rule(data=st.data(), offset=st.sampled_from([-1, 0, 1]))
    def advance_to_window_end(self, data: st.DataObject, offset: int) -> None:
        """To a second before, at or after the end of a window, if that is still ahead."""
        ends = [
            t.previous_until
            for t in self.ever  # creation order: replayable
            if t.previous_until is not None and t.sid in self.tokens
        ]
        end = data.draw(st.sampled_from(ends), label="end") + offset
        self.clock.now = max(self.clock.now, end)

    @rule(
        actor=ACTORS,
        raw_name=NAMES,
        raw_description=DESCRIPTIONS,
        raw_rights=RIGHTS,
        raw_contact=CONTACTS,
        expiry_days=EXPIRIES,
        request_key=REQUEST_KEYS,
    )
    def create(
        self,
        actor: str,
        raw_name: str,
        raw_description: str,
        raw_rights: frozenset[str],
        raw_contact: str,
        expiry_days: int | None,
        request_key: str | None,
    ) -> None:
        name = model_name(raw_name)
        description = model_description(raw_description)
        rights = model_rights(raw_rights)
        contact = model_contact(raw_contact)
        expires_on = self.expiry(expiry_days)
        bad = {
            field
            for field, value in (
                ("name", name),
                ("description", description),
                ("access_rights", rights),
                ("primary_contact", contact),
            )
            if value is None
        }
        if self.expiry_refused(expires_on, utc_day(self.now)):
            bad.add("expires_on")
        expected: type[StoreError] | None = None
        if bad:
            expected = InvalidInput
        elif self.claimed(request_key):
            expected = AlreadyApplied
        elif key_of(name or "") in self.live_keys():
            expected = NameTaken
        issued = self.outcome(
            f"create {raw_name!r}",
            self.s.tokens.create(
                actor=actor,
                name=raw_name,
                description=raw_description,
                access_rights=raw_rights,
                primary_contact=raw_contact,
                expires_on=expires_on,
                request_key=request_key,
            ),
            expected,
            bad,
        )
        if issued is None:
            return
        assert name is not None and description is not None
        assert rights is not None and contact is not None
        created = self.issued(
            issued,
            actor,
            name=name,
            description=description,
            api_version=self.versions[-1],
            access_rights=rights,
            primary_contact=contact,
            expires_on=expires_on,
        )
        self.claim(request_key)
        self.audit.append(("create", created.sid, actor))

    @precondition(lambda self: self.ever)
    @rule(
        data=st.data(),
        actor=ACTORS,
        raw_name=st.none() | NAMES,
        raw_description=st.none() | DESCRIPTIONS,
        raw_rights=st.none() | RIGHTS,
        raw_contact=st.none() | CONTACTS,
        expiry_days=EDITED_EXPIRIES,
        delta=VERSION_DELTAS,
        request_key=REQUEST_KEYS,
    )
    def edit(
        self,
        data: st.DataObject,
        actor: str,
        raw_name: str | None,
        raw_description: str | None,
        raw_rights: frozenset[str] | None,
        raw_contact: str | None,
        expiry_days: int | str | None,
        delta: int,
        request_key: str | None,
    ) -> None:
        token = self.pick(data)
        row_version = token.row_version + delta
        given: dict[str, Any] = {}
        if raw_name is not None:
            given["name"] = model_name(raw_name)
        if raw_description is not None:
            given["description"] = model_description(raw_description)
        if raw_rights is not None:
            given["access_rights"] = model_rights(raw_rights)
        if raw_contact is not None:
            given["primary_contact"] = model_contact(raw_contact)
        bad = {field for field, value in given.items() if value is None}
        wanted = {field: value for field, value in given.items() if value is not None}
        expires_on: date | None | KeepExpiry = (
            KEEP if isinstance(expiry_days, str) else self.expiry(expiry_days)
        )
        if not isinstance(expires_on, KeepExpiry):
            wanted["expires_on"] = expires_on
        changes = {f: v for f, v in wanted.items() if getattr(token, f) != v}
        expected: type[StoreError] | None = None
        if bad:
            expected = InvalidInput
        else:
            expected = self.refusal(token, row_version, request_key)
        if expected is None and "expires_on" in changes:
            if self.expiry_refused(changes["expires_on"], token.secret_issued_on):
                expected, bad = InvalidInput, {"expires_on"}
        if expected is None and "name" in changes:
            if key_of(changes["name"]) in self.live_keys(besides=token.sid):
                expected = NameTaken
        edit = TokenEdit(
            name=raw_name,
            description=raw_description,
            access_rights=raw_rights,
            primary_contact=raw_contact,
            expires_on=expires_on,
        )
        change = self.outcome(
            f"edit {token.sid} {edit!r}",
            self.s.tokens.edit(
                actor=actor,
                token_id=token.id,
                row_version=row_version,
                edit=edit,
                request_key=request_key,
            ),
            expected,
            bad,
        )
        if change is None:
            return
        self.claim(request_key)
        self.lapse(token)
        before = token.expected()
        if changes:
            for field, value in changes.items():
                setattr(token, field, value)
            # A stop instant moved before the window's end ends the window there.
            stops_at = token.stops_at
            if token.previous_until is not None and stops_at is not None:
                token.previous_until = min(token.previous_until, stops_at)
            token.touch(actor, self.now)
            self.audit.append(("edit", token.sid, actor))
        assert change.changed == bool(changes)
        assert unused(change.before, change.after) == unused(before, token.expected())

    @precondition(lambda self: self.ever)
    @rule(
        data=st.data(),
        actor=ACTORS,
        delta=VERSION_DELTAS,
        expiry_days=EXPIRIES,
        request_key=REQUEST_KEYS,
    )
    def duplicate(
        self,
        data: st.DataObject,
        actor: str,
        delta: int,
        expiry_days: int | None,
        request_key: str | None,
    ) -> None:
        source = self.pick(data)
        row_version = source.row_version + delta
        expires_on = self.expiry(expiry_days)
        expected: type[StoreError] | None = InvalidInput
        if not self.expiry_refused(expires_on, utc_day(self.now)):
            expected = self.refusal(source, row_version, request_key)
        issued = self.outcome(
            f"duplicate {source.sid} {source.name!r}",
            self.s.tokens.duplicate(
                actor=actor,
                token_id=source.id,
                row_version=row_version,
                expires_on=expires_on,
                request_key=request_key,
            ),
            expected,
            {"expires_on"},
        )
        name = model_copy_name(source.name, self.live_keys())
        if issued is None:
            return
        event(f"duplicate: named {name.rsplit('(', 1)[-1]}")
        copy = self.issued(
            issued,
            actor,
            name=name,
            description=source.description,
            api_version=source.api_version,
            access_rights=source.access_rights,
            primary_contact=source.primary_contact,
            expires_on=expires_on,
        )
        self.claim(request_key)
        self.audit.append(("duplicate", copy.sid, actor))

    @precondition(lambda self: self.ever)
    @rule(
        data=st.data(),
        actor=ACTORS,
        delta=VERSION_DELTAS,
        expiry_days=EXPIRIES,
        grace=GRACES,
        request_key=REQUEST_KEYS,
    )
    def reset(
        self,
        data: st.DataObject,
        actor: str,
        delta: int,
        expiry_days: int | None,
        grace: timedelta | None,
        request_key: str | None,
    ) -> None:
        self.reset_token(
            self.pick(data), actor, delta, self.expiry(expiry_days), grace, request_key
        )

    def reset_token(
        self,
        token: ModelToken,
        actor: str,
        delta: int,
        expires_on: date | None,
        grace: timedelta | None,
        request_key: str | None,
    ) -> None:
        """A grace beyond the choices is refused before anything else is looked at. A token
        whose current secret does not work (disabled or expired) gets no window: there is
        no working secret to keep."""
        row_version = token.row_version + delta
        expected, bad = self.refusal(token, row_version, request_key), {"expires_on"}
        if expected is None and self.expiry_refused(expires_on, utc_day(self.now)):
            expected = InvalidInput
        if grace is not None and not timedelta(0) <= grace <= MAX_GRACE:
            expected, bad = InvalidInput, {"grace"}
        issued = self.outcome(
            f"reset {token.sid} with grace {grace}",
            self.s.tokens.reset(
                actor=actor,
                token_id=token.id,
                row_version=row_version,
                expires_on=expires_on,
                grace=grace,
                request_key=request_key,
            ),
            expected,
            bad,
        )
        if issued is None:
            return
        assert _holds_secret(issued.secret)
        assert all(issued.secret != known for known, _ in self.secrets), "reset: secret reused"
        self.lapse(token)
        self.end_window(token)
        if grace and token.works(self.now):
            ends = [self.now + int(grace.total_seconds()), token.stops_at]
            if expires_on is not None:
                ends.append(stop_of(expires_on))
            token.previous_secret = token.secret
            token.previous_until = min(end for end in ends if end is not None)
            event(f"reset: grace {grace}")
        else:
            self.retired[token.secret] = self.now
        token.secret = issued.secret
        token.reset_at = self.now
        token.active_at = self.now
        token.expires_on = expires_on
        token.touch(actor, self.now)
        self.secrets.append((issued.secret, token.sid))
        self.claim(request_key)
        self.audit.append(("reset", token.sid, actor))
        assert unused(issued.token) == unused(token.expected())

    @precondition(lambda self: self.ever)
    @rule(data=st.data(), actor=ACTORS, delta=VERSION_DELTAS, request_key=REQUEST_KEYS)
    def end_grace(
        self, data: st.DataObject, actor: str, delta: int, request_key: str | None
    ) -> None:
        """End grace now: retires an open window's previous secret at the version the
        caller saw; without an open window it changes nothing, whatever the version."""
        windows = [t for t in self.ever if t.previous_secret is not None and t.sid in self.tokens]
        if windows and draw_bool(data, "with a window?"):
            token = data.draw(st.sampled_from(windows), label="token")
        else:
            token = self.pick(data)
        row_version = token.row_version + delta
        expected = self.refusal(token, row_version, request_key)
        if expected is StaleVersion and not token.window_open(self.now):
            expected = None
        change = self.outcome(
            f"end_grace {token.sid}",
            self.s.tokens.end_grace(
                actor=actor, token_id=token.id, row_version=row_version, request_key=request_key
            ),
            expected,
        )
        if change is None:
            return
        self.claim(request_key)
        self.lapse(token)
        before = token.expected()
        moved = token.previous_secret is not None
        if moved:
            self.end_window(token)
            token.touch(actor, self.now)
            self.audit.append(("end_grace", token.sid, actor))
        assert change.changed == moved
        assert unused(change.before, change.after) == unused(before, token.expected())

    @precondition(lambda self: self.ever)
    @rule(data=st.data(), actor=ACTORS, delta=VERSION_DELTAS, request_key=REQUEST_KEYS)
    def upgrade(self, data: st.DataObject, actor: str, delta: int, request_key: str | None) -> None:
        token = self.pick(data)
        row_version = token.row_version + delta
        expected = self.refusal(token, row_version, request_key)
        if expected is None and token.api_version == self.versions[-1]:
            expected = AlreadyNewestVersion
        upgraded = self.outcome(
            f"upgrade {token.sid} from {token.api_version}",
            self.s.tokens.upgrade(
                actor=actor, token_id=token.id, row_version=row_version, request_key=request_key
            ),
            expected,
        )
        if upgraded is None:
            return
        self.lapse(token)
        token.api_version = self.versions[-1]
        token.touch(actor, self.now)
        self.claim(request_key)
        self.audit.append(("upgrade", token.sid, actor))
        assert unused(upgraded) == unused(token.expected())

    @precondition(lambda self: self.ever)
    @rule(
        data=st.data(),
        actor=ACTORS,
        enabled=st.booleans(),
        idle=st.booleans(),
        stale=st.booleans(),
    )
    def set_enabled(
        self, data: st.DataObject, actor: str, enabled: bool, idle: bool, stale: bool
    ) -> None:
        """Enable, disable, or disable as Token Desk does an unused token: reason idle, with
        the activity it found the token idle since; if that moved on since (`stale`), the
        disable changes nothing."""
        token = self.pick(data)
        idle = idle and not enabled
        reason = IDLE if idle else None
        active = max(token.active_at, token.last_used_at or 0)
        idle_since = datetime.fromtimestamp(active - stale, UTC) if idle else None
        expected = None if token.sid in self.tokens else TokenNotFound
        change = self.outcome(
            f"{'enable' if enabled else 'disable'} {token.sid}",
            self.s.tokens.set_enabled(
                actor=actor,
                token_id=token.id,
                enabled=enabled,
                reason=reason,
                idle_since=idle_since,
            ),
            expected,
        )
        if change is None:
            return
        self.lapse(token)
        before = token.expected()
        moved = token.enabled != enabled and not (idle and stale)
        if moved:
            token.enabled = enabled
            token.disabled_reason = reason
            if enabled:
                token.active_at = max(token.active_at, self.now)
            else:
                self.end_window(token)
            token.touch(actor, self.now)
            self.audit.append(("enable" if enabled else "disable", token.sid, actor))
        assert change.changed == moved
        assert unused(change.before, change.after) == unused(before, token.expected())

    @precondition(lambda self: self.ever)
    @rule(data=st.data(), actor=ACTORS, delta=VERSION_DELTAS, request_key=REQUEST_KEYS)
    def delete(self, data: st.DataObject, actor: str, delta: int, request_key: str | None) -> None:
        token = self.pick(data)
        row_version = token.row_version + delta
        expected = self.refusal(token, row_version, request_key)
        deleted = self.outcome(
            f"delete {token.sid}",
            self.s.tokens.delete(
                actor=actor, token_id=token.id, row_version=row_version, request_key=request_key
            ),
            expected,
        )
        if deleted is None:
            return
        self.lapse(token)
        assert unused(deleted) == unused(token.expected())
        del self.tokens[token.sid]
        # Its secrets, retired ones too, are unknown from now on.
        for secret, owner_sid in self.secrets:
            if owner_sid == token.sid:
                self.retired.pop(secret, None)
        self.unflushed.discard(token.sid)
        self.claim(request_key)
        self.audit.append(("delete", token.sid, actor))

    @rule(actor=ACTORS, enabled=st.booleans())
    def set_api_access(self, actor: str, enabled: bool) -> None:
        changed = self.run(self.s.account.set_api_access(actor=actor, enabled=enabled))
        assert changed == (enabled != self.api_access)
        if changed:
            self.api_access = enabled
            self.audit.append(("api_access", None, actor))

    def draw_secret(self, data: st.DataObject) -> tuple[str, str]:
        """An issued secret with its token's SID: often a previous one, if there is one."""
        previous = [
            (t.previous_secret, t.sid)
            for t in self.ever  # creation order: replayable
            if t.previous_secret is not None and t.sid in self.tokens
        ]
        if previous and draw_bool(data, "previous?"):
            return data.draw(st.sampled_from(previous), label="previous secret")
        return data.draw(st.sampled_from(self.secrets), label="secret")

    @precondition(lambda self: self.secrets)
    @rule(
        data=st.data(),
        garbage=st.sampled_from([None, None, None, "", BAD_CHECKSUM, PASTED_SECRET, "tdk_x"]),
        which_sid=st.sampled_from(["none", "owner", "owner", "other", "lowercase"]),
    )
    def verify(self, data: st.DataObject, garbage: str | None, which_sid: str) -> None:
        secret, owner_sid = self.draw_secret(data)
        if garbage is not None:
            secret = garbage
        sid: str | None = {
            "none": None,
            "owner": owner_sid,
            "other": next((t.sid for t in self.ever if t.sid != owner_sid), "TDNOPE"),
            "lowercase": owner_sid.lower(),
        }[which_sid]
        self.check(secret, sid, f"verify sid={which_sid}")

    @precondition(lambda self: self.secrets)
    @rule(data=st.data())
    def find_by_secret(self, data: st.DataObject) -> None:
        """The token a pasted secret is the current or previous one of, whatever its state."""
        secret, owner_sid = self.draw_secret(data)
        owner = self.tokens.get(owner_sid)
        found = owner is not None and secret in (owner.secret, owner.previous_secret)
        expected = owner.expected() if owner is not None and found else None
        assert self.run(self.s.token_reads.find_by_secret(secret=secret)) == expected

    @precondition(lambda self: self.ever)
    @rule(data=st.data(), by_sid=st.booleans())
    def get(self, data: st.DataObject, by_sid: bool) -> None:
        token = self.pick(data)
        alive = token.sid in self.tokens
        found = self.outcome(
            f"get {token.sid} (id {token.id}) by {'SID' if by_sid else 'id'}",
            token_by_sid(self.s, token.sid)
            if by_sid
            else self.s.token_reads.get(token_id=token.id),
            None if alive else TokenNotFound,
        )
        if alive:
            assert found == token.expected()

    @rule(
        search=SEARCHES,
        created_on=st.none() | st.sampled_from(CreatedOn),
        state=st.none() | st.sampled_from(StateFilter),
        last_used=st.none() | st.sampled_from(LastUsedFilter),
        offset=st.integers(0, 12),
        limit=st.integers(1, 12) | st.just(PAGE_MAX),
    )
    def list_page(
        self,
        search: str,
        created_on: CreatedOn | None,
        state: StateFilter | None,
        last_used: LastUsedFilter | None,
        offset: int,
        limit: int,
    ) -> None:
        filters = TokenFilter(name=search, created_on=created_on, state=state, last_used=last_used)
        chosen = self.newest_first([t for t in self.tokens.values() if self.matches(t, filters)])
        page = self.run(self.s.token_reads.page(filters=filters, offset=offset, limit=limit))
        assert page.total == len(chosen), f"total for {filters!r}"
        assert page.offset == offset
        assert page.tokens == tuple(t.expected() for t in chosen[offset : offset + limit])
        if created_on is not None and chosen:
            event(f"list: {created_on.value} matched some")

    @rule()
    def flush_last_used(self) -> None:
        assert self.run(self.s.credentials.flush_last_used()) == len(self.unflushed)
        self.unflushed.clear()

    @rule()
    def scheduler_upkeep(self) -> None:
        """The scheduler's pass over windows and retired secrets: it retires the windows
        that ended by time and purges the digests retired more than 30 days ago."""
        lapsed = [
            t
            for t in self.tokens.values()
            if t.previous_until is not None and t.previous_until <= self.now
        ]
        assert self.run(self.s.expiry.retire_lapsed_windows()) == len(lapsed)
        for token in lapsed:
            self.lapse(token)
        purged = [s for s, at in self.retired.items() if at < self.now - RETIRED_KEPT]
        assert self.run(self.s.expiry.purge_retired()) == len(purged)
        event(f"scheduler: windows retired {bool(lapsed)}, digests purged {bool(purged)}")
        for secret in purged:
            del self.retired[secret]

    @rule(newer_version=st.booleans())
    def reopen(self, newer_version: bool) -> None:
        """Close and open again, maybe with a newer version. A second instance is refused
        on SQLite (one instance per file); on PostgreSQL it shares the database, and
        shows what this one does."""
        second = self.outcome(
            "reopen: a second instance",
            self._open(),
            None if self.database is not None else StartupRefused,
        )
        if second is not None:
            try:
                assert second.token_reads.count == len(self.tokens)
                assert second.account.api_access == self.api_access
            finally:
                self.run(second.close())
        self.run(self.s.close())
        self.store = None
        if newer_version and len(self.versions) < len(ALL_VERSIONS):
            self.versions = ALL_VERSIONS[: len(self.versions) + 1]
        self.store = self.run(self._open())
        self.unflushed.clear()

    @rule()
    def audit_log(self) -> None:
        async def everything() -> list[tuple[str, str | None, str]]:
            return [(e.action, e.token_sid, e.actor) async for e in self.s.audit.since()]

        assert in_any_pass_order(self.run(everything())) == in_any_pass_order(self.audit)

    # Invariants ------------------------------------------------------------------------

    def matches(self, token: ModelToken, filters: TokenFilter) -> bool:
        """Name part (case-folded, `%` and `_` literal), created-on bucket in whole seconds
        (within the last 7 or 30 days inclusive, or earlier than 30 days ago), and state."""
        part = key_of(filters.name.strip())
        if part and part not in key_of(token.name):
            return False
        age = self.now - token.created_at
        if filters.created_on is CreatedOn.LAST_7_DAYS and age > 7 * DAY_SECONDS:
            return False
        if filters.created_on is CreatedOn.LAST_30_DAYS and age > 30 * DAY_SECONDS:
            return False
        if filters.created_on is CreatedOn.MORE_THAN_30_DAYS and age <= 30 * DAY_SECONDS:
            return False
        return self.state_matches(token, filters.state) and self.use_matches(
            token, filters.last_used
        )

    def state_matches(self, token: ModelToken, state: StateFilter | None) -> bool:
        expired = token.expired(self.now)
        if state is StateFilter.ENABLED:
            return token.enabled and not expired
        if state is StateFilter.EXPIRED:
            return token.enabled and expired
        if state is StateFilter.DISABLED:
            return not token.enabled
        if state is StateFilter.EXPIRING_SOON:
            return (
                token.enabled
                and token.expires_on is not None
                and self.now < stop_of(token.expires_on) <= self.now + 7 * DAY_SECONDS
            )
        return True

    def use_matches(self, token: ModelToken, last_used: LastUsedFilter | None) -> bool:
        if last_used is LastUsedFilter.NEVER:
            return token.last_used_at is None
        if last_used is not None:
            days = 30 if last_used is LastUsedFilter.NOT_30_DAYS else 90
            return token.last_used_at is None or token.last_used_at < self.now - days * DAY_SECONDS
        return True

    def newest_first(self, tokens: list[ModelToken]) -> list[ModelToken]:
        return sorted(tokens, key=lambda t: (t.created_at, t.id), reverse=True)

    @invariant()
    def everything_matches(self) -> None:
        if self.store is None:
            return
        shown: list[Token] = []
        while True:
            page = self.run(self.s.token_reads.page(offset=len(shown), limit=PAGE_MAX))
            assert page.total == len(self.tokens)
            shown.extend(page.tokens)
            if len(page.tokens) < PAGE_MAX:
                break
        assert shown == [t.expected() for t in self.newest_first(list(self.tokens.values()))]
        assert self.s.token_reads.count == len(self.tokens)
        assert self.s.account.api_access == self.api_access
        assert self.s.token_reads.newest_version == self.versions[-1]
        for token in shown:
            assert model_name(token.name) == token.name, f"stored name {token.name!r}"
        assert len({key_of(t.name) for t in shown}) == len(shown)
        # Every filter on its own, at this moment (bucket boundaries included).
        for filters in (
            [TokenFilter(created_on=c) for c in CreatedOn]
            + [TokenFilter(state=s) for s in StateFilter]
            + [TokenFilter(last_used=u) for u in LastUsedFilter]
            + [TokenFilter(state=StateFilter.ENABLED, last_used=LastUsedFilter.NEVER)]
            + [TokenFilter(name=n) for n in ("%", "_", "ß", "ＡＬＰ", "(copy 2)")]
        ):
            page = self.run(self.s.token_reads.page(filters=filters, limit=PAGE_MAX))
            matching = self.newest_first(
                [t for t in self.tokens.values() if self.matches(t, filters)]
            )
            assert [t.sid for t in page.tokens] == [t.sid for t in matching], f"{filters!r}"
            assert page.total == len(matching), f"total for {filters!r}"
        # The State filter's first three values partition the tokens.
        parts = [
            {
                t.sid
                for t in self.run(
                    self.s.token_reads.page(filters=TokenFilter(state=s), limit=PAGE_MAX)
                ).tokens
            }
            for s in (StateFilter.ENABLED, StateFilter.EXPIRED, StateFilter.DISABLED)
        ]
        assert sum(len(part) for part in parts) == len(self.tokens)
        assert set().union(*parts) == {t.sid for t in shown}

    @invariant()
    def current_and_previous_secrets_only(self) -> None:
        """Of the secrets ever issued for a token, its current one passes the check (with
        API access on and the token enabled, not expired), and so does its previous one
        while its window is open; no other secret does, and a retired one is refused as
        retired (with any SID) until its digest is purged."""
        if self.store is None:
            return
        passing: dict[str, list[str]] = {}
        for secret, owner_sid in self.secrets:
            passed = self.check(secret, None, f"check of a secret of {owner_sid}")
            assert verify(self.s, secret, owner_sid) == passed.authorized(), "with its own SID"
            for other in ("TDNOPE", owner_sid.lower(), *(t.sid for t in self.ever[:3])):
                if other != owner_sid:
                    self.check(secret, other, f"check of a secret of {owner_sid} with SID {other}")
            if passed.owner is not None:
                passing.setdefault(passed.owner.sid, []).append(passed.secret_used)
        usable = [t for t in self.tokens.values() if t.works(self.now) and self.api_access]
        assert {sid: sorted(used) for sid, used in passing.items()} == {
            t.sid: ["current", "previous"] if t.window_open(self.now) else ["current"]
            for t in usable
        }
        for token in self.tokens.values():
            if token.previous_until is not None and token.stops_at is not None:
                assert token.previous_until <= token.stops_at, f"{token}: window past its stop"


def model_settings(backend: str) -> settings:
    return settings(
        max_examples=MAX_EXAMPLES[backend],
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        # No explain phase: for a machine this size it would rerun a failure for minutes.
        phases=[phase for phase in Phase if phase is not Phase.explain],
    )


def test_store_model(backend: str, request: pytest.FixtureRequest) -> None:
    """The model on SQLite, and on a database of the test PostgreSQL cluster."""
    if backend == "sqlite":
        run_state_machine_as_test(StoreModel, settings=model_settings(backend))
        return
    database = asyncio.run(MigratedDatabase.migrate(request.getfixturevalue("postgres_url")))

    class StoreModelOnPostgres(StoreModel):
        def __init__(self) -> None:
            super().__init__(database)

    run_state_machine_as_test(StoreModelOnPostgres, settings=model_settings(backend))


async def database_contents(url: str) -> dict[str, list[str]]:
    """Every table's rows, the sequences' state and the schema's objects, each sorted."""
    queries = {
        "columns": "SELECT table_name, column_name, ordinal_position, data_type,"
        " column_default, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'public'",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "triggers": "SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger"
        " WHERE NOT tgisinternal",
        "sequences": "SELECT sequencename, last_value FROM pg_sequences"
        " WHERE schemaname = 'public'",
    }
    connection = await asyncpg.connect(url)
    try:
        for (table,) in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ):
            queries[table] = f"SELECT * FROM {table}"
        return {
            what: sorted(repr(tuple(row)) for row in await connection.fetch(query))
            for what, query in queries.items()
        }
    finally:
        await connection.close()


async def test_a_restored_database_is_as_it_was_migrated(postgres_url: str) -> None:
    """What every example on PostgreSQL starts from, after a store has used the database:
    the same rows, sequences and schema as right after migrating."""
    used = await MigratedDatabase.migrate(postgres_url)
    migrated = await database_contents(used.url)
    store = await Store.open(
        database_url=used.url,
        secret_key=KEY,
        api_versions=ALL_VERSIONS,
        scopes=SCOPES,
        clock=FakeClock(START),
        max_lifetime_days=0,
    )
    try:
        await store.account.set_api_access(actor="UALICE001", enabled=True)
        kept, gone = [
            await store.tokens.create(
                actor="UALICE001",
                name=name,
                access_rights=SCOPES[:1],
                primary_contact="UCONTACT1",
                expires_on=None,
                request_key=name,
            )
            for name in ("kept", "gone")
        ]
        assert store.credentials.check(kept.secret).token is not None
        assert await store.credentials.flush_last_used() == 1
        await store.tokens.reset(
            actor="UALICE001",
            token_id=kept.token.id,
            row_version=kept.token.row_version,
            expires_on=None,
            grace=timedelta(hours=1),
        )
        await store.tokens.delete(
            actor="UALICE001", token_id=gone.token.id, row_version=gone.token.row_version
        )
    finally:
        await store.close()
    assert await database_contents(used.url) != migrated
    await used.restore()
    assert await database_contents(used.url) == migrated
