"""The masking filter every handler carries."""

from __future__ import annotations

import base64
import io
import logging

from storage.credentials import generate_secret


def test_authorization_credentials_are_masked_basic_ones_included(
    captured_log: io.StringIO,
) -> None:
    secret = generate_secret()
    basic = base64.b64encode(f"SID0001:{secret}".encode()).decode()
    slack = "xoxb-1234-abcd"
    logger = logging.getLogger("aiohttp.server")
    logger.error("rejected: b'Authorization: Basic %s\\x01'", basic)
    logger.debug("rejected: Authorization: bearer %s", slack)
    written = captured_log.getvalue()
    assert "Basic [masked]" in written and "bearer [masked]" in written
    assert basic[:12] not in written and slack not in written and secret[4:] not in written
