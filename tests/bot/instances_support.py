"""Several Token Desk app processes on one PostgreSQL database: each a real `python -m bot`
in HTTP mode on a port of its own, talking to the Slack stand-in; started in parallel and
ready once its `/readyz` answers 200. The auth check is asked of each over HTTP, as a
gateway asks it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from bot.settings import Settings, store_options
from storage.store import Store
from tests.bot.conftest import ADMIN, SIGNING_SECRET, free_port
from tests.storage.support_durability import REPO_ROOT

SECRET_KEY = "ab" * 32
OTHER_KEY = "cd" * 32
# Put into every database URL the apps are given: the test cluster trusts every connection
# and never asks for it, so it may only ever show up where a URL was printed.
PASSWORD = "pw-never-printed-5e1b"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Short: a check of a stopped instance must not hold a test up for long.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=5)
# The machine's own settings never reach an app started here.
_FOREIGN_PREFIXES = ("SLACK_", "TOKENDESK_")
_FOREIGN_NAMES = ("PORT", "HOST")


def with_password(url: str) -> str:
    """`url` with PASSWORD as its user's password."""
    parts = urlsplit(url)
    netloc = f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def app_environment(
    database_url: str | None, api_url: str, **overrides: str | None
) -> dict[str, str]:
    """What `python -m bot` is started with: HTTP mode on a free port, the stand-in as Slack,
    `database_url` (with PASSWORD) as its database; an override of None leaves a variable
    out."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_FOREIGN_PREFIXES) and name not in _FOREIGN_NAMES
    }
    wanted: dict[str, str | None] = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": api_url,
        "TOKENDESK_DATABASE_URL": None if database_url is None else with_password(database_url),
        "TOKENDESK_SECRET_KEY": SECRET_KEY,
        "TOKENDESK_ADMINS": ADMIN,
        "TOKENDESK_LOG_LEVEL": "INFO",
        "PORT": str(free_port()),
    } | overrides
    given = {name: value for name, value in wanted.items() if value is not None}
    return inherited | {"PYTHONPATH": str(REPO_ROOT)} | given


@dataclass
class Instance:
    """One app process; what it wrote to stderr is in `log`."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def tail(self, chars: int = 3000) -> str:
        """The end of its stderr, for a failure's message."""
        return f"--- {self.url} ---\n{self.stderr[-chars:]}"

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> int:
        """Asks it to shut down (SIGTERM) and waits until it has; returns its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, STOP_TIMEOUT)


@dataclass(frozen=True)
class Answer:
    """What `/auth/check` answered."""

    status: int
    retry_after: str | None
    body: object


class Instances:
    """Starts app processes and asks them over HTTP; every process ends with the block."""

    def __init__(self, directory: Path, api_url: str) -> None:
        self.directory = directory
        self.api_url = api_url
        self.started: list[Instance] = []
        self.session = aiohttp.ClientSession(timeout=REQUEST_TIMEOUT)

    async def __aenter__(self) -> Instances:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await asyncio.gather(*(self._end(instance) for instance in self.started))
        finally:
            await self.session.close()

    def launch(self, environment: dict[str, str]) -> Instance:
        """Starts one process with `environment`, without waiting for it."""
        log = self.directory / f"instance-{len(self.started) + 1}.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=self.directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        instance = Instance(process, f"http://127.0.0.1:{environment['PORT']}", log)
        self.started.append(instance)
        return instance

    async def start(self, database_url: str, count: int) -> list[Instance]:
        """`count` instances on `database_url`, started at once; returns once all are ready."""
        launched = [self.launch(app_environment(database_url, self.api_url)) for _ in range(count)]
        await asyncio.gather(*(self.ready(instance) for instance in launched))
        return launched

    async def ready(self, instance: Instance, timeout: float = READY_TIMEOUT) -> None:
        """Waits until `/readyz` answers 200; fails with the process's stderr if it exits
        or is not ready in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if instance.process.poll() is not None:
                raise AssertionError(
                    f"the app exited with {instance.process.returncode}:\n{instance.stderr}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(f"{instance.url}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the app was not ready within {timeout} s:\n{instance.stderr}")

    async def check(self, instance: Instance, secret: str) -> Answer:
        """`/auth/check` with `secret` as a Bearer credential."""
        headers = {"Authorization": f"Bearer {secret}"}
        async with self.session.get(f"{instance.url}/auth/check", headers=headers) as response:
            return Answer(
                response.status, response.headers.get("Retry-After"), await response.json()
            )

    async def check_all(self, instances: Sequence[Instance], secret: str) -> list[Answer]:
        """The answers of every instance in `instances` at once, in their order."""
        return list(await asyncio.gather(*(self.check(i, secret) for i in instances)))

    async def readiness(self, instance: Instance) -> int:
        async with self.session.get(f"{instance.url}/readyz") as response:
            return response.status

    async def _end(self, instance: Instance) -> None:
        process = instance.process
        # What these tests ask of an instance ends with them: no time for a clean shutdown.
        if process.poll() is None:
            process.kill()
        await asyncio.to_thread(process.wait, STOP_TIMEOUT)


def unavailable(answer: Answer) -> bool:
    """The auth check's 503 of an instance not current with the database."""
    return (answer.status, answer.retry_after, answer.body) == (503, "1", {"active": False})


def statuses(answers: Iterable[Answer]) -> list[int]:
    return [answer.status for answer in answers]


@contextlib.asynccontextmanager
async def instance_store(database_url: str) -> AsyncIterator[Store]:
    """One more instance, in the test process: the store as the apps open it (same key,
    catalogs and admins) on `database_url`; closed after the block."""
    settings = Settings(
        _env_file=None,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        tokendesk_database_url=database_url,
        tokendesk_secret_key=SECRET_KEY,
        tokendesk_admins=ADMIN,
    )
    store = await Store.open(**store_options(settings))
    try:
        yield store
    finally:
        await store.close()
