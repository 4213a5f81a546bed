"""The app as Slack sees it: served on loopback, driven by signed requests, talking to the
Slack stand-in, on a real SQLite file.

Tests drive it as Slack users (`slack_user(user_id)`, `admin`: see tests/bot/driver.py) and
read what it rendered with tests/bot/blockwalk.py.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bot.app import create_app
from bot.background import drain
from bot.logs import CAPPED_LOGGERS, configure_logging
from bot.memberships import GroupMemberships, SlackGroupMemberships
from bot.server import create_web_app
from bot.settings import Settings
from bot.settings import store_options as app_store_options
from slack_standin.client import SlackClient
from slack_standin.server import SlackStandIn
from storage.models import IssuedToken, Role
from storage.store import Store
from tests.bot.doubles import HeldClient, ManualClock, WallClock
from tests.bot.driver import SlackUser
from tests.conftest import OpenStore
from tests.store_support import days_ahead

SIGNING_SECRET = "test-signing-secret"
ADMIN = "UADMIN001"
SPECIALIST = "USPEC0001"
STRANGER = "USTRANGER"
# People of the workspace who hold no role until a test gives them one, and a user group.
ALICE, ALICE_MENTION = "U012AB3CD", "<@U012AB3CD|alice>"
BOB, BOB_MENTION = "U0BOB0001", "<@U0BOB0001|bob>"
OPS, OPS_MENTION = "S012AB3CD", "<!subteam^S012AB3CD|@ops>"

Seed = Callable[..., Awaitable[IssuedToken]]


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as running:
        for user in (ADMIN, SPECIALIST, STRANGER):
            running.add_user(user)
        running.add_user(ALICE, name="alice")
        running.add_user(BOB, name="bob")
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
def store_clock() -> Callable[[], float]:
    """The store's clock (a module that creates tokens in the past overrides it)."""
    return time.time


@pytest.fixture
def store_options(settings: Settings, store_clock: Callable[[], float]) -> dict[str, Any]:
    """The app's store, on the app's database (see `open_store`)."""
    return app_store_options(settings) | {"clock": store_clock}


@pytest.fixture
def legacy_tokens() -> tuple[str, ...]:
    """Names of tokens an older catalog, without the newest API version, created in the
    app's database before the app started (parametrize it)."""
    return ()


@pytest.fixture
async def store(open_store: OpenStore, settings: Settings, legacy_tokens: tuple[str, ...]) -> Store:
    if legacy_tokens:
        older = await open_store(api_versions=settings.tokendesk_api_versions[:-1])
        for name in legacy_tokens:
            await older.tokens.create(
                actor=ADMIN,
                name=name,
                access_rights=["reports:read"],
                primary_contact=ADMIN,
                expires_on=days_ahead(clock=older.clock),
            )
        await older.close()
    return await open_store()


@pytest.fixture
def seed(store: Store) -> Seed:
    """Creates a token in the app's store: `await seed(name, contact=..., rights=...)`,
    working for `lifetime_days` from the store's today (None: no expiry)."""

    async def create(
        name: str,
        *,
        contact: str = ADMIN,
        description: str = "",
        rights: tuple[str, ...] = ("reports:read",),
        actor: str = ADMIN,
        lifetime_days: int | None = 90,
    ) -> IssuedToken:
        return await store.tokens.create(
            actor=actor,
            name=name,
            description=description,
            access_rights=list(rights),
            primary_contact=contact,
            expires_on=None
            if lifetime_days is None
            else days_ahead(lifetime_days, clock=store.clock),
        )

    return create


@pytest.fixture
async def specialist(store: Store) -> str:
    """SPECIALIST, made an Implementation Specialist."""
    await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    return SPECIALIST


@pytest.fixture
def clock() -> ManualClock:
    """The monotonic clock by which group members grow old."""
    return ManualClock()


@pytest.fixture
def wall_clock() -> WallClock:
    """The wall clock that stamps what Slack said of each user."""
    return WallClock()


@pytest.fixture
def background_client(settings: Settings) -> HeldClient:
    return HeldClient(settings)


@pytest.fixture
def memberships() -> GroupMemberships | None:
    """How the app learns user groups' members: by default it does not, and nobody gets a
    role from a group (a module that tests group roles returns `slack_memberships`)."""
    return None


@pytest.fixture
def slack_memberships(
    background_client: HeldClient, store: Store, clock: ManualClock, wall_clock: WallClock
) -> SlackGroupMemberships:
    """Members and statuses asked from Slack only when the test says so (`refresh_all`, or
    the refresh an invalidation spawns): no background refresher."""
    return SlackGroupMemberships(background_client, store, clock=clock, wall_clock=wall_clock)


@pytest.fixture
async def bolt(settings: Settings, store: Store, memberships: GroupMemberships | None) -> AsyncApp:
    return create_app(settings, store, memberships=memberships)


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def serve(web_app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def served(web_app: web.Application) -> AsyncIterator[str]:
    """`web_app` on loopback for the time of the block (its URL); what it left running after
    its answers is drained before it stops."""
    runner, url = await serve(web_app)
    try:
        yield url
    finally:
        await drain()
        await runner.cleanup()


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, list[str]]]:
    """Another host (another port on loopback) and every request it got."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path} {await request.text()}")
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with served(app) as url:
        yield url, hits


@pytest.fixture
async def app_url(store: Store, bolt: AsyncApp) -> AsyncIterator[str]:
    async with served(create_web_app(store, bolt, serve_slack_events=True)) as url:
        yield url


@pytest.fixture
async def gateway_url(store: Store, bolt: AsyncApp) -> AsyncIterator[str]:
    """The app as it serves in Socket Mode: the auth check and health, no /slack/events."""
    async with served(create_web_app(store, bolt, serve_slack_events=False)) as url:
        yield url


@pytest.fixture
async def slack(app_url: str, standin: SlackStandIn) -> AsyncIterator[SlackClient]:
    async with SlackClient(
        f"{app_url}/slack/events", signing_secret=SIGNING_SECRET, standin=standin
    ) as client:
        yield client


@pytest.fixture
def slack_user(slack: SlackClient) -> Callable[[str], SlackUser]:
    """A Slack user of the given id, driving the app."""

    def user(user_id: str) -> SlackUser:
        return SlackUser(slack, user_id)

    return user


@pytest.fixture
def admin(slack_user: Callable[[str], SlackUser]) -> SlackUser:
    """ADMIN, an Account Administrator through TOKENDESK_ADMINS."""
    return slack_user(ADMIN)


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
