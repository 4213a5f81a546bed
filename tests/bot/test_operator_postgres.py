"""The operator commands with TOKENDESK_DATABASE_URL: `python -m bot …` in a subprocess, as
tests/bot/test_operator.py runs them, against a database of the test cluster that an
instance created (a store opened in the test, then closed, or still open), an empty one,
and a server nobody listens for. Every URL they are given holds a password, which no
output ever shows."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from storage.models import Role
from storage.postgres import CONNECT_WAIT_SECONDS
from storage.store import Store
from tests.bot.conftest import ADMIN
from tests.bot.instances_support import PASSWORD, with_password
from tests.bot.test_operator import (
    ALICE,
    CLI_ACTOR,
    GRID_USER,
    KEY,
    OPS,
    SCOPES,
    VERSIONS,
    Result,
    all_of,
    assert_ok,
    assert_one_line_refusal,
    directory_listing,
    environment,
    tokendesk_async,
)
from tests.postgres_cluster import HOST, free_port

GRANT = ("roles", "grant", ALICE, "admin")
LIST = ("roles", "list")
AUDIT = ("audit", "--format", "jsonl")


async def open_instance(database_url: str) -> Store:
    """An instance's store on `database_url`, as the app opens it."""
    return await Store.open(
        database_url=database_url, secret_key=KEY, api_versions=VERSIONS, scopes=SCOPES
    )


def postgres_environment(home: Path, database_url: str, **values: str) -> dict[str, str]:
    """What an operator runs a command with on PostgreSQL: the URL with a password, and a
    TOKENDESK_DB that must not matter (nor ever be created)."""
    return environment(
        home, home / "never-created.db", TOKENDESK_DATABASE_URL=database_url, **values
    )


def shows_no_password(*results: Result) -> bool:
    return not any(PASSWORD in result.stdout + result.stderr for result in results)


@pytest.fixture
async def created(postgres_url: str) -> AsyncIterator[str]:
    """A database an instance created and left, with a user and a group given roles by the
    app; its URL, with a password."""
    store = await open_instance(postgres_url)
    try:
        await store.roles.grant_group(actor=ADMIN, group_id=OPS, role=Role.SPECIALIST)
        await store.roles.grant_user(actor=ADMIN, user_id=GRID_USER, role=Role.SPECIALIST)
    finally:
        await store.close()
    yield with_password(postgres_url)


async def test_roles_grant_list_revoke_are_audited_as_the_operator(
    tmp_path: Path, created: str, postgres_url: str
) -> None:
    env = postgres_environment(tmp_path, created)
    with_admins = postgres_environment(tmp_path, created, TOKENDESK_ADMINS=ADMIN)
    granted, revoked, bootstrap = await all_of(
        tokendesk_async(*GRANT, env=env, cwd=tmp_path),
        tokendesk_async("roles", "revoke", GRID_USER, env=env, cwd=tmp_path),
        tokendesk_async("roles", "revoke", ADMIN, env=with_admins, cwd=tmp_path),
    )
    assert assert_ok(granted) == [f"{ALICE} is now an Account Administrator"]
    assert assert_ok(revoked) == [f"{GRID_USER} is no longer an Implementation Specialist"]
    assert_one_line_refusal(bootstrap, "TOKENDESK_ADMINS")
    listed = await tokendesk_async(*LIST, env=with_admins, cwd=tmp_path)
    assert assert_ok(listed) == [
        f"{ADMIN}\tadmin\tbootstrap (TOKENDESK_ADMINS)",
        f"{ALICE}\tadmin\tdirect",
        f"{OPS}\tspecialist\tuser group",
    ]
    # The last Account Administrator is kept, as in the app.
    last = await tokendesk_async("roles", "revoke", ALICE, env=env, cwd=tmp_path)
    assert_one_line_refusal(last, "no Account Administrator")

    exported = await tokendesk_async(*AUDIT, env=env, cwd=tmp_path)
    records = [json.loads(line) for line in assert_ok(exported)]
    assert [(r["actor"], r["action"]) for r in records] == [
        (ADMIN, "role.group"),
        (ADMIN, "role.user"),
        (CLI_ACTOR, "role.user"),
        (CLI_ACTOR, "role.user"),
    ]
    by_cli = sorted((r["after"] for r in records if r["actor"] == CLI_ACTOR), key=str)
    assert by_cli == sorted(
        [{"user_id": ALICE, "role": "admin"}, {"user_id": GRID_USER, "role": None}], key=str
    )
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    assert all(r["at"].endswith("+00:00") for r in records)

    # The next instance finds what the commands did.
    store = await open_instance(postgres_url)
    try:
        assert await store.roles.effective_role(user_id=ALICE) is Role.ADMIN
        assert await store.roles.effective_role(user_id=GRID_USER) is None
        events = await store.audit.events(limit=10)
        assert [event.actor for event in events].count(CLI_ACTOR) == 2
    finally:
        await store.close()
    assert shows_no_password(granted, revoked, bootstrap, listed, last, exported)
    assert directory_listing(tmp_path) == set()


async def test_roles_beside_a_running_instance(tmp_path: Path, postgres_url: str) -> None:
    """The commands register as no instance: a running one sees their changes at once and
    its own changes are not held up by them."""
    store = await open_instance(postgres_url)
    try:
        env = postgres_environment(tmp_path, with_password(postgres_url))
        granted = await tokendesk_async(
            "roles", "grant", ALICE, "specialist", env=env, cwd=tmp_path
        )
        assert assert_ok(granted) == [f"{ALICE} is now an Implementation Specialist"]
        assert await store.roles.effective_role(user_id=ALICE) is Role.SPECIALIST
        await store.roles.grant_user(actor=ADMIN, user_id=GRID_USER, role=Role.ADMIN)
        listed = await tokendesk_async(*LIST, env=env, cwd=tmp_path)
        assert assert_ok(listed) == [f"{ALICE}\tspecialist\tdirect", f"{GRID_USER}\tadmin\tdirect"]
        assert await store.not_ready() is None
    finally:
        await store.close()


async def test_backup_points_to_pg_dump_and_writes_nothing(tmp_path: Path, created: str) -> None:
    target = tmp_path / "backup.db"
    env = postgres_environment(tmp_path, created)
    results = await all_of(
        tokendesk_async("backup", str(target), env=env, cwd=tmp_path),
        tokendesk_async("backup", "--force", str(target), env=env, cwd=tmp_path),
    )
    for result in results:
        assert_one_line_refusal(result, "pg_dump", "TOKENDESK_DATABASE_URL")
    assert directory_listing(tmp_path) == set()
    assert shows_no_password(*results)


async def test_a_database_that_is_not_token_desks_is_refused_and_left_empty(
    tmp_path: Path, postgres_url: str
) -> None:
    env = postgres_environment(tmp_path, with_password(postgres_url))
    results = await all_of(
        *(tokendesk_async(*command, env=env, cwd=tmp_path) for command in (LIST, GRANT, AUDIT))
    )
    for result in results:
        assert_one_line_refusal(result, "TOKENDESK_DATABASE_URL", "is not a Token Desk database")
    assert shows_no_password(*results)
    # Never created nor migrated by an operator command.
    connection = await asyncpg.connect(postgres_url)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    assert tables == []
    assert directory_listing(tmp_path) == set()


async def test_a_database_the_server_does_not_have_is_one_line(
    tmp_path: Path, postgres_url: str
) -> None:
    missing = with_password(postgres_url.rsplit("/", 1)[0] + "/no_such_database")
    result = await tokendesk_async(*LIST, env=postgres_environment(tmp_path, missing), cwd=tmp_path)
    line = assert_one_line_refusal(result, "TOKENDESK_DATABASE_URL", "no such database")
    assert f"{HOST}:" in line and shows_no_password(result)


async def test_an_unreachable_server_is_one_line_naming_host_and_port(tmp_path: Path) -> None:
    """Each command waits for the server as an instance starts (CONNECT_WAIT_SECONDS), then
    gives up with one line; `backup` refuses at once, whatever the server."""
    port = free_port()
    url = f"postgresql://tokendesk:{PASSWORD}@{HOST}:{port}/tokendesk"
    env = postgres_environment(tmp_path, url)
    started = time.monotonic()
    listed, granted, exported = await all_of(
        *(
            tokendesk_async(*command, env=env, cwd=tmp_path, timeout=CONNECT_WAIT_SECONDS + 20)
            for command in (LIST, GRANT, AUDIT)
        )
    )
    waited = time.monotonic() - started
    for result in (listed, granted, exported):
        assert_one_line_refusal(
            result, "TOKENDESK_DATABASE_URL", f"cannot reach PostgreSQL at {HOST}:{port}"
        )
    assert CONNECT_WAIT_SECONDS <= waited < CONNECT_WAIT_SECONDS + 15
    started = time.monotonic()
    backed_up = await tokendesk_async("backup", str(tmp_path / "b.db"), env=env, cwd=tmp_path)
    assert_one_line_refusal(backed_up, "pg_dump")
    assert time.monotonic() - started < CONNECT_WAIT_SECONDS / 2
    assert shows_no_password(listed, granted, exported, backed_up)
    assert all("postgresql://" not in result.stderr for result in (listed, granted, exported))
    assert directory_listing(tmp_path) == set()
