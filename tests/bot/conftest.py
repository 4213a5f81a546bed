"""The app as Slack sees it: served on loopback, driven by signed requests, talking to the
Slack stand-in, on a real SQLite file."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bot.app import create_app
from bot.background import drain
from bot.logs import CAPPED_LOGGERS, configure_logging
from bot.server import create_web_app, open_store
from bot.settings import Settings
from slack_standin.client import SlackClient
from slack_standin.server import SlackStandIn
from storage.store import Store

SIGNING_SECRET = "test-signing-secret"
ADMIN = "UADMIN001"
SPECIALIST = "USPEC0001"
STRANGER = "USTRANGER"


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as running:
        for user in (ADMIN, SPECIALIST, STRANGER):
            running.add_user(user)
        yield running


@pytest.fixture
def settings(tmp_path: Path, standin: SlackStandIn) -> Settings:
    return Settings(
        _env_file=None,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=standin.api_url,
        tokendesk_db=tmp_path / "tokendesk.db",
        tokendesk_secret_key="ab" * 32,
        tokendesk_admins=ADMIN,
    )


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = await open_store(settings)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def bolt(settings: Settings, store: Store) -> AsyncApp:
    return create_app(settings, store)


async def serve(web_app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def app_url(store: Store, bolt: AsyncApp) -> AsyncIterator[str]:
    runner, url = await serve(create_web_app(store, bolt, serve_slack_events=True))
    try:
        yield url
    finally:
        await drain()
        await runner.cleanup()


@pytest.fixture
async def slack(app_url: str, standin: SlackStandIn) -> AsyncIterator[SlackClient]:
    async with SlackClient(
        f"{app_url}/slack/events", signing_secret=SIGNING_SECRET, standin=standin
    ) as client:
        yield client


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    """The app's own logging configuration at DEBUG (masking included), into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in CAPPED_LOGGERS}
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    yield buffer
    root.handlers, root.level = saved[0], saved[1]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
