"""The token list: `/tokens`, `list` and `search`, and its filters, paging and Clear All.

Commands answer in the ack. A click updates the same list in place through its own
`response_url` (an ephemeral message has no other handle), after the ack.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import after_ack
from bot.ids import ActionId
from bot.inputs.payloads import list_view_of, page_offset, response_url_of
from bot.list_message import list_message, refresh_list
from bot.list_view import ListView
from bot.listeners.subcommand import SubCommand
from storage.models import TokenFilter
from storage.store import Store


def register(app: AsyncApp) -> None:
    for filter_action in (
        ActionId.FILTER_NAME,
        ActionId.FILTER_CREATED,
        ActionId.FILTER_STATE,
        ActionId.FILTER_LAST_USED,
    ):
        app.action(filter_action)(filters_changed)
    app.action(ActionId.CLEAR_FILTERS)(filters_cleared)
    app.action(ActionId.PREVIOUS_PAGE)(page_turned)
    app.action(ActionId.NEXT_PAGE)(page_turned)


async def list_command(command: SubCommand) -> None:
    message = await list_message(command.store, view=ListView())
    await command.reply(**message.as_dict())


async def search_command(command: SubCommand) -> None:
    view = ListView(filters=TokenFilter(name=command.parsed.rest))
    message = await list_message(command.store, view=view)
    await command.reply(**message.as_dict())


async def filters_changed(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
) -> None:
    await ack()
    view = list_view_of(body).at(0)
    refresh = refresh_list(store, response_url_of(body), view=view, session=client.session)
    after_ack(refresh, respond=respond)


async def filters_cleared(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
) -> None:
    await ack()
    refresh = refresh_list(store, response_url_of(body), view=ListView(), session=client.session)
    after_ack(refresh, respond=respond)


async def page_turned(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
) -> None:
    await ack()
    view = list_view_of(body).at(page_offset(action))
    refresh = refresh_list(store, response_url_of(body), view=view, session=client.session)
    after_ack(refresh, respond=respond)
