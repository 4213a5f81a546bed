"""The options the app opens its store with, read from its settings.

Importing it costs no Slack Bolt nor aiohttp, so a child process can start fast with it.
"""

from __future__ import annotations

from typing import Any

from bot.settings import Settings
from storage.credentials import load_or_create_key


def app_store_options(settings: Settings) -> dict[str, Any]:
    """`Store.open`'s options as `python -m bot` sets them: the database, the secret key
    (configured, or the key file beside the database), the catalogs, the bootstrap admins,
    the maximum lifetime."""
    configured = settings.tokendesk_secret_key
    key = load_or_create_key(
        settings.tokendesk_db, configured.get_secret_value() if configured else None
    )
    return {
        "path": settings.tokendesk_db,
        "secret_key": key,
        "api_versions": settings.tokendesk_api_versions,
        "scopes": settings.tokendesk_scopes,
        "admins": settings.tokendesk_admins,
        "max_lifetime_days": settings.tokendesk_max_lifetime_days,
    }
