"""Slack's side of Socket Mode: the WebSocket URLs `apps.connections.open` mints, the `hello`
on connect, the envelopes sent to the app and the acks it sends back.

Each URL connects once (the app asks `apps.connections.open` for a new one to reconnect).
Envelopes go to the newest open connection; an ack is `{"envelope_id": …}`, optionally with
a `payload`, and every ack is recorded, late ones too.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web


@dataclass(frozen=True)
class Ack:
    envelope_id: str
    seconds: float  # from sending the envelope to its ack
    payload: Any  # the ack's `payload`, None for a bare ack


class SocketModeHub:
    """The app's WebSocket connections and what went over them."""

    def __init__(self, *, app_id: str) -> None:
        self.app_id = app_id
        self.acks: list[Ack] = []
        self.hellos = 0  # connections greeted so far
        self._minted: set[str] = set()
        self._open: list[web.WebSocketResponse] = []
        self._sent: dict[str, float] = {}
        self._waiting: dict[str, asyncio.Future[Ack]] = {}
        self._connected = asyncio.Event()

    def mint(self) -> str:
        """A new connection key, good for one connection."""
        key = uuid.uuid4().hex
        self._minted.add(key)
        return key

    @property
    def connected(self) -> bool:
        return bool(self._open)

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        if key not in self._minted:
            raise web.HTTPNotFound(text="unknown or used Socket Mode URL")
        self._minted.discard(key)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._open.append(socket)
        await socket.send_json(self._hello())
        self.hellos += 1
        self._connected.set()
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self._receive(message.data)
        finally:
            self._open.remove(socket)
            if not self._open:
                self._connected.clear()
        return socket

    def _hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": len(self._open),
            "debug_info": {
                "host": "applink-standin",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }

    def _receive(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return  # Slack ignores what is not an ack
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not isinstance(envelope_id, str) or envelope_id not in self._sent:
            return
        ack = Ack(
            envelope_id, time.perf_counter() - self._sent[envelope_id], message.get("payload")
        )
        self.acks.append(ack)
        waiting = self._waiting.pop(envelope_id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(ack)

    async def send(self, envelope: dict[str, Any], *, timeout: float) -> Ack | None:
        """Sends `envelope` on the newest connection; its ack, or None if none came within
        `timeout` seconds."""
        if not self._open:
            raise RuntimeError("no Socket Mode connection is open")
        envelope_id = str(envelope["envelope_id"])
        waiting: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._waiting[envelope_id] = waiting
        self._sent[envelope_id] = time.perf_counter()
        try:
            await self._open[-1].send_str(json.dumps(envelope))
            return await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(envelope_id, None)

    async def close(self) -> None:
        for socket in list(self._open):
            await socket.close(code=WSCloseCode.GOING_AWAY)
