"""Modal submissions: create, edit, and the confirmations of the card menu.

What the answer shows (field errors, the secret) is done before the ack, within Slack's 3
seconds: a new secret is committed, and valid, before it is shown. Notifications and the
list refresh come after the ack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.background import spawn
from bot.blocks import notifications
from bot.blocks.modals import message_view, secret_view
from bot.blocks.token_list import Notice
from bot.ids import COMMAND, CallbackId, FormField, MenuChoice
from bot.listing import list_message
from bot.modal_context import ModalContext
from bot.notify import replace_message, send_direct_messages
from bot.settings import Settings
from bot.text import escape
from storage.errors import AlreadyApplied, InvalidInput
from storage.models import IssuedToken, Token, TokenEdit
from storage.store import Store

logger = logging.getLogger(__name__)
CONTACT_CHECK_SECONDS = 1.5
GONE = "This form is no longer valid. Please start again from the list."


def register(app: AsyncApp) -> None:
    app.view(CallbackId.CREATE)(create_submitted)
    app.view(CallbackId.EDIT)(edit_submitted)
    app.view(CallbackId.CONFIRM)(confirm_submitted)


def _entry(view: Mapping[str, Any], field: FormField) -> Mapping[str, Any]:
    state = view.get("state")
    values = state.get("values") if isinstance(state, Mapping) else None
    block = values.get(field) if isinstance(values, Mapping) else None
    entry = block.get(field) if isinstance(block, Mapping) else None
    return entry if isinstance(entry, Mapping) else {}


def _text(view: Mapping[str, Any], field: FormField) -> str:
    value = _entry(view, field).get("value")
    return value[:10_000] if isinstance(value, str) else ""


def _rights(view: Mapping[str, Any]) -> list[str]:
    chosen = _entry(view, FormField.ACCESS_RIGHTS).get("selected_options")
    if not isinstance(chosen, list):
        return []
    return [str(option.get("value")) for option in chosen[:200] if isinstance(option, Mapping)]


def _contact(view: Mapping[str, Any]) -> str:
    user = _entry(view, FormField.PRIMARY_CONTACT).get("selected_user")
    return user if isinstance(user, str) else ""


def _submitted(view: Mapping[str, Any]) -> TokenEdit:
    """The form's fields as submitted (create and edit share the form)."""
    return TokenEdit(
        name=_text(view, FormField.NAME),
        description=_text(view, FormField.DESCRIPTION),
        access_rights=frozenset(_rights(view)),
        primary_contact=_contact(view),
    )


async def _form_errors(
    client: AsyncWebClient, store: Store, fields: TokenEdit, *, check_contact: bool
) -> dict[str, str]:
    """Every field error at once; the contact is looked up with Slack only when it is new."""
    errors = store.tokens.field_errors(
        name=fields.name,
        description=fields.description,
        access_rights=fields.access_rights,
        primary_contact=fields.primary_contact,
    )
    if check_contact and "primary_contact" not in errors:
        problem = await contact_error(client, fields.primary_contact or "")
        if problem:
            errors["primary_contact"] = problem
    return errors


async def contact_error(client: AsyncWebClient, user_id: str) -> str | None:
    """Why `user_id` cannot be a primary contact (a bot, a guest, gone), if it cannot."""
    try:
        answer = await asyncio.wait_for(client.users_info(user=user_id), CONTACT_CHECK_SECONDS)
    except SlackApiError:
        return "Choose a person from this workspace."
    except (SlackClientError, OSError, TimeoutError):
        return "Slack did not confirm this person in time. Please try again."
    user = answer.get("user") or {}
    if user.get("is_bot") or user.get("is_app_user") or user_id == "USLACKBOT":
        return "Choose a person, not a bot."
    if user.get("is_restricted") or user.get("is_ultra_restricted"):
        return "Guests cannot be primary contacts. Choose a full member."
    if user.get("deleted"):
        return "That person has left the workspace."
    return None


def _refresh(store: Store, settings: Settings, context: ModalContext, notice: Notice) -> str | None:
    """Refresh the list the modal came from, after the ack; the URL used, if any."""
    url = context.usable_response_url(api_url=settings.slack_api_url, now=time.time())
    if url is not None:

        async def refresh() -> None:
            await replace_message(
                url, await list_message(store, view=context.list_view, notice=notice)
            )

        spawn(refresh())
    return url


def _request_key(kind: str, view: Mapping[str, Any]) -> str:
    return f"{kind}:{view.get('id')}"


async def create_submitted(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    store: Store,
    settings: Settings,
    actor: str,
) -> None:
    context = ModalContext.parse(view.get("private_metadata")) or ModalContext()
    fields = _submitted(view)
    errors = await _form_errors(client, store, fields, check_contact=True)
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
            request_key=_request_key("create", view),
        )
    except InvalidInput as refused:
        await ack(response_action="errors", errors=refused.errors)
        return
    except AlreadyApplied:
        await ack(response_action="update", view=message_view("This token was already created."))
        return
    await _show_secret(ack, store, settings, context, issued, what="was created")


async def _show_secret(
    ack: AsyncAck,
    store: Store,
    settings: Settings,
    context: ModalContext,
    issued: IssuedToken,
    *,
    what: str,
) -> None:
    notice = Notice(f":key: *{escape(issued.token.name)}* {what}.")
    url = _refresh(store, settings, context, notice)
    await ack(
        response_action="update",
        view=secret_view(issued, what=what, refresh_failed=url is None),
    )


async def _done(
    ack: AsyncAck, store: Store, settings: Settings, context: ModalContext, notice: Notice
) -> None:
    """Close the modal and show `notice` in the list; if the list cannot be reached any more,
    show the notice in the modal instead."""
    if _refresh(store, settings, context, notice) is not None:
        await ack(response_action="clear")
    else:
        text = f"{notice.text}\n\nRun `{COMMAND}` again to see the list."
        await ack(response_action="update", view=message_view(text))


async def edit_submitted(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    store: Store,
    settings: Settings,
    actor: str,
) -> None:
    context = ModalContext.parse(view.get("private_metadata"))
    if context is None or context.token_id is None or context.row_version is None:
        await ack(response_action="update", view=message_view(GONE))
        return
    edit = _submitted(view)
    current = await store.tokens.get(token_id=context.token_id)
    contact_changed = edit.primary_contact != current.primary_contact
    errors = await _form_errors(client, store, edit, check_contact=contact_changed)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    try:
        change = await store.tokens.edit(
            actor=actor,
            token_id=context.token_id,
            row_version=context.row_version,
            edit=edit,
            request_key=_request_key("edit", view),
        )
    except InvalidInput as refused:
        await ack(response_action="errors", errors=refused.errors)
        return
    except AlreadyApplied:
        await ack(response_action="clear")
        return
    name = escape(change.after.name)
    text = f":pencil2: *{name}* saved." if change.changed else f"*{name}*: nothing changed."
    await _done(ack, store, settings, context, Notice(text))
    if change.before.primary_contact != change.after.primary_contact:
        spawn(_contact_changed(client, change.after, change.before.primary_contact, actor))


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
    actor: str,
) -> None:
    context = ModalContext.parse(view.get("private_metadata"))
    choices = {choice.value: choice for choice in MenuChoice}
    choice = choices.get(context.action) if context else None
    if context is None or choice is None or context.token_id is None or not context.row_version:
        await ack(response_action="update", view=message_view(GONE))
        return
    token_id, row_version = context.token_id, context.row_version
    key = _request_key("confirm", view)
    try:
        if choice is MenuChoice.DUPLICATE:
            copy = await store.tokens.duplicate(
                actor=actor, token_id=token_id, row_version=row_version, request_key=key
            )
            await _show_secret(ack, store, settings, context, copy, what="was created as a copy")
        elif choice is MenuChoice.RESET:
            reset = await store.tokens.reset(
                actor=actor, token_id=token_id, row_version=row_version, request_key=key
            )
            await _show_secret(ack, store, settings, context, reset, what="has a new secret")
            token = reset.token
            message = notifications.token_reset(token, actor=actor, at=token.updated_at)
            spawn(send_direct_messages(client, [token.primary_contact, actor], message))
        elif choice is MenuChoice.UPGRADE:
            upgraded = await store.tokens.upgrade(
                actor=actor, token_id=token_id, row_version=row_version, request_key=key
            )
            text = f":arrow_up: *{escape(upgraded.name)}* now uses `{upgraded.api_version}`."
            await _done(ack, store, settings, context, Notice(text))
        elif choice is MenuChoice.DELETE:
            deleted = await store.tokens.delete(
                actor=actor, token_id=token_id, row_version=row_version, request_key=key
            )
            text = f":wastebasket: *{escape(deleted.name)}* deleted."
            await _done(ack, store, settings, context, Notice(text))
            message = notifications.token_deleted(deleted, actor=actor, at=datetime.now(UTC))
            spawn(send_direct_messages(client, [deleted.primary_contact], message))
        else:
            await ack(response_action="update", view=message_view(GONE))
    except AlreadyApplied:
        await ack(response_action="update", view=message_view("That was already done."))
