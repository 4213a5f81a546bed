"""The HTTP server against hostile clients, over raw loopback sockets: what the parser rejects
is answered and logged without its bytes, request heads and idle connections are
time-bounded, connections are capped, and the app listens on loopback by default."""

from __future__ import annotations

import asyncio
import base64
import errno
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from slack_bolt.async_app import AsyncApp

from bot.auth_check import MAX_FIELD_SIZE
from bot.http_limits import REFUSAL_TEXT, GuardedAppRunner, HttpLimits
from bot.server import _listen_refusal, create_web_app, listen
from bot.settings import Settings
from storage.errors import StartupRefused
from storage.store import Store
from tests.bot.conftest import ADMIN, free_port
from tests.store_support import days_ahead

LOOPBACK = "127.0.0.1"
HEAD_TIMEOUT = 0.5
IDLE_TIMEOUT = 1.0
QUICK = HEAD_TIMEOUT / 2  # what "answered promptly" means here
WAIT = 5.0  # the longest any single read waits: a bound, never a pause
FAST = HttpLimits(head_timeout=HEAD_TIMEOUT, idle_timeout=IDLE_TIMEOUT, max_connections=50)

Serve = Callable[[HttpLimits], Awaitable[int]]


@pytest.fixture
async def serve_guarded(store: Store, bolt: AsyncApp) -> AsyncIterator[Serve]:
    """Starts the app as `python -m bot` does, with the given limits, on a loopback port."""
    runners: list[GuardedAppRunner] = []

    async def start(limits: HttpLimits) -> int:
        runner = GuardedAppRunner(
            create_web_app(store, bolt, serve_slack_events=True), limits=limits, access_log=None
        )
        runners.append(runner)
        await runner.setup()
        await listen(runner, settings_on(0, host=LOOPBACK))
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        await runner.cleanup()


def settings_on(port: int, **values: str) -> Settings:
    """Settings for listening only; `model_copy` lets port 0 (any free port) through."""
    loaded = Settings(  # type: ignore[call-arg]
        _env_file=None, slack_bot_token="xoxb-test", slack_signing_secret="s", **values
    )
    return loaded.model_copy(update={"port": port})


@pytest.fixture
async def secret(store: Store) -> str:
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    issued = await store.tokens.create(
        actor=ADMIN,
        name="Limits",
        access_rights=["reports:read"],
        primary_contact=ADMIN,
        expires_on=days_ahead(clock=store.clock),
    )
    return issued.secret


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every record of every logger, at every level, before any masking."""
    caught: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    root = logging.getLogger()
    keep, level = Keep(), root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    yield caught
    root.removeHandler(keep)
    root.setLevel(level)


def rendered(record: logging.LogRecord) -> str:
    formatter = logging.Formatter()
    text = record.getMessage()
    if record.exc_info:
        text += formatter.formatException(record.exc_info)
    return text + (record.stack_info or "")


def check_head(secret: str, *, close: bool = True) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return (
        b"GET /auth/check HTTP/1.1\r\nHost: gateway\r\n"
        + f"Authorization: Bearer {secret}\r\n".encode()
        + connection
        + b"\r\n"
    )


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection(LOOPBACK, port))

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def answer(self) -> bytes:
        """One response: its head and a Content-Length body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return head + await asyncio.wait_for(self.reader.readexactly(length), WAIT)

    async def rest(self) -> bytes:
        """Everything until the server closes (a reset ends it too)."""
        received = b""
        with suppress(ConnectionError):
            while chunk := await asyncio.wait_for(self.reader.read(65536), WAIT):
                received += chunk
        return received

    async def closed_within(self, seconds: float) -> bool:
        """Whether the server closes this connection within `seconds`, sending nothing."""
        try:
            return await asyncio.wait_for(self.rest(), seconds) == b""
        except TimeoutError:
            return False

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError):
            await self.writer.wait_closed()


async def exchange(port: int, request: bytes) -> bytes:
    """Sends one whole request and returns all the server answered before closing."""
    connection = await Connection.open(port)
    try:
        connection.send(request)
        with suppress(ConnectionError):
            await connection.writer.drain()
        return await connection.rest()
    finally:
        await connection.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


def assert_refused_blindly(answer: bytes, *hidden: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 400, answer[:200]
    assert body == REFUSAL_TEXT.encode()
    assert b"\r\ncache-control: no-store\r\n" in head.lower() + b"\r\n"
    for needle in hidden:
        assert needle not in answer


# (a) what the parser rejects --------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    ["bearer+control", "basic+control", "bearer+nul", "bearer over the field limit", "basic long"],
)
async def test_a_rejected_header_is_neither_echoed_nor_logged(
    serve_guarded: Serve, secret: str, records: list[logging.LogRecord], shape: str
) -> None:
    port = await serve_guarded(FAST)
    basic = base64.b64encode(f"SID0001:{secret}".encode()).decode()
    value = {
        "bearer+control": f"Bearer {secret}\x01",
        "basic+control": f"Basic {basic}\x7f",
        "bearer+nul": f"Bearer {secret}\x00x",
        "bearer over the field limit": f"Bearer {secret}" + "x" * MAX_FIELD_SIZE,
        "basic long": f"Basic {basic}" + "=" * MAX_FIELD_SIZE,
    }[shape]
    request = (
        b"GET /auth/check HTTP/1.1\r\nHost: gateway\r\nAuthorization: "
        + value.encode()
        + b"\r\n\r\n"
    )
    answer = await exchange(port, request)
    assert_refused_blindly(answer, secret.encode(), secret[4:20].encode(), basic[:20].encode())
    assert records, "the refusal itself is logged, without the header"
    for record in records:
        text = rendered(record)
        assert secret not in text and secret[4:20] not in text, (record.name, text[:300])
        assert basic[:20] not in text, (record.name, text[:300])


# (b) the whole head -----------------------------------------------------------------------


async def test_a_head_over_the_total_bound_is_refused(serve_guarded: Serve, secret: str) -> None:
    port = await serve_guarded(FAST)
    padding = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"p" * 8000) for n in range(16))
    assert len(padding) > FAST.max_head_bytes
    answer = await exchange(port, check_head(secret)[:-2] + padding + b"\r\n")
    assert_refused_blindly(answer, secret.encode(), b"ppppp")


async def test_an_authorization_header_at_the_field_limit_still_gets_its_401(
    serve_guarded: Serve,
) -> None:
    port = await serve_guarded(FAST)
    header = b"Bearer " + b"a" * (MAX_FIELD_SIZE - 100)
    extra = b"X-Forwarded-For: 192.0.2.1\r\n" * 20
    request = b"GET /auth/check HTTP/1.1\r\nHost: gw\r\nAuthorization: " + header + b"\r\n"
    answer = await exchange(port, request + extra + b"Connection: close\r\n\r\n")
    assert status_of(answer) == 401
    assert answer.endswith(b'{"active": false}')


@pytest.mark.parametrize(("over", "status"), [(0, 200), (1, 400)])
async def test_the_head_bound_counts_the_head_alone(
    serve_guarded: Serve, secret: str, over: int, status: int
) -> None:
    """A head of exactly the bound is answered and one byte more is refused, when its blank
    line straddles two reads and the body that follows takes the bytes read past the bound."""
    limits = HttpLimits(head_timeout=HEAD_TIMEOUT, idle_timeout=IDLE_TIMEOUT, max_head_bytes=4096)
    port = await serve_guarded(limits)
    start = check_head(secret)[:-2] + b"Content-Length: 1000\r\nX-Pad: "
    pad = limits.max_head_bytes + over - len(start) - len(b"\r\n\r\n")
    head = start + b"p" * pad + b"\r\n\r\n"
    assert len(head) == limits.max_head_bytes + over
    connection = await Connection.open(port)
    try:
        connection.send(head[:-2])
        await asyncio.sleep(0.05)  # read apart from the rest
        connection.send(head[-2:] + b"b" * 1000)
        answer = await connection.rest()
    finally:
        await connection.close()
    assert status_of(answer) == status
    if over:
        assert_refused_blindly(answer, secret.encode())


# (c) slow heads ---------------------------------------------------------------------------


async def trickle(port: int) -> float:
    """Opens a request head and sends one more header line at a time, never ending it;
    seconds until the server closed the connection."""
    loop = asyncio.get_running_loop()
    connection = await Connection.open(port)
    opened = loop.time()

    async def drip() -> None:
        connection.send(b"GET /auth/check HTTP/1.1\r\nHost: slow\r\n")
        for line in range(50):
            await asyncio.sleep(HEAD_TIMEOUT / 5)
            connection.send(b"X-Slow-%d: a\r\n" % line)

    dripping = asyncio.create_task(drip())
    try:
        assert await connection.closed_within(WAIT)
        return loop.time() - opened
    finally:
        dripping.cancel()
        await connection.close()


async def test_slow_heads_are_cut_while_checks_are_answered(
    serve_guarded: Serve, secret: str
) -> None:
    port = await serve_guarded(FAST)
    slow = [asyncio.create_task(trickle(port)) for _ in range(30)]
    silent = await Connection.open(port)
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    for _ in range(40):
        if all(task.done() for task in slow):
            break
        started = loop.time()
        assert status_of(await exchange(port, check_head(secret))) == 200
        latencies.append(loop.time() - started)
        await asyncio.sleep(0.05)
    lifetimes = await asyncio.gather(*slow)
    assert await silent.closed_within(WAIT)
    await silent.close()
    assert len(latencies) >= 5 and max(latencies) < QUICK, latencies
    assert all(HEAD_TIMEOUT * 0.9 <= lifetime < HEAD_TIMEOUT + 0.5 for lifetime in lifetimes)


# (d) the connection cap -------------------------------------------------------------------


async def test_at_the_cap_the_oldest_slow_connection_makes_room(
    serve_guarded: Serve, secret: str
) -> None:
    """A newcomer closes the oldest idle or slow connection rather than being refused: slow
    clients must not be able to lock the gateway out by holding every place."""
    port = await serve_guarded(HttpLimits(head_timeout=WAIT, max_connections=4))
    slow = []
    for _ in range(4):
        connection = await Connection.open(port)
        connection.send(b"GET /auth/check HTTP/1.1\r\nHost: slow\r\n")
        slow.append(connection)
        await asyncio.sleep(0.05)
    assert status_of(await exchange(port, check_head(secret))) == 200
    assert await slow[0].closed_within(QUICK)
    for connection in slow[1:]:
        assert not await connection.closed_within(0.05)
    for connection in slow:
        await connection.close()


async def test_at_the_cap_young_requests_are_kept_and_old_ones_dropped(
    serve_guarded: Serve, secret: str
) -> None:
    """Requests still being read are kept while young; once older than the head timeout
    (the app answers within seconds) they are as droppable as slow heads."""
    port = await serve_guarded(HttpLimits(head_timeout=HEAD_TIMEOUT, max_connections=3))
    busy = []
    for _ in range(3):
        connection = await Connection.open(port)
        connection.send(
            b"POST /slack/events HTTP/1.1\r\nHost: slack\r\nContent-Length: 1000\r\n\r\n{"
        )
        busy.append(connection)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    assert await exchange(port, check_head(secret)) == b""
    await asyncio.sleep(HEAD_TIMEOUT)
    assert status_of(await exchange(port, check_head(secret))) == 200
    assert await busy[0].closed_within(QUICK)
    for connection in busy:
        await connection.close()


async def test_a_slow_head_on_a_kept_alive_connection_is_cut_too(
    serve_guarded: Serve, secret: str
) -> None:
    idle_timeout = 6 * HEAD_TIMEOUT
    port = await serve_guarded(HttpLimits(head_timeout=HEAD_TIMEOUT, idle_timeout=idle_timeout))
    loop = asyncio.get_running_loop()
    connection = await Connection.open(port)
    connection.send(check_head(secret, close=False))
    assert status_of(await connection.answer()) == 200
    started = loop.time()
    connection.send(b"GET /auth/check HTTP/1.1\r\n")
    for line in range(20):
        if await connection.closed_within(HEAD_TIMEOUT / 5):
            break
        connection.send(b"X-Slow-%d: a\r\n" % line)
    assert HEAD_TIMEOUT * 0.9 <= loop.time() - started < idle_timeout / 2
    await connection.close()


# (e) idle keep-alive connections ----------------------------------------------------------


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    serve_guarded: Serve, secret: str
) -> None:
    port = await serve_guarded(FAST)
    loop = asyncio.get_running_loop()
    connection = await Connection.open(port)
    connection.send(check_head(secret, close=False))
    assert status_of(await connection.answer()) == 200
    # Idle for longer than the head timeout: a kept-alive connection is not a slow head.
    await asyncio.sleep(HEAD_TIMEOUT + 0.2)
    connection.send(check_head(secret, close=False))
    assert status_of(await connection.answer()) == 200
    answered = loop.time()
    assert await connection.closed_within(WAIT)
    assert IDLE_TIMEOUT * 0.9 <= loop.time() - answered < IDLE_TIMEOUT + 0.5
    await connection.close()


# (f) where it listens ---------------------------------------------------------------------


async def test_the_default_host_is_loopback_only(
    store: Store, bolt: AsyncApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOST", raising=False)
    port = free_port()
    runner = GuardedAppRunner(
        create_web_app(store, bolt, serve_slack_events=False), limits=FAST, access_log=None
    )
    await runner.setup()
    try:
        await listen(runner, settings_on(port))
        assert [tuple(address[:2]) for address in runner.addresses] == [(LOOPBACK, port)]
    finally:
        await runner.cleanup()


async def test_a_port_in_use_is_refused_without_its_number(store: Store, bolt: AsyncApp) -> None:
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        port = int(holder.getsockname()[1])
        runner = GuardedAppRunner(
            create_web_app(store, bolt, serve_slack_events=False), limits=FAST
        )
        await runner.setup()
        try:
            with pytest.raises(StartupRefused) as refused:
                await listen(runner, settings_on(port))
        finally:
            await runner.cleanup()
    assert str(refused.value) == "PORT: cannot be listened on (Address already in use)"


@pytest.mark.parametrize(
    ("error", "refusal"),
    [
        (errno.EADDRNOTAVAIL, "HOST: cannot be listened on (Cannot assign requested address)"),
        (errno.EACCES, "PORT: cannot be listened on (Permission denied)"),
    ],
)
def test_a_bind_error_names_the_variable_not_the_address(error: int, refusal: str) -> None:
    """As asyncio raises it, quoting the address (one no test may bind)."""
    quoted = f"error while attempting to bind on address ('192.0.2.10', 3000): {error}"
    assert str(_listen_refusal(OSError(error, quoted))) == refusal


def test_an_unresolvable_host_is_named_without_its_value() -> None:
    refused = _listen_refusal(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert str(refused) == "HOST: cannot be resolved (Name or service not known)"


def test_the_cap_stays_within_half_the_open_file_limit() -> None:
    """Run where the hard limit is low (it cannot be raised again, hence a child process)."""
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 300))\n"
        "from bot.http_limits import HttpLimits, fit_open_file_limit\n"
        "print(fit_open_file_limit(HttpLimits()).max_connections)\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.split() == ["150", "300"]
