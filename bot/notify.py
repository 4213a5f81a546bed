"""Direct messages and list refreshes: after the ack, never undoing anything if they fail."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.blocks.common import Message
from storage.fields import is_user_id

logger = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_SECONDS = 10
REFUSED_LIST = "Done, but Slack could not show the updated list. Run `/tokens` to see it."


async def send_direct_messages(
    client: AsyncWebClient, recipients: Iterable[str], message: Message
) -> None:
    """One DM to each distinct recipient; a failure is logged and the others still go."""
    for user_id in dict.fromkeys(recipients):
        if not is_user_id(user_id):
            continue
        try:
            opened = await client.conversations_open(users=user_id)
            channel = opened["channel"]["id"]
            # No previews: a token name or description may hold a URL, and Slack would
            # fetch it and show whatever the page says beside the notice.
            await client.chat_postMessage(
                channel=channel, unfurl_links=False, unfurl_media=False, **message.as_dict()
            )
        except (SlackApiError, SlackClientError, ClientError, OSError, TimeoutError) as error:
            reason = error.response.get("error") if isinstance(error, SlackApiError) else ""
            logger.warning(
                "direct message to %s not delivered: %s %s", user_id, type(error).__name__, reason
            )


async def replace_message(response_url: str, message: Message) -> bool:
    """Replace the message behind `response_url`; whether Slack took it. If Slack refuses
    the blocks, the user is still told, in plain text, to look again."""
    hook = AsyncWebhookClient(url=response_url, timeout=WEBHOOK_TIMEOUT_SECONDS)
    try:
        answer = await hook.send_dict(
            {"replace_original": True, "response_type": "ephemeral", **message.as_dict()}
        )
        if answer.status_code == 400 and "invalid_blocks" in answer.body:
            logger.error("Slack refused a list's blocks: %s", answer.body[:200])
            await hook.send_dict(
                {"replace_original": False, "response_type": "ephemeral", "text": REFUSED_LIST}
            )
    except (SlackClientError, ClientError, ValueError, OSError, TimeoutError) as error:
        logger.warning("list not refreshed: %s", type(error).__name__)
        return False
    if answer.status_code != 200:
        logger.warning("list not refreshed: Slack answered %s", answer.status_code)
    return answer.status_code == 200
