"""`/auth/check` as a gateway calls it, with any HTTP method: a 200 naming the token for a
valid secret, in its body and its headers, one and the same 401 for anything else (an
expired token included), never cached, and a change in effect for the very next check.

The store's clock is a wall clock the tests set forward; lifetimes are not capped here, so
that a token may have no expiry as well."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.auth_check import add_auth_check
from bot.settings import Settings
from storage.credential_index import SqliteRows
from storage.credentials import generate_secret
from storage.errors import StoreBusy
from storage.models import IssuedToken, TokenEdit
from storage.sql import Row
from storage.store import Store
from tests.bot.conftest import ADMIN, served
from tests.bot.doubles import WallClock
from tests.conftest import OpenStore
from tests.store_support import days_ahead

METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"tokendesk_max_lifetime_days": 0, "tokendesk_default_lifetime_days": 0}
    )


@pytest.fixture
def store_clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def gateway(gateway_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=gateway_url) as session:
        yield session


@pytest.fixture
def expires_on(store_clock: WallClock) -> date:
    return days_ahead(30, clock=store_clock)


@pytest.fixture
async def issued(store: Store, expires_on: date) -> IssuedToken:
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    return await store.tokens.create(
        actor=ADMIN,
        name="Gateway ünïcode",
        access_rights=["reports:read", "actions:write"],
        primary_contact=ADMIN,
        expires_on=expires_on,
    )


def stop_instant(expires_on: date) -> datetime:
    """A token works through its expiry date and stops at the next 00:00 UTC."""
    return datetime.combine(expires_on + timedelta(days=1), datetime.min.time(), UTC)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def basic(sid: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{sid}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def check(
    gateway: aiohttp.ClientSession, headers: Any, method: str = "GET"
) -> tuple[int, Any, Any]:
    async with gateway.request(method, "/auth/check", headers=headers) as answer:
        body = await answer.json() if method != "HEAD" and answer.content_length else None
        return answer.status, answer.headers, body


def assert_accepted(status: int, headers: Any, body: Any, issued: IssuedToken) -> None:
    assert issued.token.expires_on is not None
    stops = f"{issued.token.expires_on + timedelta(days=1):%Y-%m-%d}T00:00:00Z"
    assert status == 200
    assert body == {
        "active": True,
        "sid": issued.token.sid,
        "name": "Gateway ünïcode",
        "api_version": "v3",
        "access_rights": ["reports:read", "actions:write"],
        "expires_at": stops,
        "secret_used": "current",
    }
    assert headers["X-Token-Sid"] == issued.token.sid
    assert headers["X-Token-Api-Version"] == "v3"
    assert headers["X-Token-Scopes"] == "reports:read,actions:write"
    assert headers["X-Token-Secret-Used"] == "current"
    assert headers["X-Token-Expires"] == stops
    assert headers["Cache-Control"] == "no-store"


async def test_bearer_and_basic_accept_a_valid_token(
    gateway: aiohttp.ClientSession, issued: IssuedToken
) -> None:
    assert_accepted(*await check(gateway, bearer(issued.secret)), issued)
    assert_accepted(*await check(gateway, basic(issued.token.sid, issued.secret)), issued)
    assert_accepted(*await check(gateway, {"Authorization": f"bearer   {issued.secret}"}), issued)


async def test_any_method_is_answered(gateway: aiohttp.ClientSession, issued: IssuedToken) -> None:
    for method in METHODS:
        status, headers, _ = await check(gateway, bearer(issued.secret), method)
        assert status == 200, method
        assert headers["X-Token-Sid"] == issued.token.sid


async def failures(store: Store, issued: IssuedToken) -> dict[str, Any]:
    other = generate_secret()
    tampered = issued.secret[:-1] + ("0" if issued.secret[-1] != "0" else "1")
    return {
        "none": {},
        "empty bearer": {"Authorization": "Bearer "},
        "unknown secret": bearer(other),
        "bad checksum": bearer(tampered),
        "malformed": bearer("tdk_short"),
        "not a secret": bearer("hunter2"),
        "wrong SID": basic("TDNOTTHISONE", issued.secret),
        "basic without colon": {"Authorization": "Basic " + base64.b64encode(b"x").decode()},
        "basic not base64": {"Authorization": "Basic ***"},
        "unknown scheme": {"Authorization": f"Token {issued.secret}"},
        "several headers": [
            ("Authorization", f"Bearer {issued.secret}"),
            ("Authorization", f"Bearer {issued.secret}"),
        ],
        "long header": bearer(issued.secret + "x" * 2_000),
    }


async def test_every_failure_gets_the_same_answer(
    gateway: aiohttp.ClientSession, store: Store, issued: IssuedToken
) -> None:
    answers = []
    for reason, headers in (await failures(store, issued)).items():
        status, response_headers, body = await check(gateway, headers)
        answers.append(
            (
                status,
                body,
                response_headers.get("WWW-Authenticate"),
                response_headers.get("Cache-Control"),
                "X-Token-Sid" in response_headers,
            )
        )
        assert status == 401, reason
    assert len(set(map(str, answers))) == 1
    status, body, challenge, cache, leaked = answers[0]
    assert body == {"active": False}
    assert challenge and cache == "no-store" and not leaked


async def test_each_change_applies_to_the_very_next_check(
    gateway: aiohttp.ClientSession, store: Store, issued: IssuedToken
) -> None:
    token = issued.token
    reset = await store.tokens.reset(
        actor=ADMIN, token_id=token.id, row_version=1, expires_on=token.expires_on
    )
    assert (await check(gateway, bearer(issued.secret)))[0] == 401
    assert (await check(gateway, bearer(reset.secret)))[0] == 200

    await store.tokens.edit(
        actor=ADMIN, token_id=token.id, row_version=2, edit=TokenEdit(name="Renamed")
    )
    assert (await check(gateway, bearer(reset.secret)))[2]["name"] == "Renamed"

    await store.tokens.set_enabled(actor=ADMIN, token_id=token.id, enabled=False)
    assert (await check(gateway, bearer(reset.secret)))[0] == 401
    await store.tokens.set_enabled(actor=ADMIN, token_id=token.id, enabled=True)
    assert (await check(gateway, bearer(reset.secret)))[0] == 200

    await store.account.set_api_access(actor=ADMIN, enabled=False)
    assert (await check(gateway, bearer(reset.secret)))[0] == 401
    await store.account.set_api_access(actor=ADMIN, enabled=True)

    current = await store.token_reads.get(token_id=token.id)
    await store.tokens.delete(actor=ADMIN, token_id=token.id, row_version=current.row_version)
    assert (await check(gateway, bearer(reset.secret)))[0] == 401


async def test_last_used_is_gathered_and_written_once(
    gateway: aiohttp.ClientSession, store: Store, issued: IssuedToken
) -> None:
    for _ in range(25):
        assert (await check(gateway, bearer(issued.secret)))[0] == 200
    shown = await store.token_reads.get(token_id=issued.token.id)
    assert shown.last_used_at is not None
    assert shown.row_version == issued.token.row_version
    assert await store.credentials.flush_last_used() == 1
    assert await store.credentials.flush_last_used() == 0


async def test_a_hundred_concurrent_checks(
    gateway: aiohttp.ClientSession, issued: IssuedToken
) -> None:
    bad = generate_secret()
    results = await asyncio.gather(
        *(check(gateway, bearer(issued.secret if n % 2 else bad)) for n in range(100))
    )
    assert [status for status, _, _ in results] == [401 if n % 2 == 0 else 200 for n in range(100)]


async def test_the_refusal_reason_is_logged_without_the_secret(
    gateway: aiohttp.ClientSession, issued: IssuedToken, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="bot.auth_check")
    other = generate_secret()
    await check(gateway, bearer(other))
    assert "unknown secret" in caplog.text
    assert other not in caplog.text and issued.secret not in caplog.text


async def test_a_token_without_expiry_has_no_expires_header(
    gateway: aiohttp.ClientSession, store: Store
) -> None:
    forever = await store.tokens.create(
        actor=ADMIN,
        name="No expiry",
        access_rights=["reports:read"],
        primary_contact=ADMIN,
        expires_on=None,
    )
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    status, headers, body = await check(gateway, bearer(forever.secret))
    assert status == 200
    assert body["expires_at"] is None and body["secret_used"] == "current"
    assert "X-Token-Expires" not in headers
    assert headers["X-Token-Scopes"] == "reports:read"
    assert headers["X-Token-Secret-Used"] == "current"


def answer_of(status: int, headers: Any, body: Any) -> tuple[Any, ...]:
    """What a 401 tells its caller: all of it, but the Date header."""
    return status, body, sorted((k, v) for k, v in headers.items() if k.lower() != "date")


async def test_an_expired_token_gets_the_one_401_from_its_stop_instant(
    gateway: aiohttp.ClientSession,
    issued: IssuedToken,
    expires_on: date,
    store_clock: WallClock,
) -> None:
    """It works through its expiry date, to the last second, and from 00:00 UTC after it
    gets exactly the answer an unknown secret gets."""
    unknown = answer_of(*await check(gateway, bearer(generate_secret())))
    stops = stop_instant(expires_on).timestamp()

    store_clock.advance(stops - 1 - store_clock())
    assert_accepted(*await check(gateway, bearer(issued.secret)), issued)
    for after in (0, 1, 86_400):
        store_clock.advance(stops + after - store_clock())
        assert answer_of(*await check(gateway, bearer(issued.secret))) == unknown, after
        assert answer_of(*await check(gateway, basic(issued.token.sid, issued.secret))) == unknown


async def test_a_new_date_brings_an_expired_token_back(
    gateway: aiohttp.ClientSession,
    store: Store,
    issued: IssuedToken,
    expires_on: date,
    store_clock: WallClock,
) -> None:
    store_clock.advance(stop_instant(expires_on).timestamp() + 1 - store_clock())
    assert (await check(gateway, bearer(issued.secret)))[0] == 401
    later = expires_on + timedelta(days=7)
    await store.tokens.edit(
        actor=ADMIN, token_id=issued.token.id, row_version=1, edit=TokenEdit(expires_on=later)
    )
    status, headers, body = await check(gateway, bearer(issued.secret))
    assert status == 200
    assert (
        headers["X-Token-Expires"]
        == body["expires_at"]
        == f"{stop_instant(later):%Y-%m-%dT%H:%M:%SZ}"
    )


async def test_a_first_check_the_database_cannot_answer_at_once_is_a_503(
    open_store: OpenStore, expires_on: date, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store opens knowing only whose each digest is: a token's first check reads its row.
    If the database cannot give it at once (another process holding the file exclusively,
    injected here: SQLite's own readers never wait for its writer), the gateway is told to
    try again, and the next check that can read the row is answered."""
    first = await open_store()
    await first.account.set_api_access(actor=ADMIN, enabled=True)
    issued = await first.tokens.create(
        actor=ADMIN,
        name="Not checked since start-up",
        access_rights=["reports:read"],
        primary_contact=ADMIN,
        expires_on=expires_on,
    )
    await first.close()
    store = await open_store()
    web_app = web.Application()
    add_auth_check(web_app, store)
    read_row = SqliteRows.__call__

    def locked(rows: SqliteRows, token_id: int) -> Row | None:
        raise StoreBusy()

    async with served(web_app) as url, aiohttp.ClientSession(base_url=url) as gateway:
        monkeypatch.setattr(SqliteRows, "__call__", locked)
        status, headers, body = await check(gateway, bearer(issued.secret))
        assert (status, body) == (503, {"active": False})
        assert headers["Retry-After"] == "1"
        assert headers["Cache-Control"] == "no-store"
        monkeypatch.setattr(SqliteRows, "__call__", read_row)
        status, headers, body = await check(gateway, bearer(issued.secret))
        assert status == 200 and body["sid"] == issued.token.sid
