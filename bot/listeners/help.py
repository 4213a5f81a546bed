"""`/tokens help`, and any word Token Desk does not know: the usage listing."""

from __future__ import annotations

from bot.blocks.help import help_message
from bot.listeners.subcommand import SubCommand


async def help_command(command: SubCommand) -> None:
    text, blocks = help_message()
    await command.reply(text=text, blocks=blocks)


async def unknown_command(command: SubCommand) -> None:
    text, blocks = help_message(unknown=command.parsed.verb)
    await command.reply(text=text, blocks=blocks)
