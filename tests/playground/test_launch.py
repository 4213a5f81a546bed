"""`make run` starts the playground only where no deployment is configured; `python -m bot`
never starts it; `tokendesk playground` always does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from playground.launch import deployment_variables

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "TOKENDESK_DB",
    "TOKENDESK_DATABASE_URL",
    "TOKENDESK_SECRET_KEY",
)
# Settings of the app that say nothing of where it is deployed.
NOT_DEPLOYMENT = {"PORT": "3001", "TOKENDESK_ADMINS": "U0ADMIN01", "TOKENDESK_LOG_LEVEL": "debug"}
STARTUP_SECONDS = 30


@pytest.mark.parametrize("name", DEPLOYMENT)
def test_each_deployment_variable_in_the_environment_means_the_app(
    name: str, tmp_path: Path
) -> None:
    missing = tmp_path / ".env"
    assert deployment_variables({name: "x"}, missing) == [name]
    assert deployment_variables({name.lower(): "x"}, missing) == [name]
    # Empty is unset, as the app's settings read it.
    assert deployment_variables({name: ""}, missing) == []


@pytest.mark.parametrize("name", DEPLOYMENT)
def test_each_deployment_variable_in_dot_env_means_the_app(name: str, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"# deployed\n{name.lower()}=value\n")
    assert deployment_variables({}, env_file) == [name]
    env_file.write_text(f"{name}=\n")
    assert deployment_variables({}, env_file) == []


def test_without_any_the_playground_starts(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in NOT_DEPLOYMENT.items()))
    assert deployment_variables(NOT_DEPLOYMENT | {"HOME": "/root"}, env_file) == []
    assert deployment_variables({"SLACK_ANYTHING": "1"}, env_file) == ["SLACK_ANYTHING"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment(**extra: str) -> dict[str, str]:
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("SLACK_") and not name.upper().startswith("TOKENDESK_")
    }
    return kept | {"PYTHONPATH": str(ROOT)} | extra


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """The processes a test starts; each is stopped (SIGINT, as Ctrl-C) at its end."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def start(
    arguments: list[str], cwd: Path, environment: dict[str, str], into: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, *arguments],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    into.append(process)
    return process


def first_line_then_stop(process: subprocess.Popen[str]) -> tuple[str, float, int]:
    """The first line printed, how long it took, and the exit code after a Ctrl-C."""
    began = time.monotonic()
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    took = time.monotonic() - began
    process.send_signal(signal.SIGINT)
    return line, took, process.wait(timeout=STARTUP_SECONDS)


def test_make_runs_launcher_starts_the_playground_where_nothing_is_deployed(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    process = start(
        ["-m", "playground.launch"], tmp_path, clean_environment(PORT=str(port)), started
    )
    line, took, code = first_line_then_stop(process)
    assert line == f"Token Desk playground: http://127.0.0.1:{port}/"
    assert took < STARTUP_SECONDS
    assert code == 0
    # Its database lived in a temporary directory, never in the working directory.
    assert list(tmp_path.iterdir()) == []


def test_make_runs_launcher_starts_the_app_where_anything_is_deployed(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-half-configured\n")
    process = start(["-m", "playground.launch"], tmp_path, clean_environment(), started)
    out, err = process.communicate(timeout=STARTUP_SECONDS)
    assert process.returncode == 2 and out == ""
    assert "SLACK_SIGNING_SECRET: is required" in err
    assert "xoxb-half-configured" not in err


def test_python_m_bot_never_starts_the_playground(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    process = start(["-m", "bot"], tmp_path, clean_environment(), started)
    out, err = process.communicate(timeout=STARTUP_SECONDS)
    assert process.returncode == 2 and out == ""
    assert "SLACK_BOT_TOKEN: is required" in err


def test_tokendesk_playground_starts_it_even_where_the_app_is_deployed(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    deployed = clean_environment(PORT=str(port), TOKENDESK_DB=str(tmp_path / "production.db"))
    process = start(["-m", "bot", "playground"], tmp_path, deployed, started)
    line, _, code = first_line_then_stop(process)
    assert line == f"Token Desk playground: http://127.0.0.1:{port}/"
    assert code == 0
    # The deployment's database is not the playground's.
    assert not (tmp_path / "production.db").exists()


def test_a_bad_port_is_refused_naming_it(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    process = start(["-m", "playground"], tmp_path, clean_environment(PORT="http"), started)
    out, err = process.communicate(timeout=STARTUP_SECONDS)
    assert process.returncode == 2 and out == ""
    assert "PORT: must be a port number" in err
