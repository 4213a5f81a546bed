"""The app's typed errors, and what a user is told for any error.

A listener raises (or lets the store raise) a typed error; `user_message` turns it into a
polite sentence, and the error handler (bot/app.py) or `after_ack` (bot/background.py) shows
it on the surface the request came from. Anything unexpected becomes "something went wrong
(ref XXXXXX)", with the same reference in the log beside the traceback: a user never sees a
stack trace.
"""

from __future__ import annotations

import logging
import secrets

from bot.blocks import notices
from storage.errors import StaleVersion, StoreBusy, StoreError, TokenNotFound

logger = logging.getLogger(__name__)


class RoleRequired(Exception):
    """The actor holds neither role: Account Administrator or Implementation Specialist."""

    def __init__(self) -> None:
        super().__init__(notices.ROLE_REQUIRED)


class AdminRequired(Exception):
    """The actor is an Implementation Specialist, and only Account Administrators may."""

    def __init__(self) -> None:
        super().__init__(notices.ADMIN_REQUIRED)


class ModalNotOpened(Exception):
    """Slack would not open a modal (its trigger expired or was used)."""

    def __init__(self) -> None:
        super().__init__(notices.MODAL_NOT_OPENED)


# Failures Token Desk expects and explains; any other error is a bug, logged with a trace.
EXPECTED = (RoleRequired, AdminRequired, ModalNotOpened, StoreError)


def user_message(error: Exception) -> str:
    """What the user is told; for an unexpected error, a reference that is also logged."""
    if isinstance(error, StoreBusy):
        return notices.STORE_BUSY
    if isinstance(error, TokenNotFound):
        return notices.TOKEN_GONE
    if isinstance(error, StaleVersion):
        return notices.changed_meanwhile(by=error.changed_by, at=error.changed_at)
    if isinstance(error, EXPECTED):
        return str(error)
    reference = secrets.token_hex(3).upper()
    logger.error("unexpected error, ref %s", reference, exc_info=error)
    return notices.something_went_wrong(reference)
