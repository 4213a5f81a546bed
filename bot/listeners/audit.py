"""The audit log: `/tokens audit [NAME]` and its Newer / Older buttons. Both roles may read
it."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.background import after_ack
from bot.blocks.administration import AUDIT_PAGE_SIZE, audit_message
from bot.blocks.common import Message
from bot.ids import ActionId
from bot.inputs.command_text import audit_filter
from bot.inputs.payloads import audit_page
from bot.listeners.subcommand import SubCommand
from storage.store import Store

# Farther than anyone pages by hand: an offset a crafted button cannot push into SQLite.
OFFSET_MAX = 1_000_000


def register(app: AsyncApp) -> None:
    app.action(ActionId.AUDIT_PREVIOUS)(audit_paged)
    app.action(ActionId.AUDIT_NEXT)(audit_paged)


async def _page(store: Store, *, name: str, offset: int) -> Message:
    events = await store.audit.events(
        token_name=name or None, offset=offset, limit=AUDIT_PAGE_SIZE + 1
    )
    return audit_message(
        events[:AUDIT_PAGE_SIZE],
        name=name,
        offset=offset,
        has_more=len(events) > AUDIT_PAGE_SIZE,
    )


async def audit_command(command: SubCommand) -> None:
    message = await _page(command.store, name=audit_filter(command.parsed), offset=0)
    await command.reply(**message.as_dict())


async def audit_paged(
    ack: AsyncAck, action: dict[str, Any], respond: AsyncRespond, store: Store
) -> None:
    await ack()
    page = audit_page(action)
    if page is None:
        return
    offset, name = page
    step = AUDIT_PAGE_SIZE if action.get("action_id") == ActionId.AUDIT_NEXT else -AUDIT_PAGE_SIZE
    offset = min(max(0, offset + step), OFFSET_MAX)

    async def show() -> None:
        message = await _page(store, name=name, offset=offset)
        await respond(replace_original=True, response_type="ephemeral", **message.as_dict())

    after_ack(show(), respond=respond)
