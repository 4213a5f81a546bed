"""The one way to run work after the ack: `after_ack(work, respond=…)`.

Slack waits at most 3 seconds for an ack, so a listener acknowledges first and hands what is
left to `after_ack` rather than awaiting it (an error raised after `ack()` would also become
a failed HTTP answer if Bolt had not sent the ack yet). The call says who hears of a failure:

- `after_ack(work, respond=respond)` when the user is waiting for the result (a list to
  refresh, a modal to open, a reply): a failure is told to them, ephemerally, on the surface
  they used, in the words of `bot.errors.user_message`.
- `after_ack(work, respond=None)`, log only, when the user already has their answer and the
  work is a side effect (DMs, refreshing the list behind a modal, background refreshes): a
  failure is logged and undoes nothing.

The work is started at once and kept until it finishes (never lost to the garbage
collector); `drain` lets it finish, at shutdown and in tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from bot.errors import EXPECTED, user_message

logger = logging.getLogger(__name__)
_running: set[asyncio.Task[None]] = set()


class Respond(Protocol):
    """How a failure is told: Bolt's `respond` (the click's or command's response_url), or
    for a click on Home, which has none, a new publish of that Home (bot/surfaces.py)."""

    async def __call__(self, *, text: str, response_type: str, replace_original: bool) -> Any: ...


def after_ack(work: Coroutine[Any, Any, Any], *, respond: Respond | None) -> None:
    """Start `work` without waiting for it; on failure tell the user through `respond`, or,
    with `respond=None`, only log."""

    async def run() -> None:
        try:
            await work
        except Exception as error:
            if respond is not None:
                text = user_message(error)
                await respond(text=text, response_type="ephemeral", replace_original=False)
            elif isinstance(error, EXPECTED):
                logger.warning("work after the ack failed: %s", type(error).__name__)
            else:
                raise

    task = asyncio.get_running_loop().create_task(run())
    _running.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task[None]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("background work failed", exc_info=task.exception())


async def drain(timeout: float = 5.0) -> None:
    """Let work started by `after_ack` finish."""
    if _running:
        await asyncio.wait(set(_running), timeout=timeout)
