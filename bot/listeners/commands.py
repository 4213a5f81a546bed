"""`/tokens` and its sub-commands (PRODUCT.md §3)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.help import help_message
from bot.ids import COMMAND
from bot.text import parse_command

# Sub-commands whose screens arrive with later issues; until then they say so.
COMING_SOON = frozenset({"", "list", "search", "create", "access", "roles", "audit"})


def register(app: AsyncApp) -> None:
    app.command(COMMAND)(tokens_command)


async def tokens_command(ack: AsyncAck, command: dict[str, Any]) -> None:
    parsed = parse_command(command.get("text", ""))
    if parsed.verb == "help":
        text, blocks = help_message()
        await ack(response_type="ephemeral", text=text, blocks=blocks)
    elif parsed.verb in COMING_SOON:
        await ack(response_type="ephemeral", text="The token list is coming soon.")
    else:
        text, blocks = help_message(unknown=parsed.verb)
        await ack(response_type="ephemeral", text=text, blocks=blocks)
