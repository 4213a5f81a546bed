"""`python -m bot` as an operator runs it: start-up refusals, serving, a clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from storage.credentials import load_or_create_key
from storage.store import Store
from tests.bot.conftest import free_port
from tests.store_support import days_ahead

KEY_A = "aa" * 32
KEY_B = "bb" * 32


def environment(tmp_path: Path, **values: str) -> dict[str, str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    return base | values


def configured(tmp_path: Path, **values: str) -> dict[str, str]:
    defaults = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "test-signing-secret",
        "TOKENDESK_DB": str(tmp_path / "tokendesk.db"),
    }
    return environment(tmp_path, **(defaults | values))


def run_bot(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_no_configuration_names_the_bot_token(tmp_path: Path) -> None:
    assert_refused(run_bot(tmp_path, environment(tmp_path)), "SLACK_BOT_TOKEN")


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"SLACK_SIGNING_SECRET": ""}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN"),
        ({"PORT": "eighty"}, "PORT"),
        ({"SLACK_APP_TOKEN": "not-an-app-token"}, "SLACK_APP_TOKEN"),
    ],
)
def test_each_configuration_refusal_is_one_line(
    tmp_path: Path, values: dict[str, str], variable: str
) -> None:
    result = run_bot(tmp_path, configured(tmp_path, **values))
    assert_refused(result, variable)
    for value in values.values():
        assert not value or value not in result.stderr


def test_the_console_script_does_the_same(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "tokendesk"
    result = subprocess.run(
        [str(script)], cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True
    )
    assert_refused(result, "SLACK_BOT_TOKEN")


async def test_a_catalog_that_dropped_a_version_in_use_is_refused(tmp_path: Path) -> None:
    store = await Store.open(
        path=tmp_path / "tokendesk.db",
        secret_key=bytes.fromhex(KEY_A),
        api_versions=("v1", "v2", "v3"),
        scopes=("reports:read",),
    )
    try:
        await store.tokens.create(
            actor="UADMIN001",
            name="Nightly export",
            access_rights=["reports:read"],
            primary_contact="UADMIN001",
            expires_on=days_ahead(clock=store.clock),
        )
    finally:
        await store.close()
    result = run_bot(
        tmp_path,
        configured(tmp_path, TOKENDESK_SECRET_KEY=KEY_A, TOKENDESK_API_VERSIONS="v1,v2"),
    )
    assert_refused(result, "TOKENDESK_API_VERSIONS", "v3", "Nightly export")


def test_a_malformed_variable_is_named_without_its_value(tmp_path: Path) -> None:
    result = run_bot(tmp_path, configured(tmp_path, TOKENDESK_SECRET_KEY="c2VjcmV0"))
    assert_refused(result, "TOKENDESK_SECRET_KEY", "32 bytes")
    assert "c2VjcmV0" not in result.stderr


async def test_a_key_that_does_not_match_the_database_is_refused(tmp_path: Path) -> None:
    store = await Store.open(
        path=tmp_path / "tokendesk.db",
        secret_key=bytes.fromhex(KEY_A),
        api_versions=("v1", "v2", "v3"),
        scopes=("reports:read",),
    )
    await store.close()
    result = run_bot(tmp_path, configured(tmp_path, TOKENDESK_SECRET_KEY=KEY_B))
    assert_refused(result, "TOKENDESK_SECRET_KEY", "not the key")
    assert KEY_B not in result.stderr


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "tokendesk.db.key"
    key_file.write_text(KEY_A)
    key_file.chmod(0o644)
    result = run_bot(tmp_path, configured(tmp_path))
    assert_refused(result, "tokendesk.db.key", "owner only")
    assert KEY_A not in result.stderr


async def test_a_second_instance_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "tokendesk.db"
    store = await Store.open(
        path=db,
        secret_key=load_or_create_key(db, None),
        api_versions=("v1", "v2", "v3"),
        scopes=("reports:read",),
    )
    try:
        assert_refused(run_bot(tmp_path, configured(tmp_path)), "TOKENDESK_DB", "another")
    finally:
        await store.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_it_serves_and_shuts_down_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=configured(tmp_path, PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the app did not start in time"
                time.sleep(0.1)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert (tmp_path / "tokendesk.db.key").stat().st_mode & 0o777 == 0o600
