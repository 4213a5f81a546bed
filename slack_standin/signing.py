"""Slack's v0 request signature, as Slack signs what it posts to an app's request URL."""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

Signing = Literal["valid", "bad", "stale", "none"]
STALE_BY = 10 * 60  # Bolt refuses timestamps more than 5 minutes off


def signed_headers(
    secret: str, body: bytes, *, timestamp: int, signing: Signing = "valid"
) -> dict[str, str]:
    """Slack's v0 request signature headers; the other `signing` values fail verification."""
    if signing == "none":
        return {}
    if signing == "stale":
        timestamp -= STALE_BY
    if signing == "bad":
        secret = secret + "-wrong"
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}
