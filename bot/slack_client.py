"""The Web API client: pointed at SLACK_API_URL, retrying only what is safe to retry.

Rate limits (honouring `Retry-After`), server errors and connection errors are retried once,
except for `views.open` and `views.push`: their trigger id is single-use, so a retry can
only fail or open the modal twice.
"""

from __future__ import annotations

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings

NEVER_RETRIED = ("views.open", "views.push")
CLIENT_TIMEOUT_SECONDS = 10


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
