"""`/tokens` and its sub-commands (PRODUCT.md §3)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.help import help_message
from bot.ids import COMMAND
from bot.list_view import NAME_FILTER_MAX, ListView
from bot.listing import list_message
from bot.text import parse_command
from storage.models import TokenFilter
from storage.store import Store

# Sub-commands whose screens arrive with later issues; until then they say so.
COMING_SOON = frozenset({"create", "access", "roles", "audit"})


def register(app: AsyncApp) -> None:
    app.command(COMMAND)(tokens_command)


async def tokens_command(ack: AsyncAck, command: dict[str, Any], store: Store) -> None:
    """Everything here answers in the ack: each sub-command's first screen is quick to build
    (the store is local), and an ack is the one answer that can never expire."""
    parsed = parse_command(command.get("text", ""))
    if parsed.verb in ("", "list"):
        message = await list_message(store, view=ListView())
        await ack(response_type="ephemeral", **message.as_dict())
    elif parsed.verb == "search":
        view = ListView(filters=TokenFilter(name=parsed.rest[:NAME_FILTER_MAX]))
        message = await list_message(store, view=view)
        await ack(response_type="ephemeral", **message.as_dict())
    elif parsed.verb == "help":
        text, blocks = help_message()
        await ack(response_type="ephemeral", text=text, blocks=blocks)
    elif parsed.verb in COMING_SOON:
        await ack(response_type="ephemeral", text=f"`{COMMAND} {parsed.verb}` is coming soon.")
    else:
        text, blocks = help_message(unknown=parsed.verb)
        await ack(response_type="ephemeral", text=text, blocks=blocks)
