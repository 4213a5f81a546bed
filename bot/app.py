"""The Slack app, built by a factory: no module-level singleton."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot import listeners
from bot.errors import handle_error
from bot.gate import role_gate
from bot.memberships import GroupMemberships, NoGroupMemberships
from bot.settings import Settings
from bot.slack_client import create_web_client
from storage.store import Store


def create_app(
    settings: Settings,
    store: Store,
    *,
    client: AsyncWebClient | None = None,
    memberships: GroupMemberships | None = None,
) -> AsyncApp:
    """The Bolt app. `client` defaults to one on SLACK_API_URL; without `memberships`,
    nobody gets a role from a user group."""
    memberships = memberships or NoGroupMemberships()
    signing_secret = settings.slack_signing_secret
    app = AsyncApp(
        client=client or create_web_client(settings),
        signing_secret=signing_secret.get_secret_value() if signing_secret else "",
        logger=logging.getLogger("slack_bolt.App"),
        raise_error_for_unhandled_request=False,
    )

    async def inject(context: AsyncBoltContext, next: Callable[[], Awaitable[BoltResponse]]) -> Any:
        context["memberships"] = memberships
        context["settings"] = settings
        return await next()

    app.middleware(inject)
    app.middleware(role_gate(store, memberships))
    app.error(handle_error)
    listeners.register(app)
    return app
