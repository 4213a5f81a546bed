"""Crash safety: the app killed with SIGKILL at a random point of a burst of changes loses
no acknowledged change and leaves none half-applied.

Each trial runs this module as a child process (`python -m tests.test_crash_safety`) that
reads the app's environment and opens the store as `python -m bot` does (`Settings`,
`configure_logging`, then `bot.settings.store_options`, which spares the child the
imports of Slack Bolt and aiohttp that would triple its start-up), then changes tokens
through the store until it is killed: creates, duplicates, resets, edits, disables and
enables, upgrades, deletes, API access on and off, replayed and stale requests, auth checks
and last-used flushes. Before each step it prints what it is about to do, and after the
store acknowledged it, what the store answered (secrets included: the pipe is the test's
own). The parent kills it after a random delay, some kills landing while the store opens and
migrates a fresh database, reopens the database in-process and compares it, field by field,
with what the child was told: every acknowledged change is there, the one step in flight at
the kill is applied whole or not at all, and the audit log, the applied request keys and the
secrets agree.

`TOKENDESK_LONG_TESTS=1` runs 200 trials instead of 20; `TOKENDESK_CRASH_SEED` replays a
run's random choices (the kill timing itself cannot be replayed).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

import storage.database
from bench.seed import insert_rows, make_seed, spread_over_days
from bot.logs import configure_logging
from bot.settings import Settings, store_options
from storage.credential_index import CredentialIndex
from storage.credentials import generate_secret
from storage.database import configure
from storage.errors import AlreadyApplied, NameTaken, StaleVersion
from storage.fields import copy_name, name_key
from storage.models import Token, TokenEdit
from storage.schema import LATEST_VERSION, migrate
from storage.store import Store
from tests.storage.support_durability import (
    ACTOR,
    KEY,
    SCOPES,
    VERSIONS,
    opened_store,
    plain_connection,
    python_env,
    user_version,
)
from tests.storage.test_durability import integrity, read_into
from tests.store_support import days_ahead, tokens_by_sid, verify

LONG = os.environ.get("TOKENDESK_LONG_TESTS") == "1"
TRIALS = 200 if LONG else 20
# Every EARLY_EVERY-th trial is killed while the store opens a fresh database, every other
# one of those within its migrations.
EARLY_EVERY = 4
# The other kills land uniformly in this many seconds of burst after the store is open.
BURST_SECONDS = 0.3
SEEDED_TOKENS = 1_000
BASE_SEED = int(os.environ.get("TOKENDESK_CRASH_SEED") or random.randrange(2**32))

CHILD_ACTOR = "UADMIN001"
CONTACTS = ("UCONTACT1", "UCONTACT2", "WCONTACT3")
NAMES = ("Crash {n}", "Ünïcode Ŧoken {n}", "nightly-export-{n}", "Partner (EU) {n}")
DESCRIPTIONS = ("", "First line\nsecond line {n}", "Déscription {n}")

# What a step is, by the `kind` the child prints.
KEYED_CHANGES = frozenset({"create", "duplicate", "reset", "edit", "upgrade", "delete"})
REFUSALS = {"replay": "AlreadyApplied", "stale": "StaleVersion", "clash": "NameTaken"}
NO_CHANGES = frozenset(REFUSALS) | {"verify", "flush"}
# The audit actions that move a token's row version (storage/tokens.py `_change`).
MOVING_ACTIONS = frozenset({"edit", "reset", "upgrade", "enable", "disable"})
CREATING_ACTIONS = frozenset({"create", "duplicate"})

# The child's first line, from which the kill delay runs: before the store opens, as the
# migrations of a fresh database start, as the credentials start loading. Then "ready".
OPENING, MIGRATING, LOADING, READY = "opening", "migrating", "loading", "ready"


# The child: the app's store, changed until it is killed ---------------------------------


def app_environment(db_path: Path) -> dict[str, str]:
    """What `python -m bot` reads; nothing here talks to Slack."""
    return python_env(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="crash-signing-secret",
        SLACK_API_URL="http://127.0.0.1:9/api/",
        TOKENDESK_DB=str(db_path),
        TOKENDESK_SECRET_KEY=KEY.hex(),
        TOKENDESK_ADMINS=CHILD_ACTOR,
        TOKENDESK_API_VERSIONS=",".join(VERSIONS),
        TOKENDESK_SCOPES=",".join(SCOPES),
        TOKENDESK_LOG_LEVEL="WARNING",
        PORT="9",
    )


def emit(line: str | dict[str, Any]) -> None:
    text = line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass
class Known:
    """What the child knows of a token from the store's own answers."""

    id: int
    row_version: int
    name: str
    enabled: bool
    api_version: str
    secret: str | None


class Driver:
    def __init__(self, store: Store, rng: random.Random, seed: int) -> None:
        self.store = store
        self.tokens = store.tokens
        self.rng = rng
        self.seed = seed
        self.seq = 0
        self.known: dict[str, Known] = {}
        self.applied_keys: list[str] = []
        self.api_access = store.account.api_access
        self.steps: dict[str, tuple[int, Callable[[], Awaitable[None]]]] = {
            "create": (20, self.create),
            "duplicate": (7, self.duplicate),
            "reset": (15, self.reset),
            "edit": (14, self.edit),
            "toggle": (10, self.toggle),
            "upgrade": (3, self.upgrade),
            "delete": (7, self.delete),
            "api_access": (4, self.toggle_api_access),
            "replay": (3, self.replay),
            "stale": (3, self.stale),
            "clash": (3, self.clash),
            "verify": (7, self.verify),
            "flush": (4, self.flush),
        }

    async def learn_existing(self) -> None:
        for sid, token in (await tokens_by_sid(self.store)).items():
            self.known[sid] = Known(
                token.id, token.row_version, token.name, token.enabled, token.api_version, None
            )

    async def run(self) -> NoReturn:
        names = list(self.steps)
        weights = [weight for weight, _ in self.steps.values()]
        while True:
            self.seq += 1
            (choice,) = self.rng.choices(names, weights)
            if not self.known and choice not in ("api_access", "flush"):
                choice = "create"
            await self.steps[choice][1]()

    # Printing ---------------------------------------------------------------------------

    def begin(self, kind: str, **detail: Any) -> None:
        emit({"seq": self.seq, "begin": kind, **detail})

    def done(self, kind: str, **detail: Any) -> None:
        emit({"seq": self.seq, "done": kind, **detail})

    def new_key(self) -> str:
        return f"crash-{self.seed}-{self.seq}"

    def pick(self) -> tuple[str, Known]:
        sid = self.rng.choice(list(self.known))
        return sid, self.known[sid]

    def rights(self) -> list[str]:
        chosen = {scope for scope in SCOPES if self.rng.random() < 0.5} or {SCOPES[0]}
        return [scope for scope in SCOPES if scope in chosen]

    # The steps --------------------------------------------------------------------------

    async def create(self) -> None:
        key = self.new_key()
        detail: dict[str, Any] = {
            "name": self.rng.choice(NAMES).format(n=self.seq),
            "description": self.rng.choice(DESCRIPTIONS).format(n=self.seq),
            "access_rights": self.rights(),
            "primary_contact": self.rng.choice(CONTACTS),
        }
        self.begin("create", key=key, **detail)
        issued = await self.tokens.create(
            actor=CHILD_ACTOR, request_key=key, expires_on=days_ahead(), **detail
        )
        token = issued.token
        self.known[token.sid] = Known(
            token.id, token.row_version, token.name, True, token.api_version, issued.secret
        )
        self.applied_keys.append(key)
        self.done(
            "create",
            sid=token.sid,
            id=token.id,
            row_version=token.row_version,
            secret=issued.secret,
        )

    async def duplicate(self) -> None:
        sid, source = self.pick()
        key = self.new_key()
        self.begin("duplicate", key=key, source=sid)
        issued = await self.tokens.duplicate(
            actor=CHILD_ACTOR,
            token_id=source.id,
            row_version=source.row_version,
            expires_on=days_ahead(),
            request_key=key,
        )
        token = issued.token
        self.known[token.sid] = Known(
            token.id, token.row_version, token.name, True, token.api_version, issued.secret
        )
        self.applied_keys.append(key)
        self.done(
            "duplicate",
            sid=token.sid,
            id=token.id,
            name=token.name,
            row_version=token.row_version,
            secret=issued.secret,
        )

    async def reset(self) -> None:
        sid, known = self.pick()
        key = self.new_key()
        self.begin("reset", key=key, sid=sid)
        issued = await self.tokens.reset(
            actor=CHILD_ACTOR,
            token_id=known.id,
            row_version=known.row_version,
            expires_on=days_ahead(),
            request_key=key,
        )
        known.row_version, known.secret = issued.token.row_version, issued.secret
        self.applied_keys.append(key)
        self.done("reset", sid=sid, row_version=known.row_version, secret=issued.secret)

    async def edit(self) -> None:
        sid, known = self.pick()
        key = self.new_key()
        # The description always changes, so the edit always moves the row version.
        fields: dict[str, Any] = {"description": f"Edited {self.seq}"}
        if self.rng.random() < 0.4:
            fields["name"] = f"Renamed {self.seq}"
        if self.rng.random() < 0.4:
            fields["access_rights"] = self.rights()
        if self.rng.random() < 0.3:
            fields["primary_contact"] = self.rng.choice(CONTACTS)
        self.begin("edit", key=key, sid=sid, fields=fields)
        edit = TokenEdit(
            name=fields.get("name"),
            description=fields["description"],
            access_rights=frozenset(fields["access_rights"]) if "access_rights" in fields else None,
            primary_contact=fields.get("primary_contact"),
        )
        change = await self.tokens.edit(
            actor=CHILD_ACTOR,
            token_id=known.id,
            row_version=known.row_version,
            edit=edit,
            request_key=key,
        )
        assert change.changed
        known.row_version, known.name = change.after.row_version, change.after.name
        self.applied_keys.append(key)
        self.done("edit", sid=sid, row_version=known.row_version)

    async def toggle(self) -> None:
        sid, known = self.pick()
        kind = "disable" if known.enabled else "enable"
        self.begin(kind, sid=sid)
        change = await self.tokens.set_enabled(
            actor=CHILD_ACTOR, token_id=known.id, enabled=not known.enabled
        )
        assert change.changed
        known.enabled, known.row_version = change.after.enabled, change.after.row_version
        self.done(kind, sid=sid, row_version=known.row_version)

    async def upgrade(self) -> None:
        older = [sid for sid, known in self.known.items() if known.api_version != VERSIONS[-1]]
        if not older:
            await self.verify()
            return
        sid = self.rng.choice(older)
        known = self.known[sid]
        key = self.new_key()
        self.begin("upgrade", key=key, sid=sid)
        token = await self.tokens.upgrade(
            actor=CHILD_ACTOR, token_id=known.id, row_version=known.row_version, request_key=key
        )
        known.row_version, known.api_version = token.row_version, token.api_version
        self.applied_keys.append(key)
        self.done("upgrade", sid=sid, row_version=known.row_version)

    async def delete(self) -> None:
        sid, known = self.pick()
        key = self.new_key()
        self.begin("delete", key=key, sid=sid)
        token = await self.tokens.delete(
            actor=CHILD_ACTOR, token_id=known.id, row_version=known.row_version, request_key=key
        )
        del self.known[sid]
        self.applied_keys.append(key)
        self.done("delete", sid=sid, row_version=token.row_version)

    async def toggle_api_access(self) -> None:
        enabled = not self.api_access
        self.begin("api_access", enabled=enabled)
        assert await self.store.account.set_api_access(actor=CHILD_ACTOR, enabled=enabled)
        self.api_access = enabled
        self.done("api_access", enabled=enabled)

    async def replay(self) -> None:
        """A request delivered twice (a Slack retry): its key was applied already."""
        if not self.applied_keys:
            await self.create()
            return
        key = self.rng.choice(self.applied_keys)
        self.begin("replay", key=key)
        try:
            await self.tokens.create(
                actor=CHILD_ACTOR,
                name=f"Replayed {self.seq}",
                access_rights=[SCOPES[0]],
                primary_contact=CONTACTS[0],
                expires_on=days_ahead(),
                request_key=key,
            )
        except AlreadyApplied:
            self.done("replay", refused="AlreadyApplied")
        else:
            raise AssertionError("a replayed request key was applied twice")

    async def stale(self) -> None:
        """A confirmation of a version the token has moved on from."""
        sid, known = self.pick()
        key = self.new_key()
        seen = known.row_version - 1 if known.row_version > 1 else known.row_version + 1
        self.begin("stale", key=key, sid=sid)
        try:
            await self.tokens.edit(
                actor=CHILD_ACTOR,
                token_id=known.id,
                row_version=seen,
                edit=TokenEdit(description=f"Stale {self.seq}"),
                request_key=key,
            )
        except StaleVersion:
            self.done("stale", refused="StaleVersion")
        else:
            raise AssertionError("an edit of a stale version was applied")

    async def clash(self) -> None:
        """A new token named like an existing one, in another case."""
        _, known = self.pick()
        key = self.new_key()
        self.begin("clash", key=key, name=known.name.upper())
        try:
            await self.tokens.create(
                actor=CHILD_ACTOR,
                name=known.name.upper(),
                access_rights=[SCOPES[0]],
                primary_contact=CONTACTS[0],
                expires_on=days_ahead(),
                request_key=key,
            )
        except NameTaken:
            self.done("clash", refused="NameTaken")
        else:
            raise AssertionError("a second token got a taken name")

    async def verify(self) -> None:
        """Auth checks, which leave last-used times pending in memory."""
        self.begin("verify")
        with_secrets = [(sid, known) for sid, known in self.known.items() if known.secret]
        for sid, known in self.rng.sample(with_secrets, min(5, len(with_secrets))):
            assert known.secret is not None
            authorized = verify(self.store, known.secret, sid if self.rng.random() < 0.5 else None)
            if known.enabled and self.api_access:
                assert authorized is not None and authorized.sid == sid
            else:
                assert authorized is None
        assert verify(self.store, generate_secret()) is None
        self.done("verify")

    async def flush(self) -> None:
        self.begin("flush")
        await self.store.credentials.flush_last_used()
        self.done("flush")


async def child_main(seed: int, marker: str) -> NoReturn:
    settings = Settings()
    configure_logging(settings.tokendesk_log_level)
    # The markers only print: what the store does is unchanged.
    if marker == LOADING:
        load = CredentialIndex.load

        async def marked_load(self: CredentialIndex) -> None:
            emit(LOADING)
            await load(self)

        CredentialIndex.load = marked_load  # type: ignore[method-assign]
    elif marker == MIGRATING:
        # storage.database calls the `migrate` it imported from storage.schema.
        def marked_migrate(connection: sqlite3.Connection, *, target: int = LATEST_VERSION) -> int:
            emit(MIGRATING)
            return migrate(connection, target=target)

        storage.database.migrate = marked_migrate  # type: ignore[attr-defined]
    else:
        emit(OPENING)
    store = await Store.open(**store_options(settings))
    emit(READY)
    driver = Driver(store, random.Random(seed), seed)
    await driver.learn_existing()
    await driver.run()


# The parent: what the child was told, and what the database says -------------------------


@dataclass
class Step:
    seq: int
    kind: str
    begin: dict[str, Any]
    done: dict[str, Any] | None = None


@dataclass
class Output:
    markers: list[str]
    steps: list[Step]

    @property
    def in_flight(self) -> Step | None:
        """The step begun but not acknowledged when the kill came, if any."""
        return self.steps[-1] if self.steps and self.steps[-1].done is None else None


def parse_output(output: bytes) -> Output:
    """The complete lines the child printed; a line cut short by the kill was never read by
    anyone, so it is left out."""
    lines = output[: output.rfind(b"\n") + 1].decode().split("\n")[:-1]
    markers = [line for line in lines if not line.startswith("{")]
    steps: list[Step] = []
    for line in lines:
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if "begin" in record:
            assert not steps or steps[-1].done is not None, "a step began before one ended"
            steps.append(Step(record["seq"], record["begin"], record))
        else:
            assert steps and steps[-1].seq == record["seq"] and steps[-1].done is None
            assert record["done"] == steps[-1].kind
            steps[-1].done = record
    return Output(markers, steps)


@dataclass
class Expected:
    id: int
    name: str
    description: str
    access_rights: tuple[str, ...]
    primary_contact: str
    enabled: bool
    api_version: str
    row_version: int
    # Every secret ever issued for the token and known to the test, oldest first; the last
    # one is its current secret unless a change in flight at the kill replaced it unseen.
    secrets: list[str] = field(default_factory=list)
    current_secret_known: bool = True

    @classmethod
    def of(cls, token: Token, secret: str | None) -> Expected:
        return cls(
            id=token.id,
            name=token.name,
            description=token.description,
            access_rights=token.access_rights,
            primary_contact=token.primary_contact,
            enabled=token.enabled,
            api_version=token.api_version,
            row_version=token.row_version,
            secrets=[secret] if secret else [],
            current_secret_known=secret is not None,
        )

    def fields(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.description,
            self.access_rights,
            self.primary_contact,
            self.enabled,
            self.api_version,
            self.row_version,
        )


def fields_of(token: Token) -> tuple[Any, ...]:
    return (
        token.name,
        token.description,
        token.access_rights,
        token.primary_contact,
        token.enabled,
        token.api_version,
        token.row_version,
    )


@dataclass(frozen=True)
class AuditEntry:
    action: str
    sid: str | None
    copy_of: str | None = None


@dataclass
class Model:
    """The database as the child's acknowledged steps say it must be."""

    tokens: dict[str, Expected]
    api_access: bool
    deleted: dict[str, Expected] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    applied_keys: set[str] = field(default_factory=set)
    changes_acknowledged: int = 0

    def acknowledge(self, step: Step) -> None:
        assert step.done is not None
        begin, done = step.begin, step.done
        if step.kind in REFUSALS:
            assert done["refused"] == REFUSALS[step.kind]
            return
        if step.kind in NO_CHANGES:
            return
        self.changes_acknowledged += 1
        if step.kind == "api_access":
            self.api_access = begin["enabled"]
            self.audit.append(AuditEntry("api_access", None))
            return
        sid = done["sid"]
        if step.kind == "create":
            assert sid not in self.tokens and sid not in self.deleted
            assert done["row_version"] == 1
            self.tokens[sid] = self.created(begin, done["id"], done["secret"])
        elif step.kind == "duplicate":
            assert sid not in self.tokens and sid not in self.deleted
            assert done["row_version"] == 1
            self.tokens[sid] = self.duplicated(
                begin["source"], done["id"], done["name"], done["secret"]
            )
        else:
            expected = self.tokens[sid]
            if step.kind == "delete":
                assert done["row_version"] == expected.row_version
                self.deleted[sid] = self.tokens.pop(sid)
            else:
                assert done["row_version"] == expected.row_version + 1, step
                self.move(step.kind, begin, expected, secret=done.get("secret"))
        self.record(step, sid)

    def settle(self, step: Step, database: Snapshot) -> bool:
        """Apply the step in flight at the kill if it committed; whether it did. Its effect
        is whole or absent, which the comparison that follows checks."""
        begin, kind = step.begin, step.kind
        if kind in NO_CHANGES:
            if kind in ("stale", "clash"):
                assert begin["key"] not in database.applied_keys, "a refused step left its key"
            return False
        if kind in KEYED_CHANGES:
            committed = begin["key"] in database.applied_keys
        elif kind == "api_access":
            committed = database.api_access == begin["enabled"]
        else:
            committed = database.tokens[begin["sid"]].enabled == (kind == "enable")
        if not committed:
            return False
        if kind == "api_access":
            self.api_access = begin["enabled"]
            self.audit.append(AuditEntry("api_access", None))
            return True
        if kind in CREATING_ACTIONS:
            appeared = set(database.tokens) - set(self.tokens)
            assert len(appeared) == 1, f"{kind} committed, yet {len(appeared)} tokens appeared"
            (sid,) = appeared
            token = database.tokens[sid]
            # Its id and SID were never printed: the database's are taken as they are.
            if kind == "create":
                assert token.name == begin["name"]
                self.tokens[sid] = self.created(begin, token.id, None)
            else:
                self.tokens[sid] = self.duplicated(begin["source"], token.id, token.name, None)
        else:
            sid = begin["sid"]
            if kind == "delete":
                self.deleted[sid] = self.tokens.pop(sid)
            else:
                self.move(kind, begin, self.tokens[sid], secret=None)
        self.record(step, sid)
        return True

    def created(self, begin: dict[str, Any], token_id: int, secret: str | None) -> Expected:
        return Expected(
            id=token_id,
            name=begin["name"],
            description=begin["description"],
            access_rights=tuple(begin["access_rights"]),
            primary_contact=begin["primary_contact"],
            enabled=True,
            api_version=VERSIONS[-1],
            row_version=1,
            secrets=[secret] if secret else [],
            current_secret_known=secret is not None,
        )

    def duplicated(self, source_sid: str, token_id: int, name: str, secret: str | None) -> Expected:
        source = self.tokens[source_sid]
        assert name in {copy_name(source.name, attempt) for attempt in range(1, 100)}
        return Expected(
            id=token_id,
            name=name,
            description=source.description,
            access_rights=source.access_rights,
            primary_contact=source.primary_contact,
            enabled=True,
            api_version=source.api_version,
            row_version=1,
            secrets=[secret] if secret else [],
            current_secret_known=secret is not None,
        )

    @staticmethod
    def move(kind: str, begin: dict[str, Any], expected: Expected, *, secret: str | None) -> None:
        expected.row_version += 1
        if kind == "reset":
            if secret is None:
                expected.current_secret_known = False
            else:
                expected.secrets.append(secret)
        elif kind == "edit":
            edited = begin["fields"]
            expected.name = edited.get("name", expected.name)
            expected.description = edited["description"]
            expected.access_rights = tuple(edited.get("access_rights", expected.access_rights))
            expected.primary_contact = edited.get("primary_contact", expected.primary_contact)
        elif kind == "upgrade":
            expected.api_version = VERSIONS[-1]
        else:
            expected.enabled = kind == "enable"

    def record(self, step: Step, sid: str) -> None:
        copy_of = step.begin["source"] if step.kind == "duplicate" else None
        self.audit.append(AuditEntry(step.kind, sid, copy_of))
        if step.kind in KEYED_CHANGES:
            self.applied_keys.add(step.begin["key"])


@dataclass
class Snapshot:
    """The database as the reopened store reads it."""

    tokens: dict[str, Token]
    api_access: bool
    applied_keys: set[str]
    audit: list[AuditEntry]
    audit_ids: list[int]


async def snapshot(store: Store, path: Path) -> Snapshot:
    tokens = await tokens_by_sid(store)
    audit = [event async for event in store.audit.since()]
    connection = plain_connection(path)
    try:
        keys = {key for (key,) in connection.execute("SELECT key FROM applied_requests")}
    finally:
        connection.close()
    return Snapshot(
        tokens=tokens,
        api_access=store.account.api_access,
        applied_keys=keys,
        audit=[
            AuditEntry(event.action, event.token_sid, event.after.get("copy_of")) for event in audit
        ],
        audit_ids=[event.id for event in audit],
    )


# Trials ---------------------------------------------------------------------------------


@dataclass
class Tally:
    trials: int = 0
    kills: int = 0
    before_migrated: int = 0
    before_ready: int = 0
    in_load: int = 0
    mid_step: int = 0
    committed_unacknowledged: int = 0
    changes_checked: int = 0
    windows: Windows | None = None
    started: float = field(default_factory=time.monotonic)


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    counts = Tally()
    yield counts
    windows = ""
    if counts.windows is not None:
        windows = (
            f" (windows: opening {counts.windows.opening * 1000:.1f} ms,"
            f" migrations {counts.windows.migrations * 1000:.1f} ms)"
        )
    print(
        f"\ncrash safety (seed {BASE_SEED}): {counts.trials} trials, {counts.kills} kills"
        f" ({counts.before_migrated} before the schema was complete,"
        f" {counts.before_ready} before the store was open,"
        f" {counts.in_load} in CredentialIndex.load,"
        f" {counts.mid_step} mid-step, {counts.committed_unacknowledged} committed but"
        f" unacknowledged), {counts.changes_checked} acknowledged changes checked,"
        f" {time.monotonic() - counts.started:.1f} s{windows}"
    )


@dataclass(frozen=True)
class Windows:
    """How long, here, the store takes to open a fresh database, and its migrations."""

    opening: float
    migrations: float


def time_migrations(path: Path) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        configure(connection)
        started = time.perf_counter()
        migrate(connection)
        return time.perf_counter() - started
    finally:
        connection.close()


async def measure_windows(tally: Tally, directory: Path) -> Windows:
    """Measured once per run: the windows of the early kills."""
    if tally.windows is None:
        directory.mkdir()
        openings, migrations = [], []
        for attempt in range(3):
            started = time.perf_counter()
            async with opened_store(directory / f"open-{attempt}.db"):
                openings.append(time.perf_counter() - started)
            migrations.append(time_migrations(directory / f"migrate-{attempt}.db"))
        # Disk flushes make the migrations' time vary a lot: the fastest keeps the kills
        # within them.
        tally.windows = Windows(statistics.median(openings), min(migrations))
    return tally.windows


@dataclass
class Initial:
    model: Model
    audit_count: int


async def initial_state(path: Path, secrets_by_sid: dict[str, str]) -> Initial:
    if not path.exists():
        return Initial(Model(tokens={}, api_access=False), 0)
    async with opened_store(path) as store:
        database = await snapshot(store, path)
    tokens = {
        sid: Expected.of(token, secrets_by_sid.get(sid)) for sid, token in database.tokens.items()
    }
    return Initial(Model(tokens=tokens, api_access=database.api_access), len(database.audit))


def kill_after(path: Path, workdir: Path, *, seed: int, marker: str, delay: float) -> bytes:
    """Run the child until `delay` seconds after it printed `marker`, then SIGKILL it."""
    output = bytearray()
    with subprocess.Popen(
        [sys.executable, "-m", "tests.test_crash_safety", str(seed), marker],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=app_environment(path),
    ) as child:
        try:
            read_into(output, child, until=time.monotonic() + 30)
            if output.startswith(marker.encode() + b"\n"):
                read_into(output, child, until=time.monotonic() + delay)
        finally:
            child.kill()
            rest, errors = child.communicate(timeout=30)
        output += rest
    assert output.startswith(marker.encode() + b"\n"), errors.decode(errors="replace")
    assert child.returncode == -signal.SIGKILL, errors.decode(errors="replace")
    return bytes(output)


async def run_trial(
    tmp_path: Path,
    tally: Tally,
    *,
    seed: int,
    marker: str,
    delay: float,
    secrets_by_sid: dict[str, str] | None = None,
) -> None:
    directory = tmp_path / "data"
    directory.mkdir(exist_ok=True)
    workdir = tmp_path / "work"  # the child's working directory: no stray `.env` is read
    workdir.mkdir()
    path = directory / "tokendesk.db"
    initial = await initial_state(path, secrets_by_sid or {})
    model = initial.model

    raw = kill_after(path, workdir, seed=seed, marker=marker, delay=delay)
    tally.trials += 1
    tally.kills += 1
    output = parse_output(raw)
    landed = f"after {len(output.steps)} steps"
    if READY not in output.markers:
        tally.before_ready += 1
        assert not output.steps
        landed = (
            "in CredentialIndex.load" if LOADING in output.markers else "while the store opened"
        )
        tally.in_load += LOADING in output.markers
    schema = user_version(path) if path.exists() else 0
    if schema < LATEST_VERSION:
        tally.before_migrated += 1
        assert not output.steps
        landed = f"before the schema was complete (version {schema})"
    if path.exists():
        assert integrity(path) == [("ok",)]

    for step in output.steps:
        if step.done is not None:
            model.acknowledge(step)

    # Reopening proves the dead child's instance lock was released.
    async with opened_store(path) as store:
        database = await snapshot(store, path)
        in_flight = output.in_flight
        if in_flight is not None:
            tally.mid_step += 1
            committed = model.settle(in_flight, database)
            tally.committed_unacknowledged += committed
            landed += f", in {in_flight.kind} ({'committed' if committed else 'not committed'})"
        check_against(model, database, store, initial.audit_count)
        await check_secrets(model, store)
        check_usage(path)
    tally.changes_checked += model.changes_acknowledged
    print(f"  killed {landed}; {model.changes_acknowledged} acknowledged changes checked")

    assert integrity(path) == [("ok",)]
    assert user_version(path) == LATEST_VERSION
    # No temporary file, rollback journal or key file is left beside the database.
    expected_files = {path.name}
    leftovers = {file.name for file in directory.iterdir()}
    assert expected_files <= leftovers <= expected_files | {path.name + "-wal", path.name + "-shm"}


def check_against(model: Model, database: Snapshot, store: Store, audit_before: int) -> None:
    assert set(database.tokens) == set(model.tokens), "tokens lost or appeared"
    assert store.token_reads.count == len(model.tokens)
    for sid, expected in model.tokens.items():
        token = database.tokens[sid]
        assert token.id == expected.id, sid
        assert fields_of(token) == expected.fields(), sid
    assert database.api_access == model.api_access
    assert database.applied_keys == model.applied_keys

    # The audit log holds exactly the committed changes, in order, and nothing more.
    assert database.audit[audit_before:] == model.audit
    ids = database.audit_ids
    assert ids == sorted(set(ids))
    # Every token has a whole trail: one creation, one record per row-version move.
    for sid, expected in model.tokens.items():
        trail = [entry.action for entry in database.audit if entry.sid == sid]
        assert sum(action in CREATING_ACTIONS for action in trail) == 1, sid
        assert trail[0] in CREATING_ACTIONS, sid
        moves = sum(action in MOVING_ACTIONS for action in trail)
        assert moves == expected.row_version - 1, sid
        assert "delete" not in trail, sid
    for sid in model.deleted:
        trail = [entry.action for entry in database.audit if entry.sid == sid]
        assert trail.count("delete") == 1 and trail[-1] == "delete", sid


async def check_secrets(model: Model, store: Store) -> None:
    """Each token's current secret is the last one issued for it (unless the step in flight
    replaced it unseen); every earlier one, and every deleted token's, fails."""
    if not store.account.api_access:
        await store.account.set_api_access(actor=ACTOR, enabled=True)
    tokens = await tokens_by_sid(store)
    for sid, expected in model.tokens.items():
        token = tokens[sid]
        valid = []
        for secret in expected.secrets:
            found = await store.token_reads.find_by_secret(secret=secret)
            assert found is None or found.sid == sid, "a secret opens another token"
            if found is not None:
                valid.append(secret)
        if expected.current_secret_known and expected.secrets:
            current = expected.secrets[-1]
            assert valid == [current], sid
            assert token.secret_hint == current[-4:], sid
            authorized = verify(store, current, sid)
            assert (authorized is not None) == expected.enabled, sid
            assert authorized is None or authorized.sid == sid
        else:
            assert valid == [], sid
    for expected in model.deleted.values():
        for secret in expected.secrets:
            assert await store.token_reads.find_by_secret(secret=secret) is None
            assert verify(store, secret) is None


def check_usage(path: Path) -> None:
    """Last-used times only for tokens that exist, and no broken reference anywhere."""
    connection = plain_connection(path)
    try:
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = connection.execute(
            "SELECT count(*) FROM token_usage WHERE token_id NOT IN (SELECT id FROM tokens)"
        ).fetchone()
        assert orphans == (0,)
    finally:
        connection.close()


@pytest.mark.parametrize("trial", range(TRIALS))
async def test_a_kill_at_a_random_point_loses_and_half_applies_nothing(
    tmp_path: Path, tally: Tally, trial: int
) -> None:
    seed = BASE_SEED + trial
    rng = random.Random(seed)
    windows = await measure_windows(tally, tmp_path / "measure")
    # A child (a cold interpreter) opens more slowly than a warm in-process store.
    opening = 3 * windows.opening
    marker = OPENING
    if trial % (2 * EARLY_EVERY) == 0:
        # Squared: more of these kills in the first migrations, which may take no time.
        marker, delay = MIGRATING, windows.migrations * rng.random() ** 2
    elif trial % EARLY_EVERY == 0:
        delay = rng.uniform(0, opening)
    else:
        delay = rng.uniform(opening, opening + BURST_SECONDS)
    print(f"trial {trial}: seed {seed}, kill {delay * 1000:.1f} ms after {marker}")
    await run_trial(tmp_path, tally, seed=seed, marker=marker, delay=delay)


async def seed_database(path: Path, count: int) -> dict[str, str]:
    """A database the store created, then `count` tokens written straight into it with
    their `create` audit records (bench/seed.py's rows); the secrets known for them."""
    async with opened_store(path):
        pass
    seed = make_seed(count, KEY, random.Random(BASE_SEED))
    rows = spread_over_days(seed.rows, int(time.time()))
    insert_rows(path, rows)
    connection = plain_connection(path)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO audit_log (at, actor, action, token_sid, token_name, token_name_key,"
            " detail) VALUES (?, ?, 'create', ?, ?, ?, ?)",
            [
                (
                    row["created_at"],
                    row["created_by"],
                    row["sid"],
                    row["name"],
                    name_key(row["name"]),
                    json.dumps({"before": {}, "after": {"name": row["name"]}}),
                )
                for row in rows
            ],
        )
        connection.execute("COMMIT")
    finally:
        connection.close()
    return {rows[index]["sid"]: secret for index, secret in seed.secrets_by_row.items()}


async def _time_load(path: Path) -> float:
    async with opened_store(path) as store:
        started = time.perf_counter()
        await store.credentials.load()
        return time.perf_counter() - started


async def test_a_kill_while_a_large_database_loads_loses_nothing(
    tmp_path: Path, tally: Tally
) -> None:
    path = tmp_path / "data" / "tokendesk.db"
    path.parent.mkdir()
    secrets_by_sid = await seed_database(path, SEEDED_TOKENS)
    load_seconds = await _time_load(path)
    # Just after the child starts loading the credentials, within what a load takes here.
    delay = random.Random(BASE_SEED).uniform(0, load_seconds / 2)
    print(f"seeded: {SEEDED_TOKENS} tokens, load {load_seconds * 1000:.1f} ms")
    await run_trial(
        tmp_path,
        tally,
        seed=BASE_SEED,
        marker=LOADING,
        delay=delay,
        secrets_by_sid=secrets_by_sid,
    )


def main(arguments: list[str]) -> None:
    seed, marker = arguments
    asyncio.run(child_main(int(seed), marker))


if __name__ == "__main__":
    main(sys.argv[1:])
