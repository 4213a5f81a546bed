"""Domain values for the pure builder tests: a token with every field set, and hostile text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from storage.models import Token

WHEN = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
# A name that would ping, link and format if it reached mrkdwn unescaped.
HOSTILE = "<!channel> & <@U1> <https://evil.example|click> *bold*"


def token(number: int = 1, **overrides: Any) -> Token:
    fields: dict[str, Any] = {
        "id": number,
        "sid": f"TD{number:020d}",
        "name": f"Token {number}",
        "description": "",
        "enabled": True,
        "api_version": "v3",
        "access_rights": ("reports:read",),
        "primary_contact": "UCONTACT1",
        "secret_hint": "Ab9Z",
        "created_at": WHEN,
        "created_by": "UCREATOR1",
        "updated_at": WHEN,
        "updated_by": "UCREATOR1",
        "reset_at": None,
        "last_used_at": None,
        "row_version": 3,
        "expires_on": None,
        "last_active_at": WHEN,
        "disabled_reason": None,
    }
    return Token(**(fields | overrides))
