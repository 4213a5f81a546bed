"""A DM about tokens — a reminder, or a leak report — shown again in place after an action
started from it (Extend…, Reset…, Reset now, Disable now): updated with chat.update (it is a
normal message, unlike the ephemeral list), with what was done above its tokens as they are
now (bot/surfaces.py decides that a click or a modal answers here).
"""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import leaks, reminders
from bot.blocks.token_list import Notice
from bot.inputs.modal_context import TokenDm
from bot.slack_client import Posted, update_message
from storage.errors import TokenNotFound
from storage.models import Token
from storage.store import Store


async def update_token_dm(
    client: AsyncWebClient, store: Store, dm: TokenDm, notice: Notice
) -> None:
    tokens: list[Token] = []
    for token_id in dm.token_ids:
        try:
            tokens.append(await store.token_reads.get(token_id=token_id))
        except TokenNotFound:
            continue
    if dm.kind == "leak":
        message = leaks.leak_dm_update(tokens[0] if tokens else None, notice=notice.text)
    else:
        gone = len(dm.token_ids) - len(tokens)
        message = reminders.reminder_update(tokens, gone=gone, notice=notice.text)
    await update_message(client, Posted(channel=dm.channel, ts=dm.ts), message)
