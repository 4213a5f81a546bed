"""The operator commands as the people who run Token Desk use them: `python -m bot …` (and the
`tokendesk` console script) in a subprocess, with only PATH, HOME and TOKENDESK_DB (and
TOKENDESK_ADMINS where it matters) in the environment, never a Slack variable, against real
database files made by `Store.open`, beside a running store or not."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pwd
import secrets
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.operator import audit_actor
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.slack_client import create_web_client
from slack_standin.client import SlackClient
from storage.credentials import SecretHasher, key_file_for
from storage.database import file_uri
from storage.models import Role, TokenEdit
from storage.store import Store
from tests.bot.conftest import ADMIN, SPECIALIST, STRANGER
from tests.store_support import days_ahead

Result = subprocess.CompletedProcess[str]
KEY = secrets.token_bytes(32)
VERSIONS = ("v1", "v2", "v3")
SCOPES = ("reports:read", "reports:write")
SCRIPT = Path(sys.executable).parent / "tokendesk"
CLI_ACTOR = f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
ROLES = ("Account Administrators", "Implementation Specialists")
ALICE, GRID_USER, OPS = "U012AB3CD", "W012AB3CD", "S012AB3CD"
FORMULA_STARTS = ("=", "+", "-", "@")


# -- running the commands ---------------------------------------------------------------


def environment(home: Path, db: Path, **values: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "TOKENDESK_DB": str(db)} | values


def tokendesk(
    *args: str, env: dict[str, str], cwd: Path, script: bool = False, timeout: float = 20
) -> Result:
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "bot"]
    try:
        return subprocess.run(
            [*command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr
        shown = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        raise AssertionError(
            f"`tokendesk {' '.join(args)}` did not exit within {timeout} s (stderr: {shown!r})"
        ) from None


async def tokendesk_async(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 20
) -> Result:
    """In a thread, so that the event loop (a store, an app) keeps running meanwhile."""
    return await asyncio.to_thread(tokendesk, *args, env=env, cwd=cwd, timeout=timeout)


async def all_of(*runs: Awaitable[Result]) -> list[Result]:
    """Runs the commands side by side; every one finishes before any failure is raised."""
    results = await asyncio.gather(*runs, return_exceptions=True)
    finished: list[Result] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        finished.append(result)
    return finished


def assert_one_line_refusal(result: Result, *needles: str) -> str:
    assert result.returncode not in (0, None), result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tokendesk: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_ok(result: Result) -> list[str]:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


# -- databases --------------------------------------------------------------------------


class WallClock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


async def open_store(db: Path, *, clock: Callable[[], float] = time.time) -> Store:
    return await Store.open(
        path=db, secret_key=KEY, api_versions=VERSIONS, scopes=SCOPES, clock=clock
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    return directory


@pytest.fixture
async def db(data: Path) -> Path:
    """A Token Desk database made by `Store.open`, then closed."""
    path = data / "tokendesk.db"
    store = await open_store(path)
    await store.close()
    return path


@pytest.fixture
async def open_db(data: Path) -> AsyncIterator[tuple[Path, Store]]:
    path = data / "tokendesk.db"
    store = await open_store(path)
    try:
        yield path, store
    finally:
        await store.close()


def audit_rows(db: Path) -> list[tuple[str, str, str]]:
    with closing(sqlite3.connect(db)) as connection:
        rows = connection.execute("SELECT actor, action, detail FROM audit_log ORDER BY id")
        return list(rows)


def no_key_file(*databases: Path) -> bool:
    return not any(key_file_for(path).exists() for path in databases)


# -- roles ------------------------------------------------------------------------------


async def test_roles_list_grant_revoke_on_a_closed_database(tmp_path: Path, db: Path) -> None:
    store = await open_store(db)
    await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
    await store.roles.grant_user(actor=ADMIN, user_id=GRID_USER, role=Role.SPECIALIST)
    await store.close()
    env = environment(tmp_path, db)
    with_admins = environment(tmp_path, db, TOKENDESK_ADMINS=ADMIN)

    malformed = environment(tmp_path, db, TOKENDESK_ADMINS="alice,bob")
    granted, revoked, bootstrap, misconfigured = await all_of(
        asyncio.to_thread(
            tokendesk, "roles", "grant", ALICE, "admin", env=env, cwd=tmp_path, script=True
        ),
        tokendesk_async("roles", "revoke", GRID_USER, env=env, cwd=tmp_path),
        tokendesk_async("roles", "revoke", ADMIN, env=with_admins, cwd=tmp_path),
        tokendesk_async("roles", "list", env=malformed, cwd=tmp_path),
    )
    assert assert_ok(granted) == [f"{ALICE} is now an Account Administrator"]
    assert assert_ok(revoked) == [f"{GRID_USER} is no longer an Implementation Specialist"]
    assert_one_line_refusal(bootstrap, "TOKENDESK_ADMINS")
    assert "alice" not in assert_one_line_refusal(misconfigured, "TOKENDESK_ADMINS")

    listed = await tokendesk_async("roles", "list", env=with_admins, cwd=tmp_path)
    assert assert_ok(listed) == [
        f"{ADMIN}\tadmin\tbootstrap (TOKENDESK_ADMINS)",
        f"{ALICE}\tadmin\tdirect",
        f"{OPS}\tspecialist\tuser group",
    ]
    by_cli = [json.loads(detail)["after"] for actor, _, detail in audit_rows(db) if actor != ADMIN]
    assert {actor for actor, _, _ in audit_rows(db)} == {ADMIN, CLI_ACTOR}
    assert sorted(by_cli, key=str) == sorted(
        [{"user_id": ALICE, "role": "admin"}, {"user_id": GRID_USER, "role": None}], key=str
    )
    assert no_key_file(db)


async def test_roles_beside_an_open_store(tmp_path: Path, open_db: tuple[Path, Store]) -> None:
    """The commands take no instance lock: they work while the app holds the database, and
    the app sees their changes at once (roles are read from the database every time)."""
    db, store = open_db
    env = environment(tmp_path, db)
    assert await store.roles.effective_role(user_id=ALICE) is None

    granted = await tokendesk_async("roles", "grant", ALICE, "admin", env=env, cwd=tmp_path)
    assert assert_ok(granted) == [f"{ALICE} is now an Account Administrator"]
    assert await store.roles.effective_role(user_id=ALICE) is Role.ADMIN

    refused = await tokendesk_async("roles", "revoke", ALICE, env=env, cwd=tmp_path)
    assert_one_line_refusal(refused, "no Account Administrator")
    assert await store.roles.effective_role(user_id=ALICE) is Role.ADMIN
    events = await store.audit.events(limit=10)
    assert [(event.actor, event.action) for event in events] == [(CLI_ACTOR, "role.user")]
    assert no_key_file(db)


async def test_the_running_app_follows_roles_changed_from_the_command_line(
    tmp_path: Path, settings: Settings, store: Store, slack: SlackClient
) -> None:
    env = environment(tmp_path, settings.tokendesk_db, TOKENDESK_ADMINS=ADMIN)
    await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    assert "Token Desk" in (await slack.slash_command(SPECIALIST, "help")).body["text"]
    stranger = await slack.slash_command(STRANGER, "help")
    assert all(role in stranger.body["text"] for role in ROLES)

    revoked, granted = await all_of(
        tokendesk_async("roles", "revoke", SPECIALIST, env=env, cwd=tmp_path),
        tokendesk_async("roles", "grant", STRANGER, "specialist", env=env, cwd=tmp_path),
    )
    assert_ok(revoked)
    assert_ok(granted)

    refused = await slack.slash_command(SPECIALIST, "help")
    assert all(role in refused.body["text"] for role in ROLES)
    assert "Token Desk" in (await slack.slash_command(STRANGER, "help")).body["text"]
    events = await store.audit.events(limit=2)
    assert {event.actor for event in events} == {CLI_ACTOR}


async def test_the_audit_actor_is_the_operating_system_account(tmp_path: Path, db: Path) -> None:
    """USER and LOGNAME are whatever the caller sets: the audit record names the account the
    command really runs as."""
    spoofed = environment(tmp_path, db, USER="mallory", LOGNAME="mallory")
    granted = await tokendesk_async(
        "roles", "grant", ALICE, "specialist", env=spoofed, cwd=tmp_path
    )
    assert_ok(granted)
    assert [actor for actor, _, _ in audit_rows(db)] == [CLI_ACTOR]
    assert CLI_ACTOR != "cli:mallory"


def test_an_account_without_a_name_is_audited_by_its_number() -> None:
    nameless = next(uid for uid in range(2**31 - 2, 0, -1) if not _has_passwd_entry(uid))
    assert audit_actor(nameless) == f"cli:{nameless}"
    assert audit_actor(os.getuid()) == CLI_ACTOR


def _has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


# -- audit export -----------------------------------------------------------------------


JANUARY = datetime(2024, 1, 10, 12, 0, tzinfo=UTC)
LAST_SECOND_OF_JANUARY = datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)
FEBRUARY = datetime(2024, 2, 1, tzinfo=UTC)
MARCH = datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
FORMULA_NAMES = ("=SUM(A1:A9)", "+Plus one", "-Minus two", "@At three")


@pytest.fixture
async def history(data: Path) -> tuple[Path, list[str]]:
    """A database with events from January to March 2024 and the secrets it issued."""
    path = data / "tokendesk.db"
    clock = WallClock(JANUARY)
    store = await open_store(path, clock=clock)
    issued: list[str] = []
    try:

        async def create(name: str) -> None:
            token = await store.tokens.create(
                actor=ADMIN,
                name=name,
                description=f'{name}\nsecond line, with "quotes", commas',
                access_rights=["reports:read"],
                primary_contact=ADMIN,
                expires_on=days_ahead(clock=store.clock),
            )
            issued.append(token.secret)
            reset = await store.tokens.reset(
                actor=ADMIN,
                token_id=token.token.id,
                row_version=token.token.row_version,
                expires_on=days_ahead(clock=store.clock),
            )
            issued.append(reset.secret)

        await create(FORMULA_NAMES[0])
        await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
        clock.set(LAST_SECOND_OF_JANUARY)
        await create(FORMULA_NAMES[1])
        clock.set(FEBRUARY)
        await create(FORMULA_NAMES[2])
        clock.set(MARCH)
        await create(FORMULA_NAMES[3])
        await store.account.set_api_access(actor=ALICE, enabled=True)
    finally:
        await store.close()
    return path, issued


def stored_events(db: Path) -> list[tuple[int, int, str]]:
    with closing(sqlite3.connect(db)) as connection:
        return list(connection.execute("SELECT id, at, action FROM audit_log ORDER BY id"))


def assert_no_secret(output: str, issued: list[str]) -> None:
    for secret in issued:
        assert secret not in output and secret[4:36] not in output
    assert "tdk_" not in output


async def test_audit_export_as_jsonl(tmp_path: Path, history: tuple[Path, list[str]]) -> None:
    db, issued = history
    env = environment(tmp_path, db)
    everything, since = await all_of(
        tokendesk_async("audit", "--format", "jsonl", env=env, cwd=tmp_path),
        tokendesk_async(
            "audit", "--format", "jsonl", "--since", "2024-02-01", env=env, cwd=tmp_path
        ),
    )

    stored = stored_events(db)
    records = [json.loads(line) for line in assert_ok(everything)]
    assert [(r["id"], r["action"]) for r in records] == [(i, a) for i, _, a in stored]
    moments = [datetime.fromisoformat(record["at"]) for record in records]
    assert all(record["at"].endswith("+00:00") for record in records)
    assert [int(moment.timestamp()) for moment in moments] == [at for _, at, _ in stored]
    assert moments == sorted(moments)
    assert moments[0] == JANUARY and moments[-1] == MARCH
    first = records[0]
    assert (first["actor"], first["action"], first["token_name"]) == (
        ADMIN,
        "create",
        FORMULA_NAMES[0],
    )
    assert first["token_sid"].startswith("TD") and first["after"]["name"] == FORMULA_NAMES[0]
    assert {"role.user", "api_access", "reset"} <= {record["action"] for record in records}
    assert_no_secret(everything.stdout, issued)

    later = [json.loads(line) for line in assert_ok(since)]
    assert later == [r for r in records if datetime.fromisoformat(r["at"]) >= FEBRUARY]
    assert datetime.fromisoformat(later[0]["at"]) == FEBRUARY
    assert {r["token_name"] for r in later} == {FORMULA_NAMES[2], FORMULA_NAMES[3], None}
    assert no_key_file(db)


async def test_audit_export_as_csv_neutralises_formulas(
    tmp_path: Path, history: tuple[Path, list[str]]
) -> None:
    db, issued = history
    env = environment(tmp_path, db)
    everything = await tokendesk_async("audit", "--format", "csv", env=env, cwd=tmp_path)

    assert everything.returncode == 0 and everything.stderr == ""
    header, *rows = list(csv.reader(io.StringIO(everything.stdout)))
    assert header == ["id", "at", "actor", "action", "token_sid", "token_name", "before", "after"]
    stored = stored_events(db)
    assert [(int(row[0]), row[3]) for row in rows] == [(i, a) for i, _, a in stored]
    assert [datetime.fromisoformat(row[1]) for row in rows] == [
        datetime.fromtimestamp(at, UTC) for _, at, _ in stored
    ]
    assert all(row[1].endswith("+00:00") for row in rows)
    names = {row[5] for row in rows if row[5]}
    assert names == {"'" + name for name in FORMULA_NAMES}
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), cell
        assert isinstance(json.loads(row[6]), dict) and isinstance(json.loads(row[7]), dict)
    created = next(row for row in rows if row[3] == "create")
    assert json.loads(created[7])["description"].startswith(FORMULA_NAMES[0] + "\nsecond line")
    assert_no_secret(everything.stdout, issued)


async def test_audit_export_shows_expiry_changes_and_token_desks_own_disables(
    tmp_path: Path, data: Path, settings: Settings
) -> None:
    """An expiry chosen anew (Edit, Reset) is in the records' before and after; a token the
    scheduler disabled for being unused is recorded with the actor `tokendesk`."""
    path = data / "tokendesk.db"
    clock = WallClock(JANUARY)
    store = await open_store(path, clock=clock)
    try:
        first_date, later_date, reset_date = (
            days_ahead(days, clock=clock) for days in (90, 120, 200)
        )
        edited = await store.tokens.create(
            actor=ADMIN,
            name="Edited",
            description="",
            access_rights=["reports:read"],
            primary_contact=ADMIN,
            expires_on=first_date,
        )
        await store.tokens.edit(
            actor=ADMIN,
            token_id=edited.token.id,
            row_version=edited.token.row_version,
            edit=TokenEdit(expires_on=later_date),
        )
        await store.tokens.reset(
            actor=ADMIN, token_id=edited.token.id, row_version=2, expires_on=reset_date
        )
        await store.tokens.create(
            actor=ADMIN,
            name="Forgotten",
            description="",
            access_rights=["reports:read"],
            primary_contact=ADMIN,
            expires_on=reset_date,
        )
        scheduler = Scheduler(
            store=store,
            client=create_web_client(settings),
            settings=settings.model_copy(update={"tokendesk_disable_unused_days": 30}),
            clock=clock,
        )
        clock.set(JANUARY + timedelta(days=23))
        assert (await scheduler.run_pass()).warned
        clock.set(JANUARY + timedelta(days=30))
        disabled = (await scheduler.run_pass()).disabled
        assert sorted(token.name for token in disabled) == ["Edited", "Forgotten"]
    finally:
        await store.close()

    env = environment(tmp_path, path)
    jsonl, as_csv = await all_of(
        tokendesk_async("audit", "--format", "jsonl", env=env, cwd=tmp_path),
        tokendesk_async("audit", "--format", "csv", env=env, cwd=tmp_path),
    )
    records = [json.loads(line) for line in assert_ok(jsonl)]
    changes = [(r["actor"], r["action"], r["token_name"], r["before"], r["after"]) for r in records]
    edit = next(change for change in changes if change[1] == "edit")
    assert edit[3:] == (
        {"expires_on": first_date.isoformat()},
        {"expires_on": later_date.isoformat()},
    )
    reset = next(change for change in changes if change[1] == "reset")
    assert reset[3]["expires_on"] == later_date.isoformat()
    assert reset[4]["expires_on"] == reset_date.isoformat()
    disables = [change for change in changes if change[1] == "disable"]
    assert sorted(change[2] for change in disables) == ["Edited", "Forgotten"]
    for actor, _, _, before, after in disables:
        assert actor == "tokendesk"
        assert (before, after) == ({"state": "enabled"}, {"state": "disabled", "reason": "idle"})
    assert_ok(as_csv)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(row["actor"], row["action"]) for row in rows] == [(r[0], r[1]) for r in changes]
    assert json.loads(next(row for row in rows if row["action"] == "edit")["after"]) == {
        "expires_on": later_date.isoformat()
    }


# -- backup -----------------------------------------------------------------------------


def temporary_files(directory: Path) -> list[str]:
    return [path.name for path in directory.iterdir() if path.name.endswith(".tmp")]


def backup_contents(path: Path) -> tuple[str, str, set[str], int]:
    with closing(sqlite3.connect(file_uri(path, "ro"), uri=True)) as connection:
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
        journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
        sids = {row[0] for row in connection.execute("SELECT sid FROM tokens")}
        events = connection.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    return check, journal, sids, events


async def test_backup_while_the_app_writes(tmp_path: Path, open_db: tuple[Path, Store]) -> None:
    db, store = open_db
    issued: list[str] = []
    for number in range(20):
        token = await store.tokens.create(
            actor=ADMIN,
            name=f"Before backup {number}",
            access_rights=["reports:read"],
            primary_contact=ADMIN,
            expires_on=days_ahead(clock=store.clock),
        )
        issued.append(token.secret)
    committed = {token.sid for token in (await store.token_reads.page(offset=0, limit=100)).tokens}
    events_committed = len(await store.audit.events(limit=1000))
    stop = asyncio.Event()
    written_meanwhile: list[str] = []

    async def keep_writing() -> None:
        number = 0
        while not stop.is_set():
            token = await store.tokens.create(
                actor=ADMIN,
                name=f"During backup {number}",
                access_rights=["reports:read"],
                primary_contact=ADMIN,
                expires_on=days_ahead(clock=store.clock),
            )
            issued.append(token.secret)
            written_meanwhile.append(token.token.sid)
            number += 1
            await asyncio.sleep(0.005)

    target = tmp_path / "backups" / "tokendesk-backup.db"
    target.parent.mkdir()
    env = environment(tmp_path, db)
    writer = asyncio.create_task(keep_writing())
    try:
        result = await tokendesk_async("backup", str(target), env=env, cwd=tmp_path)
        during = len(written_meanwhile)
        refused = await tokendesk_async("backup", str(target), env=env, cwd=tmp_path)
    finally:
        stop.set()
        await writer
    assert during > 0, "no write happened while the backup ran"

    output = assert_ok(result)
    key_check = SecretHasher(KEY).key_check_value()
    assert any(key_check in line for line in output), output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    check, journal, sids, events = backup_contents(target)
    assert check == "ok" and journal == "delete"
    assert committed <= sids
    assert events >= events_committed
    assert temporary_files(target.parent) == [] and temporary_files(db.parent) == []
    assert sorted(path.name for path in target.parent.iterdir()) == [target.name]
    first_copy = target.read_bytes()
    for secret in issued:
        assert secret.encode() not in first_copy and secret[4:36].encode() not in first_copy

    assert_one_line_refusal(refused, "--force")
    assert target.read_bytes() == first_copy

    forced = await tokendesk_async("backup", str(target), "--force", env=env, cwd=tmp_path)
    assert any(key_check in line for line in assert_ok(forced))
    _, _, sids_now, _ = backup_contents(target)
    assert set(written_meanwhile) <= sids_now
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(path.name for path in target.parent.iterdir()) == [target.name]
    assert no_key_file(db, target)


async def test_backup_of_a_database_with_uri_characters_in_its_path(tmp_path: Path) -> None:
    """`#` and `?` are plain characters in a file name, not the start of a URI's fragment or
    query: the backup copies that file and creates no stray one."""
    data = tmp_path / "data#1?mode=rwc"
    data.mkdir()
    db = data / "token#desk?.db"
    store = await open_store(db)
    try:
        issued = await store.tokens.create(
            actor=ADMIN,
            name="Odd path",
            access_rights=["reports:read"],
            primary_contact=ADMIN,
            expires_on=days_ahead(clock=store.clock),
        )
    finally:
        await store.close()
    before = directory_listing(tmp_path)
    target = tmp_path / "backup #2?.db"

    result = await tokendesk_async("backup", str(target), env=environment(tmp_path, db), cwd=data)
    assert any(SecretHasher(KEY).key_check_value() in line for line in assert_ok(result))
    check, _, sids, _ = backup_contents(target)
    assert check == "ok" and sids == {issued.token.sid}
    assert directory_listing(tmp_path) == before | {target.name}
    assert directory_listing(data) <= {db.name, f"{db.name}-wal", f"{db.name}-shm"}


async def test_backup_into_a_missing_directory_is_one_line(tmp_path: Path, db: Path) -> None:
    target = tmp_path / "no-such-directory" / "backup.db"
    result = tokendesk("backup", str(target), env=environment(tmp_path, db), cwd=tmp_path)
    assert_one_line_refusal(result)
    assert not target.parent.exists()


# -- databases the commands cannot use --------------------------------------------------


def directory_listing(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


async def refusals_of(
    tmp_path: Path, db: Path, commands: list[tuple[str, ...]], *, timeout: float = 10
) -> list[Result]:
    env = environment(tmp_path, db)
    return await all_of(
        *(tokendesk_async(*command, env=env, cwd=tmp_path, timeout=timeout) for command in commands)
    )


GRANT = ("roles", "grant", ALICE, "admin")
LIST = ("roles", "list")


async def test_a_missing_database_is_never_created(tmp_path: Path, data: Path) -> None:
    db, target = data / "tokendesk.db", tmp_path / "backup.db"
    results = await refusals_of(tmp_path, db, [GRANT, ("backup", str(target))])
    for result in results:
        assert_one_line_refusal(result, "TOKENDESK_DB", "does not exist")
    assert directory_listing(data) == set()
    assert not target.exists() and temporary_files(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "command"),
    [
        pytest.param(b"", LIST, id="empty"),
        pytest.param(b"id,name\n1,not a database\n" * 64, GRANT, id="not-sqlite"),
    ],
)
async def test_a_file_that_is_no_token_desk_database_is_refused(
    tmp_path: Path, data: Path, content: bytes, command: tuple[str, ...]
) -> None:
    db, target = data / "tokendesk.db", tmp_path / "backup.db"
    db.write_bytes(content)
    results = await refusals_of(tmp_path, db, [command, ("backup", str(target))], timeout=3)
    for result in results:
        assert_one_line_refusal(result)
    assert "not a Token Desk database" in results[0].stderr or "not a database" in results[0].stderr
    assert directory_listing(data) == {db.name}
    assert db.read_bytes() == content
    assert not target.exists() and temporary_files(tmp_path) == []


async def test_an_unreadable_database(tmp_path: Path, db: Path) -> None:
    before = directory_listing(db.parent)
    db.chmod(0)
    try:
        if os.geteuid() != 0:
            target = tmp_path / "backup.db"
            for result in await refusals_of(tmp_path, db, [GRANT, ("backup", str(target))]):
                assert_one_line_refusal(result, "TOKENDESK_DB", "readable")
            assert not target.exists()
        else:
            # root reads whatever the mode says: the command works and changes no mode.
            listed = await tokendesk_async(*LIST, env=environment(tmp_path, db), cwd=tmp_path)
            assert assert_ok(listed) == []
        assert stat.S_IMODE(db.stat().st_mode) == 0
        assert directory_listing(db.parent) == before
        assert no_key_file(db)
    finally:
        db.chmod(0o600)


async def test_a_busy_database_answers_quickly_with_one_line(tmp_path: Path, db: Path) -> None:
    """Reading is not blocked by a writer (WAL): how long `roles list` takes is what starting
    the command costs; a write waits for the busy timeout (1 s) on top, no longer."""
    holder = sqlite3.connect(db, isolation_level=None, timeout=0)
    env = environment(tmp_path, db)

    async def timed(command: tuple[str, ...]) -> tuple[Result, float]:
        started = time.monotonic()
        result = await tokendesk_async(*command, env=env, cwd=tmp_path, timeout=10)
        return result, time.monotonic() - started

    try:
        holder.execute("BEGIN IMMEDIATE")
        (grant, grant_took), (listed, list_took) = await asyncio.gather(timed(GRANT), timed(LIST))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_one_line_refusal(grant, "busy")
    assert grant_took - list_took < 2.0, f"{grant_took:.1f} s against {list_took:.1f} s"
    assert assert_ok(listed) == []
    assert [action for _, action, _ in audit_rows(db)] == []
    assert no_key_file(db)
