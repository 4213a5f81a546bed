"""Every call Token Desk makes to Slack, apart from `users.info` (bot/user_status.py, with
the classification of its answer) and the group-membership cache (bot/memberships.py).

The Web API client points at SLACK_API_URL and retries only what is safe to retry: rate
limits (honouring `Retry-After`), server errors and connection errors are retried once,
except for `views.open` and `views.push`, whose trigger id is single-use, so that a retry can
only fail or open the modal twice, and except for `chat.postMessage` after a timeout or a
connection error: Slack may have posted it already, and a message must never go out twice
(a rate limit or a server error means it was not posted, so those are retried). None of
these calls undoes anything when it fails: a DM that does not go out is logged, a list that
cannot be replaced says so.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import ClientError, ClientSession, ClientTimeout
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
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.blocks import notices
from bot.blocks.common import Message
from bot.errors import ModalNotOpened
from bot.metrics import NO_ANSWER, Metrics
from bot.settings import Settings
from storage.fields import is_user_id

logger = logging.getLogger(__name__)
NEVER_RETRIED = ("views.open", "views.push")
# Calls that may have taken effect when the connection failed or timed out.
NOT_RETRIED_AFTER_CONNECTION_ERRORS = (*NEVER_RETRIED, "chat.postMessage")
CLIENT_TIMEOUT_SECONDS = 10
WEBHOOK_TIMEOUT_SECONDS = 10
# What a call to Slack can raise when Slack refuses, fails or does not answer.
SLACK_FAILURES = (SlackApiError, SlackClientError, ClientError, OSError, TimeoutError)


# -- the client ---------------------------------------------------------------------------


class _Guarded(AsyncRetryHandler):
    """Asks `inner` only for requests to methods other than `never`."""

    def __init__(self, inner: AsyncRetryHandler, *, never: tuple[str, ...] = NEVER_RETRIED) -> None:
        super().__init__(max_retry_count=inner.max_retry_count)
        self._inner = inner
        self._never = never

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        retriable = not request.url.rstrip("/").endswith(self._never)
        return retriable and await self._inner._can_retry_async(
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


class _MeasuredClient(AsyncWebClient):
    """The client, each failed call counted (bot/metrics.py): every Web API method goes
    through `api_call`, whoever calls it and whatever the caller does with the failure."""

    def __init__(self, *, metrics: Metrics, **options: Any) -> None:
        super().__init__(**options)
        self._failure_metrics = metrics

    async def api_call(self, api_method: str, **options: Any) -> AsyncSlackResponse:
        try:
            return await super().api_call(api_method, **options)
        except SlackApiError as error:
            self._failure_metrics.count_slack_api_error(api_method, error.response.get("error"))
            raise
        except SLACK_FAILURES:
            self._failure_metrics.count_slack_api_error(api_method, NO_ANSWER)
            raise


def create_web_client(settings: Settings, *, metrics: Metrics | None = None) -> AsyncWebClient:
    """The client on SLACK_API_URL with the retry policy above; with `metrics`, its failed
    calls are counted."""
    options: dict[str, Any] = dict(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=CLIENT_TIMEOUT_SECONDS,
        retry_handlers=[
            _Guarded(
                AsyncConnectionErrorRetryHandler(max_retry_count=1),
                never=NOT_RETRIED_AFTER_CONNECTION_ERRORS,
            ),
            _Guarded(AsyncRateLimitErrorRetryHandler(max_retry_count=1)),
            _Guarded(AsyncServerErrorRetryHandler(max_retry_count=1)),
        ],
    )
    if metrics is None:
        return AsyncWebClient(**options)
    return _MeasuredClient(metrics=metrics, **options)


@contextlib.asynccontextmanager
async def sharing_connections(client: AsyncWebClient) -> AsyncIterator[AsyncWebClient]:
    """`client`, its calls reusing kept-alive connections until the block ends. slack_sdk
    opens a connection (and a TLS handshake) per call otherwise, which for a scheduler pass
    of fifty posts costs the event loop more than writing them. A connection Slack closed
    meanwhile fails its call like any connection error: a post is then not retried."""
    # slack_sdk sets its timeout on the session it makes, not per call: this one needs it too.
    async with ClientSession(timeout=ClientTimeout(total=client.timeout)) as session:
        shared = copy.copy(client)
        shared.session = session
        yield shared


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


class Postable(Protocol):
    """A message as the builders make it (bot.blocks.common.Message, or one written as
    Slack's JSON directly): its fallback text and blocks."""

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Posted:
    """Where a message Slack accepted is: its channel (a DM's `D…` for a user id) and ts."""

    channel: str
    ts: str


async def post_message(
    client: AsyncWebClient, channel: str, message: Postable, *, thread_ts: str | None = None
) -> Posted | None:
    """Post `message` to a channel id (in the thread of `thread_ts`, if given), or as a DM to
    a user id directly (no `conversations.open` round trip); None, logged, when Slack did
    not take it. Never retried after a timeout (see the module docstring): a reminder is
    sent at most once."""
    try:
        # No previews: a token name or description may hold a URL, and Slack would fetch it
        # and show whatever the page says beside the message.
        answer = await client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            **message.as_dict(),
        )
    except SLACK_FAILURES as error:
        kind = "direct message" if is_user_id(channel) else "message"
        _log_failure(f"{kind} to {channel} not delivered", error)
        return None
    posted_channel, ts = answer.get("channel"), answer.get("ts")
    if not isinstance(posted_channel, str) or not isinstance(ts, str):
        logger.warning("message to %s: Slack gave no channel and ts", channel)
        return None
    return Posted(channel=posted_channel, ts=ts)


async def publish_home(
    client: AsyncWebClient, user_id: str, view: dict[str, Any], *, view_hash: str | None
) -> bool | None:
    """Publish `view` as `user_id`'s Home: True when published; False when `view_hash` no
    longer names the view shown (`hash_conflict`: another publish came first); None,
    logged, when Slack did not take it for another reason."""
    try:
        await client.views_publish(user_id=user_id, view=view, hash=view_hash)
    except SlackApiError as error:
        if error.response.get("error") == "hash_conflict":
            return False
        _log_failure(f"Home of {user_id} not published", error)
        return None
    except SLACK_FAILURES as error:
        _log_failure(f"Home of {user_id} not published", error)
        return None
    return True


async def permalink(client: AsyncWebClient, channel: str, message_ts: str) -> str | None:
    """A link to a message; None, logged, when Slack did not give one."""
    try:
        answer = await client.chat_getPermalink(channel=channel, message_ts=message_ts)
    except SLACK_FAILURES as error:
        _log_failure(f"no permalink for a message in {channel}", error)
        return None
    link = answer.get("permalink")
    return link if isinstance(link, str) and link.startswith("https://") else None


async def send_direct_messages(
    client: AsyncWebClient, recipients: Iterable[str], message: Postable
) -> None:
    """One DM to each distinct recipient, posted to the user id directly; a failure is
    logged and the others still go."""
    for user_id in dict.fromkeys(recipients):
        if is_user_id(user_id):
            await post_message(client, user_id, message)


async def update_message(client: AsyncWebClient, posted: Posted, message: Postable) -> bool:
    """Replace a message the app posted (a DM), in place; whether Slack took it."""
    try:
        await client.chat_update(channel=posted.channel, ts=posted.ts, **message.as_dict())
    except SLACK_FAILURES as error:
        _log_failure(f"message in {posted.channel} not updated", error)
        return False
    return True


def _log_failure(what: str, error: BaseException) -> None:
    reason = error.response.get("error") if isinstance(error, SlackApiError) else ""
    logger.warning("%s: %s %s", what, type(error).__name__, reason)


async def replace_message(
    response_url: str, message: Message, *, session: ClientSession | None = None
) -> bool:
    """Replace the message behind `response_url`; whether Slack took it. If Slack refuses
    the blocks, the user is still told, in plain text, to look again. `session`: kept-alive
    connections to post on (a client's, see `sharing_connections`); without, a connection of
    its own. A kept-alive connection Slack closed meanwhile is retried once: replacing a
    message twice shows it once."""
    hook = AsyncWebhookClient(url=response_url, timeout=WEBHOOK_TIMEOUT_SECONDS, session=session)
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
