"""What the scheduler posts: the reminder DM (and the same DM updated after Extend or Reset),
the idle-token DMs, the alerts channel's digest, and the alerts posted at once (API access,
role changes).

Pure: data in, blocks out. Never a secret: names, SIDs, people and dates only. Token names
reach mrkdwn only escaped, in `verbatim` texts. A DM shows at most DM_TOKENS_SHOWN tokens in
full (two blocks each, within Slack's 50) and every message stays within the text budget
Slack allows, whatever `&<>` the names hold; the tokens left out are counted.

The blocks are Slack's JSON, written directly (bot/blocks/raw.py): a pass may post a
thousand tokens at once.
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.blocks.administration import MESSAGE_TEXT_BUDGET, SECTION_MAX
from bot.blocks.common import escape, mention, slack_date
from bot.blocks.raw import Block, RawMessage, mrkdwn, section
from bot.ids import COMMAND, ActionId, BlockId
from storage.models import DueReminder, IdleToken, ReminderToken, Role, Token

DM_TOKENS_SHOWN = 20
DIGEST_LINES_SHOWN = 60
ASK_A_MANAGER = (
    "Ask an Account Administrator or an Implementation Specialist to extend or reset them in"
    " Token Desk."
)
_DAY = timedelta(days=1)
# Ids written out once, not per block: a pass writes a thousand lines.
_LINE_BLOCK = f"{BlockId.REMINDER}."
_ACTIONS_BLOCK = f"{BlockId.REMINDER_ACTIONS}."
_EXTEND = str(ActionId.REMINDER_EXTEND)
_RESET = str(ActionId.REMINDER_RESET)
# The buttons' labels, one dict each shared by every button: nothing changes a built block.
_EXTEND_LABEL = {"type": "plain_text", "text": "Extend…", "emoji": True}
_RESET_LABEL = {"type": "plain_text", "text": "Reset…", "emoji": True}

# A token as a DM shows it: read whole (a list's card, an update), or lean (a reminder).
Shown = Token | ReminderToken


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _about(token: Shown) -> str:
    return f"*{escape(token.name)}* `{token.sid}`"


# Cached, like the next one: the tokens of one pass share a few dozen stop instants.
@functools.lru_cache(maxsize=1024)
def _works_until(stops_at: datetime | None) -> str:
    return f"Works until {slack_date(stops_at)}" if stops_at else "No expiry"


@functools.lru_cache(maxsize=1024)
def _when_it_stops(stops_at: datetime | None, now: datetime) -> str:
    if stops_at is None:
        return "has no expiry"
    if stops_at <= now:
        return "has stopped working"
    days = math.ceil((stops_at - now) / _DAY)
    return f"stops working in {_plural(days, 'day')}"


@functools.lru_cache(maxsize=1024)
def _stop_words(stops_at: datetime, now: datetime) -> str:
    """What a reminder line says from its stop instant to its last use's date."""
    return f"{_when_it_stops(stops_at, now)}\n{_works_until(stops_at)}   Last used "


def _last_used(token: Shown) -> str:
    used = token.last_used_at
    return "Last used never" if used is None else f"Last used {slack_date(used, ago=True)}"


def _buttons(token: Shown) -> Block:
    ref = f"{token.id}:{token.row_version}"
    return {
        "type": "actions",
        "block_id": f"{_ACTIONS_BLOCK}{token.id}",
        "elements": [
            {"type": "button", "text": _EXTEND_LABEL, "action_id": _EXTEND, "value": ref},
            {"type": "button", "text": _RESET_LABEL, "action_id": _RESET, "value": ref},
        ],
    }


# A token in a DM: itself, and its text.
Line = tuple[Shown, str]


def _line(token: Shown, first_line: str, stops_at: datetime | None) -> Line:
    """`token` in a DM: `first_line`, then until when it works (`stops_at`, worked out by
    the caller) and when it was last used."""
    return token, f"{first_line}\n{_works_until(stops_at)}   {_last_used(token)}"


def _fitting(texts: Sequence[str], *, budget: int, most: int) -> int:
    """How many of `texts`, from the first, fit in `budget` characters, at most `most`."""
    used = 0
    for count, text in enumerate(texts[:most]):
        used += len(text)
        if used > budget:
            return count
    return min(len(texts), most)


def _dm(
    headline: str, lines: Sequence[Line], total: int, *, may_act: bool, footer: str
) -> RawMessage:
    """A DM about `total` tokens: the headline, each of the first (`lines`, at most
    DM_TOKENS_SHOWN) as many as fit, with its buttons when `may_act`, then the count of
    those left out and the footer."""
    blocks = [section(headline, "headline")]
    left = MESSAGE_TEXT_BUDGET - 1000
    shown = 0
    for token, text in lines[:DM_TOKENS_SHOWN]:
        left -= len(text)
        if left < 0:
            break
        text_block = {"type": "mrkdwn", "text": text, "verbatim": True}
        blocks.append(
            {"type": "section", "block_id": f"{_LINE_BLOCK}{token.id}", "text": text_block}
        )
        if may_act:
            blocks.append(_buttons(token))
        shown += 1
    notes = []
    if total > shown:
        notes.append(f"…and {_plural(total - shown, 'more token')}.")
    if footer:
        notes.append(footer)
    if notes:
        blocks.append(
            {"type": "context", "block_id": "footer", "elements": [mrkdwn(" ".join(notes))]}
        )
    return RawMessage(text=headline, blocks=blocks)


# -- reminders ----------------------------------------------------------------------------

_soonest_first = operator.attrgetter("stops_at", "id")
_stops_at = operator.attrgetter("stops_at")


def reminder_dm(reminders: Sequence[DueReminder], *, now: datetime, may_act: bool) -> RawMessage:
    """One DM to a primary contact listing all their tokens a reminder is due for, soonest
    stop first. Who holds a role gets Extend… and Reset… on each; others are told whom to
    ask."""
    ordered = sorted((due.token for due in reminders), key=_soonest_first)
    # Soonest first: the stopped ones lead.
    stopped = bisect.bisect_right(ordered, now, key=_stops_at)
    soon = len(ordered) - stopped
    if not stopped:
        summary = f"{soon} of your tokens {'stops' if soon == 1 else 'stop'} working soon"
    elif not soon:
        summary = f"{stopped} of your tokens {'has' if stopped == 1 else 'have'} stopped working"
    else:
        summary = (
            f"{len(ordered)} of your tokens need attention: {soon} stopping soon, {stopped} stopped"
        )
    headline = f":hourglass_flowing_sand: Token Desk: {summary}."
    # One f-string a line, writing what _about and _last_used do: a pass writes a thousand.
    lines: list[Line] = []
    for token in ordered[:DM_TOKENS_SHOWN]:
        used = token.last_used_at
        last_used = "never" if used is None else slack_date(used, ago=True)
        text = f"*{escape(token.name)}* `{token.sid}` {_stop_words(token.stops_at, now)}{last_used}"
        lines.append((token, text))
    if may_act:
        footer = (
            "*Extend…* gives a token a later date, within its maximum lifetime; *Reset…* issues"
            f" a new secret and a new date. `{COMMAND}` lists every token."
        )
    else:
        footer = ASK_A_MANAGER
    return _dm(headline, lines, len(ordered), may_act=may_act, footer=footer)


def reminder_update(tokens: Sequence[Token], *, gone: int, notice: str) -> RawMessage:
    """The reminder DM after Extend or Reset from it: what was done (`notice`, escaped
    mrkdwn), then its tokens as they are now. Only the contact sees the DM, and they just
    acted from it, so the buttons stay."""
    lines = [
        _line(token, _about(token) + ("" if token.enabled else " is disabled"), token.stops_at)
        for token in tokens[:DM_TOKENS_SHOWN]
    ]
    footer = f"{_plural(gone, 'token')} listed here no longer {'exists' if gone == 1 else 'exist'}."
    return _dm(notice, lines, len(tokens), may_act=True, footer=footer if gone else "")


# -- idle tokens --------------------------------------------------------------------------


def idle_warning_dm(
    idle: Sequence[IdleToken], *, unused_days: int, disabled_from: datetime
) -> RawMessage:
    """To a contact whose tokens Token Desk will disable for being unused, unless they are
    used (or reset, or enabled again) before `disabled_from`."""
    headline = (
        f":zzz: Token Desk: {len(idle)} of your tokens {'has' if len(idle) == 1 else 'have'}"
        f" not been used for a long time, and will be disabled on {slack_date(disabled_from)}"
        f" unless used before then (tokens unused for {unused_days} days are disabled)."
    )
    lines = [
        _line(
            item.token,
            f"{_about(item.token)} idle since {slack_date(item.idle_since)}",
            item.token.stops_at,
        )
        for item in idle[:DM_TOKENS_SHOWN]
    ]
    return _dm(headline, lines, len(idle), may_act=False, footer="")


def idle_disabled_dm(tokens: Sequence[Token], *, unused_days: int) -> RawMessage:
    """To a contact whose tokens Token Desk has just disabled for being unused."""
    headline = (
        f":no_entry: Token Desk disabled {len(tokens)} of your tokens: unused for"
        f" {unused_days} days. Calls using {'it' if len(tokens) == 1 else 'them'} fail until a"
        f" manager enables {'it' if len(tokens) == 1 else 'them'} again in `{COMMAND}`."
    )
    lines = [
        _line(token, f"{_about(token)} is disabled", token.stops_at)
        for token in tokens[:DM_TOKENS_SHOWN]
    ]
    return _dm(headline, lines, len(tokens), may_act=False, footer="")


# -- the alerts channel -------------------------------------------------------------------


def _digest_sections(lines: list[str], total: int) -> list[Block]:
    """The first of `total` lines (`lines`, at most DIGEST_LINES_SHOWN), as many as the
    message's text budget holds, packed into as few sections as Slack's 3000-character
    limit allows, and the count of those left out."""
    shown = _fitting(lines, budget=MESSAGE_TEXT_BUDGET - 500, most=DIGEST_LINES_SHOWN)
    kept = lines[:shown]
    if total > shown:
        kept.append(f"…and {total - shown} more.")
    sections: list[Block] = []
    current = ""
    for line in kept:
        if current and len(current) + len(line) + 1 > SECTION_MAX:
            sections.append(section(current))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        sections.append(section(current))
    return sections


def digest(
    reminders: Sequence[DueReminder],
    disabled: Sequence[Token],
    *,
    unused_days: int,
    now: datetime,
) -> RawMessage:
    """One scheduler pass for the alerts channel: the tokens Token Desk disabled for being
    unused, then those reminded of that stop within a week or have stopped, soonest first.
    Only the lines that can be shown are written."""
    lines = [
        f"• :no_entry: {_about(token)} disabled: unused for {unused_days} days"
        f" ({mention(token.primary_contact)})"
        for token in disabled[:DIGEST_LINES_SHOWN]
    ]
    ordered = sorted((due.token for due in reminders), key=_soonest_first)
    lines += [
        f"• :hourglass_flowing_sand: {_about(token)} {_when_it_stops(token.stops_at, now)}"
        f" ({mention(token.primary_contact)})"
        for token in ordered[: DIGEST_LINES_SHOWN - len(lines)]
    ]
    parts = []
    if reminders:
        parts.append(_plural(len(reminders), "token") + " stopping within 7 days or stopped")
    if disabled:
        parts.append(_plural(len(disabled), "token") + " disabled for being unused")
    headline = f":bell: Token Desk: {', '.join(parts)}."
    sections = _digest_sections(lines, len(reminders) + len(disabled))
    return RawMessage(text=headline, blocks=[section(headline, "headline"), *sections])


def _alert(text: str) -> RawMessage:
    return RawMessage(text=text, blocks=[section(text)])


def api_access_alert(*, actor: str, enabled: bool, at: datetime) -> RawMessage:
    if enabled:
        return _alert(
            f":white_check_mark: API access was turned *on* by {mention(actor)}"
            f" {slack_date(at)}. Enabled tokens pass the auth check again."
        )
    return _alert(
        f":rotating_light: API access was turned *off* by {mention(actor)} {slack_date(at)}."
        " Every token fails the auth check until it is turned on again."
    )


def role_alert(
    *, actor: str, subject: str, group: bool, before: Role | None, after: Role | None
) -> RawMessage:
    """A role mapping changed: `subject` is a user id, or a user group id when `group`."""
    # A user group is named by its id: a mention in a channel would notify all its members.
    who = f"the user group `{escape(subject)}`" if group else mention(subject)
    if after is None:
        held = before.label if before else "a role"
        change = f"{mention(actor)} revoked the {held} role of {who}"
    elif before is None:
        change = f"{mention(actor)} gave {who} the {after.label} role"
    else:
        change = f"{mention(actor)} changed the role of {who} from {before.label} to {after.label}"
    return _alert(f":busts_in_silhouette: Token Desk roles: {change}.")
