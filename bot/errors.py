"""One error handler for the whole app: typed errors become polite replies on the surface the
request came from; anything unexpected becomes "something went wrong (ref XXXXXX)", with the
same reference in the log beside the traceback. A user never sees a stack trace."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Coroutine
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.response import BoltResponse

from bot.background import spawn
from bot.blocks.common import mention, slack_date
from bot.blocks.modals import message_view
from storage.errors import InvalidInput, StaleVersion, StoreBusy, StoreError, TokenNotFound

logger = logging.getLogger(__name__)


class RoleRequired(Exception):
    """The actor holds neither role (PRODUCT.md §1)."""

    def __init__(self) -> None:
        super().__init__(
            "Token Desk is only for Account Administrators and Implementation Specialists."
            " Ask an Account Administrator if you need access."
        )


class ModalNotOpened(Exception):
    """Slack would not open a modal (its trigger expired or was used)."""

    def __init__(self) -> None:
        super().__init__("Slack did not open the form in time. Please click again.")


class AdminRequired(Exception):
    def __init__(self) -> None:
        super().__init__("Only Account Administrators can do that.")


def user_message(error: Exception) -> str:
    """What the user is told; for an unexpected error, a reference that is also logged."""
    if isinstance(error, RoleRequired | AdminRequired | ModalNotOpened):
        return str(error)
    if isinstance(error, StoreBusy):
        return "Token Desk is busy right now. Please try again in a moment."
    if isinstance(error, TokenNotFound):
        return "That token no longer exists."
    if isinstance(error, StaleVersion):
        return (
            f"That token was changed by {mention(error.changed_by)}"
            f" {slack_date(error.changed_at)}. Nothing was applied; look again and retry."
        )
    if isinstance(error, InvalidInput | StoreError):
        return str(error)
    reference = secrets.token_hex(3).upper()
    logger.error("unexpected error, ref %s", reference, exc_info=error)
    return f"Something went wrong (ref {reference}). Nothing you need to do differently."


def _kind(body: dict[str, Any]) -> str:
    if "command" in body:
        return "command"
    return str(body.get("type", ""))


async def handle_error(
    error: Exception,
    body: dict[str, Any],
    response: BoltResponse | None,
    respond: AsyncRespond | None = None,
) -> BoltResponse | None:
    """Registered with `app.error`. `response` is None once the request was acknowledged."""
    text = user_message(error)
    kind = _kind(body)
    if kind == "view_submission":
        if response is not None:
            return BoltResponse(
                status=200,
                body={"response_action": "update", "view": message_view(text).to_dict()},
            )
        logger.info("a modal submission failed after its ack: %s", type(error).__name__)
        return None
    if response is not None:
        if kind == "command":
            return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text})
        if respond is not None:
            # Posting to the response_url before answering would delay the ack.
            spawn(respond(text=text, response_type="ephemeral", replace_original=False))
        return BoltResponse(status=200, body="")
    if respond is not None:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    return None


def after_ack(work: Coroutine[Any, Any, Any], *, respond: AsyncRespond | None) -> None:
    """Run `work` once the request is acknowledged, telling the user through `respond` if it
    fails. Listeners hand their post-ack work here instead of raising after `ack()`: Bolt
    would turn such an error into a failed HTTP answer if it came before Bolt sent the ack."""

    async def run() -> None:
        try:
            await work
        except Exception as error:
            text = user_message(error)
            if respond is not None:
                await respond(text=text, response_type="ephemeral", replace_original=False)
            else:
                logger.warning("work after the ack failed: %s", type(error).__name__)

    spawn(run())
