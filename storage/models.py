"""Domain models the store returns: immutable, typed, free of any secret but `IssuedToken`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any


class TokenState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class CreatedOn(StrEnum):
    """The list's "Created On" buckets, relative to the moment of the query."""

    LAST_7_DAYS = "last_7_days"
    LAST_30_DAYS = "last_30_days"
    MORE_THAN_30_DAYS = "more_than_30_days"


class Role(IntEnum):
    """Ordered so that the effective role is simply the highest one held."""

    SPECIALIST = 1
    ADMIN = 2

    @property
    def label(self) -> str:
        return "Account Administrator" if self is Role.ADMIN else "Implementation Specialist"


class SlackStatus(StrEnum):
    """What Slack last said a user is. Only a member of the workspace may hold a role: bots,
    guests, deactivated users, people of another organisation and ids Slack does not know
    hold none."""

    MEMBER = "member"
    GUEST = "guest"
    BOT = "bot"
    DEACTIVATED = "deactivated"
    OTHER_ORGANISATION = "other_organisation"
    UNKNOWN_TO_SLACK = "unknown_to_slack"

    @property
    def may_hold_a_role(self) -> bool:
        return self is SlackStatus.MEMBER


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    sid: str
    name: str
    description: str
    state: TokenState
    api_version: str
    access_rights: tuple[str, ...]
    primary_contact: str
    secret_hint: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    reset_at: datetime | None
    last_used_at: datetime | None
    row_version: int

    @property
    def enabled(self) -> bool:
        return self.state is TokenState.ENABLED


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token together with its new secret: the only model that ever holds one in clear."""

    token: Token
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenChange:
    """A token as it was and as it is; equal when the change had nothing to do."""

    before: Token
    after: Token

    @property
    def changed(self) -> bool:
        return self.before.row_version != self.after.row_version


@dataclass(frozen=True, slots=True)
class TokenFilter:
    name: str = ""
    created_on: CreatedOn | None = None
    state: TokenState | None = None

    @property
    def is_empty(self) -> bool:
        return not self.name.strip() and self.created_on is None and self.state is None


@dataclass(frozen=True, slots=True)
class TokenPage:
    tokens: tuple[Token, ...]
    total: int
    offset: int


@dataclass(frozen=True, slots=True)
class TokenEdit:
    """The fields an edit may change; `None` leaves a field as it is."""

    name: str | None = None
    description: str | None = None
    access_rights: frozenset[str] | None = None
    primary_contact: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizedToken:
    """What the auth check may tell a gateway about a token whose secret matched."""

    id: int
    sid: str
    name: str
    api_version: str
    access_rights: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoleSource:
    """Where a role comes from: `bootstrap`, `direct`, or `group` (with its id)."""

    kind: str
    role: Role
    group_id: str | None = None


@dataclass(frozen=True, slots=True)
class UserStatus:
    """A user's Slack status as Slack gave it at `learned_at` (when the question was asked)."""

    user_id: str
    status: SlackStatus
    learned_at: datetime


@dataclass(frozen=True, slots=True)
class RoleMappings:
    bootstrap_admins: tuple[str, ...]
    users: tuple[tuple[str, Role], ...]
    groups: tuple[tuple[str, Role], ...]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    token_sid: str | None
    token_name: str | None
    before: dict[str, Any]
    after: dict[str, Any]
