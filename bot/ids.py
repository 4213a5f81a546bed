"""Every id shared by builders, listener registration and tests."""

from __future__ import annotations

from enum import StrEnum

COMMAND = "/tokens"


class CallbackId(StrEnum):
    NOTICE = "notice"


class Event(StrEnum):
    SUBTEAM_MEMBERS_CHANGED = "subteam_members_changed"
    APP_HOME_OPENED = "app_home_opened"
