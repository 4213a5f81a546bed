"""Role mappings, users' last known Slack statuses, and the effective-role rules.

A user's effective role is the highest of the bootstrap list, a direct mapping and their
user groups' mappings; bots, guests, deactivated users and people of another organisation
hold none. Mappings and statuses are read from the database on every call, so a change made
from Slack or from the command line applies to the very next request. Group *membership* is
Slack's to know: the caller passes the groups it knows the user belongs to, and never asks
Slack on the way.

A user whose status is not known yet keeps a bootstrap or direct role: the operator or an
Account Administrator named them, and the status is learned within a minute (at grant time
from Slack, or by the background refresh). A role through a user group needs a known
status, because Slack's answer about the group is the only thing that vouches for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Literal

from storage import audit
from storage.errors import RoleChangeRefused
from storage.fields import is_group_id, is_user_id
from storage.models import Role, RoleMappings, RoleSource, SlackStatus, UserStatus
from storage.sql import Connection, Database, both

_ROLE_NAMES = {Role.ADMIN: "admin", Role.SPECIALIST: "specialist"}
_ROLES_BY_NAME = {name: role for role, name in _ROLE_NAMES.items()}
_TABLES = {"user": ("user_roles", "user_id"), "group": ("group_roles", "group_id")}
GroupMembers = Mapping[str, Collection[str]]
_NO_GROUP_MEMBERS: GroupMembers = {}

# The groups as a JSON array, not an `IN (?, …)` list: PostgreSQL refuses an empty list.
_SOURCES = both(
    sqlite="SELECT 'direct', role, NULL FROM user_roles WHERE user_id = ?1"
    " UNION ALL SELECT 'group', role, group_id FROM group_roles"
    " WHERE group_id IN (SELECT value FROM json_each(?2)) ORDER BY 1, 3",
    postgres="SELECT 'direct', role, NULL FROM user_roles WHERE user_id = $1"
    " UNION ALL SELECT 'group', role, group_id FROM group_roles"
    " WHERE group_id IN (SELECT value FROM jsonb_array_elements_text($2::jsonb)) ORDER BY 1, 3",
)
_ROLES_OF_USERS = both(
    sqlite="SELECT 'status', user_id, status FROM user_statuses"
    " WHERE user_id IN (SELECT value FROM json_each(?1))"
    " UNION ALL SELECT 'direct', user_id, role FROM user_roles"
    " WHERE user_id IN (SELECT value FROM json_each(?1))"
    " UNION ALL SELECT 'group', group_id, role FROM group_roles"
    " WHERE group_id IN (SELECT value FROM json_each(?2))",
    postgres="SELECT 'status', user_id, status FROM user_statuses"
    " WHERE user_id IN (SELECT value FROM jsonb_array_elements_text($1::jsonb))"
    " UNION ALL SELECT 'direct', user_id, role FROM user_roles"
    " WHERE user_id IN (SELECT value FROM jsonb_array_elements_text($1::jsonb))"
    " UNION ALL SELECT 'group', group_id, role FROM group_roles"
    " WHERE group_id IN (SELECT value FROM jsonb_array_elements_text($2::jsonb))",
)
_STATUSES_OF_USERS = both(
    sqlite="SELECT user_id, status, learned_at FROM user_statuses"
    " WHERE user_id IN (SELECT value FROM json_each(?))",
    postgres="SELECT user_id, status, learned_at FROM user_statuses"
    " WHERE user_id IN (SELECT value FROM jsonb_array_elements_text($1::jsonb))",
)
_STATUS_OF_USERS = both(
    sqlite="SELECT user_id, status FROM user_statuses"
    " WHERE user_id IN (SELECT value FROM json_each(?))",
    postgres="SELECT user_id, status FROM user_statuses"
    " WHERE user_id IN (SELECT value FROM jsonb_array_elements_text($1::jsonb))",
)


def role_from_name(name: str) -> Role:
    return _ROLES_BY_NAME[name]


class Roles:
    def __init__(
        self, database: Database, *, admins: Collection[str], clock: Callable[[], float]
    ) -> None:
        self._database = database
        self._admins = frozenset(admins)
        self._clock = clock

    async def sources(self, *, user_id: str, group_ids: Iterable[str] = ()) -> list[RoleSource]:
        """Every place a role of `user_id` comes from (bootstrap, direct, their groups) that
        counts given their last known Slack status; none for a guest, a bot and the like."""
        status = await self.status_of(user_id=user_id)
        if status is not None and not status.may_hold_a_role:
            return []
        found = [RoleSource("bootstrap", Role.ADMIN)] if user_id in self._admins else []
        # A group's word about someone counts only once Slack said who they are.
        groups = sorted(set(group_ids)) if status is not None else []
        rows = await self._database.fetch_all(_SOURCES, (user_id, json.dumps(groups)))
        found += [RoleSource(kind, role_from_name(role), group) for kind, role, group in rows]
        return found

    async def effective_role(self, *, user_id: str, group_ids: Iterable[str] = ()) -> Role | None:
        """The highest role held from any source that counts; None for everyone else. One
        read, as `effective_roles` makes it: the role gate asks this of every request."""
        roles = await self.effective_roles(groups_by_user={user_id: list(group_ids)})
        return roles[user_id]

    async def effective_roles(
        self, *, groups_by_user: Mapping[str, Iterable[str]]
    ) -> dict[str, Role | None]:
        """`effective_role` of each user in `groups_by_user` (each with the groups the
        caller knows they belong to), read in one query: the same rules, for a scheduler
        pass that asks about dozens of people at once."""
        users = sorted(groups_by_user)
        groups = sorted({group for ids in groups_by_user.values() for group in ids})
        rows = await self._database.fetch_all(
            _ROLES_OF_USERS, (json.dumps(users), json.dumps(groups))
        )
        statuses: dict[str, SlackStatus] = {}
        direct: dict[str, Role] = {}
        by_group: dict[str, Role] = {}
        for kind, subject, value in rows:
            if kind == "status":
                statuses[subject] = SlackStatus(value)
            else:
                (direct if kind == "direct" else by_group)[subject] = role_from_name(value)
        roles: dict[str, Role | None] = {}
        for user in users:
            status = statuses.get(user)
            if status is not None and not status.may_hold_a_role:
                roles[user] = None
                continue
            held = [Role.ADMIN] if user in self._admins else []
            if user in direct:
                held.append(direct[user])
            # A group's word about someone counts only once Slack said who they are.
            if status is not None:
                held += [by_group[group] for group in groups_by_user[user] if group in by_group]
            roles[user] = max(held, default=None)
        return roles

    async def status_of(self, *, user_id: str) -> SlackStatus | None:
        """The user's last known Slack status, however old; None when never learned."""
        row = await self._database.fetch_one(
            "SELECT status FROM user_statuses WHERE user_id = ?", (user_id,)
        )
        return None if row is None else SlackStatus(row[0])

    async def statuses(self, *, user_ids: Iterable[str]) -> dict[str, UserStatus]:
        """The last known statuses of those of `user_ids` that have one."""
        rows = await self._database.fetch_all(
            _STATUSES_OF_USERS, (json.dumps(sorted(set(user_ids))),)
        )
        return {
            user: UserStatus(user, SlackStatus(status), datetime.fromtimestamp(learned_at, UTC))
            for user, status, learned_at in rows
        }

    async def record_statuses(self, *, statuses: Iterable[UserStatus]) -> None:
        """Keep what Slack said; a status learned earlier than the one kept is dropped, so
        a slow answer never overwrites a newer one (say, from a `user_change` event). One
        kept with a time still to come (the clock was set back) never blocks a new one."""
        now = self._clock()
        rows = [
            (known.user_id, known.status.value, known.learned_at.timestamp(), now)
            for known in statuses
        ]
        if not rows:
            return

        async def write(connection: Connection) -> None:
            await connection.executemany(
                "INSERT INTO user_statuses (user_id, status, learned_at) VALUES (?1, ?2, ?3)"
                " ON CONFLICT (user_id) DO UPDATE SET status = excluded.status,"
                " learned_at = excluded.learned_at"
                " WHERE excluded.learned_at >= user_statuses.learned_at"
                " OR user_statuses.learned_at > ?4",
                rows,
            )

        await self._database.transact(write, after_commit=lambda _: None)

    async def mappings(self) -> RoleMappings:
        users = await self._database.fetch_all("SELECT user_id, role FROM user_roles ORDER BY 1")
        groups = await self._database.fetch_all("SELECT group_id, role FROM group_roles ORDER BY 1")
        return RoleMappings(
            bootstrap_admins=tuple(sorted(self._admins)),
            users=tuple((user, role_from_name(role)) for user, role in users),
            groups=tuple((group, role_from_name(role)) for group, role in groups),
        )

    # `group_members`: for each mapped group, the members Slack confirmed, as the caller
    # knows them now. Only those, and direct admins, count as an Account Administrator who
    # remains; a group left out counts as empty.

    async def grant_user(
        self,
        *,
        actor: str,
        user_id: str,
        role: Role,
        group_members: GroupMembers = _NO_GROUP_MEMBERS,
    ) -> Role | None:
        """Map `user_id` to `role`; returns the role they were mapped to before."""
        if not is_user_id(user_id):
            raise RoleChangeRefused("that is not a Slack user ID")
        self._refuse_bootstrap(user_id)
        return await self._set(
            "user", actor=actor, subject=user_id, role=role, group_members=group_members
        )

    async def revoke_user(
        self, *, actor: str, user_id: str, group_members: GroupMembers = _NO_GROUP_MEMBERS
    ) -> Role | None:
        """Remove the direct mapping of `user_id`; returns the role it held, if any."""
        self._refuse_bootstrap(user_id)
        return await self._set(
            "user", actor=actor, subject=user_id, role=None, group_members=group_members
        )

    async def grant_group(
        self,
        *,
        actor: str,
        group_id: str,
        role: Role,
        group_members: GroupMembers = _NO_GROUP_MEMBERS,
    ) -> Role | None:
        if not is_group_id(group_id):
            raise RoleChangeRefused("that is not a Slack user group ID")
        return await self._set(
            "group", actor=actor, subject=group_id, role=role, group_members=group_members
        )

    async def revoke_group(
        self, *, actor: str, group_id: str, group_members: GroupMembers = _NO_GROUP_MEMBERS
    ) -> Role | None:
        return await self._set(
            "group", actor=actor, subject=group_id, role=None, group_members=group_members
        )

    def _refuse_bootstrap(self, user_id: str) -> None:
        if user_id in self._admins:
            raise RoleChangeRefused(
                "that user is an Account Administrator through TOKENDESK_ADMINS,"
                " which only the people who run Token Desk can change"
            )

    async def _set(
        self,
        kind: Literal["user", "group"],
        *,
        actor: str,
        subject: str,
        role: Role | None,
        group_members: GroupMembers,
    ) -> Role | None:
        table, column = _TABLES[kind]
        now = int(self._clock())

        async def write(connection: Connection) -> Role | None:
            async with connection.execute(
                f"SELECT role FROM {table} WHERE {column} = ?", (subject,)
            ) as cursor:
                row = await cursor.fetchone()
            previous = None if row is None else role_from_name(row[0])
            if previous == role:
                return previous
            if role is None:
                await connection.execute(f"DELETE FROM {table} WHERE {column} = ?", (subject,))
            else:
                # One text per table: PostgreSQL needs the conflict target.
                await connection.execute(
                    both(
                        sqlite=f"INSERT INTO {table} ({column}, role, granted_by, granted_at)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET role = excluded.role,"
                        " granted_by = excluded.granted_by, granted_at = excluded.granted_at",
                        postgres=f"INSERT INTO {table} ({column}, role, granted_by, granted_at)"
                        f" VALUES ($1, $2, $3, $4) ON CONFLICT ({column}) DO UPDATE"
                        " SET role = excluded.role, granted_by = excluded.granted_by,"
                        " granted_at = excluded.granted_at",
                    ),
                    (subject, _ROLE_NAMES[role], actor, now),
                )
            if previous is Role.ADMIN and not self._admins:
                await _refuse_if_no_admin_left(connection, group_members)
            await audit.append(
                connection,
                at=now,
                actor=actor,
                action=f"role.{kind}",
                before={column: subject, "role": previous and _ROLE_NAMES[previous]},
                after={column: subject, "role": role and _ROLE_NAMES[role]},
            )
            return previous

        return await self._database.transact(write, after_commit=lambda _: None)


async def _refuse_if_no_admin_left(connection: Connection, group_members: GroupMembers) -> None:
    """Checked inside the transaction that removes an admin mapping, which then rolls back.

    Someone remains only if they would pass the role check as an Account Administrator:
    a direct admin whose status allows a role (or is not known yet), or a confirmed member
    of a group still mapped to admin whose known status allows one. A mapping alone, of a
    group that is empty, unknown to Slack or whose members are not known, keeps nobody."""
    async with connection.execute("SELECT user_id FROM user_roles WHERE role = 'admin'") as cursor:
        direct = {row[0] for row in await cursor.fetchall()}
    async with connection.execute(
        "SELECT group_id FROM group_roles WHERE role = 'admin'"
    ) as cursor:
        groups = [row[0] for row in await cursor.fetchall()]
    through_groups = {member for group in groups for member in group_members.get(group, ())}
    async with connection.execute(
        _STATUS_OF_USERS, (json.dumps(sorted(direct | through_groups)),)
    ) as cursor:
        statuses = {user: SlackStatus(status) for user, status in await cursor.fetchall()}

    def would_be_admin(user: str) -> bool:
        status = statuses.get(user)
        if status is None:
            return user in direct
        return status.may_hold_a_role

    remains = any(would_be_admin(user) for user in direct | through_groups)
    if not remains:
        raise RoleChangeRefused(
            "that would leave no Account Administrator; grant the role to someone else first"
        )
