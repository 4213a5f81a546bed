"""Which Slack user groups a user belongs to, as far as Token Desk knows without waiting.

The role gate asks this on every request and must never wait on Slack, so the answer comes
from memory. Until group mappings arrive (issue #6) nobody is known to be in any group,
which means exactly what PRODUCT.md §1 asks for unknown membership: no role from a group.
"""

from __future__ import annotations

from typing import Protocol


class GroupMemberships(Protocol):
    def groups_of(self, user_id: str) -> frozenset[str]:
        """The groups `user_id` is known to be in right now; never waits."""
        ...

    def invalidate(self, group_id: str) -> None:
        """Slack said the group's members changed."""
        ...


class NoGroupMemberships:
    def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset()

    def invalidate(self, group_id: str) -> None:
        return None
