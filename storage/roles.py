"""Role mappings and the effective-role rules of PRODUCT.md §1.

Mappings are read from the database on every call, so a change made from Slack or from the
command line applies to the very next request. Group *membership* is Slack's to know: the
caller passes the groups it knows the user belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Literal

import aiosqlite

from storage import audit
from storage.database import Database
from storage.errors import RoleChangeRefused
from storage.fields import is_group_id, is_user_id
from storage.models import Role, RoleMappings, RoleSource

_ROLE_NAMES = {Role.ADMIN: "admin", Role.SPECIALIST: "specialist"}
_ROLES_BY_NAME = {name: role for role, name in _ROLE_NAMES.items()}
_TABLES = {"user": ("user_roles", "user_id"), "group": ("group_roles", "group_id")}


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
        """Every place a role of `user_id` comes from: bootstrap, direct, their groups."""
        found = [RoleSource("bootstrap", Role.ADMIN)] if user_id in self._admins else []
        groups = sorted(set(group_ids))
        rows = await self._database.fetch_all(
            "SELECT 'direct', role, NULL FROM user_roles WHERE user_id = ?"
            " UNION ALL SELECT 'group', role, group_id FROM group_roles"
            f" WHERE group_id IN ({', '.join('?' * len(groups))}) ORDER BY 1, 3",
            (user_id, *groups),
        )
        found += [RoleSource(kind, role_from_name(role), group) for kind, role, group in rows]
        return found

    async def effective_role(self, *, user_id: str, group_ids: Iterable[str] = ()) -> Role | None:
        """The highest role held from any source; None for everyone else."""
        sources = await self.sources(user_id=user_id, group_ids=group_ids)
        return max((source.role for source in sources), default=None)

    async def mappings(self) -> RoleMappings:
        users = await self._database.fetch_all("SELECT user_id, role FROM user_roles ORDER BY 1")
        groups = await self._database.fetch_all("SELECT group_id, role FROM group_roles ORDER BY 1")
        return RoleMappings(
            bootstrap_admins=tuple(sorted(self._admins)),
            users=tuple((user, role_from_name(role)) for user, role in users),
            groups=tuple((group, role_from_name(role)) for group, role in groups),
        )

    async def grant_user(self, *, actor: str, user_id: str, role: Role) -> Role | None:
        """Map `user_id` to `role`; returns the role they were mapped to before."""
        if not is_user_id(user_id):
            raise RoleChangeRefused("that is not a Slack user ID")
        self._refuse_bootstrap(user_id)
        return await self._set("user", actor=actor, subject=user_id, role=role)

    async def revoke_user(self, *, actor: str, user_id: str) -> Role | None:
        """Remove the direct mapping of `user_id`; returns the role it held, if any."""
        self._refuse_bootstrap(user_id)
        return await self._set("user", actor=actor, subject=user_id, role=None)

    async def grant_group(self, *, actor: str, group_id: str, role: Role) -> Role | None:
        if not is_group_id(group_id):
            raise RoleChangeRefused("that is not a Slack user group ID")
        return await self._set("group", actor=actor, subject=group_id, role=role)

    async def revoke_group(self, *, actor: str, group_id: str) -> Role | None:
        return await self._set("group", actor=actor, subject=group_id, role=None)

    def _refuse_bootstrap(self, user_id: str) -> None:
        if user_id in self._admins:
            raise RoleChangeRefused(
                "that user is an Account Administrator through TOKENDESK_ADMINS,"
                " which only the people who run Token Desk can change"
            )

    async def _set(
        self, kind: Literal["user", "group"], *, actor: str, subject: str, role: Role | None
    ) -> Role | None:
        table, column = _TABLES[kind]
        now = int(self._clock())

        async def write(connection: aiosqlite.Connection) -> Role | None:
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
                await connection.execute(
                    f"INSERT INTO {table} ({column}, role, granted_by, granted_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET role = excluded.role,"
                    " granted_by = excluded.granted_by, granted_at = excluded.granted_at",
                    (subject, _ROLE_NAMES[role], actor, now),
                )
            if previous is Role.ADMIN and not self._admins:
                await _refuse_if_no_admin_left(connection)
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


async def _refuse_if_no_admin_left(connection: aiosqlite.Connection) -> None:
    """Checked inside the transaction that removes an admin mapping, which then rolls back."""
    async with connection.execute(
        "SELECT (SELECT count(*) FROM user_roles WHERE role = 'admin')"
        " + (SELECT count(*) FROM group_roles WHERE role = 'admin')"
    ) as cursor:
        row = await cursor.fetchone()
    if row is None or row[0] == 0:
        raise RoleChangeRefused(
            "that would leave no Account Administrator; grant the role to someone else first"
        )
