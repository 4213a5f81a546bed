"""Every id shared by builders, listener registration and tests."""

from __future__ import annotations

from enum import StrEnum

COMMAND = "/tokens"


class ActionId(StrEnum):
    CREATE = "token_create"
    FILTER_NAME = "filter_name"
    FILTER_CREATED = "filter_created"
    FILTER_STATE = "filter_state"
    CLEAR_FILTERS = "filters_clear"
    PREVIOUS_PAGE = "page_previous"
    NEXT_PAGE = "page_next"
    ENABLE_API_ACCESS = "api_access_enable"
    TOKEN_MENU = "token_menu"
    TOKEN_EDIT = "token_edit"


class BlockId(StrEnum):
    """Prefixes: the list's stateful blocks end in `.<offset>.<nonce>` (see list_view)."""

    SEARCH = "search"
    FILTERS = "filters"


class CallbackId(StrEnum):
    NOTICE = "notice"


class Event(StrEnum):
    SUBTEAM_MEMBERS_CHANGED = "subteam_members_changed"
    APP_HOME_OPENED = "app_home_opened"
