"""Messages and replies of the administration sub-commands: roles, API access, the audit
log. Pure: data in, blocks or mrkdwn out."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    SectionBlock,
)

from bot.blocks.common import Message, escape, group_mention, mention, mrkdwn, slack_date
from bot.ids import COMMAND, ActionId
from bot.inputs.command_text import RolesProblem
from storage.models import AuditEvent, Role, RoleMappings, RoleSource, SlackStatus

SECTION_MAX = 2900
# Slack refuses a message whose texts add up to about 12,000 characters: these bounds hold
# for the escaped text, whatever `&<>` a user typed.
MESSAGE_TEXT_BUDGET = 10_000
EVENT_MAX = 950
AUDIT_PAGE_SIZE = 10


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
            sections.append(SectionBlock(text=mrkdwn(current)))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        sections.append(SectionBlock(text=mrkdwn(current)))
    return sections


def roles_message(mappings: RoleMappings) -> Message:
    lines: dict[Role, list[str]] = {Role.ADMIN: [], Role.SPECIALIST: []}
    for user in mappings.bootstrap_admins:
        lines[Role.ADMIN].append(f"• {mention(user)}  _bootstrap (TOKENDESK_ADMINS)_")
    for user, role in mappings.users:
        lines[role].append(f"• {mention(user)}  _direct_")
    for group, role in mappings.groups:
        lines[role].append(f"• {group_mention(group)}  _user group_")
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
                mrkdwn(
                    f"`{COMMAND} roles grant @user admin|specialist` · `{COMMAND} roles revoke"
                    f" @user` · `{COMMAND} roles group @group admin|specialist` ·"
                    f" `{COMMAND} roles ungroup @group`"
                )
            ]
        )
    )
    return Message(text="Token Desk roles", blocks=blocks)


ROLES_SHAPES = {
    "grant": "roles grant @user admin|specialist",
    "revoke": "roles revoke @user",
    "group": "roles group @group admin|specialist",
    "ungroup": "roles ungroup @group",
}
MENTION_HINT = "Mention them: type @ and pick the {what} from the list, so Slack sends its ID."


def roles_usage(problem: RolesProblem, verb: str) -> str:
    """What is wrong with a `roles` sub-command, and how to write it."""
    if problem is RolesProblem.UNKNOWN_VERB:
        return (
            f"Try `{COMMAND} roles`, `roles grant @user admin|specialist`, `roles revoke @user`,"
            " `roles group @group admin|specialist` or `roles ungroup @group`."
        )
    if problem is RolesProblem.WRONG_SHAPE:
        return f"Use `{COMMAND} {ROLES_SHAPES[verb]}`."
    if problem is RolesProblem.NOT_A_PERSON:
        return MENTION_HINT.format(what="person")
    if problem is RolesProblem.NOT_A_GROUP:
        return MENTION_HINT.format(what="user group")
    return "The role is `admin` or `specialist`."


NO_ROLE_BECAUSE = {
    SlackStatus.BOT: "Bots cannot hold a role.",
    SlackStatus.GUEST: "Guests cannot hold a role.",
    SlackStatus.DEACTIVATED: "That person has left the workspace.",
    SlackStatus.OTHER_ORGANISATION: "People from another organisation cannot hold a role.",
    SlackStatus.UNKNOWN_TO_SLACK: "Slack does not know that person.",
}
GROUP_UNKNOWN = "Slack does not know that user group; nothing was changed."


def slack_did_not_confirm(what: str) -> str:
    return f"Slack did not confirm that {what}; nothing was changed. Please try again."


def role_change_refused(reason: str) -> str:
    return f"Not changed: {reason}"


def user_granted(user_id: str, role: Role) -> str:
    return f"{mention(user_id)} is now an {role.label}."


def user_revoked(user_id: str, previous: Role | None, remaining: list[RoleSource]) -> str:
    """A revoke names the sources of a role the user still holds."""
    if previous is None:
        head = f"{mention(user_id)} had no direct role."
    else:
        head = f"{mention(user_id)} is no longer an {previous.label} directly."
    if not remaining:
        return f"{head} They hold no role now."
    described = [
        f"{source.role.label} through {group_mention(source.group_id or '')}"
        if source.kind == "group"
        else f"{source.role.label} ({source.kind})"
        for source in remaining
    ]
    return f"{head} They are still: " + "; ".join(described) + "."


def group_granted(group_id: str, role: Role) -> str:
    return f"Members of {group_mention(group_id)} are now {role.label}s."


def group_revoked(group_id: str, previous: Role | None) -> str:
    if previous is None:
        return f"{group_mention(group_id)} had no role."
    return f"Members of {group_mention(group_id)} are no longer {previous.label}s through it."


def access_switched_on(*, changed: bool) -> str:
    if changed:
        return "API access is on: enabled tokens pass the auth check."
    return "API access was already on."


ACCESS_ALREADY_OFF = "API access is already off."
ACCESS_TURNED_OFF = (
    ":no_entry: API access is off. Every token now fails the auth check;"
    f" `{COMMAND} access on` turns it back on."
)


def access_state(*, on: bool) -> str:
    return f"API access is {'on' if on else 'off'}. Use `{COMMAND} access on` or `access off`."


def access_off_confirmation() -> Message:
    return Message(
        text="Turn API access off?",
        blocks=[
            SectionBlock(
                block_id="access_off",
                text=mrkdwn(
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
    "end_grace": "ended the grace window of",
    "leak": "found posted in Slack the secret of",
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
        blocks += [SectionBlock(text=mrkdwn(_event_line(event))) for event in events]
    else:
        blocks.append(SectionBlock(text=mrkdwn(f"No audit events{scope}.")))
    first, last = offset + 1, offset + len(events)
    blocks.append(
        ContextBlock(elements=[mrkdwn(f"Events {first}–{last}{scope}, newest first")])
        if events
        else ContextBlock(elements=[mrkdwn(f"`{COMMAND} audit [NAME]` filters by token name")])
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
