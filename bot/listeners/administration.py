"""`/tokens roles …`, `/tokens access …`, `/tokens audit …` and their buttons.

Roles are for Account Administrators only; API access and the audit log for both roles.
Role changes look the person or the group up with Slack first (no role for bots, guests,
people who left or people of another organisation; no mapping for a group Slack does not
know), so they answer after the ack.
"""

from __future__ import annotations

import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.administration import (
    AUDIT_PAGE_SIZE,
    access_off_confirmation,
    audit_message,
    roles_message,
)
from bot.blocks.common import Message, mention
from bot.errors import AdminRequired, after_ack
from bot.ids import COMMAND, ActionId
from bot.list_view import plain_text, small_number
from bot.memberships import GroupMemberships
from bot.text import ParsedCommand, group_id_of, user_id_of
from bot.user_status import look_up_status, wall_time
from storage.credentials import has_secret_part
from storage.errors import RoleChangeRefused
from storage.models import Role, RoleSource, SlackStatus
from storage.roles import role_from_name
from storage.store import Store

ROLE_WORDS = ("admin", "specialist")
MENTION_HINT = "Mention them: type @ and pick the {what} from the list, so Slack sends its ID."


def register(app: AsyncApp) -> None:
    app.action(ActionId.API_ACCESS_OFF)(access_off_confirmed)
    app.action(ActionId.API_ACCESS_KEEP)(access_off_cancelled)
    app.action(ActionId.AUDIT_PREVIOUS)(audit_paged)
    app.action(ActionId.AUDIT_NEXT)(audit_paged)


def _text(message: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": message}


# Roles ----------------------------------------------------------------------------------


async def roles_command(
    parsed: ParsedCommand,
    *,
    ack: AsyncAck,
    respond: AsyncRespond,
    client: AsyncWebClient,
    store: Store,
    memberships: GroupMemberships,
    role: Role,
    actor: str,
    team_id: str,
) -> None:
    if role is not Role.ADMIN:
        raise AdminRequired()
    words = parsed.words
    verb = words[0].lower() if words else ""
    if verb == "":
        message = roles_message(await store.roles.mappings())
        await ack(response_type="ephemeral", **message.as_dict())
        return
    usage = _usage(verb, words)
    if usage:
        await ack(**_text(usage))
        return
    await ack()
    work = _change_role(
        verb,
        words,
        client=client,
        store=store,
        memberships=memberships,
        actor=actor,
        team_id=team_id,
    )
    after_ack(_reply(work, respond), respond=respond)


def _usage(verb: str, words: list[str]) -> str | None:
    """What is wrong with the sub-command's words, if anything (before any look-up)."""
    expected = {"grant": 3, "revoke": 2, "group": 3, "ungroup": 2}
    if verb not in expected:
        return (
            f"Try `{COMMAND} roles`, `roles grant @user admin|specialist`, `roles revoke @user`,"
            " `roles group @group admin|specialist` or `roles ungroup @group`."
        )
    if len(words) != expected[verb]:
        shape = {
            "grant": "roles grant @user admin|specialist",
            "revoke": "roles revoke @user",
            "group": "roles group @group admin|specialist",
            "ungroup": "roles ungroup @group",
        }[verb]
        return f"Use `{COMMAND} {shape}`."
    target = words[1]
    if verb in ("grant", "revoke") and user_id_of(target) is None:
        return MENTION_HINT.format(what="person")
    if verb in ("group", "ungroup") and group_id_of(target) is None:
        return MENTION_HINT.format(what="user group")
    if len(words) == 3 and words[2].lower() not in ROLE_WORDS:
        return "The role is `admin` or `specialist`."
    return None


async def _reply(work: Any, respond: AsyncRespond) -> None:
    text = await work
    await respond(**_text(text))


async def _change_role(
    verb: str,
    words: list[str],
    *,
    client: AsyncWebClient,
    store: Store,
    memberships: GroupMemberships,
    actor: str,
    team_id: str,
) -> str:
    try:
        if verb in ("grant", "revoke"):
            user_id = user_id_of(words[1]) or ""
            if verb == "grant":
                problem = await _why_no_role(client, store, user_id, team_id)
                if problem:
                    return problem
                role = role_from_name(words[2].lower())
                await store.roles.grant_user(
                    actor=actor,
                    user_id=user_id,
                    role=role,
                    group_members=memberships.members_by_group(),
                )
                return f"{mention(user_id)} is now an {role.label}."
            previous = await store.roles.revoke_user(
                actor=actor, user_id=user_id, group_members=memberships.members_by_group()
            )
            remaining = await store.roles.sources(
                user_id=user_id, group_ids=memberships.groups_of(user_id)
            )
            head = (
                f"{mention(user_id)} had no direct role."
                if previous is None
                else f"{mention(user_id)} is no longer an {previous.label} directly."
            )
            return head + _remaining(remaining)
        group_id = group_id_of(words[1]) or ""
        if verb == "group":
            problem = await _why_no_group(client, group_id)
            if problem:
                return problem
            role = role_from_name(words[2].lower())
            await store.roles.grant_group(
                actor=actor,
                group_id=group_id,
                role=role,
                group_members=memberships.members_by_group(),
            )
            memberships.invalidate(group_id)
            return f"Members of <!subteam^{group_id}> are now {role.label}s."
        previous = await store.roles.revoke_group(
            actor=actor, group_id=group_id, group_members=memberships.members_by_group()
        )
        memberships.invalidate(group_id)
        if previous is None:
            return f"<!subteam^{group_id}> had no role."
        return f"Members of <!subteam^{group_id}> are no longer {previous.label}s through it."
    except RoleChangeRefused as refused:
        return f"Not changed: {refused}"


def _remaining(sources: list[RoleSource]) -> str:
    if not sources:
        return " They hold no role now."
    described = [
        f"{source.role.label} through <!subteam^{source.group_id}>"
        if source.kind == "group"
        else f"{source.role.label} ({source.kind})"
        for source in sources
    ]
    return " They are still: " + "; ".join(described) + "."


NO_ROLE_BECAUSE = {
    SlackStatus.BOT: "Bots cannot hold a role.",
    SlackStatus.GUEST: "Guests cannot hold a role.",
    SlackStatus.DEACTIVATED: "That person has left the workspace.",
    SlackStatus.OTHER_ORGANISATION: "People from another organisation cannot hold a role.",
    SlackStatus.UNKNOWN_TO_SLACK: "Slack does not know that person.",
}
SLACK_DID_NOT_CONFIRM = "Slack did not confirm that {what}; nothing was changed. Please try again."


async def _why_no_role(
    client: AsyncWebClient, store: Store, user_id: str, team_id: str
) -> str | None:
    """Bots, guests, people who left and people of another organisation hold no role. What
    Slack said is kept, so that the role check knows it too."""
    try:
        learned = await look_up_status(
            client, user_id, team_id=team_id or None, asked_at=wall_time(time.time())
        )
    except (SlackApiError, SlackClientError, OSError, TimeoutError):
        return SLACK_DID_NOT_CONFIRM.format(what="person")
    await store.roles.record_statuses(statuses=[learned])
    return NO_ROLE_BECAUSE.get(learned.status)


async def _why_no_group(client: AsyncWebClient, group_id: str) -> str | None:
    """A group Slack does not know gets no role: its mapping would only look like one."""
    try:
        await client.usergroups_users_list(usergroup=group_id)
    except SlackApiError as error:
        if error.response.get("error") == "no_such_subteam":
            return "Slack does not know that user group; nothing was changed."
        return SLACK_DID_NOT_CONFIRM.format(what="user group")
    except (SlackClientError, OSError, TimeoutError):
        return SLACK_DID_NOT_CONFIRM.format(what="user group")
    return None


# API access -----------------------------------------------------------------------------


async def access_command(parsed: ParsedCommand, *, ack: AsyncAck, store: Store, actor: str) -> None:
    words = [word.lower() for word in parsed.words]
    if words == ["on"]:
        changed = await store.tokens.set_api_access(actor=actor, enabled=True)
        text = "API access is on: enabled tokens pass the auth check."
        await ack(**_text(text if changed else "API access was already on."))
    elif words == ["off"]:
        if not store.tokens.api_access:
            await ack(**_text("API access is already off."))
        else:
            await ack(response_type="ephemeral", **access_off_confirmation().as_dict())
    else:
        state = "on" if store.tokens.api_access else "off"
        await ack(**_text(f"API access is {state}. Use `{COMMAND} access on` or `access off`."))


async def access_off_confirmed(
    ack: AsyncAck, respond: AsyncRespond, store: Store, actor: str
) -> None:
    await ack()

    async def turn_off() -> None:
        await store.tokens.set_api_access(actor=actor, enabled=False)
        await respond(
            replace_original=True,
            **_text(
                ":no_entry: API access is off. Every token now fails the auth check;"
                f" `{COMMAND} access on` turns it back on."
            ),
        )

    after_ack(turn_off(), respond=respond)


async def access_off_cancelled(ack: AsyncAck, respond: AsyncRespond) -> None:
    await ack()
    after_ack(respond(delete_original=True), respond=respond)


# The audit log --------------------------------------------------------------------------


async def audit_page(store: Store, *, name: str, offset: int) -> Message:
    events = await store.audit.events(
        token_name=name or None, offset=offset, limit=AUDIT_PAGE_SIZE + 1
    )
    return audit_message(
        events[:AUDIT_PAGE_SIZE],
        name=name,
        offset=offset,
        has_more=len(events) > AUDIT_PAGE_SIZE,
    )


async def audit_command(parsed: ParsedCommand, *, ack: AsyncAck, store: Store) -> None:
    message = await audit_page(store, name=parsed.rest[:100], offset=0)
    await ack(response_type="ephemeral", **message.as_dict())


async def audit_paged(
    ack: AsyncAck, action: dict[str, Any], respond: AsyncRespond, store: Store
) -> None:
    await ack()
    value = action.get("value")
    offset_text, _, name_text = value.partition(":") if isinstance(value, str) else ("", "", "")
    offset, name = small_number(offset_text), plain_text(name_text, 100)
    if offset is None:
        return
    if has_secret_part(name):
        name = ""
    step = AUDIT_PAGE_SIZE if action.get("action_id") == ActionId.AUDIT_NEXT else -AUDIT_PAGE_SIZE
    offset = min(max(0, offset + step), 1_000_000)

    async def show() -> None:
        message = await audit_page(store, name=name, offset=offset)
        await respond(replace_original=True, response_type="ephemeral", **message.as_dict())

    after_ack(show(), respond=respond)
