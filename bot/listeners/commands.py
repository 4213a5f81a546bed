"""`/tokens`: parse the text, keep pasted secrets out of every sub-command but `search`,
and hand the request to the handler the table below names for its verb.

Lists answer in the ack: they are quick to build (the store is local), and an ack is the one
answer that can never expire. Forms and Slack look-ups come after the ack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import notices
from bot.home import HomeTab
from bot.ids import COMMAND
from bot.inputs.command_text import ParsedCommand, parse_command, unescape
from bot.inputs.payloads import trigger_id_of
from bot.listeners import access, audit, help, roles, token_forms, token_list
from bot.listeners.subcommand import SubCommand
from bot.memberships import GroupMemberships
from bot.settings import Settings
from storage.credentials import has_secret_part
from storage.models import Role
from storage.store import Store

SUBCOMMANDS: dict[str, Callable[[SubCommand], Awaitable[None]]] = {
    "": token_list.list_command,
    "list": token_list.list_command,
    "search": token_list.search_command,
    "create": token_forms.create_command,
    "access": access.access_command,
    "roles": roles.roles_command,
    "audit": audit.audit_command,
    "help": help.help_command,
}
# The sub-commands whose text may hold a secret: `search` looks it up, `create` drops it.
TAKES_A_SECRET = ("search", "create")


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
    home: HomeTab,
    role: Role,
    actor: str,
) -> None:
    text = str(command.get("text", ""))
    parsed = parse_command(text)
    if parsed.verb not in TAKES_A_SECRET and has_secret_part(text):
        if not has_secret_part(parsed.verb):
            await ack(response_type="ephemeral", text=notices.PASTED_SECRET)
            return
        # `/tokens <secret>`: the one thing to do with a secret here is to look it up.
        parsed = ParsedCommand(verb="search", rest=unescape(text.strip()))
    handler = SUBCOMMANDS.get(parsed.verb, help.unknown_command)
    await handler(
        SubCommand(
            parsed=parsed,
            ack=ack,
            respond=respond,
            client=client,
            store=store,
            settings=settings,
            memberships=memberships,
            home=home,
            role=role,
            actor=actor,
            team_id=str(command.get("team_id", "")),
            trigger_id=trigger_id_of(command),
        )
    )
