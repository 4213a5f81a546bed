from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage.store import Store
from tests.conftest import OpenStore
from tests.storage.support_durability import KEY, SCOPES, VERSIONS, FakeClock

BOOTSTRAP_ADMIN = "UBOOT0001"
DAY_SECONDS = 86_400


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(database: dict[str, Any]) -> Path:
    """The SQLite file of a test that looks into it (it then runs on SQLite only)."""
    path: Path = database["path"]
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test of the store runs on SQLite and on PostgreSQL, but those that look into
    the SQLite file itself (`db_path`), and those of a module naming its `BACKENDS`."""
    if "backend" in metafunc.fixturenames:
        backends = (
            ["sqlite"]
            if "db_path" in metafunc.fixturenames
            else getattr(metafunc.module, "BACKENDS", BACKENDS)
        )
        metafunc.parametrize("backend", backends)


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the test's store lives: `path` (SQLite) or `database_url` (PostgreSQL, a fresh
    database of the session's private cluster)."""
    if backend == "postgresql":
        return {"database_url": request.getfixturevalue("postgres_url")}
    return {"path": tmp_path / "tokendesk.db"}


@pytest.fixture
def store_options(database: dict[str, Any], clock: FakeClock) -> dict[str, Any]:
    """A store of these tests (see `open_store`): the test key and catalogs, one bootstrap
    admin, a clock moved by hand, and no maximum lifetime, so that tokens need no expiry
    where a test is not about it."""
    return database | {
        "secret_key": KEY,
        "api_versions": VERSIONS,
        "scopes": SCOPES,
        "admins": (BOOTSTRAP_ADMIN,),
        "clock": clock,
        "max_lifetime_days": 0,
    }


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()
