"""A reminder DM shown again in place after Extend… or Reset… from it: updated with
chat.update (it is a normal message, unlike the ephemeral list), listing its tokens as they
are now under what was done. A click answered with a notice goes back where it came from:
that DM, or else the list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import reminders
from bot.blocks.token_list import Notice
from bot.inputs.modal_context import ReminderDm
from bot.inputs.payloads import list_view_of, response_url_of
from bot.list_message import refresh_list
from bot.slack_client import Posted, update_message
from storage.errors import TokenNotFound
from storage.models import Token
from storage.store import Store


async def update_reminder_dm(
    client: AsyncWebClient, store: Store, reminder: ReminderDm, notice: Notice
) -> None:
    tokens: list[Token] = []
    for token_id in reminder.token_ids:
        try:
            tokens.append(await store.token_reads.get(token_id=token_id))
        except TokenNotFound:
            continue
    gone = len(reminder.token_ids) - len(tokens)
    message = reminders.reminder_update(tokens, gone=gone, notice=notice.text)
    await update_message(client, Posted(channel=reminder.channel, ts=reminder.ts), message)


async def show_notice(
    client: AsyncWebClient, store: Store, body: Mapping[str, Any], notice: Notice
) -> None:
    """Answer a click with `notice`: in the reminder DM it came from, else in the list."""
    reminder = ReminderDm.of_click(body)
    if reminder is not None:
        await update_reminder_dm(client, store, reminder, notice)
    else:
        await refresh_list(store, response_url_of(body), view=list_view_of(body), notice=notice)
