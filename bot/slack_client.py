"""Every call Token Desk makes to Slack, apart from `users.info` (bot/user_status.py, with
the classification of its answer) and the group-membership cache (bot/memberships.py).

The Web API client points at SLACK_API_URL and retries only what is safe to retry: rate
limits (honouring `Retry-After`), server errors and connection errors are retried once,
except for `views.open` and `views.push`, whose trigger id is single-use, so that a retry can
only fail or open the modal twice. None of these calls undoes anything when it fails: a DM
that does not go out is logged, a list that cannot be replaced says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.blocks import notices
from bot.blocks.common import Message
from bot.errors import ModalNotOpened
from bot.settings import Settings
from storage.fields import is_user_id

logger = logging.getLogger(__name__)
NEVER_RETRIED = ("views.open", "views.push")
CLIENT_TIMEOUT_SECONDS = 10
WEBHOOK_TIMEOUT_SECONDS = 10
# What a call to Slack can raise when Slack refuses, fails or does not answer.
SLACK_FAILURES = (SlackApiError, SlackClientError, ClientError, OSError, TimeoutError)


# -- the client ---------------------------------------------------------------------------


def _retriable(request: HttpRequest) -> bool:
    return not request.url.rstrip("/").endswith(NEVER_RETRIED)


class _Guarded(AsyncRetryHandler):
    """Asks `inner` only for requests that may be retried at all."""

    def __init__(self, inner: AsyncRetryHandler) -> None:
        super().__init__(max_retry_count=inner.max_retry_count)
        self._inner = inner

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return _retriable(request) and await self._inner._can_retry_async(
            state=state, request=request, response=response, error=error
        )

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        await self._inner.prepare_for_next_attempt_async(
            state=state, request=request, response=response, error=error
        )


def create_web_client(settings: Settings) -> AsyncWebClient:
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=CLIENT_TIMEOUT_SECONDS,
        retry_handlers=[
            _Guarded(AsyncConnectionErrorRetryHandler(max_retry_count=1)),
            _Guarded(AsyncRateLimitErrorRetryHandler(max_retry_count=1)),
            _Guarded(AsyncServerErrorRetryHandler(max_retry_count=1)),
        ],
    )


# -- the calls ----------------------------------------------------------------------------


async def open_modal(client: AsyncWebClient, trigger_id: str, view: View) -> None:
    """Raises ModalNotOpened when Slack would not open it (its trigger expired or was
    used), so that the user is asked to click again."""
    try:
        await client.views_open(trigger_id=trigger_id, view=view)
    except SLACK_FAILURES:
        raise ModalNotOpened() from None


async def group_exists(client: AsyncWebClient, group_id: str) -> bool | None:
    """Whether Slack knows the user group; None when Slack did not say."""
    try:
        await client.usergroups_users_list(usergroup=group_id)
    except SlackApiError as error:
        return False if error.response.get("error") == "no_such_subteam" else None
    except (SlackClientError, OSError, TimeoutError):
        return None
    return True


async def send_direct_messages(
    client: AsyncWebClient, recipients: Iterable[str], message: Message
) -> None:
    """One DM to each distinct recipient; a failure is logged and the others still go."""
    for user_id in dict.fromkeys(recipients):
        if not is_user_id(user_id):
            continue
        try:
            opened = await client.conversations_open(users=user_id)
            channel = opened["channel"]["id"]
            # No previews: a token name or description may hold a URL, and Slack would
            # fetch it and show whatever the page says beside the notice.
            await client.chat_postMessage(
                channel=channel, unfurl_links=False, unfurl_media=False, **message.as_dict()
            )
        except SLACK_FAILURES as error:
            reason = error.response.get("error") if isinstance(error, SlackApiError) else ""
            logger.warning(
                "direct message to %s not delivered: %s %s", user_id, type(error).__name__, reason
            )


async def replace_message(response_url: str, message: Message) -> bool:
    """Replace the message behind `response_url`; whether Slack took it. If Slack refuses
    the blocks, the user is still told, in plain text, to look again."""
    hook = AsyncWebhookClient(url=response_url, timeout=WEBHOOK_TIMEOUT_SECONDS)
    try:
        answer = await hook.send_dict(
            {"replace_original": True, "response_type": "ephemeral", **message.as_dict()}
        )
        if answer.status_code == 400 and "invalid_blocks" in answer.body:
            logger.error("Slack refused a list's blocks: %s", answer.body[:200])
            await hook.send_dict(
                {
                    "replace_original": False,
                    "response_type": "ephemeral",
                    "text": notices.LIST_NOT_SHOWN,
                }
            )
    except (SlackClientError, ClientError, ValueError, OSError, TimeoutError) as error:
        logger.warning("list not refreshed: %s", type(error).__name__)
        return False
    if answer.status_code != 200:
        logger.warning("list not refreshed: Slack answered %s", answer.status_code)
    return answer.status_code == 200
