"""`/tokens` and its sub-commands (PRODUCT.md §3)."""

from __future__ import annotations

import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.help import help_message
from bot.blocks.modals import token_form
from bot.errors import after_ack
from bot.ids import COMMAND
from bot.list_view import NAME_FILTER_MAX, ListView
from bot.listeners import administration
from bot.listeners.actions import open_modal
from bot.listing import list_message
from bot.memberships import GroupMemberships
from bot.modal_context import ModalContext
from bot.settings import Settings
from bot.text import ParsedCommand, parse_command, unescape
from storage.credentials import has_secret_part
from storage.models import Role, TokenFilter
from storage.store import Store

PASTED_SECRET = (
    ":warning: That looks like a Token Desk secret, so it was neither used nor shown back."
    f" `{COMMAND} search` with it finds the token it belongs to, to reset it."
)


def register(app: AsyncApp) -> None:
    app.command(COMMAND)(tokens_command)


async def tokens_command(
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    store: Store,
    settings: Settings,
    memberships: GroupMemberships,
    role: Role,
    actor: str,
) -> None:
    """Lists answer in the ack: they are quick to build (the store is local), and an ack is
    the one answer that can never expire. Forms open after the ack, with the trigger."""
    text = str(command.get("text", ""))
    parsed = parse_command(text)
    if parsed.verb not in ("search", "create") and has_secret_part(text):
        if not has_secret_part(parsed.verb):
            await ack(response_type="ephemeral", text=PASTED_SECRET)
            return
        # `/tokens <secret>`: the one thing to do with a secret here is to look it up.
        parsed = ParsedCommand(verb="search", rest=unescape(text.strip()))
    if parsed.verb in ("", "list"):
        message = await list_message(store, view=ListView())
        await ack(response_type="ephemeral", **message.as_dict())
    elif parsed.verb == "search":
        view = ListView(filters=TokenFilter(name=parsed.rest))
        message = await list_message(store, view=view)
        await ack(response_type="ephemeral", **message.as_dict())
    elif parsed.verb == "create":
        await ack()
        # A pasted secret is never echoed, not even into a form only its owner sees.
        name = "" if has_secret_part(parsed.rest) else parsed.rest[:NAME_FILTER_MAX]
        form = token_form(
            context=ModalContext.of(view=None, response_url=None, now=time.time()),
            api_versions=settings.tokendesk_api_versions,
            scopes=settings.tokendesk_scopes,
            contact=actor,
            name=name,
        )
        after_ack(open_modal(client, command.get("trigger_id"), form), respond=respond)
    elif parsed.verb == "help":
        text, blocks = help_message()
        await ack(response_type="ephemeral", text=text, blocks=blocks)
    elif parsed.verb == "roles":
        await administration.roles_command(
            parsed,
            ack=ack,
            respond=respond,
            client=client,
            store=store,
            memberships=memberships,
            role=role,
            actor=actor,
            team_id=str(command.get("team_id", "")),
        )
    elif parsed.verb == "access":
        await administration.access_command(parsed, ack=ack, store=store, actor=actor)
    elif parsed.verb == "audit":
        await administration.audit_command(parsed, ack=ack, store=store)
    else:
        text, blocks = help_message(unknown=parsed.verb)
        await ack(response_type="ephemeral", text=text, blocks=blocks)
