"""Messages of the administration sub-commands: roles, API access, the audit log."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.blocks.common import Message, mention, slack_date
from bot.ids import COMMAND, ActionId
from bot.text import escape
from storage.models import AuditEvent, Role, RoleMappings

SECTION_MAX = 2900
# Slack refuses a message whose texts add up to about 12,000 characters: these bounds hold
# for the escaped text, whatever `&<>` a user typed.
MESSAGE_TEXT_BUDGET = 10_000
EVENT_MAX = 950
AUDIT_PAGE_SIZE = 10


def _mrkdwn(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text, verbatim=True)


def _group(group_id: str) -> str:
    return f"<!subteam^{group_id}>"


def bounded(escaped: str, limit: int) -> str:
    """Escaped mrkdwn cut to `limit` characters, never inside an `&…;` entity."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    entity = cut.rfind("&")
    if entity >= len(cut) - 4:
        cut = cut[:entity]
    return cut + "…"


def _sections(lines: list[str]) -> list[Block]:
    """Lines packed into as few sections as Slack's 3000-character limit allows."""
    sections: list[Block] = []
    current = ""
    for line in lines:
        if current and len(current) + len(line) + 1 > SECTION_MAX:
            sections.append(SectionBlock(text=_mrkdwn(current)))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        sections.append(SectionBlock(text=_mrkdwn(current)))
    return sections


def roles_message(mappings: RoleMappings) -> Message:
    lines: dict[Role, list[str]] = {Role.ADMIN: [], Role.SPECIALIST: []}
    for user in mappings.bootstrap_admins:
        lines[Role.ADMIN].append(f"• {mention(user)}  _bootstrap (TOKENDESK_ADMINS)_")
    for user, role in mappings.users:
        lines[role].append(f"• {mention(user)}  _direct_")
    for group, role in mappings.groups:
        lines[role].append(f"• {_group(group)}  _user group_")
    blocks: list[Block] = [HeaderBlock(text="Roles")]
    budget = MESSAGE_TEXT_BUDGET
    for role in (Role.ADMIN, Role.SPECIALIST):
        entries = lines[role] or ["• nobody yet"]
        shown = []
        for entry in entries:
            budget -= len(entry) + 1
            if budget < 0:
                break
            shown.append(entry)
        if len(shown) < len(entries):
            shown.append(
                f"…and {len(entries) - len(shown)} more: `tokendesk roles list` shows everyone."
            )
        blocks += _sections([f"*{role.label}s*", *shown])
    blocks.append(
        ContextBlock(
            elements=[
                _mrkdwn(
                    f"`{COMMAND} roles grant @user admin|specialist` · `{COMMAND} roles revoke"
                    f" @user` · `{COMMAND} roles group @group admin|specialist` ·"
                    f" `{COMMAND} roles ungroup @group`"
                )
            ]
        )
    )
    return Message(text="Token Desk roles", blocks=blocks)


def access_off_confirmation() -> Message:
    return Message(
        text="Turn API access off?",
        blocks=[
            SectionBlock(
                block_id="access_off",
                text=_mrkdwn(
                    ":warning: *Turn API access off?* Every token then fails the auth check at"
                    " once: all of the agency's integrations stop working until API access is"
                    " turned on again. Tokens themselves are kept as they are."
                ),
            ),
            ActionsBlock(
                block_id="access_off_choice",
                elements=[
                    ButtonElement(
                        text="Turn API access off",
                        action_id=ActionId.API_ACCESS_OFF,
                        value="off",
                        style="danger",
                    ),
                    ButtonElement(
                        text="Keep it on", action_id=ActionId.API_ACCESS_KEEP, value="on"
                    ),
                ],
            ),
        ],
    )


_VERBS = {
    "create": "created",
    "duplicate": "created a copy:",
    "edit": "edited",
    "reset": "reset",
    "upgrade": "upgraded",
    "enable": "enabled",
    "disable": "disabled",
    "delete": "deleted",
    "api_access": "switched API access",
    "role.user": "changed a role",
    "role.group": "changed a group's role",
}


def _value(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "—"
    return str(value)


def _changes(event: AuditEvent) -> str:
    keys = list(dict.fromkeys([*event.before, *event.after]))
    parts = []
    for key in keys:
        before, after = event.before.get(key), event.after.get(key)
        if key in event.before and key in event.after:
            parts.append(f"{key}: {_value(before)} → {_value(after)}")
        else:
            parts.append(f"{key}: {_value(after if key in event.after else before)}")
    return escape("; ".join(parts))


def _event_line(event: AuditEvent) -> str:
    """One event in at most EVENT_MAX characters: what changed gets what the rest leaves."""
    verb = _VERBS.get(event.action, escape(event.action))
    subject = ""
    if event.token_name is not None:
        subject = f" *{bounded(escape(event.token_name), 300)}* (`{escape(event.token_sid or '')}`)"
    line = f"{slack_date(event.at)}  {mention(event.actor)} {verb}{subject}"
    changes = _changes(event)
    room = EVENT_MAX - len(line) - 1
    return f"{line}\n{bounded(changes, room)}" if changes and room > 20 else line


def audit_message(events: list[AuditEvent], *, name: str, offset: int, has_more: bool) -> Message:
    """A page of audit events, newest first; `name` is the token-name filter, if any."""
    scope = f" for “{escape(name)}”" if name else ""
    blocks: list[Block] = [HeaderBlock(text="Audit log")]
    if events:
        blocks += [SectionBlock(text=_mrkdwn(_event_line(event))) for event in events]
    else:
        blocks.append(SectionBlock(text=_mrkdwn(f"No audit events{scope}.")))
    first, last = offset + 1, offset + len(events)
    blocks.append(
        ContextBlock(elements=[_mrkdwn(f"Events {first}–{last}{scope}, newest first")])
        if events
        else ContextBlock(elements=[_mrkdwn(f"`{COMMAND} audit [NAME]` filters by token name")])
    )
    buttons = []
    reference = f"{offset}:{name}"
    if offset > 0:
        buttons.append(
            ButtonElement(text="Newer", action_id=ActionId.AUDIT_PREVIOUS, value=reference)
        )
    if has_more:
        buttons.append(ButtonElement(text="Older", action_id=ActionId.AUDIT_NEXT, value=reference))
    if buttons:
        blocks.append(ActionsBlock(block_id="audit_pager", elements=buttons))
    return Message(text=f"Token Desk audit log{scope}", blocks=blocks)
