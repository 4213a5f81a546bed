"""The store's typed errors: every failure a caller can act on has its own class.

Messages never contain a secret or a configured value; they are safe to show and to log.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path


class StoreError(Exception):
    """Base class of everything the store raises on purpose."""


class StartupRefused(StoreError):
    """The store cannot start: `subject` (a variable or a file) breaks `rule`."""

    def __init__(self, subject: str, rule: str) -> None:
        super().__init__(f"{subject}: {rule}")
        self.subject = subject
        self.rule = rule


class StoreBusy(StoreError):
    """The database stayed locked by another writer for longer than the busy timeout."""

    def __init__(self, message: str = "the database is busy; try again in a moment") -> None:
        super().__init__(message)


class StoreUnavailable(StoreBusy):
    """The database cannot be reached (PostgreSQL down or cut off), so the change was not
    applied, or its commit was cut off and the instance answers nothing until it has
    caught up with what was committed. Callers treat it as busy: try again."""

    def __init__(self) -> None:
        super().__init__("the database is unavailable; try again in a moment")


class InvalidInput(StoreError):
    """One or more fields break a token's field rules (storage/fields.py); `errors` maps
    field → message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = dict(errors)


class NameTaken(InvalidInput):
    """Another token already has this name (compared case-folded)."""

    def __init__(self) -> None:
        super().__init__({"name": "another token already has this name"})


class TokenNotFound(StoreError):
    def __init__(self) -> None:
        super().__init__("the token no longer exists")


class StaleVersion(StoreError):
    """The token moved on since the caller saw it: nothing was applied."""

    def __init__(self, *, changed_by: str, changed_at: datetime) -> None:
        super().__init__(f"the token was changed by {changed_by} at {changed_at.isoformat()}")
        self.changed_by = changed_by
        self.changed_at = changed_at


class AlreadyApplied(StoreError):
    """The same request (a Slack submission delivered twice) was applied before."""

    def __init__(self) -> None:
        super().__init__("that was already done")


class TokenLeaked(StoreError):
    """The token's current secret was posted in Slack: it may not be enabled until a Reset
    replaces the secret. Nothing was applied."""

    def __init__(self) -> None:
        super().__init__("the token's secret was posted in Slack; Reset it before enabling it")


class AlreadyNewestVersion(StoreError):
    def __init__(self, version: str) -> None:
        super().__init__(f"the token already uses the newest API version, {version}")
        self.version = version


class RoleChangeRefused(StoreError):
    """A role change the role rules forbid: one that would leave no Account Administrator,
    one of a bootstrap admin, or one naming something that is not a Slack user or group."""


class BackupTargetExists(StoreError):
    """A backup's target exists, and replacing it was not asked for: nothing was written."""

    def __init__(self, target: Path) -> None:
        super().__init__(f"{target} exists")
        self.target = target


class BackupFailed(StoreError):
    """No backup was written, and nothing was left behind; the message says why."""
