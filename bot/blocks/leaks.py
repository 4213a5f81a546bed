"""What the leak guard posts when a message in a channel holds a live Token Desk secret: the
reply in the message's thread, the DM naming the token to its primary contact (and to the
poster, if they hold a role), the DM to a poster without a role, the alerts channel's post,
and the leak DM updated after Reset now or Disable now from it.

Pure: data in, blocks out. Never a secret: names, SIDs, people, channels and links only.
What a channel reads (the thread reply) and what a poster without a role reads name neither
the token nor the secret. Token names reach mrkdwn only escaped, in `verbatim` texts; the
channel, the poster and the permalink come from Slack and are shown only if they have the
shape Slack gives them.

Slack's JSON written directly (bot/blocks/raw.py): each text stays far within
Slack's limits whatever a name of NAME_MAX characters holds (escaped, five times longer at
most), as the tests check.
"""

from __future__ import annotations

import re

from bot.blocks.common import escape, mention
from bot.blocks.raw import Block, RawMessage, button, context, section
from bot.ids import COMMAND, ActionId, BlockId
from storage.models import LeakReport, Token

_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,30}")
# A link Slack gave (chat.getPermalink): nothing in it may end the `<url|label>` it goes in.
_PERMALINK = re.compile(r"https://[^\s<>|]{1,2000}")
DELETE_IT = "Delete it now: anyone who can read the channel can use the secret."
ASK_FOR_A_RESET = (
    "Ask an Account Administrator or an Implementation Specialist to reset it in Token Desk."
)


def _about(token: Token) -> str:
    return f"*{escape(token.name)}* `{token.sid}`"


def _channel(channel: str) -> str:
    """A channel mention; anything that is not a Slack channel ID is shown as escaped text."""
    return f"<#{channel}>" if _CHANNEL_ID.fullmatch(channel) else escape(channel)


def _where(channel: str, permalink: str | None, poster: str | None = None) -> str:
    """Where a secret was posted: the channel, the poster if known, and a link to the
    message if Slack gave one of the shape it gives."""
    where = f"in {_channel(channel)}"
    if poster:
        where += f" by {mention(poster)}"
    if permalink is not None and _PERMALINK.fullmatch(permalink):
        where += f" (<{permalink.replace('&', '&amp;')}|view the message>)"
    return where


def _leaked_secret(
    report: LeakReport, *, channel: str, permalink: str | None, poster: str | None
) -> str:
    return (
        f"{_about(report.token)}: its {report.which} secret was posted"
        f" {_where(channel, permalink, poster)}."
    )


def _what_was_done(report: LeakReport, *, disabled: bool) -> str:
    """What the leak did to the token: a previous secret stopped; a current one marked the
    token leaked, and disabled it if Token Desk does that."""
    if report.which == "previous":
        return (
            "That secret, which a Reset left working for a while, no longer works: its grace"
            " window has ended. The current secret is not affected."
        )
    if disabled:
        state = "Token Desk *disabled* the token at once: calls using it now fail."
    elif not report.token.enabled:
        state = "The token was already disabled."
    else:
        state = "The token is still enabled: anyone who read the message can use the secret."
    return f"{state} It is marked *leaked*: it cannot be enabled again until it is reset."


def _leak_buttons(token: Token) -> Block:
    """Reset now, and Disable now while the token is enabled."""
    ref = f"{token.id}:{token.row_version}"
    buttons = [button("Reset now", ActionId.LEAK_RESET, ref, style="danger")]
    if token.enabled:
        buttons.append(button("Disable now", ActionId.LEAK_DISABLE, ref))
    return {
        "type": "actions",
        "block_id": f"{BlockId.LEAK_ACTIONS}.{token.id}",
        "elements": buttons,
    }


def thread_reply(*, disabled: bool) -> RawMessage:
    """In the thread of the message holding a live secret, for the whole channel to read:
    naming neither the token nor the secret."""
    text = f":rotating_light: This message contains a Token Desk secret. {DELETE_IT}"
    if disabled:
        text += " Token Desk has disabled the token it belongs to."
    return RawMessage(text=text, blocks=[section(text)])


def leak_dm(
    report: LeakReport,
    *,
    channel: str,
    permalink: str | None,
    poster: str | None,
    may_act: bool,
    disabled: bool,
) -> RawMessage:
    """To the token's primary contact, and to the poster if they hold a role: which secret
    of which token was posted where and by whom, and what came of it (`disabled`: Token
    Desk disabled the token for this leak, as `report.disabled` says). Reset now and
    Disable now (while enabled) when the current secret leaked and the reader `may_act`;
    else whom to ask."""
    token = report.token
    leaked = _leaked_secret(report, channel=channel, permalink=permalink, poster=poster)
    text = f":rotating_light: {leaked}\n{_what_was_done(report, disabled=disabled)}"
    blocks = [section(text, f"{BlockId.LEAK}.{token.id}")]
    if report.which == "previous":
        advice = "Nothing else to do about the token."
    elif may_act:
        blocks.append(_leak_buttons(token))
        advice = (
            "*Reset now* issues a new secret, shown to you once, and stops the posted one at"
            " once: integrations need the new one."
        )
        if token.enabled:
            advice += " *Disable now* stops every call until the token is reset."
    else:
        advice = ASK_FOR_A_RESET
    blocks.append(context(f"{advice} Token Desk asked in the message's thread to delete it."))
    fallback = f":rotating_light: A secret of {escape(token.name)} was posted in Slack."
    return RawMessage(text=fallback, blocks=blocks)


def poster_dm(*, channel: str, permalink: str | None, disabled: bool) -> RawMessage:
    """To a poster without a role: no token data, only what to do."""
    text = (
        f":rotating_light: You posted a Token Desk secret {_where(channel, permalink)}."
        f" {DELETE_IT} Its owners have been told."
    )
    if disabled:
        text += " Token Desk has disabled the token it belongs to."
    return RawMessage(
        text="You posted a Token Desk secret in Slack: delete it.", blocks=[section(text)]
    )


def leak_alert(
    report: LeakReport,
    *,
    channel: str,
    permalink: str | None,
    poster: str | None,
    disabled: bool,
) -> RawMessage:
    """The alerts channel's post about one leaked secret, naming the token's primary
    contact, who has been told."""
    token = report.token
    text = (
        ":rotating_light: *Token Desk secret posted in Slack*\n"
        f"{_leaked_secret(report, channel=channel, permalink=permalink, poster=poster)}"
        f" Its primary contact, {mention(token.primary_contact)}, has been told.\n"
        f"{_what_was_done(report, disabled=disabled)}"
    )
    return RawMessage(
        text=f":rotating_light: A secret of {escape(token.name)} was posted in Slack.",
        blocks=[section(text)],
    )


def leak_dm_update(token: Token | None, *, notice: str) -> RawMessage:
    """The leak DM after Reset now or Disable now from it: what was done (`notice`, escaped
    mrkdwn), then the token as it is now, with the buttons that still apply while it is
    leaked; `token` None: it no longer exists, which is said after the notice."""
    blocks = [section(notice, "headline")]
    if token is None:
        blocks.append(context("This token no longer exists."))
        return RawMessage(text=notice, blocks=blocks)
    state = "enabled" if token.enabled else "disabled"
    line = f"{_about(token)} is {state}."
    if token.leaked_at is not None:
        line += (
            "\n:rotating_light: Still marked *leaked*: *Reset now* issues a new secret and stops"
            " the posted one."
        )
    blocks.append(section(line, f"{BlockId.LEAK}.{token.id}"))
    if token.leaked_at is not None:
        blocks.append(_leak_buttons(token))
    else:
        blocks.append(
            context(f"The secret posted in Slack no longer works. `{COMMAND}` lists every token.")
        )
    return RawMessage(text=notice, blocks=blocks)
