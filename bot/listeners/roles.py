"""`/tokens roles …`: who holds which role, and granting or revoking one (Account
Administrators only).

A grant looks the person or the group up with Slack first (no role for bots, guests, people
who left or people of another organisation; no mapping for a group Slack does not know), so
every change answers after the ack. Every change is told to the alerts channel, if there is
one (bot/alerts.py).
"""

from __future__ import annotations

import time

from slack_sdk.web.async_client import AsyncWebClient

from bot import alerts
from bot.background import after_ack
from bot.blocks import administration as replies
from bot.errors import AdminRequired
from bot.inputs.command_text import RoleGrant, RoleRevoke, RolesProblem, role_change
from bot.listeners.subcommand import SubCommand
from bot.slack_client import SLACK_FAILURES, group_exists
from bot.user_status import look_up_status, wall_time
from storage.errors import RoleChangeRefused
from storage.models import Role
from storage.store import Store


async def roles_command(command: SubCommand) -> None:
    if command.role is not Role.ADMIN:
        raise AdminRequired()
    words = command.parsed.words
    if not words:
        message = replies.roles_message(await command.store.roles.mappings())
        await command.reply(**message.as_dict())
        return
    change = role_change(words)
    if isinstance(change, RolesProblem):
        await command.reply(text=replies.roles_usage(change, words[0].lower()))
        return
    await command.ack()

    async def apply_and_reply() -> None:
        try:
            if isinstance(change, RoleGrant):
                text = await _grant(change, command)
            else:
                text = await _revoke(change, command)
        except RoleChangeRefused as refused:
            text = replies.role_change_refused(str(refused))
        await command.respond(response_type="ephemeral", text=text)

    after_ack(apply_and_reply(), respond=command.respond)


async def _grant(grant: RoleGrant, command: SubCommand) -> str:
    store, memberships, actor = command.store, command.memberships, command.actor
    if not grant.group:
        problem = await _why_no_role(command.client, store, grant.target, command.team_id)
        if problem:
            return problem
        previous = await store.roles.grant_user(
            actor=actor,
            user_id=grant.target,
            role=grant.role,
            group_members=memberships.members_by_group(),
        )
        _alert(command, grant.target, group=False, before=previous, after=grant.role)
        command.home.publish_soon(grant.target)
        return replies.user_granted(grant.target, grant.role)
    known = await group_exists(command.client, grant.target)
    if not known:
        return (
            replies.GROUP_UNKNOWN if known is False else replies.slack_did_not_confirm("user group")
        )
    previous = await store.roles.grant_group(
        actor=actor,
        group_id=grant.target,
        role=grant.role,
        group_members=memberships.members_by_group(),
    )
    memberships.invalidate(grant.target)
    _alert(command, grant.target, group=True, before=previous, after=grant.role)
    return replies.group_granted(grant.target, grant.role)


async def _revoke(revoke: RoleRevoke, command: SubCommand) -> str:
    store, memberships, actor = command.store, command.memberships, command.actor
    if not revoke.group:
        user_id = revoke.target
        previous = await store.roles.revoke_user(
            actor=actor, user_id=user_id, group_members=memberships.members_by_group()
        )
        _alert(command, user_id, group=False, before=previous, after=None)
        # Their Home shows token data no more (unless a group still gives them a role).
        command.home.publish_soon(user_id)
        groups = memberships.groups_of(user_id)
        remaining = await store.roles.sources(user_id=user_id, group_ids=groups)
        return replies.user_revoked(user_id, previous, remaining)
    previous = await store.roles.revoke_group(
        actor=actor, group_id=revoke.target, group_members=memberships.members_by_group()
    )
    memberships.invalidate(revoke.target)
    _alert(command, revoke.target, group=True, before=previous, after=None)
    return replies.group_revoked(revoke.target, previous)


def _alert(
    command: SubCommand, subject: str, *, group: bool, before: Role | None, after: Role | None
) -> None:
    """Tell the alerts channel of the change, without delaying the reply."""
    alert = alerts.role_changed(
        command.client,
        command.settings,
        actor=command.actor,
        subject=subject,
        group=group,
        before=before,
        after=after,
    )
    after_ack(alert, respond=None)


async def _why_no_role(
    client: AsyncWebClient, store: Store, user_id: str, team_id: str
) -> str | None:
    """Bots, guests, people who left and people of another organisation hold no role. What
    Slack said is kept, so that the role check knows it too."""
    try:
        learned = await look_up_status(
            client, user_id, team_id=team_id or None, asked_at=wall_time(time.time())
        )
    except SLACK_FAILURES:
        return replies.slack_did_not_confirm("person")
    await store.roles.record_statuses(statuses=[learned])
    return replies.NO_ROLE_BECAUSE.get(learned.status)
