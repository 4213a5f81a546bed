"""Helpers shared by the storage tests: real files, real processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

from storage.models import IssuedToken
from storage.store import Store

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
VERSIONS = ("v1", "v2", "v3")
SCOPES = ("reports:read", "reports:write", "actions:write")
START = 1_790_000_000.0
ACTOR = "UACTOR001"
CONTACT = "UCONTACT1"
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def opened_store(path: Path, **overrides: Any) -> AsyncIterator[Store]:
    """A store on `path` (test key and catalogs unless overridden), always closed after."""
    options: dict[str, Any] = {
        "path": path,
        "secret_key": KEY,
        "api_versions": VERSIONS,
        "scopes": SCOPES,
        "clock": FakeClock(),
        # The background flusher must never race a test's own `flush_last_used`.
        "flush_seconds": 3600.0,
        # No cap, so that tokens need no expiry where a test is not about it.
        "max_lifetime_days": 0,
    } | overrides
    store = await Store.open(**options)
    try:
        yield store
    finally:
        await store.close()


async def create_token(
    store: Store,
    name: str = "Lifecycle Alpha",
    *,
    actor: str = ACTOR,
    description: str = "",
    access_rights: tuple[str, ...] = ("reports:read",),
    primary_contact: str = CONTACT,
    expires_on: date | None = None,
) -> IssuedToken:
    return await store.tokens.create(
        actor=actor,
        name=name,
        description=description,
        access_rights=access_rights,
        primary_contact=primary_contact,
        expires_on=expires_on,
    )


def plain_connection(path: Path) -> sqlite3.Connection:
    """A connection of our own, outside the store, in autocommit mode."""
    return sqlite3.connect(path, isolation_level=None)


def user_version(path: Path) -> int:
    connection = plain_connection(path)
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        return int(version)
    finally:
        connection.close()


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python that imports `storage` from this checkout."""
    return os.environ | {"PYTHONPATH": str(REPO_ROOT)} | extra


def run_python(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
