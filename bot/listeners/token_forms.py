"""The create/edit form and the confirmations: opening the create form (`/tokens create`,
the Create button) and every modal submission (create, edit, and the card menu's
confirmations).

What the answer shows (field errors, the secret) is done before the ack, within Slack's 3
seconds: a new secret is committed, and valid, before it is shown. Notifications and the
refresh of the list the modal came from come after the ack, log only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import after_ack
from bot.blocks import notices, notifications
from bot.blocks.modals import (
    ISSUING_A_SECRET,
    ExpiryOffer,
    message_view,
    secret_view,
    token_form,
)
from bot.blocks.notices import Issued
from bot.blocks.token_list import Notice
from bot.home import HomeTab
from bot.ids import ActionId, BlockId, CallbackId, MenuChoice
from bot.inputs.command_text import prefilled_name
from bot.inputs.modal_context import ModalContext
from bot.inputs.payloads import (
    ChosenExpiry,
    chosen_expiry,
    chosen_grace,
    form_fields,
    request_key,
    trigger_id_of,
)
from bot.listeners.subcommand import SubCommand
from bot.settings import Settings
from bot.slack_client import open_modal, send_direct_messages
from bot.surfaces import ModalOrigin
from bot.user_status import look_up_status, wall_time
from storage.errors import AlreadyApplied, InvalidInput
from storage.models import KEEP, IssuedToken, KeepExpiry, SlackStatus, Token, TokenEdit
from storage.store import Store

CONTACT_CHECK_SECONDS = 1.5


def register(app: AsyncApp) -> None:
    app.action(ActionId.CREATE)(create_clicked)
    app.view(CallbackId.CREATE)(create_submitted)
    app.view(CallbackId.EDIT)(edit_submitted)
    app.view(CallbackId.CONFIRM)(confirm_submitted)


# -- the expiry choice --------------------------------------------------------------------


def utc_today(store: Store) -> date:
    """Today's UTC date by the store's clock, from which expiry dates are counted."""
    return datetime.fromtimestamp(store.clock(), UTC).date()


def new_secret_expiry(store: Store, settings: Settings) -> ExpiryOffer:
    """The expiry choice of Create, Duplicate and Reset, whose secret is issued today."""
    return ExpiryOffer.for_new_secret(
        today=utc_today(store),
        max_lifetime_days=store.max_lifetime_days,
        default_days=settings.tokendesk_default_lifetime_days,
    )


def edit_expiry(store: Store, settings: Settings, token: Token) -> ExpiryOffer:
    return ExpiryOffer.for_edit(
        token,
        today=utc_today(store),
        max_lifetime_days=store.max_lifetime_days,
        default_days=settings.tokendesk_default_lifetime_days,
    )


def _expiry_block(chosen: ChosenExpiry) -> BlockId:
    """Where an expiry's field error shows: under the date picker for On a date…"""
    return BlockId.EXPIRY_DATE if chosen.on_a_date else BlockId.EXPIRY


def _unusable_expiry(chosen: ChosenExpiry) -> dict[str, str]:
    """The field error of a choice that names no expiry: nothing chosen, or On a date…
    without a date."""
    if chosen.on_a_date:
        return {BlockId.EXPIRY_DATE: notices.EXPIRY_DATE_MISSING}
    return {BlockId.EXPIRY: notices.EXPIRY_NOT_CHOSEN}


def _form_errors_of(refused: dict[str, str], chosen: ChosenExpiry) -> dict[str, str]:
    """The store's field errors keyed by the form's blocks: the store's `expires_on` goes
    under the block the expiry came from."""
    errors = dict(refused)
    message = errors.pop("expires_on", None)
    if message is not None:
        errors[_expiry_block(chosen)] = message
    return errors


# -- opening the create form --------------------------------------------------------------


async def create_command(command: SubCommand) -> None:
    await command.ack()
    form = token_form(
        context=ModalContext.of(view=None, response_url=None, now=time.time()),
        newest_version=command.store.token_reads.newest_version,
        scopes=command.settings.tokendesk_scopes,
        contact=command.actor,
        expiry=new_secret_expiry(command.store, command.settings),
        name=prefilled_name(command.parsed),
    )
    opening = open_modal(command.client, command.trigger_id, form)
    after_ack(opening, respond=command.respond)


async def create_clicked(
    ack: AsyncAck,
    body: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    settings: Settings,
    home: HomeTab,
    actor: str,
) -> None:
    await ack()
    form = token_form(
        context=ModalContext.from_click(body, now=time.time()),
        newest_version=store.token_reads.newest_version,
        scopes=settings.tokendesk_scopes,
        contact=actor,
        expiry=new_secret_expiry(store, settings),
    )
    after_ack(open_modal(client, trigger_id_of(body), form), respond=respond)


# -- checking and answering a submission --------------------------------------------------


def _asked_expiry(chosen: ChosenExpiry, *, current: Token | None) -> date | None | KeepExpiry:
    """The expiry a form asks for. An edit (of `current`) that leaves Works until unchosen
    (a token without expiry while a maximum is set) or unchanged keeps it as it is."""
    if current is not None:
        unchosen = not chosen.chosen and not chosen.on_a_date
        if unchosen or (chosen.chosen and chosen.expires_on == current.expires_on):
            return KEEP
    return chosen.expires_on


async def _form_errors(
    client: AsyncWebClient,
    store: Store,
    fields: TokenEdit,
    chosen: ChosenExpiry,
    *,
    check_contact: bool,
    current: Token | None = None,
) -> dict[str, str]:
    """Every field error at once, keyed by the form's blocks; the contact is looked up with
    Slack only when it is new. The expiry's maximum counts from the issue day of the
    `current` token's secret, or from today for a new one."""
    expires_on = _asked_expiry(chosen, current=current)
    errors = _form_errors_of(
        store.tokens.field_errors(
            name=fields.name,
            description=fields.description,
            access_rights=fields.access_rights,
            primary_contact=fields.primary_contact,
            expires_on=expires_on,
            secret_issued_on=current.secret_issued_at.date() if current else None,
        ),
        chosen,
    )
    if not chosen.chosen and expires_on is not KEEP:
        errors |= _unusable_expiry(chosen)
    if check_contact and "primary_contact" not in errors:
        problem = await _contact_error(client, fields.primary_contact or "")
        if problem:
            errors["primary_contact"] = problem
    return errors


async def _contact_error(client: AsyncWebClient, user_id: str) -> str | None:
    """Why `user_id` cannot be a primary contact (a bot, a guest, gone), if it cannot."""
    asked_at = wall_time(time.time())
    try:
        learned = await asyncio.wait_for(
            look_up_status(client, user_id, team_id=None, asked_at=asked_at),
            CONTACT_CHECK_SECONDS,
        )
    except SlackApiError:
        return notices.CONTACT_PROBLEMS[SlackStatus.UNKNOWN_TO_SLACK]
    except (SlackClientError, OSError, TimeoutError):
        return notices.CONTACT_NOT_CONFIRMED
    return notices.CONTACT_PROBLEMS.get(learned.status)


async def _show_secret(
    ack: AsyncAck, origin: ModalOrigin, issued: IssuedToken, why: Issued
) -> None:
    notice = notices.secret_issued(issued.token.name, why)
    dm = origin.context.dm
    if dm is not None and dm.kind == "leak":
        notice = notices.reset_after_leak(issued.token)
    refreshed = origin.show(notice, now=time.time())
    await ack(
        response_action="update",
        view=secret_view(issued, why=why, refresh_failed=not refreshed),
    )


async def _done(ack: AsyncAck, origin: ModalOrigin, notice: Notice) -> None:
    """Close the modal and show `notice` where it was opened from; if that cannot be
    reached any more, show the notice in the modal instead."""
    if origin.show(notice, now=time.time()):
        await ack(response_action="clear")
    else:
        await _say(ack, notices.list_unreachable(notice))


async def _say(ack: AsyncAck, text: str) -> None:
    """Replace the modal with a message and a close button."""
    await ack(response_action="update", view=message_view(text))


# -- the submissions ----------------------------------------------------------------------


async def create_submitted(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    store: Store,
    settings: Settings,
    home: HomeTab,
    actor: str,
) -> None:
    context = ModalContext.parse(view.get("private_metadata")) or ModalContext()
    origin = ModalOrigin(context, actor, client, store, home, settings.slack_api_url)
    fields = form_fields(view)
    chosen = chosen_expiry(view)
    errors = await _form_errors(client, store, fields, chosen, check_contact=True)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    try:
        issued = await store.tokens.create(
            actor=actor,
            name=fields.name or "",
            description=fields.description or "",
            access_rights=fields.access_rights or (),
            primary_contact=fields.primary_contact or "",
            expires_on=chosen.expires_on,
            request_key=request_key("create", view),
        )
    except InvalidInput as refused:
        await ack(response_action="errors", errors=_form_errors_of(refused.errors, chosen))
        return
    except AlreadyApplied:
        await _say(ack, notices.ALREADY_CREATED)
        return
    await _show_secret(ack, origin, issued, Issued.CREATED)


async def edit_submitted(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    store: Store,
    settings: Settings,
    home: HomeTab,
    actor: str,
) -> None:
    context = ModalContext.parse(view.get("private_metadata"))
    if context is None or context.token_id is None or context.row_version is None:
        await _say(ack, notices.FORM_GONE)
        return
    current = await store.token_reads.get(token_id=context.token_id)
    chosen = chosen_expiry(view)
    edit = replace(form_fields(view), expires_on=_asked_expiry(chosen, current=current))
    contact_changed = edit.primary_contact != current.primary_contact
    errors = await _form_errors(
        client, store, edit, chosen, check_contact=contact_changed, current=current
    )
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    try:
        change = await store.tokens.edit(
            actor=actor,
            token_id=context.token_id,
            row_version=context.row_version,
            edit=edit,
            request_key=request_key("edit", view),
        )
    except InvalidInput as refused:
        await ack(response_action="errors", errors=_form_errors_of(refused.errors, chosen))
        return
    except AlreadyApplied:
        await ack(response_action="clear")
        return
    notice = notices.saved(change.after.name, changed=change.changed)
    origin = ModalOrigin(context, actor, client, store, home, settings.slack_api_url)
    await _done(ack, origin, notice)
    old_contact = change.before.primary_contact
    if old_contact != change.after.primary_contact:
        after_ack(_contact_changed(client, change.after, old_contact, actor), respond=None)


async def _contact_changed(client: AsyncWebClient, token: Token, old: str, actor: str) -> None:
    at = token.updated_at
    new_message = notifications.contact_changed(token, actor=actor, at=at, now_contact=True)
    old_message = notifications.contact_changed(token, actor=actor, at=at, now_contact=False)
    await send_direct_messages(client, [token.primary_contact], new_message)
    await send_direct_messages(client, [old], old_message)


async def confirm_submitted(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    store: Store,
    settings: Settings,
    home: HomeTab,
    actor: str,
) -> None:
    context = ModalContext.parse(view.get("private_metadata"))
    choice = context.menu_choice if context else None
    if context is None or choice is None or context.token_id is None or not context.row_version:
        await _say(ack, notices.FORM_GONE)
        return
    token_id, row_version = context.token_id, context.row_version
    origin = ModalOrigin(context, actor, client, store, home, settings.slack_api_url)
    key = request_key("confirm", view)
    chosen = chosen_expiry(view)
    if choice in ISSUING_A_SECRET and not chosen.chosen:
        await ack(response_action="errors", errors=_unusable_expiry(chosen))
        return
    try:
        if choice is MenuChoice.DUPLICATE:
            copy = await store.tokens.duplicate(
                actor=actor,
                token_id=token_id,
                row_version=row_version,
                expires_on=chosen.expires_on,
                request_key=key,
            )
            await _show_secret(ack, origin, copy, Issued.COPIED)
        elif choice is MenuChoice.RESET:
            reset = await store.tokens.reset(
                actor=actor,
                token_id=token_id,
                row_version=row_version,
                expires_on=chosen.expires_on,
                grace=chosen_grace(view),
                request_key=key,
            )
            await _show_secret(ack, origin, reset, Issued.RESET)
            token = reset.token
            message = notifications.token_reset(token, actor=actor, at=token.updated_at)
            recipients = [token.primary_contact, actor]
            after_ack(send_direct_messages(client, recipients, message), respond=None)
        elif choice is MenuChoice.UPGRADE:
            upgraded = await store.tokens.upgrade(
                actor=actor, token_id=token_id, row_version=row_version, request_key=key
            )
            await _done(ack, origin, notices.upgraded(upgraded))
        elif choice is MenuChoice.DELETE:
            deleted = await store.tokens.delete(
                actor=actor, token_id=token_id, row_version=row_version, request_key=key
            )
            await _done(ack, origin, notices.deleted(deleted.name))
            message = notifications.token_deleted(deleted, actor=actor, at=datetime.now(UTC))
            after_ack(
                send_direct_messages(client, [deleted.primary_contact], message), respond=None
            )
        else:
            await _say(ack, notices.FORM_GONE)
    except InvalidInput as refused:
        await ack(response_action="errors", errors=_form_errors_of(refused.errors, chosen))
    except AlreadyApplied:
        await _say(ack, notices.ALREADY_DONE)
