"""The account's settings: the API-access switch, off until someone turns it on.

While it is off every token fails the auth check. The check reads it from memory, so the
value in memory is changed only from the `after_commit` of the transaction that writes it:
turning API access off takes effect for the very next check.
"""

from __future__ import annotations

from collections.abc import Callable

from storage import audit
from storage.sql import Connection, Database

API_ACCESS_SETTING = "api_access"


class AccountSettings:
    def __init__(self, database: Database, *, clock: Callable[[], float]) -> None:
        self._database = database
        self._clock = clock
        self._api_access = False

    async def load(self) -> None:
        """Read the settings from the database (once, when the store opens)."""
        setting = await self._database.fetch_one(
            "SELECT value FROM settings WHERE key = ?", (API_ACCESS_SETTING,)
        )
        self.take(None if setting is None else setting[0])

    def take(self, api_access: str | None) -> None:
        """Take the API-access setting as committed (`on`, `off`, None when never set)."""
        self._api_access = api_access == "on"

    @property
    def api_access(self) -> bool:
        return self._api_access

    async def set_api_access(self, *, actor: str, enabled: bool) -> bool:
        """Turn account API access on or off; whether anything changed."""
        value = "on" if enabled else "off"

        async def write(connection: Connection) -> bool:
            # Read under the write lock: of two clicks at once, the second sees the first's
            # change and neither writes nor audits it again.
            async with connection.execute(
                "SELECT value FROM settings WHERE key = ?", (API_ACCESS_SETTING,)
            ) as cursor:
                current = await cursor.fetchone()
            if (current is not None and current[0] == "on") == enabled:
                return False
            await connection.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (API_ACCESS_SETTING, value),
            )
            await audit.append(
                connection,
                at=int(self._clock()),
                actor=actor,
                action="api_access",
                before={"api_access": "off" if enabled else "on"},
                after={"api_access": value},
            )
            return True

        def apply(_: bool) -> None:
            self._api_access = enabled

        return await self._database.transact(write, after_commit=apply)
