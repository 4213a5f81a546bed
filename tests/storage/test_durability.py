"""What survives a crash, what reaches the disk, and what start-up refuses.

Everything here runs on real files in `tmp_path`, some of it in real child processes.
"""

from __future__ import annotations

import asyncio
import os
import random
import selectors
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage.credentials import key_file_for, load_or_create_key
from storage.errors import InvalidInput, StartupRefused, StoreBusy
from storage.models import TokenEdit
from storage.store import Store
from tests.storage.support_durability import (
    ACTOR,
    KEY,
    OTHER_KEY,
    SCOPES,
    VERSIONS,
    FakeClock,
    create_token,
    opened_store,
    plain_connection,
    python_env,
    run_python,
)
from tests.store_support import tokens_by_sid, verify

_OPEN_IN_CHILD = f"""
import asyncio, os, sys
from pathlib import Path
from storage.errors import StartupRefused
from storage.store import Store

def open_store():
    return Store.open(
        path=Path(sys.argv[1]),
        secret_key=bytes.fromhex(os.environ["TOKENDESK_TEST_KEY"]),
        api_versions={VERSIONS!r},
        scopes={SCOPES!r},
        flush_seconds=3600.0,
        max_lifetime_days=0,
    )
"""

# Creates and resets tokens until killed, printing `SID ROW_VERSION SECRET` for each change
# only once the store has acknowledged it. The pipe is the test's own: nothing else sees it.
WRITER = (
    _OPEN_IN_CHILD
    + """
import random

async def main():
    store = await open_store()
    print("ready", flush=True)
    known = {}
    created = 0
    while True:
        if known and random.random() < 0.4:
            sid = random.choice(list(known))
            token_id, row_version = known[sid]
            issued = await store.tokens.reset(
                actor="UWRITER01", token_id=token_id, row_version=row_version, expires_on=None
            )
        else:
            created += 1
            issued = await store.tokens.create(
                actor="UWRITER01",
                name=f"Durable {created}",
                access_rights=["reports:read"],
                primary_contact="UCONTACT1",
                expires_on=None,
            )
        token = issued.token
        known[token.sid] = (token.id, token.row_version)
        sys.stdout.write(f"{token.sid} {token.row_version} {issued.secret}\\n")
        sys.stdout.flush()

asyncio.run(main())
"""
)

OPENER = (
    _OPEN_IN_CHILD
    + """
async def main():
    try:
        store = await open_store()
    except StartupRefused as refused:
        print("refused", refused.subject)
        return
    await store.close()
    print("opened")

asyncio.run(main())
"""
)


def wal_of(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def shm_of(path: Path) -> Path:
    return path.with_name(path.name + "-shm")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def integrity(path: Path) -> list[tuple[str]]:
    connection = plain_connection(path)
    try:
        return connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


# A process killed mid-write ---------------------------------------------------------------


def read_into(output: bytearray, child: subprocess.Popen[bytes], *, until: float) -> None:
    """Read the child's stdout until the monotonic time `until`, or its first line if that
    has not arrived yet (the child is ready), or the end of the pipe."""
    assert child.stdout is not None
    descriptor = child.stdout.fileno()
    want_first_line = b"\n" not in output
    with selectors.DefaultSelector() as selector:
        selector.register(descriptor, selectors.EVENT_READ)
        while (remaining := until - time.monotonic()) > 0:
            if not selector.select(remaining):
                continue
            chunk = os.read(descriptor, 65536)
            if not chunk:
                return
            output += chunk
            if want_first_line and b"\n" in output:
                return


def acknowledged(output: bytes) -> dict[str, list[tuple[int, str]]]:
    """SID → the (row version, secret) pairs the child printed, in order. A line cut short
    by the kill was never acknowledged and is left out."""
    lines = output.decode("ascii").split("\n")[:-1]
    assert lines and lines[0] == "ready"
    printed: dict[str, list[tuple[int, str]]] = {}
    for line in lines[1:]:
        sid, row_version, secret = line.split(" ")
        printed.setdefault(sid, []).append((int(row_version), secret))
    return printed


@pytest.mark.parametrize("trial", range(3))
async def test_a_killed_process_loses_no_acknowledged_change(tmp_path: Path, trial: int) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = tmp_path / "tokendesk.db"
    output = bytearray()
    with subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=python_env(TOKENDESK_TEST_KEY=KEY.hex()),
    ) as child:
        try:
            read_into(output, child, until=time.monotonic() + 15)
            assert output.startswith(b"ready\n")
            # While the writer lives, it alone serves the database.
            with pytest.raises(StartupRefused) as refused:
                async with opened_store(path):
                    pytest.fail("a second instance opened the database")
            assert refused.value.subject == "TOKENDESK_DB"
            read_into(output, child, until=time.monotonic() + random.uniform(0.3, 1.5))
        finally:
            child.kill()
            rest, errors = child.communicate(timeout=15)
        output += rest
    assert child.returncode == -signal.SIGKILL, errors.decode(errors="replace")

    printed = acknowledged(bytes(output))
    assert printed, "the writer acknowledged nothing before it was killed"
    assert integrity(path) == [("ok",)]

    # The kernel released the dead writer's instance lock.
    async with opened_store(path) as store:
        await store.account.set_api_access(actor=ACTOR, enabled=True)
        # At most one change was committed but not yet printed when the kill came.
        unacknowledged = store.token_reads.count - len(printed)
        assert unacknowledged in (0, 1)
        tokens = await tokens_by_sid(store)
        for sid, changes in printed.items():
            token = tokens[sid]
            versions = [row_version for row_version, _ in changes]
            assert versions == sorted(set(versions))
            for _, earlier in changes[:-1]:
                assert verify(store, earlier) is None
            latest_version, latest = changes[-1]
            if token.row_version == latest_version:
                authorized = verify(store, latest, sid)
                assert authorized is not None and authorized.sid == sid
                assert token.secret_hint == latest[-4:]
            else:
                # A reset committed but killed before it was acknowledged: it may stand,
                # and then the acknowledged secret is the one it replaced.
                assert token.row_version == latest_version + 1
                assert verify(store, latest) is None
                unacknowledged += 1
        assert unacknowledged <= 1
    assert integrity(path) == [("ok",)]


# No secret on disk ----------------------------------------------------------------------


def encodings_of(text: str) -> list[bytes]:
    return [text.encode(encoding) for encoding in ("ascii", "utf-16-le", "utf-16-be")]


def assert_no_secret_in_files(directory: Path, issued: list[str]) -> None:
    needles = [
        needle for secret in issued for needle in encodings_of(secret) + encodings_of(secret[4:36])
    ]
    files = [path for path in directory.rglob("*") if path.is_file()]
    assert files
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"a secret was found in {path.name}"


async def test_no_issued_secret_reaches_the_database_its_wal_or_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    key = load_or_create_key(path, None)
    issued: list[str] = []
    async with opened_store(path, secret_key=key) as store:
        await store.account.set_api_access(actor=ACTOR, enabled=True)
        for number in range(4):
            created = await create_token(
                store, f"Secretive {number}", description=f"First line\nsecond line {number}"
            )
            reset = await store.tokens.reset(
                actor=ACTOR,
                token_id=created.token.id,
                row_version=created.token.row_version,
                expires_on=None,
            )
            duplicate = await store.tokens.duplicate(
                actor=ACTOR,
                token_id=reset.token.id,
                row_version=reset.token.row_version,
                expires_on=None,
            )
            await store.tokens.edit(
                actor=ACTOR,
                token_id=duplicate.token.id,
                row_version=duplicate.token.row_version,
                edit=TokenEdit(description=f"Edited copy {number}"),
            )
            issued += [created.secret, reset.secret, duplicate.secret]
            assert verify(store, reset.secret) is not None
            assert await store.token_reads.find_by_secret(secret=duplicate.secret) is not None
        # Pasted into a token's details, a secret is refused, so it is not stored either.
        with pytest.raises(InvalidInput):
            await create_token(store, "Pasted", description=f"the key is {issued[0]}")
        await store.credentials.flush_last_used()

        assert wal_of(path).stat().st_size > 0
        assert_no_secret_in_files(tmp_path, issued)

    shutil.copyfile(path, tmp_path / "copy.db")
    assert_no_secret_in_files(tmp_path, issued)


# Files and the key ----------------------------------------------------------------------


async def test_the_database_its_wal_shm_and_key_files_are_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokendesk.db"
    with umask(0):  # the modes must come from the code, not from a strict umask
        key = load_or_create_key(path, None)
        async with opened_store(path, secret_key=key) as store:
            await create_token(store, "Private Files")
            files = [path, wal_of(path), shm_of(path), key_file_for(path)]
            assert {file.name: mode_of(file) for file in files} == {
                file.name: 0o600 for file in files
            }
    assert {file.name: mode_of(file) for file in files if file.exists()} == {
        file.name: 0o600 for file in files if file.exists()
    }


def test_the_key_file_is_created_once_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    key = load_or_create_key(path, None)
    key_file = key_file_for(path)
    created = key_file.stat()

    assert len(key) >= 32
    assert load_or_create_key(path, None) == key
    assert load_or_create_key(path, None) == key
    again = key_file.stat()
    assert (again.st_ino, again.st_mtime_ns) == (created.st_ino, created.st_mtime_ns)
    # Written whole through a temporary file, which is gone; no database was created.
    assert sorted(tmp_path.iterdir()) == [key_file]


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: load_or_create_key(path, None), range(16)))
    assert len(set(keys)) == 1
    assert load_or_create_key(path, None) == keys[0]
    assert sorted(tmp_path.iterdir()) == [key_file_for(path)]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "tokendesk.db"
    key = load_or_create_key(path, None)
    key_file_for(path).chmod(mode)

    with pytest.raises(StartupRefused) as refused:
        load_or_create_key(path, None)
    assert key_file_for(path).name in refused.value.subject
    assert key.hex() not in str(refused.value)
    assert key_file_for(path).read_bytes().strip().decode() not in str(refused.value)

    key_file_for(path).chmod(0o600)
    assert load_or_create_key(path, None) == key


def test_a_key_file_with_a_short_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    content = "c0ffee" * 5
    key_file_for(path).write_text(content + "\n")
    key_file_for(path).chmod(0o600)
    with pytest.raises(StartupRefused) as refused:
        load_or_create_key(path, None)
    assert key_file_for(path).name in refused.value.subject
    assert content not in str(refused.value)


@pytest.mark.parametrize(
    "configured",
    [
        KEY.hex(),
        KEY.hex().upper(),
        KEY.hex() + "\n",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ],
    ids=["hex", "HEX", "hex-newline", "base64"],
)
def test_a_configured_key_is_accepted_as_hex_or_base64(tmp_path: Path, configured: str) -> None:
    path = tmp_path / "tokendesk.db"
    assert load_or_create_key(path, configured) == KEY
    assert list(tmp_path.iterdir()) == []  # a configured key never writes a key file


@pytest.mark.parametrize(
    "configured",
    [
        "ab" * 31,  # 31 bytes as hex
        "c2l4dGVlbi1ieXRlLWtleQ==",  # 16 bytes as base64
        "f" * 63,  # odd-length hex, and not base64 either
        "this is a passphrase, not a key of any kind",
    ],
    ids=["short-hex", "short-base64", "odd-hex", "not-encoded"],
)
def test_a_bad_configured_key_is_refused_without_echoing_it(
    tmp_path: Path, configured: str
) -> None:
    with pytest.raises(StartupRefused) as refused:
        load_or_create_key(tmp_path / "tokendesk.db", configured)
    assert refused.value.subject == "TOKENDESK_SECRET_KEY"
    assert configured not in str(refused.value)
    assert list(tmp_path.iterdir()) == []


async def test_a_short_key_is_refused_before_any_file_is_created(tmp_path: Path) -> None:
    with pytest.raises(StartupRefused) as refused:
        async with opened_store(tmp_path / "tokendesk.db", secret_key=KEY[:16]):
            pytest.fail("a store opened with a 16-byte key")
    assert refused.value.subject == "TOKENDESK_SECRET_KEY"
    assert list(tmp_path.iterdir()) == []


async def test_a_database_refuses_a_key_it_was_not_created_with(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path) as store:
        await store.account.set_api_access(actor=ACTOR, enabled=True)
        issued = await create_token(store, "Keyed")

    with pytest.raises(StartupRefused) as refused:
        async with opened_store(path, secret_key=OTHER_KEY):
            pytest.fail("a store opened with the wrong key")
    assert refused.value.subject == "TOKENDESK_SECRET_KEY"
    assert KEY.hex() not in str(refused.value) and OTHER_KEY.hex() not in str(refused.value)

    async with opened_store(path) as store:
        assert verify(store, issued.secret, issued.token.sid) is not None


# One instance per database --------------------------------------------------------------


async def test_a_second_instance_in_the_same_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path) as store:
        with pytest.raises(StartupRefused) as refused:
            async with opened_store(path):
                pytest.fail("two stores served one database")
        assert refused.value.subject == "TOKENDESK_DB"
        # The refusal did not disturb the instance that holds the database.
        await create_token(store, "Still Serving")
        assert store.token_reads.count == 1

    async with opened_store(path) as store:
        assert store.token_reads.count == 1


async def test_a_second_instance_in_another_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    script = tmp_path / "opener.py"
    script.write_text(OPENER)
    env = python_env(TOKENDESK_TEST_KEY=KEY.hex())

    store = await Store.open(
        path=path, secret_key=KEY, api_versions=VERSIONS, scopes=SCOPES, flush_seconds=3600.0
    )
    try:
        child = await _run_in_thread(script, path, env)
        assert child.stdout.split() == ["refused", "TOKENDESK_DB"], child.stderr
    finally:
        await store.close()

    child = await _run_in_thread(script, path, env)
    assert child.stdout.split() == ["opened"], child.stderr


async def _run_in_thread(
    script: Path, path: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_python, script, str(path), env=env)


# The catalogs ---------------------------------------------------------------------------


async def test_dropping_an_api_version_still_in_use_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path) as store:
        issued = await create_token(store, "Nightly Export")
        assert issued.token.api_version == "v3"

    with pytest.raises(StartupRefused) as refused:
        async with opened_store(path, api_versions=("v1", "v2")):
            pytest.fail("a catalog without v3 was accepted")
    assert refused.value.subject == "TOKENDESK_API_VERSIONS"
    assert "v3" in refused.value.rule and "Nightly Export" in refused.value.rule

    # A version no token uses may go.
    async with opened_store(path, api_versions=("v2", "v3")) as store:
        assert store.token_reads.count == 1


async def test_dropping_a_scope_still_in_use_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path) as store:
        await create_token(store, "Nightly Export", access_rights=("reports:read", "actions:write"))
        for number in range(1, 7):
            await create_token(store, f"Worker {number}", access_rights=("actions:write",))

    with pytest.raises(StartupRefused) as refused:
        async with opened_store(path, scopes=("reports:read", "reports:write")):
            pytest.fail("a catalog without actions:write was accepted")
    assert refused.value.subject == "TOKENDESK_SCOPES"
    rule = refused.value.rule
    assert "actions:write" in rule
    # The first names in order, then an ellipsis rather than an unbounded list.
    assert all(name in rule for name in ("Nightly Export", "Worker 1", "Worker 4"))
    assert "Worker 5" not in rule and "…" in rule

    async with opened_store(path, scopes=("reports:read", "actions:write")) as store:
        assert store.token_reads.count == 7


# Locks and the audit log ----------------------------------------------------------------


async def test_a_write_while_another_connection_holds_the_lock_is_store_busy(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path) as store:
        await create_token(store, "Before The Lock")
        blocker = plain_connection(path)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(StoreBusy):
                await create_token(store, "During The Lock")
            assert time.monotonic() - started < 1.5
            # Nothing half-applied, and reads still answer while the writer is blocked.
            assert store.token_reads.count == 1
            assert (await store.token_reads.page()).total == 1
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await create_token(store, "After The Lock")
        assert store.token_reads.count == 2


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'UMALLORY1'",
        "UPDATE audit_log SET detail = '{}' WHERE action = 'create'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE action = 'create'",
    ],
)
async def test_the_audit_log_refuses_updates_and_deletes(tmp_path: Path, statement: str) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path) as store:
        await create_token(store, "Audited")
        await store.account.set_api_access(actor=ACTOR, enabled=True)
    connection = plain_connection(path)
    try:
        before = connection.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
        assert len(before) == 2
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            connection.execute(statement)
        assert connection.execute("SELECT * FROM audit_log ORDER BY id").fetchall() == before
    finally:
        connection.close()


async def test_the_audit_log_refuses_a_record_replaced_in_place(tmp_path: Path) -> None:
    """`INSERT OR REPLACE` deletes the conflicting row without firing DELETE triggers
    (unless recursive triggers are on), so it must be refused some other way."""
    path = tmp_path / "tokendesk.db"
    async with opened_store(path) as store:
        await create_token(store, "Audited")
    connection = plain_connection(path)
    try:
        before = connection.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
        with pytest.raises(sqlite3.DatabaseError):
            connection.execute(
                "INSERT OR REPLACE INTO audit_log (id, at, actor, action, detail)"
                " VALUES (?, 0, 'UMALLORY1', 'create', '{}')",
                (before[0][0],),
            )
        assert connection.execute("SELECT * FROM audit_log ORDER BY id").fetchall() == before
    finally:
        connection.close()


# Last-used times ------------------------------------------------------------------------


def usage_rows(path: Path) -> list[tuple[int, int]]:
    connection = plain_connection(path)
    try:
        return connection.execute(
            "SELECT token_id, last_used_at FROM token_usage ORDER BY token_id"
        ).fetchall()
    finally:
        connection.close()


async def test_many_checks_are_written_as_one_last_used_time(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    clock = FakeClock()
    async with opened_store(path, clock=clock) as store:
        await store.account.set_api_access(actor=ACTOR, enabled=True)
        issued = await create_token(store, "Busy Integration")
        token_id = issued.token.id
        for _ in range(50):
            assert verify(store, issued.secret) is not None
            clock.advance(1)
        last_check = int(clock.now) - 1

        assert await store.credentials.flush_last_used() == 1
        assert usage_rows(path) == [(token_id, last_check)]
        assert await store.credentials.flush_last_used() == 0  # nothing new, nothing written

        clock.advance(120)
        verify(store, issued.secret)
        assert await store.credentials.flush_last_used() == 1
        assert usage_rows(path) == [(token_id, int(clock.now))]


async def test_last_used_shows_before_it_is_written_and_close_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    clock = FakeClock()
    async with opened_store(path, clock=clock) as store:
        await store.account.set_api_access(actor=ACTOR, enabled=True)
        issued = await create_token(store, "Fresh Use")
        clock.advance(30)
        verify(store, issued.secret)

        token = await store.token_reads.get(token_id=issued.token.id)
        assert token.last_used_at is not None
        assert token.last_used_at.timestamp() == clock.now
        (listed,) = (await store.token_reads.page()).tokens
        assert listed.last_used_at == token.last_used_at
        assert usage_rows(path) == []  # not written yet

    assert usage_rows(path) == [(issued.token.id, int(clock.now))]
    async with opened_store(path, clock=clock) as store:
        token = await store.token_reads.get(token_id=issued.token.id)
        assert token.last_used_at is not None
        assert token.last_used_at.timestamp() == clock.now


async def test_last_used_never_moves_the_row_version(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    clock = FakeClock()
    async with opened_store(path, clock=clock) as store:
        await store.account.set_api_access(actor=ACTOR, enabled=True)
        issued = await create_token(store, "Steady Version")
        before = issued.token
        for _ in range(3):
            clock.advance(90)
            verify(store, issued.secret)
            await store.credentials.flush_last_used()

        after = await store.token_reads.get(token_id=before.id)
        assert after.last_used_at is not None
        assert (after.row_version, after.updated_at, after.updated_by) == (
            before.row_version,
            before.updated_at,
            before.updated_by,
        )
        # A confirmation carrying the version seen before the checks still applies.
        change = await store.tokens.edit(
            actor=ACTOR,
            token_id=before.id,
            row_version=before.row_version,
            edit=TokenEdit(description="Still current"),
        )
        assert change.changed


async def test_a_token_deleted_after_use_flushes_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    clock = FakeClock()
    async with opened_store(path, clock=clock) as store:
        await store.account.set_api_access(actor=ACTOR, enabled=True)
        gone = await create_token(store, "Soon Gone")
        kept = await create_token(store, "Kept")
        verify(store, gone.secret)
        verify(store, kept.secret)
        await store.tokens.delete(
            actor=ACTOR, token_id=gone.token.id, row_version=gone.token.row_version
        )

        await store.credentials.flush_last_used()
        assert usage_rows(path) == [(kept.token.id, int(clock.now))]

        verify(store, kept.secret)
        clock.advance(5)
        assert verify(store, gone.secret) is None
    # Closing flushed whatever was left without tripping over the deleted token.
    assert usage_rows(path) == [(kept.token.id, int(clock.now) - 5)]
