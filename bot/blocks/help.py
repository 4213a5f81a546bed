"""The usage listing for `/tokens help` and for a word Token Desk does not know."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.blocks.common import escape, mrkdwn
from bot.ids import COMMAND

USAGE = (
    (f"{COMMAND}", "the token list (also `list`)"),
    (
        f"{COMMAND} search TEXT",
        "the list filtered by name, or the token a pasted secret belongs to",
    ),
    (f"{COMMAND} create [NAME]", "create a token"),
    (f"{COMMAND} access on|off", "turn API access on or off for the whole account"),
    (f"{COMMAND} roles", "who holds which role (Account Administrators only)"),
    (f"{COMMAND} roles grant @user admin|specialist", "give someone a role"),
    (f"{COMMAND} roles revoke @user", "take a direct role away"),
    (f"{COMMAND} roles group @group admin|specialist", "give a user group a role"),
    (f"{COMMAND} roles ungroup @group", "take a user group's role away"),
    (f"{COMMAND} audit [NAME]", "the latest audit events, newest first"),
    (f"{COMMAND} help", "this listing"),
)


def help_message(*, unknown: str | None = None) -> tuple[str, list[Block]]:
    """The fallback text and the blocks; `unknown` is the word that was not understood."""
    listing = "\n".join(f"`{usage}`  {meaning}" for usage, meaning in USAGE)
    blocks: list[Block] = []
    if unknown is None:
        text = "Token Desk: manage the agency's API access tokens."
    else:
        shown = escape(unknown[:50])
        text = f"Token Desk does not know “{shown}”."
    blocks.append(SectionBlock(text=mrkdwn(f"*{text}*")))
    blocks.append(SectionBlock(text=mrkdwn(listing)))
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="For Account Administrators and Implementation Specialists."
                )
            ]
        )
    )
    return f"{text} Try `{COMMAND} help`.", blocks
