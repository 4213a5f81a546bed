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
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tokendesk.db"


@pytest.fixture
def store_options(db_path: Path, clock: FakeClock) -> dict[str, Any]:
    """A store of these tests (see `open_store`): the test key and catalogs, one bootstrap
    admin, a clock moved by hand, and no maximum lifetime, so that tokens need no expiry
    where a test is not about it."""
    return {
        "path": db_path,
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
