"""What a `/tokens` sub-command handler receives: the parsed text and the request's context.

`bot/listeners/commands.py` builds one per command and hands it to the handler its table
names for the verb.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.home import HomeTab
from bot.inputs.command_text import ParsedCommand
from bot.memberships import GroupMemberships
from bot.settings import Settings
from storage.models import Role
from storage.store import Store


@dataclass(frozen=True, slots=True)
class SubCommand:
    parsed: ParsedCommand
    ack: AsyncAck
    respond: AsyncRespond
    client: AsyncWebClient
    store: Store
    settings: Settings
    memberships: GroupMemberships
    home: HomeTab
    role: Role
    actor: str
    team_id: str
    trigger_id: str

    async def reply(self, **message: Any) -> None:
        """Answer in the ack, ephemerally: the one answer that can never expire."""
        await self.ack(response_type="ephemeral", **message)
