"""The store every test folder opens the same way: on the test's database, with the options
its own conftest gives (`store_options`), any of them overridden by the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from storage.store import Store

# The private PostgreSQL cluster's fixtures: `postgres_cluster`, `postgres_url`.
pytest_plugins = ("tests.postgres_cluster",)

OpenStore = Callable[..., Awaitable[Store]]


@pytest.fixture
async def open_store(store_options: dict[str, Any]) -> AsyncIterator[OpenStore]:
    """Opens a store with `store_options`, any of them overridden (`await
    open_store(api_versions=("v1",))`); each is closed at the end unless the test closed it."""
    opened: list[Store] = []

    async def open_(**overrides: Any) -> Store:
        store = await Store.open(**(store_options | overrides))
        opened.append(store)
        return store

    yield open_
    for store in opened:
        if not store.closed:
            await store.close()
