"""What the operator commands reach through storage: an attached database's roles and audit
log beside a running store, and backups. The app itself holds no SQL."""

from __future__ import annotations

import ast
import sqlite3
import stat
from pathlib import Path

import pytest

from storage.credentials import SecretHasher
from storage.errors import BackupFailed, BackupTargetExists, RoleChangeRefused, StartupRefused
from storage.models import Role
from storage.operator_store import OperatorStore, write_backup
from tests.storage.support_durability import (
    KEY,
    REPO_ROOT,
    create_token,
    opened_store,
    plain_connection,
)

OPERATOR = "cli:operator"


async def test_attaching_never_creates_a_database(tmp_path: Path) -> None:
    with pytest.raises(StartupRefused, match="does not exist"):
        await OperatorStore.attach(tmp_path / "tokendesk.db")
    assert list(tmp_path.iterdir()) == []


async def test_roles_and_audit_are_reached_beside_a_running_store(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    async with opened_store(path, admins=("UBOOT0001",)) as running:
        await create_token(running, "Nightly Export")
        operator = await OperatorStore.attach(path, admins=("UBOOT0001",))
        try:
            await operator.roles.grant_user(actor=OPERATOR, user_id="USPEC0001", role=Role.ADMIN)
            with pytest.raises(RoleChangeRefused, match="TOKENDESK_ADMINS"):
                await operator.roles.revoke_user(actor=OPERATOR, user_id="UBOOT0001")
            actions = [(event.actor, event.action) async for event in operator.audit.since()]
        finally:
            await operator.close()
        # The running store reads role mappings on every request: the change applies at once.
        assert await running.roles.effective_role(user_id="USPEC0001") is Role.ADMIN
    assert actions == [("UACTOR001", "create"), (OPERATOR, "role.user")]


async def test_a_backup_is_a_private_whole_copy_with_the_key_check_value(tmp_path: Path) -> None:
    path, target = tmp_path / "tokendesk.db", tmp_path / "copies" / "backup.db"
    target.parent.mkdir()
    async with opened_store(path) as running:
        issued = await create_token(running, "Nightly Export")
        key_check = write_backup(path, target, replace=False)

    assert key_check == SecretHasher(KEY).key_check_value()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # One self-contained file: nothing beside it, no temporary file left.
    assert [file.name for file in target.parent.iterdir()] == ["backup.db"]
    connection = plain_connection(target)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert connection.execute("SELECT sid FROM tokens").fetchall() == [(issued.token.sid,)]
    finally:
        connection.close()


async def test_a_backup_replaces_a_file_only_when_asked(tmp_path: Path) -> None:
    path, target = tmp_path / "tokendesk.db", tmp_path / "backup.db"
    async with opened_store(path):
        pass
    target.write_bytes(b"an older backup")
    with pytest.raises(BackupTargetExists) as refused:
        write_backup(path, target, replace=False)
    assert refused.value.target == target
    assert target.read_bytes() == b"an older backup"

    write_backup(path, target, replace=True)
    assert target.read_bytes().startswith(b"SQLite format 3")


@pytest.mark.parametrize(
    ("source", "refusal", "message"),
    [
        ("missing.db", StartupRefused, "does not exist"),
        ("garbage.db", BackupFailed, "backup failed: file is not a database"),
        ("other.db", BackupFailed, "is not a Token Desk database"),
    ],
)
def test_a_backup_of_anything_else_leaves_nothing_behind(
    tmp_path: Path, source: str, refusal: type[Exception], message: str
) -> None:
    (tmp_path / "garbage.db").write_bytes(b"not a database, " * 64)
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE notes (text TEXT)")
    other.commit()
    other.close()
    before = set(tmp_path.iterdir())

    with pytest.raises(refusal, match=message):
        write_backup(tmp_path / source, tmp_path / "backup.db", replace=False)
    assert set(tmp_path.iterdir()) == before


def test_a_backup_into_a_missing_folder_fails_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "tokendesk.db").write_bytes(b"")
    with pytest.raises(BackupFailed, match=r"cannot write .*backup\.db \(No such file"):
        write_backup(tmp_path / "tokendesk.db", tmp_path / "no" / "backup.db", replace=False)


def test_the_app_reaches_the_database_only_through_the_store() -> None:
    """All SQL lives in storage/: no module of the app opens a connection of its own."""
    forbidden = {"sqlite3", "aiosqlite", "storage.database"}
    offending = []
    for module in sorted((REPO_ROOT / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            else:
                continue
            offending += [f"{module.relative_to(REPO_ROOT)}: {name}" for name in names & forbidden]
    assert offending == []
