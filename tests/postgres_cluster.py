"""A private PostgreSQL cluster for the tests: one per test session, in a fresh temporary
directory, on a free loopback port, gone at the end of the session.

`postgres_cluster` is the running cluster (`PostgresCluster`); `postgres_url` is a fresh
empty database of it for one test, dropped afterwards. The cluster trusts every connection:
it listens on 127.0.0.1 only, and its unix socket is in its own data directory.

Without the PostgreSQL server binaries the tests that use it skip, saying how to get them;
under CI (`CI=true`) they are required, and fail instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_USER = "postgres"
HOST = "127.0.0.1"
# Durability is not what these tests are about: without fsync and full-page writes a test
# database costs milliseconds, not the disk's flush time.
SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
# The server starts in well under a second; a slow shared machine gets room, a broken
# cluster fails the session instead of hanging it.
START_TIMEOUT_SECONDS = 30
COMMAND_TIMEOUT_SECONDS = 60
# Another process may take the free port between its pick and the server's bind.
PORT_ATTEMPTS = 3
LOG_TAIL_CHARS = 2_000
NOT_INSTALLED = "PostgreSQL not installed: apt-get install postgresql"


class ClusterError(RuntimeError):
    """A command of the cluster failed; the message carries its output."""


def server_bindir() -> Path | None:
    """The directory of the PostgreSQL server binaries (initdb, pg_ctl): `pg_config
    --bindir`, else the newest /usr/lib/postgresql/*/bin (Debian's), else the PATH's."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    candidates.extend(
        sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda bindir: int(bindir.parent.name) if bindir.parent.name.isdigit() else 0,
            reverse=True,
        )
    )
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if all((bindir / program).is_file() for program in ("initdb", "pg_ctl", "createdb")):
            return bindir
    return None


def required_under_ci() -> bool:
    """Under CI the PostgreSQL tests must run: missing binaries fail them."""
    return os.environ.get("CI") == "true"


def free_port() -> int:
    """A loopback port no one listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """One PostgreSQL cluster of the test session, its superuser `postgres`.

    PostgreSQL refuses to run as root: when the tests run as root, the server's own
    commands run as the `postgres` OS user, which owns the cluster's directory."""

    def __init__(self, bindir: Path, directory: Path) -> None:
        self.bindir = bindir
        self.directory = directory
        self.data_dir = directory / "data"
        self.log_file = directory / "server.log"
        self.host = HOST
        self.port = 0
        self.running = False
        self._names = itertools.count(1)

    def url(self, dbname: str) -> str:
        """The URL of database `dbname` of this cluster, as the superuser."""
        return f"postgresql://{SERVER_USER}@{self.host}:{self.port}/{dbname}"

    @property
    def admin_url(self) -> str:
        """The URL of the `postgres` maintenance database."""
        return self.url("postgres")

    def init(self) -> None:
        """Creates the cluster in `data_dir`: UTF-8, and the C locale, which compares and
        lowercases text as SQLite does (byte by byte, ASCII only)."""
        self._run_as_server(
            "initdb",
            f"--pgdata={self.data_dir}",
            f"--username={SERVER_USER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        settings = {**SETTINGS, "unix_socket_directories": str(self.data_dir)}
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())

    def start(self) -> None:
        """Starts the server on `port` and returns once it accepts connections."""
        try:
            self._run_as_server(
                "pg_ctl",
                "start",
                f"--pgdata={self.data_dir}",
                f"--log={self.log_file}",
                "--wait",
                f"--timeout={START_TIMEOUT_SECONDS}",
                # The port is not in postgresql.conf: a start on a taken port retries on
                # another.
                f"--options=-p {self.port}",
            )
        except ClusterError as error:
            raise ClusterError(f"{error}\nserver log:\n{self.log_tail()}") from None
        self.running = True

    def stop(self) -> None:
        """Stops the server, disconnecting every client (pg_ctl stop -m fast)."""
        self._run_as_server("pg_ctl", "stop", f"--pgdata={self.data_dir}", "--mode=fast", "--wait")
        self.running = False

    def create_database(self) -> str:
        """A fresh empty database with a name of its own; its URL."""
        name = f"test_{next(self._names)}"
        self._run_client("createdb", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drops database `name`, disconnecting its clients."""
        self._run_client("dropdb", "--force", "--if-exists", name)

    def log_tail(self) -> str:
        """The end of the server's log, for a failure's message."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
        except FileNotFoundError:
            return "(no log)"

    def _run_client(self, program: str, *args: str) -> None:
        self._run(
            [
                str(self.bindir / program),
                f"--host={self.host}",
                f"--port={self.port}",
                f"--username={SERVER_USER}",
                "--no-password",
                *args,
            ]
        )

    def _run_as_server(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        self._run(command)

    def _run(self, command: list[str]) -> None:
        # The server user may not be allowed into the tests' working directory.
        done = subprocess.run(
            command,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise ClusterError(
                f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
            )


def start_cluster(bindir: Path, directory: Path) -> PostgresCluster:
    """A new cluster in `directory`, started on a free port."""
    cluster = PostgresCluster(bindir, directory)
    cluster.init()
    for attempt in range(PORT_ATTEMPTS):
        cluster.port = free_port()
        try:
            cluster.start()
            break
        except ClusterError:
            if attempt == PORT_ATTEMPTS - 1:
                raise
    return cluster


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The session's running cluster; skips (fails under CI) without PostgreSQL."""
    bindir = server_bindir()
    if bindir is None:
        if required_under_ci():
            pytest.fail(NOT_INSTALLED)
        pytest.skip(NOT_INSTALLED)
    directory = Path(tempfile.mkdtemp(prefix="tokendesk-postgres-"))
    cluster: PostgresCluster | None = None
    try:
        if os.geteuid() == 0:
            shutil.chown(directory, user=SERVER_USER, group=SERVER_USER)
        try:
            cluster = start_cluster(bindir, directory)
        except ClusterError as error:
            pytest.fail(f"the test PostgreSQL cluster did not start: {error}")
        yield cluster
    finally:
        try:
            if cluster is not None and cluster.running:
                cluster.stop()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh empty database of the session's cluster for this test; dropped after it."""
    url = postgres_cluster.create_database()
    yield url
    # A test may leave the server stopped; the cluster goes at the end of the session.
    with contextlib.suppress(ClusterError):
        postgres_cluster.drop_database(url.rsplit("/", 1)[1])
