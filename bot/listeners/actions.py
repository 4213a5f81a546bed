"""Clicks on the token list: filters, paging, the banner, Create, Edit and the card menu.

Each listener acknowledges at once, then works through `after_ack`: it updates the same
list in place through the click's own `response_url` (an ephemeral message has no other
handle), or opens a modal with the click's trigger.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import ClientError
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import notifications
from bot.blocks.common import mention, slack_date
from bot.blocks.modals import confirm_view, token_form
from bot.blocks.token_list import Notice
from bot.errors import ModalNotOpened, after_ack
from bot.ids import ActionId, MenuChoice
from bot.list_view import ListView, menu_choice, small_number, token_ref, view_from_state
from bot.listing import list_message
from bot.modal_context import ModalContext
from bot.notify import replace_message, send_direct_messages
from bot.settings import Settings
from bot.text import escape
from storage.store import Store


def register(app: AsyncApp) -> None:
    for filter_action in (ActionId.FILTER_NAME, ActionId.FILTER_CREATED, ActionId.FILTER_STATE):
        app.action(filter_action)(filters_changed)
    app.action(ActionId.CLEAR_FILTERS)(filters_cleared)
    app.action(ActionId.PREVIOUS_PAGE)(page_turned)
    app.action(ActionId.NEXT_PAGE)(page_turned)
    app.action(ActionId.ENABLE_API_ACCESS)(api_access_enabled)
    app.action(ActionId.CREATE)(create_clicked)
    app.action(ActionId.TOKEN_EDIT)(edit_clicked)
    app.action(ActionId.TOKEN_MENU)(menu_chosen)
    app.action(ActionId.RESET_NOW)(reset_now_clicked)


def _view(body: dict[str, Any]) -> ListView:
    state = body.get("state")
    return view_from_state(state.get("values") if isinstance(state, dict) else None)


async def refresh_list(
    store: Store, body: dict[str, Any], *, view: ListView, notice: Notice | None = None
) -> None:
    """Replace the list the click came from, through the click's own response_url."""
    response_url = body.get("response_url")
    if isinstance(response_url, str):
        await replace_message(response_url, await list_message(store, view=view, notice=notice))


async def open_modal(client: AsyncWebClient, trigger_id: object, view: View) -> None:
    try:
        await client.views_open(trigger_id=str(trigger_id), view=view)
    except (SlackApiError, SlackClientError, ClientError, OSError, TimeoutError):
        raise ModalNotOpened() from None


def _context(body: dict[str, Any], **fields: Any) -> ModalContext:
    response_url = body.get("response_url")
    return ModalContext.of(
        view=_view(body),
        response_url=response_url if isinstance(response_url, str) else None,
        now=time.time(),
        **fields,
    )


async def filters_changed(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, store: Store
) -> None:
    await ack()
    after_ack(refresh_list(store, body, view=_view(body).at(0)), respond=respond)


async def filters_cleared(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, store: Store
) -> None:
    await ack()
    after_ack(refresh_list(store, body, view=ListView()), respond=respond)


async def page_turned(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    store: Store,
) -> None:
    await ack()
    view = _view(body).at(small_number(action.get("value")) or 0)
    after_ack(refresh_list(store, body, view=view), respond=respond)


async def api_access_enabled(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, store: Store, actor: str
) -> None:
    await ack()

    async def enable() -> None:
        await store.tokens.set_api_access(actor=actor, enabled=True)
        notice = Notice(
            ":white_check_mark: *API access is on.* Enabled tokens now pass the auth check."
        )
        await refresh_list(store, body, view=_view(body), notice=notice)

    after_ack(enable(), respond=respond)


async def create_clicked(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    settings: Settings,
    actor: str,
) -> None:
    await ack()
    form = token_form(
        context=_context(body),
        api_versions=settings.tokendesk_api_versions,
        scopes=settings.tokendesk_scopes,
        contact=actor,
    )
    after_ack(open_modal(client, body.get("trigger_id"), form), respond=respond)


async def edit_clicked(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    settings: Settings,
) -> None:
    await ack()
    ref = token_ref(action.get("value"))
    if ref is None:
        return

    async def open_form() -> None:
        token = await store.tokens.get(token_id=ref[0])
        form = token_form(
            context=_context(body, token_id=token.id, row_version=token.row_version),
            api_versions=settings.tokendesk_api_versions,
            scopes=settings.tokendesk_scopes,
            contact=token.primary_contact,
            token=token,
        )
        await open_modal(client, body.get("trigger_id"), form)

    after_ack(open_form(), respond=respond)


async def menu_chosen(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    actor: str,
) -> None:
    await ack()
    option = action.get("selected_option")
    parsed = menu_choice(option.get("value") if isinstance(option, dict) else None)
    if parsed is None:
        return
    choice, token_id, row_version = parsed
    if choice in (MenuChoice.DISABLE, MenuChoice.ENABLE):
        work = set_enabled(
            body,
            client,
            respond,
            store,
            actor=actor,
            token_id=token_id,
            enabled=choice is MenuChoice.ENABLE,
        )
    else:
        work = confirm(body, client, respond, store, choice, token_id, row_version)
    after_ack(work, respond=respond)


async def reset_now_clicked(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
) -> None:
    await ack()
    ref = token_ref(action.get("value"))
    if ref is not None:
        after_ack(confirm(body, client, respond, store, MenuChoice.RESET, *ref), respond=respond)


async def set_enabled(
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    *,
    actor: str,
    token_id: int,
    enabled: bool,
) -> None:
    """Disable and Enable apply at once to the token as it is, whatever the card showed."""
    change = await store.tokens.set_enabled(actor=actor, token_id=token_id, enabled=enabled)
    token, name = change.after, escape(change.after.name)
    if not change.changed:
        notice = Notice(f"*{name}* was already {'enabled' if enabled else 'disabled'}.")
    elif enabled:
        notice = Notice(
            f":white_check_mark: *{name}* enabled. Tip: when you enable a token, reset it too,"
            " so that a value that leaked while it was off is useless.",
            offer_reset=token,
        )
    else:
        notice = Notice(f":no_entry: *{name}* disabled. Calls using it now fail.")
    await refresh_list(store, body, view=_view(body), notice=notice)
    if change.changed and not enabled:
        message = notifications.token_disabled(token, actor=actor, at=token.updated_at)
        await send_direct_messages(client, [token.primary_contact], message)


async def confirm(
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    choice: MenuChoice,
    token_id: int,
    row_version: int,
) -> None:
    """Open the confirmation for `choice`, carrying the row version the card showed; if
    the token moved on since, or there is nothing to confirm, say so in the list instead."""
    token = await store.tokens.get(token_id=token_id)
    name = escape(token.name)
    newest = store.tokens.newest_version
    if token.row_version != row_version:
        notice = Notice(
            f"*{name}* was changed by {mention(token.updated_by)} {slack_date(token.updated_at)}"
            " since this list was shown. Here it is as it is now; nothing was applied."
        )
    elif choice is MenuChoice.UPGRADE and token.api_version == newest:
        notice = Notice(f"*{name}* already uses `{escape(newest)}`, the newest API version.")
    else:
        context = _context(body, token_id=token_id, row_version=row_version, action=choice)
        view = confirm_view(choice, token=token, newest_version=newest, context=context)
        await open_modal(client, body.get("trigger_id"), view)
        return
    await refresh_list(store, body, view=_view(body), notice=notice)
