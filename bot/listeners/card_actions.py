"""Clicks on a token card: Edit, the card menu (Duplicate, Reset, Upgrade Version, Disable
or Enable, Delete), End grace now and the notice's Reset now; a reminder DM's Extend… and
Reset…, and a leak report's Reset now and Disable now, which work as Edit, Reset now and
Disable but answer in that DM.

Each listener acknowledges at once, then works after the ack: Edit and the confirmations
open a modal with the click's trigger, carrying the row version the card showed; Disable and
Enable apply at once and update the same list in place through the click's `response_url`;
End grace now too, but only to the token as the card showed it (its row version).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import after_ack
from bot.blocks import notices, notifications
from bot.blocks.modals import ISSUING_A_SECRET, GraceOffer, confirm_view, token_form
from bot.home import HomeTab
from bot.ids import ActionId, MenuChoice
from bot.inputs.modal_context import ModalContext
from bot.inputs.payloads import menu_choice, token_ref, trigger_id_of
from bot.listeners.token_forms import edit_expiry, new_secret_expiry
from bot.settings import Settings
from bot.slack_client import open_modal, send_direct_messages
from bot.surfaces import Surface
from storage.errors import StaleVersion, TokenLeaked
from storage.store import Store


def register(app: AsyncApp) -> None:
    app.action(ActionId.TOKEN_EDIT)(edit_clicked)
    app.action(ActionId.TOKEN_MENU)(menu_chosen)
    app.action(ActionId.RESET_NOW)(reset_now_clicked)
    app.action(ActionId.END_GRACE)(end_grace_clicked)
    # A reminder DM's buttons: as the card's Edit and the notice's Reset now, answered in
    # that DM instead of a list (the modal's context carries where it is).
    app.action(ActionId.REMINDER_EXTEND)(edit_clicked)
    app.action(ActionId.REMINDER_RESET)(reset_now_clicked)
    # A leak report's: its Reset now offers no grace window (the token is marked leaked).
    app.action(ActionId.LEAK_RESET)(reset_now_clicked)
    app.action(ActionId.LEAK_DISABLE)(disable_now_clicked)


async def edit_clicked(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    settings: Settings,
    home: HomeTab,
) -> None:
    await ack()
    ref = token_ref(action.get("value"))
    if ref is None:
        return

    async def open_form() -> None:
        token = await store.token_reads.get(token_id=ref[0])
        form = token_form(
            context=ModalContext.from_click(
                body, now=time.time(), token_id=token.id, row_version=token.row_version
            ),
            newest_version=store.token_reads.newest_version,
            scopes=settings.tokendesk_scopes,
            contact=token.primary_contact,
            expiry=edit_expiry(store, settings, token),
            token=token,
        )
        await open_modal(client, trigger_id_of(body), form)

    after_ack(open_form(), respond=respond)


async def menu_chosen(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    settings: Settings,
    home: HomeTab,
    actor: str,
) -> None:
    await ack()
    parsed = menu_choice(action)
    if parsed is None:
        return
    choice, token_id, row_version = parsed
    surface = Surface(body, client=client, store=store, home=home)
    if choice in (MenuChoice.DISABLE, MenuChoice.ENABLE):
        enabled = choice is MenuChoice.ENABLE
        work = set_enabled(surface, actor=actor, token_id=token_id, enabled=enabled)
    else:
        work = confirm(surface, settings, choice, token_id, row_version)
    after_ack(work, respond=respond)


async def reset_now_clicked(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    settings: Settings,
    home: HomeTab,
) -> None:
    await ack()
    ref = token_ref(action.get("value"))
    if ref is not None:
        surface = Surface(body, client=client, store=store, home=home)
        work = confirm(surface, settings, MenuChoice.RESET, *ref)
        after_ack(work, respond=respond)


async def disable_now_clicked(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    home: HomeTab,
    actor: str,
) -> None:
    await ack()
    ref = token_ref(action.get("value"))
    if ref is not None:
        surface = Surface(body, client=client, store=store, home=home)
        work = set_enabled(surface, actor=actor, token_id=ref[0], enabled=False, after_leak=True)
        after_ack(work, respond=respond)


async def end_grace_clicked(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    home: HomeTab,
    actor: str,
) -> None:
    await ack()
    ref = token_ref(action.get("value"))
    if ref is not None:
        surface = Surface(body, client=client, store=store, home=home)
        after_ack(end_grace(surface, actor, *ref), respond=respond)


async def end_grace(surface: Surface, actor: str, token_id: int, row_version: int) -> None:
    """Stop the previous secret now, at once and without asking: the card showed its window
    open. A click on a card that moved on since is told so, with nothing applied; one on a
    window that has ended anyway changes nothing."""
    store = surface.store
    try:
        change = await store.tokens.end_grace(
            actor=actor, token_id=token_id, row_version=row_version
        )
    except StaleVersion:
        notice = notices.stale_card(await store.token_reads.get(token_id=token_id))
    else:
        notice = notices.grace_ended(change.after, changed=change.changed)
    await surface.show(notice)


async def set_enabled(
    surface: Surface, *, actor: str, token_id: int, enabled: bool, after_leak: bool = False
) -> None:
    """Disable and Enable apply at once to the token as it is, whatever the card (or DM)
    showed; a leaked token is enabled only after a Reset. `after_leak`: Disable now from a
    leak report, whose notice says what is left to do."""
    store = surface.store
    try:
        change = await store.tokens.set_enabled(actor=actor, token_id=token_id, enabled=enabled)
    except TokenLeaked:
        leaked = await store.token_reads.get(token_id=token_id)
        await surface.show(notices.enable_refused_leaked(leaked))
        return
    token = change.after
    if after_leak:
        notice = notices.disabled_after_leak(token, changed=change.changed)
    else:
        notice = notices.enabled_changed(token, enabled=enabled, changed=change.changed)
    await surface.show(notice)
    if change.changed and not enabled:
        message = notifications.token_disabled(token, actor=actor, at=token.updated_at)
        await send_direct_messages(surface.client, [token.primary_contact], message)


async def confirm(
    surface: Surface,
    settings: Settings,
    choice: MenuChoice,
    token_id: int,
    row_version: int,
) -> None:
    """Open the confirmation for `choice`, carrying the row version the card showed; if
    the token moved on since, or there is nothing to confirm, say so where the click came
    from instead."""
    store = surface.store
    token = await store.token_reads.get(token_id=token_id)
    newest = store.token_reads.newest_version
    if token.row_version != row_version:
        notice = notices.stale_card(token)
    elif choice is MenuChoice.UPGRADE and token.api_version == newest:
        notice = notices.already_newest(token)
    else:
        context = ModalContext.from_click(
            surface.body, now=time.time(), token_id=token_id, row_version=row_version, action=choice
        )
        expiry = new_secret_expiry(store, settings) if choice in ISSUING_A_SECRET else None
        now = datetime.fromtimestamp(store.clock(), UTC)
        grace = GraceOffer.for_reset(token, now=now) if choice is MenuChoice.RESET else None
        view = confirm_view(
            choice,
            token=token,
            newest_version=newest,
            context=context,
            expiry=expiry,
            grace=grace,
        )
        await open_modal(surface.client, trigger_id_of(surface.body), view)
        return
    await surface.show(notice)
