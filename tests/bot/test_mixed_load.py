"""Mixed load over loopback: 20 Slack users working the token list while an API gateway
hammers `/auth/check`, for a bounded time; then every answer and invariant is checked (the
machinery: tests/bot/mixed_load_support.py).

Load lasts LOAD_SECONDS: about 8 s by default, about 60 s with TOKENDESK_LONG_TESTS=1 (read
at import). Run with `-s` to see the summary.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.settings import Settings
from slack_standin.client import SlackClient
from slack_standin.server import SlackStandIn
from storage.store import Store
from tests.bot.mixed_load_support import check_outcome, prepare, run_load, summary

LONG = os.environ.get("TOKENDESK_LONG_TESTS", "") not in ("", "0")
LOAD_SECONDS = 60.0 if LONG else 8.0


@pytest.fixture
async def gateway_session(app_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=app_url) as session:
        yield session


async def test_twenty_users_and_a_gateway_at_once(
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    settings: Settings,
    gateway_session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    ledger, baseline = await prepare(slack, standin, store)
    run = await run_load(
        ledger,
        slacks=[slack],
        standin=standin,
        gateway_sessions=[gateway_session],
        seconds=LOAD_SECONDS,
        baseline=baseline,
    )
    lines = summary(run)
    warnings = Counter(f"{r.name}: {r.getMessage()[:80]}" for r in caplog.records)
    if warnings:
        lines.append("  log warnings: " + "; ".join(f"{m} ×{n}" for m, n in warnings.items()))
    print("\n".join(lines))

    await check_outcome(
        run,
        standin=standin,
        store=store,
        gateway_session=gateway_session,
        sqlite_file=settings.tokendesk_db,
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], warnings
