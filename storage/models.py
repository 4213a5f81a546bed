"""Domain models the store returns: immutable, typed, free of any secret but `IssuedToken`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum, IntEnum, StrEnum
from typing import Any, Final, Literal, NamedTuple

# `Token.disabled_reason` when Token Desk disabled a token itself for being unused.
IDLE: Final = "idle"
# `Token.disabled_reason` when Token Desk disabled a token itself because its current
# secret was posted in a Slack channel (the leak guard, with TOKENDESK_LEAK_ACTION=disable).
LEAKED: Final = "leaked"


class TokenState(StrEnum):
    """What a token is at a given moment: an enabled token past its stop instant is
    expired; a disabled one is disabled, expired or not."""

    ENABLED = "enabled"
    EXPIRED = "expired"
    DISABLED = "disabled"


class StateFilter(StrEnum):
    """The list's State filter. The first three partition the tokens; Expiring soon is a
    part of Enabled."""

    ENABLED = "enabled"
    EXPIRED = "expired"
    DISABLED = "disabled"
    EXPIRING_SOON = "expiring_soon"


EXPIRING_SOON_DAYS = 7


class LastUsedFilter(StrEnum):
    """The list's Last used filter; "not in N days" includes tokens never used."""

    NEVER = "never"
    NOT_30_DAYS = "not_30_days"
    NOT_90_DAYS = "not_90_days"

    @property
    def days(self) -> int | None:
        """The window of a "not in N days" filter; None for Never used."""
        return {LastUsedFilter.NOT_30_DAYS: 30, LastUsedFilter.NOT_90_DAYS: 90}.get(self)


class KeepExpiry(Enum):
    """`TokenEdit.expires_on` when the edit leaves the expiry as it is (None means "no
    expiry", so it cannot mean "unchanged" too)."""

    KEEP = "keep"


KEEP: Final = KeepExpiry.KEEP


def stop_instant(expires_on: date) -> datetime:
    """When a token that works through `expires_on` stops: the next 00:00 UTC."""
    return datetime.combine(expires_on + timedelta(days=1), time(), UTC)


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


# How many of the latest presenters of a retired secret are kept.
PRESENTERS_KEPT = 5


@dataclass(frozen=True, slots=True)
class Presenter:
    """Who presented a retired secret, as the gateway told: untrusted text, bounded in
    length, never holding a secret."""

    address: str
    user_agent: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RetiredSummary:
    """A token's retired secrets that were presented after their retirement: how often in
    all, when last, and the last few presenters, newest first."""

    presented: int
    last_presented_at: datetime | None
    presenters: tuple[Presenter, ...]


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    sid: str
    name: str
    description: str
    enabled: bool
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
    expires_on: date | None
    last_active_at: datetime
    disabled_reason: str | None
    # The previous secret a Reset left working until `previous_until`, and when it last
    # passed the auth check (None: not since the Reset).
    previous_secret_hint: str | None = None
    previous_until: datetime | None = None
    previous_last_used_at: datetime | None = None
    # None while no retired secret of the token was presented.
    retired: RetiredSummary | None = None
    # When its current secret was found posted in a Slack channel; None: not leaked. Only
    # a Reset clears it.
    leaked_at: datetime | None = None

    @property
    def secret_issued_at(self) -> datetime:
        """When the current secret was issued: the last Reset, else the creation."""
        return self.reset_at or self.created_at

    @property
    def stops_at(self) -> datetime | None:
        """The stop instant (see `stop_instant`), or None for a token without expiry."""
        return None if self.expires_on is None else stop_instant(self.expires_on)

    def state_at(self, now: datetime) -> TokenState:
        """Disabled wins over expired."""
        if not self.enabled:
            return TokenState.DISABLED
        stops_at = self.stops_at
        if stops_at is not None and stops_at <= now:
            return TokenState.EXPIRED
        return TokenState.ENABLED

    def expires_within(self, now: datetime, days: int) -> bool:
        """Whether it has not stopped yet at `now` but will within `days` days."""
        stops_at = self.stops_at
        return stops_at is not None and now < stops_at <= now + timedelta(days=days)

    def current_secret_works_at(self, now: datetime) -> bool:
        """Whether the current secret passes the auth check at `now` (API access aside) and
        has not leaked: only then may a Reset leave it working for a grace window."""
        return self.leaked_at is None and self.state_at(now) is TokenState.ENABLED

    def grace_open_at(self, now: datetime) -> bool:
        """Whether the previous secret still works at `now`: its window is open and the
        token has not reached its stop instant."""
        stops_at = self.stops_at
        return (
            self.previous_until is not None
            and now < self.previous_until
            and (stops_at is None or now < stops_at)
        )


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
    state: StateFilter | None = None
    last_used: LastUsedFilter | None = None

    @property
    def is_empty(self) -> bool:
        return (
            not self.name.strip()
            and self.created_on is None
            and self.state is None
            and self.last_used is None
        )


@dataclass(frozen=True, slots=True)
class TokenPage:
    tokens: tuple[Token, ...]
    total: int
    offset: int


@dataclass(frozen=True, slots=True)
class HomeSummary:
    """How many tokens are in each state at one moment, as the list's filters count them:
    `enabled`, `expired` and `disabled` partition the tokens (as the State filter does);
    `expiring_soon` is a part of `enabled`; `unused` counts the tokens of every state not
    used in 30 days or never (as the Last used filter "Not in 30 days" does); `in_grace`
    the tokens whose previous secret still works; `leaked` those whose current secret was
    posted in Slack; `without_expiry` those with no expiry date, whatever their state."""

    enabled: int
    disabled: int
    expired: int
    expiring_soon: int
    in_grace: int
    leaked: int
    unused: int
    without_expiry: int


class Attention(StrEnum):
    """Why a token needs a manager's attention, most urgent first."""

    LEAKED = "leaked"
    EXPIRED = "expired"
    EXPIRING = "expiring"
    OLD_SECRET_PRESENTED = "old_secret_presented"
    UNUSED = "unused"
    NO_EXPIRY = "no_expiry"


@dataclass(frozen=True, slots=True)
class AttentionItem:
    """A token that needs attention, under the most urgent reason it has."""

    token: Token
    reason: Attention


@dataclass(frozen=True, slots=True)
class TokenEdit:
    """The fields an edit may change; `None` leaves a field as it is, except the expiry,
    which `KEEP` leaves as it is (None removes it)."""

    name: str | None = None
    description: str | None = None
    access_rights: frozenset[str] | None = None
    primary_contact: str | None = None
    expires_on: date | None | KeepExpiry = KEEP


SecretUsed = Literal["current", "previous"]


@dataclass(frozen=True, slots=True)
class AuthorizedToken:
    """What the auth check may tell a gateway about a token whose secret matched:
    `expires_at` is its stop instant, `secret_used` which of its secrets matched
    (`current`, or `previous` during the grace window a Reset left it)."""

    id: int
    sid: str
    name: str
    api_version: str
    access_rights: tuple[str, ...]
    expires_at: datetime | None
    secret_used: SecretUsed


# The two below are NamedTuples rather than frozen dataclasses: as immutable, and several
# times cheaper to make, and a scheduler pass may make a thousand of each.


class ReminderToken(NamedTuple):
    """What a reminder shows of a token with an expiry, and no more: a scheduler pass may
    read a thousand at once. `last_used_at` includes a use not written yet."""

    id: int
    sid: str
    name: str
    primary_contact: str
    row_version: int
    stops_at: datetime
    last_used_at: datetime | None

    @property
    def expires_on(self) -> date:
        """The date it works through: the day before its stop instant."""
        return (self.stops_at - timedelta(days=1)).date()


class DueReminder(NamedTuple):
    """A reminder whose moment has come: `days` before the stop instant, 0 once stopped."""

    token: ReminderToken
    days: int


@dataclass(frozen=True, slots=True)
class LeakReport:
    """A live secret of `token` found posted in a Slack message, reported for the first
    time: `token` as it is after the report, `which` of its secrets it was, and whether
    this report disabled it."""

    token: Token
    which: SecretUsed
    disabled: bool


@dataclass(frozen=True, slots=True)
class IdleToken:
    """An enabled token unused since `idle_since` (its creation, last enable, last Reset
    or last use, whichever is latest)."""

    token: Token
    idle_since: datetime


@dataclass(frozen=True, slots=True)
class RetiredPresentation:
    """A retired secret presented for the first time since its retirement: its token, and
    the latest presentation known when it was found (`presenter` None only if none was
    recorded)."""

    token: Token
    presenter: Presenter | None
    at: datetime


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
