"""What one HTTP client may hold of the server; aiohttp bounds none of it itself.

- A request head (request line and headers) must arrive whole within `head_timeout` of the
  connection opening, or of its first byte on a kept-alive connection, and within
  `max_head_bytes`. Late heads are found by a sweep every quarter of `head_timeout`, so one
  is cut between `head_timeout` and 1.25 times it after it began.
- A kept-alive connection idle for `idle_timeout` is closed.
- At most `max_connections` are open. A newcomer beyond that closes the oldest connection
  that is idle, still sending its head, or still in a request older than `head_timeout`
  (the app answers within seconds), so that slow clients cannot lock well-behaved ones out;
  when there is none, the newcomer itself is closed.
- A request the HTTP parser rejects gets one fixed 400 and a log line naming only the kind
  of error: aiohttp's own answer and ERROR line quote the rejected bytes, an Authorization
  header included.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass, replace
from time import monotonic
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.auth_check import MAX_FIELD_SIZE, NO_STORE

logger = logging.getLogger(__name__)

REFUSAL_TEXT = "Bad Request\n"
_REFUSAL = (
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    f"Content-Length: {len(REFUSAL_TEXT)}\r\n"
    + "".join(f"{name}: {value}\r\n" for name, value in NO_STORE.items())
    + "Connection: close\r\n\r\n"
    + REFUSAL_TEXT
).encode()
_HEAD_END = b"\r\n\r\n"
_CAP_WARNING_INTERVAL = 60.0
_SWEEPS_PER_HEAD_TIMEOUT = 4
# Called directly rather than through super(), which costs a little more on every read.
_aiohttp_data_received = web.RequestHandler.data_received


@dataclass(frozen=True, kw_only=True)
class HttpLimits:
    head_timeout: float = 10.0
    # Longer than nginx's 60 s upstream keep-alive, so that the gateway closes first and never
    # sends a check down a connection that is being closed.
    idle_timeout: float = 75.0
    max_connections: int = 1000
    # One Authorization header at the field limit (it must reach the check and get its 401)
    # and room for an ordinary head besides.
    max_head_bytes: int = MAX_FIELD_SIZE + 32 * 1024


def fit_open_file_limit(limits: HttpLimits) -> HttpLimits:
    """Raise this process's soft open-file limit to its hard limit, and cap connections at
    half of it: the database, Slack's connections and the process's own files need the rest,
    and a process out of descriptors can answer no one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            logger.warning("could not raise the open-file limit to %d; keeping %d", hard, soft)
        else:
            soft = hard
    if soft == resource.RLIM_INFINITY:
        return limits
    return replace(limits, max_connections=max(1, min(limits.max_connections, soft // 2)))


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose connections keep to `limits` (see the module's docstring)."""

    __slots__ = ("_limits",)

    def __init__(self, app: web.Application, *, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        # aiohttp builds its connection factory itself, with no hook for the connection class:
        # take the one it built and make guarded connections with the same arguments.
        return _GuardedServer(await super()._make_server(), self._limits)


class _GuardedServer(web.Server):
    def __init__(self, built: web.Server, limits: HttpLimits) -> None:
        super().__init__(
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            **built._kwargs,
        )
        self._limits = limits
        self._open = _OpenConnections(self._loop, limits)

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(
            self,
            loop=self._loop,
            limits=self._limits,
            open_connections=self._open,
            **(self._kwargs | {"keepalive_timeout": self._limits.idle_timeout}),
        )


class _OpenConnections:
    """The server's open connections, oldest first: capped, and swept for late heads.

    One sweep every `head_timeout / _SWEEPS_PER_HEAD_TIMEOUT` while any connection is open
    stands in for a timer per request head, which the event loop would schedule and cancel
    on every request.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: HttpLimits) -> None:
        self._loop = loop
        self._limit = limits.max_connections
        self._head_timeout = limits.head_timeout
        self._sweep_interval = limits.head_timeout / _SWEEPS_PER_HEAD_TIMEOUT
        self._open: dict[GuardedRequestHandler, None] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._warned_at: float | None = None

    def admit(self, newcomer: GuardedRequestHandler, now: float) -> None:
        self._open[newcomer] = None
        if self._sweep is None:
            self._sweep = self._loop.call_later(self._sweep_interval, self._close_late_heads)
        if len(self._open) <= self._limit:
            return
        victim = next(
            (held for held in self._open if held is not newcomer and held.droppable(now)),
            newcomer,
        )
        self.release(victim)
        victim.force_close()
        if self._warned_at is None or now - self._warned_at >= _CAP_WARNING_INTERVAL:
            self._warned_at = now
            logger.warning(
                "%d connections open: closing the oldest idle or slow ones, or refusing new ones",
                self._limit,
            )

    def release(self, connection: GuardedRequestHandler) -> None:
        self._open.pop(connection, None)
        if not self._open and self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _close_late_heads(self) -> None:
        self._sweep = self._loop.call_later(self._sweep_interval, self._close_late_heads)
        started_by = monotonic() - self._head_timeout
        late = [held for held in self._open if held.head_started_by(started_by)]
        for connection in late:
            connection.head_too_slow()


class GuardedRequestHandler(web.RequestHandler):
    """One connection: aiohttp's, with a head deadline and size, a place under the cap, and a
    fixed answer to what the parser rejects.

    Times are `time.monotonic()`, which `loop.time()` would only wrap in one more call on
    every request.
    """

    __slots__ = (
        "_limits",
        "_open",
        "_max_head_bytes",
        "_head_since",
        "_head_bytes",
        "_head_last",
        "_request_at",
    )

    def __init__(
        self,
        manager: web.Server,
        *,
        limits: HttpLimits,
        open_connections: _OpenConnections,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._open = open_connections
        self._max_head_bytes = limits.max_head_bytes
        # The head being received: when it began (None between heads), how many bytes of it
        # were read, and its latest chunk, for a blank line split across two.
        self._head_since: float | None = None
        self._head_bytes = 0
        self._head_last = b""
        self._request_at = 0.0

    def droppable(self, now: float) -> bool:
        """Idle, still sending its head, or in a request older than the head timeout."""
        return (
            self._head_since is not None
            or self._awaiting_request()
            or now - self._request_at >= self._limits.head_timeout
        )

    def head_started_by(self, moment: float) -> bool:
        return self._head_since is not None and self._head_since <= moment

    def head_too_slow(self) -> None:
        self._head_since = None
        logger.debug(
            "closed a connection whose request head took over %g s", self._limits.head_timeout
        )
        self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        now = self._head_since = self._request_at = monotonic()
        self._open.admit(self, now)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._head_since = None
        self._open.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Every request passes here: kept to a few comparisons and one clock reading, with no
        # call of its own in the usual case of a whole head in one read.
        if self._force_close or self._close:
            return
        began: float | None = None
        if self._head_since is None:
            waiter = self._waiter
            if waiter is None or waiter.done():
                # Within a request: its body, or a pipelined next head, which is timed and
                # counted from the first read after this request is answered.
                _aiohttp_data_received(self, data)
                return
            began = self._head_since = monotonic()  # idle until now: a new head
        counted = self._head_bytes + len(data)
        if counted > self._max_head_bytes:
            counted = self._head_bytes_with(data)
            if counted > self._max_head_bytes:
                self._refuse_head()
                return
        self._head_bytes = counted
        self._head_last = data
        heads = self._request_count
        _aiohttp_data_received(self, data)
        if self._request_count != heads:  # the head is whole
            self._head_since = None
            self._head_bytes = 0
            self._head_last = b""  # a read may be large, and the parser is done with it
            self._request_at = monotonic() if began is None else began

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError | web.RequestPayloadError):
            return super().handle_error(request, status, exc, message)
        # The exception's text, and so any traceback, quotes the bytes it rejected.
        logger.debug("refused a malformed request (%s)", type(exc).__name__)
        refusal = web.Response(status=400, text=REFUSAL_TEXT, headers=NO_STORE)
        refusal.force_close()
        return refusal

    def _awaiting_request(self) -> bool:
        """Between requests: aiohttp's own test for an idle connection."""
        return self._waiter is not None and not self._waiter.done()

    def _head_bytes_with(self, data: bytes) -> int:
        """The head's size once `data` is read, up to its blank line if that is in `data`.

        Every byte counted before `data` is the head's (its end would have completed it), so
        the end is looked for only when a read takes the count past the bound.
        """
        tail = self._head_last[-(len(_HEAD_END) - 1) :]
        end = (tail + data).find(_HEAD_END)
        return self._head_bytes + (len(data) if end < 0 else end + len(_HEAD_END) - len(tail))

    def _refuse_head(self) -> None:
        logger.debug("refused a request head over %d bytes", self._max_head_bytes)
        self._head_since = None
        if self.transport is not None:
            self.transport.write(_REFUSAL)
        self.force_close()
