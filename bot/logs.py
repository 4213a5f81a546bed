"""The logging policy: no secret in a log line at any level.

Slack's libraries log whole request and response bodies at DEBUG, so their loggers stay at
INFO whatever the configured level; and a filter on every handler masks anything shaped like
a secret, a Slack token, an Authorization credential (a Basic one hides its secret in base64)
or a `response_url`, in messages and tracebacks alike.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

CAPPED_LOGGERS = ("slack_bolt", "slack_sdk", "aiohttp.access", "aiosqlite")
_MASKS = (
    (re.compile(r"tdk_[0-9A-Za-z]{4,}"), "tdk_[masked]"),
    (re.compile(r"\b(Basic|Bearer)\s+[0-9A-Za-z+/=._~-]{8,}", re.IGNORECASE), r"\1 [masked]"),
    (re.compile(r"\bx(?:ox[a-z]|app)-[0-9A-Za-z-]+"), "[masked Slack token]"),
    (re.compile(r"https?://hooks\.slack(?:-gov)?\.com/\S+"), "[masked response_url]"),
    (re.compile(r"(response_url[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"), r"\1[masked]"),
)


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


class MaskingFilter(logging.Filter):
    """Renders the record's message and traceback, masked, before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def configure_logging(level: str, *, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for existing in root.handlers:
        existing.addFilter(MaskingFilter())
    numeric = logging.getLevelName(level)
    for name in CAPPED_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))
