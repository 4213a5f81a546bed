"""The database file: one instance per file however it is reached, the bounded wait for the
write lock, and paths that SQLite would misread. Real files, some in a child process."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import aiosqlite
import pytest

from storage.database import SqliteDatabase
from storage.errors import StartupRefused, StoreBusy
from tests.storage.support_durability import (
    KEY,
    SCOPES,
    VERSIONS,
    create_token,
    opened_store,
    python_env,
)

ANOTHER_INSTANCE = "another Token Desk instance is serving this database"

# One instance per database file ----------------------------------------------------------


def another_way_to(path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A second path to the database file at `path` (in `data/` under a test directory)."""
    data = path.parent
    if how == "symlink":
        alias = data.parent / "link.db"
        alias.symlink_to(path)
    elif how == "hard link":
        alias = data.parent / "linked.db"
        os.link(path, alias)
    elif how == "symlinked directory":
        (data.parent / "current").symlink_to(data, target_is_directory=True)
        alias = data.parent / "current" / path.name
    elif how == "relative path":
        monkeypatch.chdir(data)
        alias = Path(path.name)
    else:
        (data / "sub").mkdir()
        alias = data / "sub" / ".." / path.name
    assert str(alias) != str(path) and alias.samefile(path)
    return alias


@pytest.mark.parametrize(
    "how", ["symlink", "hard link", "symlinked directory", "relative path", "dot-dot path"]
)
async def test_a_second_instance_is_refused_however_it_reaches_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    path = tmp_path / "data" / "tokendesk.db"
    path.parent.mkdir()
    async with opened_store(path) as store:
        await create_token(store, "First Instance")
        alias = another_way_to(path, how, monkeypatch)
        with pytest.raises(StartupRefused) as refused:
            async with opened_store(alias):
                pytest.fail(f"a second instance served the database through a {how}")
        assert (refused.value.subject, refused.value.rule) == ("TOKENDESK_DB", ANOTHER_INSTANCE)
        # The refusal did not disturb the instance that holds the database.
        await create_token(store, "Still Serving")

    # Closing released the lock: the same file opens through the other path, data and all.
    async with opened_store(alias) as store:
        assert store.token_reads.count == 2


_OPEN_AND_HOLD = f"""
import asyncio, os, sys
from pathlib import Path
from storage.store import Store

async def main():
    store = await Store.open(
        path=Path(sys.argv[1]),
        secret_key=bytes.fromhex(os.environ["TOKENDESK_TEST_KEY"]),
        api_versions={VERSIONS!r},
        scopes={SCOPES!r},
        flush_seconds=3600.0,
    )
    print("serving", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await store.close()

asyncio.run(main())
"""


async def test_an_instance_in_another_process_holds_the_file_not_the_name(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path):
        pass
    alias = tmp_path / "link.db"
    alias.symlink_to(path)
    script = tmp_path / "hold.py"
    script.write_text(_OPEN_AND_HOLD)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(alias),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=python_env(TOKENDESK_TEST_KEY=KEY.hex()),
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        async with asyncio.timeout(30):
            assert await child.stdout.readline() == b"serving\n"
        with pytest.raises(StartupRefused) as refused:
            async with opened_store(path):
                pytest.fail("a second instance served the database beside another process")
        assert refused.value.rule == ANOTHER_INSTANCE
    finally:
        child.stdin.close()
        async with asyncio.timeout(30):
            await child.wait()
    assert child.returncode == 0


# The bounded wait for the write lock ------------------------------------------------------


async def insert_setting(connection: aiosqlite.Connection, key: str) -> None:
    await connection.execute("INSERT INTO settings (key, value) VALUES (?, 'x')", (key,))


async def test_a_change_queued_behind_a_slow_one_is_refused_in_bounded_time(
    tmp_path: Path,
) -> None:
    database = await SqliteDatabase.open(tmp_path / "tokendesk.db", write_wait_seconds=0.3)
    try:
        slow_started, release = asyncio.Event(), asyncio.Event()
        queued_ran: list[str] = []

        async def slow(connection: aiosqlite.Connection) -> None:
            slow_started.set()
            await release.wait()
            await insert_setting(connection, "slow")

        async def queued(connection: aiosqlite.Connection) -> None:
            queued_ran.append("ran")
            await insert_setting(connection, "queued")

        first = asyncio.create_task(database.transact(slow, after_commit=lambda _: None))
        await slow_started.wait()
        started = time.monotonic()
        # Without a bound the queued change would wait for as long as the slow one takes.
        async with asyncio.timeout(5):
            with pytest.raises(StoreBusy):
                await database.transact(queued, after_commit=queued_ran.append)
        assert 0.3 <= time.monotonic() - started < 1.5
        assert queued_ran == []  # neither the change nor its after-commit ran

        release.set()
        await first
        await database.transact(queued, after_commit=lambda _: None)
        rows = await database.fetch_all(
            "SELECT key FROM settings WHERE key IN ('slow', 'queued') ORDER BY rowid"
        )
        assert rows == [("slow",), ("queued",)]
    finally:
        await database.close()


async def test_an_operator_attaching_waits_out_a_moment_of_exclusive_lock(
    tmp_path: Path,
) -> None:
    """Closing a database's last connection checkpoints the WAL under an exclusive lock;
    an operator's command opening it at that moment waits instead of failing."""
    path = tmp_path / "tokendesk.db"
    await (await SqliteDatabase.open(path)).close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("COMMIT")  # the exclusive lock stays held until the connection closes

    async def release_soon() -> None:
        await asyncio.sleep(0.3)
        holder.close()

    released = asyncio.create_task(release_soon())
    database = await SqliteDatabase.attach(path)
    try:
        assert released.done()
        assert await database.fetch_one("SELECT count(*) FROM settings") is not None
    finally:
        await database.close()


# Paths SQLite would misread ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["token#desk.db", "token?desk.db", "100% token desk.db", "tökén desk.db"]
)
async def test_a_path_with_uri_characters_is_the_file_it_names(tmp_path: Path, name: str) -> None:
    directory = tmp_path / "data#1?mode=ro"
    directory.mkdir()
    path = directory / name
    database = await SqliteDatabase.open(path)
    await database.transact(
        lambda connection: insert_setting(connection, "written"), after_commit=lambda _: None
    )
    await database.close()

    attached = await SqliteDatabase.attach(path)
    try:
        assert await attached.fetch_one("SELECT key FROM settings WHERE key = 'written'")
    finally:
        await attached.close()
    assert {file.name for file in tmp_path.iterdir()} == {directory.name}
    assert {file.name for file in directory.iterdir()} <= {name, f"{name}-wal", f"{name}-shm"}


async def test_a_relative_path_that_starts_with_file_is_a_plain_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    database = await SqliteDatabase.open(Path("file:tokendesk.db"))
    await database.close()
    assert {file.name for file in tmp_path.iterdir()} <= {
        "file:tokendesk.db",
        "file:tokendesk.db-wal",
        "file:tokendesk.db-shm",
    }
