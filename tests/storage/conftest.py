from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage.models import IssuedToken
from storage.store import Store
from tests.storage.support_durability import KEY, SCOPES, VERSIONS, FakeClock

BOOTSTRAP_ADMIN = "UBOOT0001"
DAY_SECONDS = 86_400

OpenStore = Callable[..., Awaitable[Store]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tokendesk.db"


@pytest.fixture
async def open_store(db_path: Path, clock: FakeClock) -> AsyncIterator[OpenStore]:
    """Opens stores on the test's database (closing them at the end), settings overridable."""
    opened: list[Store] = []

    async def open_(**overrides: Any) -> Store:
        options: dict[str, Any] = {
            "path": db_path,
            "secret_key": KEY,
            "api_versions": VERSIONS,
            "scopes": SCOPES,
            "admins": (BOOTSTRAP_ADMIN,),
            "clock": clock,
        } | overrides
        store = await Store.open(**options)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        if not store.closed:
            await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()


async def create(
    store: Store,
    name: str = "Lifecycle Alpha",
    *,
    actor: str = "UACTOR001",
    description: str = "",
    access_rights: tuple[str, ...] = ("reports:read",),
    primary_contact: str = "UCONTACT1",
) -> IssuedToken:
    return await store.tokens.create(
        actor=actor,
        name=name,
        description=description,
        access_rights=access_rights,
        primary_contact=primary_contact,
    )
