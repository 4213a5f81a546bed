"""Clicks on the token list: filters, Clear All, paging, the API-access banner.

Each listener acknowledges at once and then updates the same list in place through the
click's own `response_url` (an ephemeral message has no other handle).
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.errors import after_ack
from bot.ids import ActionId
from bot.list_view import ListView, view_from_state
from bot.listing import list_message
from storage.store import Store

_OFFSET_MAX = 10_000_000


def register(app: AsyncApp) -> None:
    for filter_action in (ActionId.FILTER_NAME, ActionId.FILTER_CREATED, ActionId.FILTER_STATE):
        app.action(filter_action)(filters_changed)
    app.action(ActionId.CLEAR_FILTERS)(filters_cleared)
    app.action(ActionId.PREVIOUS_PAGE)(page_turned)
    app.action(ActionId.NEXT_PAGE)(page_turned)
    app.action(ActionId.ENABLE_API_ACCESS)(api_access_enabled)
    for pending in (ActionId.CREATE, ActionId.TOKEN_MENU, ActionId.TOKEN_EDIT):
        app.action(pending)(not_yet_available)


def _state_values(body: dict[str, Any]) -> Any:
    state = body.get("state")
    return state.get("values") if isinstance(state, dict) else None


async def refresh_list(
    store: Store, respond: AsyncRespond, *, view: ListView, notice: str | None = None
) -> None:
    message = await list_message(store, view=view, notice=notice)
    await respond(replace_original=True, response_type="ephemeral", **message.as_dict())


async def filters_changed(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, store: Store
) -> None:
    await ack()
    view = view_from_state(_state_values(body)).at(0)
    after_ack(refresh_list(store, respond, view=view), respond=respond)


async def filters_cleared(ack: AsyncAck, respond: AsyncRespond, store: Store) -> None:
    await ack()
    after_ack(refresh_list(store, respond, view=ListView()), respond=respond)


async def page_turned(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    store: Store,
) -> None:
    await ack()
    value = action.get("value")
    offset = int(value) if isinstance(value, str) and value.isdigit() else 0
    view = view_from_state(_state_values(body)).at(min(offset, _OFFSET_MAX))
    after_ack(refresh_list(store, respond, view=view), respond=respond)


async def api_access_enabled(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, store: Store, actor: str
) -> None:
    await ack()

    async def enable() -> None:
        await store.tokens.set_api_access(actor=actor, enabled=True)
        await refresh_list(
            store,
            respond,
            view=view_from_state(_state_values(body)),
            notice=":white_check_mark: *API access is on.* Enabled tokens now pass the auth check.",
        )

    after_ack(enable(), respond=respond)


async def not_yet_available(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, store: Store
) -> None:
    await ack()
    notice = ":construction: Creating, editing and the card actions arrive in the next release."
    view = view_from_state(_state_values(body))
    after_ack(refresh_list(store, respond, view=view, notice=notice), respond=respond)
