"""The App Home views Token Desk publishes (`views.publish`), pure: data in, a home view out.

A manager's Home: the title, the notice of the last action, the API-access banner, the
summary, the Create button, then the tokens that need attention most as the list's cards
(same fields, menu and Edit, so they act exactly as the list's), each under the reason it
needs attention, and a pointer to the whole list. Anyone else's Home: what Token Desk is,
who the Account Administrators are and how to get access, and no token data.

Within Slack's limits for a home view whatever the names: at most 100 blocks (a manager's
Home takes at most 58: eight around ten cards of five), no title, submit or close, no
private_metadata, and each text within its own limit. Slack caps the text of a message in
all (the list's page keeps to it) but not a view's, so Home's cards show every line.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    SectionBlock,
)

from bot.blocks.common import Rendered, mention, mrkdwn
from bot.blocks.token_list import (
    CARDS_KEPT,
    Notice,
    api_access_banner,
    card_blocks,
    create_block,
    notice_block,
    title_block,
)
from bot.ids import COMMAND, BlockId, CallbackId
from storage.models import EXPIRING_SOON_DAYS, Attention, AttentionItem, HomeSummary

# Why a card needs attention, above the card: what it is and what to do about it.
REASONS = {
    Attention.LEAKED: ":rotating_light: *Leaked*: its secret was posted in Slack — Reset it",
    Attention.EXPIRED: ":octagonal_sign: *Expired*: it fails the auth check",
    Attention.EXPIRING: f":hourglass_flowing_sand: *Expiring within {EXPIRING_SOON_DAYS} days*",
    Attention.OLD_SECRET_PRESENTED: (
        ":mag: *Old secret still presented*: something still uses a secret it replaced"
    ),
    Attention.UNUSED: ":zzz: *Unused for 30 days or never used*",
    Attention.NO_EXPIRY: (
        ":warning: *No expiry* while a maximum lifetime is set — choose a date with Edit"
    ),
}
ALL_WELL = ":white_check_mark: *Nothing needs attention*"
ABOUT = (
    "*Token Desk* is where the agency's Account Administrators and Implementation"
    " Specialists manage its API access tokens: the credentials its integrations call the"
    " API with. They create tokens, reset their secrets, choose when they expire and turn"
    " off the ones no longer needed, all in Slack."
)
HOW_TO_GET_ACCESS = (
    "To manage tokens, ask an Account Administrator for a role: Account Administrator or"
    " Implementation Specialist."
)
# What a no-role Home's list of Account Administrators may take, within a section's 3,000
# characters.
ADMINS_TEXT_MAX = 2800
# The cards a manager's Home shows at most: what keeps it within 100 blocks.
ATTENTION_MAX = 10


def _summary(summary: HomeSummary, *, expiry_required: bool) -> Block:
    """The counts, two to a row. Enabled and Disabled always, so that the size of the
    inventory shows even when it is empty; every other count only when it is not zero: each
    one shown is something to look at, and a zero would only add reading (the attention list
    says when all is well). Without expiry counts only while a maximum lifetime is set."""
    counts = [
        (":large_green_circle:", summary.enabled, "enabled", True),
        (":white_circle:", summary.disabled, "disabled", True),
        (":rotating_light:", summary.leaked, "leaked", False),
        (":octagonal_sign:", summary.expired, "expired", False),
        (
            ":hourglass_flowing_sand:",
            summary.expiring_soon,
            f"expiring within {EXPIRING_SOON_DAYS} days",
            False,
        ),
        (":hourglass:", summary.in_grace, "in a grace window", False),
        (":zzz:", summary.unused, "unused for 30 days or never used", False),
    ]
    if expiry_required:
        counts.append((":warning:", summary.without_expiry, "without expiry", False))
    return SectionBlock(
        block_id="summary",
        fields=[
            mrkdwn(f"{emoji} *{count:,}* {label}")
            for emoji, count, label, always in counts
            if always or count > 0
        ],
    )


# Home after Home shows the same blocks around the cards and the same reasons above them:
# each is checked by slack_sdk once (`Rendered`), as the cards' own parts are.
_DIVIDER = Rendered(DividerBlock())
_ALL_WELL = Rendered(SectionBlock(block_id="attention", text=mrkdwn(ALL_WELL)))
_ATTENTION_HEADER = Rendered(HeaderBlock(block_id="attention", text="Needs attention"))
_FOOTER = Rendered(
    ContextBlock(
        block_id="footer",
        elements=[
            mrkdwn(f"Every token, with search and filters: `{COMMAND}` in any conversation.")
        ],
    )
)


@functools.lru_cache(maxsize=CARDS_KEPT)
def _reason_block(token_id: int, reason: Attention) -> Block:
    return Rendered(
        ContextBlock(block_id=f"{BlockId.REASON}.{token_id}", elements=[mrkdwn(REASONS[reason])])
    )


def _attention(
    attention: Sequence[AttentionItem],
    *,
    newest_version: str,
    now: datetime,
    expiry_required: bool,
) -> list[Block]:
    if not attention:
        return [_ALL_WELL]
    blocks: list[Block] = [_ATTENTION_HEADER]
    for item in attention[:ATTENTION_MAX]:
        token = item.token
        blocks += [_DIVIDER, _reason_block(token.id, item.reason)]
        blocks += card_blocks(
            token,
            newest_version=newest_version,
            now=now,
            expiry_required=expiry_required,
        )
    return blocks


def _view(blocks: list[Block]) -> dict[str, Any]:
    return {
        "type": "home",
        "callback_id": CallbackId.HOME.value,
        "blocks": [block.to_dict() for block in blocks],
    }


def manager_home(
    *,
    summary: HomeSummary,
    attention: Sequence[AttentionItem],
    newest_version: str,
    now: datetime,
    expiry_required: bool,
    api_access: bool,
    notice: Notice | None = None,
) -> dict[str, Any]:
    """A role holder's Home, its cards as they are at `now`: the first ATTENTION_MAX of
    `attention` (most urgent first), `expiry_required` while a maximum lifetime is set."""
    blocks: list[Block] = [title_block()]
    if notice:
        blocks.append(notice_block(notice))
    if not api_access:
        blocks.append(api_access_banner())
    # Create sits above the cards, as in the list, so that it is not ten cards down.
    blocks += [_summary(summary, expiry_required=expiry_required), create_block()]
    blocks += _attention(
        attention,
        newest_version=newest_version,
        now=now,
        expiry_required=expiry_required,
    )
    blocks += [_DIVIDER, _FOOTER]
    return _view(blocks)


def _admins(admins: Sequence[str]) -> str:
    """Each Account Administrator once, by mention, as many as ADMINS_TEXT_MAX allows."""
    distinct = list(dict.fromkeys(admins))
    if not distinct:
        return "*Account Administrators*: there is no Account Administrator yet."
    text = "*Account Administrators*:"
    for shown, admin in enumerate(distinct):
        named = f" {mention(admin)}" if shown == 0 else f", {mention(admin)}"
        if len(text) + len(named) > ADMINS_TEXT_MAX:
            return f"{text} and {len(distinct) - shown:,} more"
        text += named
    return text


def no_role_home(*, admins: Sequence[str], notice: str | None = None) -> dict[str, Any]:
    """The Home of someone without a role: no token data. `admins`: the Account
    Administrators' user IDs; `notice`: mrkdwn, escaped, shown first."""
    blocks: list[Block] = [HeaderBlock(block_id="title", text="Token Desk")]
    if notice:
        blocks.append(SectionBlock(block_id="notice", text=mrkdwn(notice)))
    blocks += [
        SectionBlock(block_id="about", text=mrkdwn(ABOUT)),
        SectionBlock(block_id="admins", text=mrkdwn(_admins(admins))),
        ContextBlock(block_id="access", elements=[mrkdwn(HOW_TO_GET_ACCESS)]),
    ]
    return _view(blocks)
