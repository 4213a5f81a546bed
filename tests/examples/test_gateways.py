"""The gateway examples run for real (tests/examples/gateways.py): nginx, Caddy and Traefik
in front of Token Desk's web app, on a real SQLite file, and of a stand-in for the agency's
API that records what reaches it.

Each gateway refuses a request without a valid token before the API, hands the API the
check's headers and never the client's own nor its secret, caches no verdict (a disabled
token is refused on the very next request), refuses an oversized header before the API, and
asks another instance when one answers 503 because it is not current.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from bot.app import create_app
from bot.auth_check import UNAVAILABLE_HEADERS
from bot.server import create_web_app
from bot.settings import Settings, store_options
from slack_standin.server import SlackStandIn
from storage.models import IssuedToken
from storage.store import Store
from tests.bot.conftest import ADMIN, served
from tests.examples.gateways import API_HOST, GATEWAYS, require_binary, running_gateway

API_PATH = "/v3/reports?since=2026-01-01"
# A client's own copies of the check's headers (one spelt as some frameworks read it the
# same), which must never reach the API.
FORGED = {
    "X-Token-Sid": "forged",
    "X-Token-Expires": "2999-01-01T00:00:00Z",
    "X_Token_Scopes": "admin:all",
}
# A client's claim of its own address, which must never reach the check.
FORGED_ADDRESS = {"X-Real-IP": "203.0.113.7"}


@dataclass
class Recorder:
    """A stand-in web app's address and the headers of every request it got."""

    address: str = ""
    requests: list[CIMultiDict[str]] = field(default_factory=list)


@pytest.fixture(params=GATEWAYS)
def gateway_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    require_binary(name)
    return name


@dataclass(frozen=True)
class TokenDesk:
    """Token Desk's web app, serving: its host:port and its store."""

    address: str
    store: Store


@pytest.fixture
async def tokendesk(tmp_path: Path) -> AsyncIterator[TokenDesk]:
    """Token Desk's web app as it serves in Socket Mode (the auth check and health), with
    API access on and lifetimes uncapped."""
    async with SlackStandIn() as standin:
        settings = Settings(
            _env_file=None,
            slack_bot_token="xoxb-test",
            slack_signing_secret="test-signing-secret",
            slack_api_url=standin.api_url,
            tokendesk_db=tmp_path / "tokendesk.db",
            tokendesk_secret_key="ab" * 32,
            tokendesk_admins=ADMIN,
            tokendesk_max_lifetime_days=0,
            tokendesk_default_lifetime_days=0,
        )
        store = await Store.open(**store_options(settings))
        try:
            await store.account.set_api_access(actor=ADMIN, enabled=True)
            app = create_web_app(store, create_app(settings, store), serve_slack_events=False)
            async with served(app) as url:
                yield TokenDesk(url.removeprefix("http://"), store)
        finally:
            await store.close()


def record(recorder: Recorder, request: web.Request) -> None:
    recorder.requests.append(CIMultiDict(request.headers))


@pytest.fixture
async def api() -> AsyncIterator[Recorder]:
    """The agency's API: 200 to anything, every request's headers recorded."""
    recorder = Recorder()

    async def answer(request: web.Request) -> web.Response:
        record(recorder, request)
        return web.json_response({"reports": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with served(app) as url:
        recorder.address = url.removeprefix("http://")
        yield recorder


@pytest.fixture
async def not_current() -> AsyncIterator[Recorder]:
    """A Token Desk instance that has just lost its currency lease: ready by its last health
    check, but answering every auth check 503 with Retry-After, as the app does then."""
    recorder = Recorder()

    async def check(request: web.Request) -> web.Response:
        record(recorder, request)
        return web.json_response({"active": False}, status=503, headers=UNAVAILABLE_HEADERS)

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"ready": True}, headers={"Cache-Control": "no-store"})

    app = web.Application()
    app.router.add_route("*", "/auth/check", check)
    app.router.add_get("/readyz", ready)
    async with served(app) as url:
        recorder.address = url.removeprefix("http://")
        yield recorder


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def issued(tokendesk: TokenDesk) -> IssuedToken:
    """A valid token without expiry (so the check sends no X-Token-Expires)."""
    return await tokendesk.store.tokens.create(
        actor=ADMIN,
        name="Gateway",
        access_rights=["reports:read", "actions:write"],
        primary_contact=ADMIN,
        expires_on=None,
    )


@pytest.fixture
async def gateway(
    gateway_name: str, tmp_path: Path, tokendesk: TokenDesk, api: Recorder
) -> AsyncIterator[str]:
    """The gateway's example for one Token Desk instance, running: its URL."""
    async with running_gateway(
        gateway_name, tmp_path / "gateway", [tokendesk.address], api.address
    ) as url:
        yield url


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def basic(sid: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{sid}:{secret}".encode()).decode()}


async def call(
    client: aiohttp.ClientSession, gateway: str, headers: dict[str, str]
) -> tuple[int, CIMultiDict[str]]:
    """A GET of the API through the gateway: its status and headers."""
    async with client.get(
        f"{gateway}{API_PATH}", headers={"Host": API_HOST} | headers, ssl=False
    ) as answer:
        await answer.read()
        return answer.status, CIMultiDict(answer.headers)


async def test_no_valid_token_never_reaches_the_api(
    gateway: str, api: Recorder, client: aiohttp.ClientSession
) -> None:
    for headers in ({}, bearer("tdk_not_a_token"), {"Authorization": "Digest x"}):
        status, answer = await call(client, gateway, headers)
        assert status == 401, headers
        assert "Bearer" in answer["WWW-Authenticate"]
    assert api.requests == []


async def test_a_valid_token_reaches_the_api_with_the_checks_headers_only(
    gateway: str, api: Recorder, client: aiohttp.ClientSession, issued: IssuedToken
) -> None:
    token = issued.token
    for credentials in (bearer(issued.secret), basic(token.sid, issued.secret)):
        status, _ = await call(client, gateway, credentials | FORGED)
        assert status == 200
    assert len(api.requests) == 2
    for headers in api.requests:
        assert headers.getall("X-Token-Sid") == [token.sid]
        assert headers.getall("X-Token-Api-Version") == [token.api_version]
        assert headers.getall("X-Token-Scopes") == [",".join(token.access_rights)]
        assert headers.getall("X-Token-Secret-Used") == ["current"]
        assert "X-Token-Expires" not in headers
        assert "Authorization" not in headers
        assert not set(FORGED.values()) & set(headers.values())


async def test_a_disabled_token_is_refused_on_the_very_next_request(
    gateway: str,
    tokendesk: TokenDesk,
    api: Recorder,
    client: aiohttp.ClientSession,
    issued: IssuedToken,
) -> None:
    assert (await call(client, gateway, bearer(issued.secret)))[0] == 200
    await tokendesk.store.tokens.set_enabled(actor=ADMIN, token_id=issued.token.id, enabled=False)
    assert (await call(client, gateway, bearer(issued.secret)))[0] == 401
    assert len(api.requests) == 1


async def test_an_oversized_header_never_reaches_the_api(
    gateway: str, api: Recorder, client: aiohttp.ClientSession, issued: IssuedToken
) -> None:
    status, _ = await call(client, gateway, bearer(issued.secret + "x" * (100 * 1024)))
    assert 400 <= status < 500
    assert api.requests == []


async def test_an_instance_that_is_not_current_is_skipped(
    gateway_name: str,
    tmp_path: Path,
    tokendesk: TokenDesk,
    not_current: Recorder,
    api: Recorder,
    client: aiohttp.ClientSession,
    issued: IssuedToken,
) -> None:
    """The examples for several instances, the first of them answering every check 503:
    each request still succeeds, through another instance."""
    instances = [not_current.address, tokendesk.address, tokendesk.address]
    async with running_gateway(gateway_name, tmp_path / "gateway", instances, api.address) as url:
        not_current.requests.clear()
        for _ in range(4):
            status, _ = await call(client, url, bearer(issued.secret) | FORGED_ADDRESS)
            assert status == 200
    assert len(api.requests) == 4
    assert all(headers["X-Token-Sid"] == issued.token.sid for headers in api.requests)
    # Round-robin over three instances: the first was asked, and refused, at least once.
    assert not_current.requests
    # The check learns the client's address from the gateway, never from the client.
    assert {headers["X-Real-IP"] for headers in not_current.requests} == {"127.0.0.1"}
