"""Every id shared by builders, listener registration and tests."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

COMMAND = "/tokens"


class ActionId(StrEnum):
    CREATE = "token_create"
    FILTER_NAME = "filter_name"
    FILTER_CREATED = "filter_created"
    FILTER_STATE = "filter_state"
    FILTER_LAST_USED = "filter_last_used"
    CLEAR_FILTERS = "filters_clear"
    PREVIOUS_PAGE = "page_previous"
    NEXT_PAGE = "page_next"
    ENABLE_API_ACCESS = "api_access_enable"
    TOKEN_MENU = "token_menu"
    TOKEN_EDIT = "token_edit"
    RESET_NOW = "token_reset_now"
    API_ACCESS_OFF = "api_access_off"
    API_ACCESS_KEEP = "api_access_keep"
    AUDIT_PREVIOUS = "audit_previous"
    AUDIT_NEXT = "audit_next"
    EXPIRY_CHOICE = "expiry_choice"
    EXPIRY_DATE = "expiry_date"
    REMINDER_EXTEND = "reminder_extend"
    REMINDER_RESET = "reminder_reset"
    GRACE_CHOICE = "grace_choice"
    END_GRACE = "token_end_grace"
    LEAK_RESET = "leak_reset"
    LEAK_DISABLE = "leak_disable"


class MenuChoice(StrEnum):
    """The overflow menu's options, in the order the card shows them."""

    DUPLICATE = "duplicate"
    RESET = "reset"
    UPGRADE = "upgrade"
    DISABLE = "disable"
    ENABLE = "enable"
    DELETE = "delete"


class ExpiryChoice(StrEnum):
    """The expiry choice's options besides the dates it offers (whose values are ISO dates)."""

    ON_A_DATE = "on_a_date"
    NEVER = "never"


class GraceChoice(StrEnum):
    """How long the current secret keeps working after a Reset: the Reset confirmation's
    options, Stop immediately first (the default)."""

    STOP = "stop"
    ONE_HOUR = "1h"
    ONE_DAY = "24h"
    THREE_DAYS = "3d"
    SEVEN_DAYS = "7d"

    @property
    def grace(self) -> timedelta | None:
        """The window it asks for; None for Stop immediately."""
        return _GRACE.get(self)


_GRACE = {
    GraceChoice.ONE_HOUR: timedelta(hours=1),
    GraceChoice.ONE_DAY: timedelta(hours=24),
    GraceChoice.THREE_DAYS: timedelta(days=3),
    GraceChoice.SEVEN_DAYS: timedelta(days=7),
}


class FormField(StrEnum):
    """Block and action ids of the create/edit form; also the store's field names."""

    NAME = "name"
    DESCRIPTION = "description"
    API_VERSION = "api_version"
    ACCESS_RIGHTS = "access_rights"
    PRIMARY_CONTACT = "primary_contact"


class BlockId(StrEnum):
    """Prefixes: the list's stateful blocks end in `.<offset>.<nonce>` (see list_view)."""

    SEARCH = "search"
    FILTERS = "filters"
    EXPIRY = "expiry"
    EXPIRY_DATE = "expiry_date"
    GRACE = "grace"
    # A reminder DM's blocks for one token: `reminder.<token id>`, `reminder_actions.<id>`.
    REMINDER = "reminder"
    REMINDER_ACTIONS = "reminder_actions"
    # A leak DM's blocks for its token: `leak.<token id>`, `leak_actions.<token id>`.
    LEAK = "leak"
    LEAK_ACTIONS = "leak_actions"
    # Home's line above a card saying why it needs attention: `reason.<token id>`.
    REASON = "reason"


class CallbackId(StrEnum):
    NOTICE = "notice"
    CREATE = "token_create"
    EDIT = "token_edit"
    CONFIRM = "token_confirm"
    SECRET = "token_secret"
    HOME = "home"


class Event(StrEnum):
    SUBTEAM_MEMBERS_CHANGED = "subteam_members_changed"
    APP_HOME_OPENED = "app_home_opened"
    USER_CHANGE = "user_change"
    # Every message of a channel Token Desk is in (`message.channels`, `message.groups`).
    MESSAGE = "message"
