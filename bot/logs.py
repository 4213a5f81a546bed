"""The logging policy: no secret in a log line at any level.

Slack's libraries log whole request and response bodies at DEBUG, so their loggers stay at
INFO whatever the configured level; and a filter on every handler masks anything shaped like
a secret, a Slack token, an Authorization credential (a Basic one hides its secret in base64)
or a `response_url`, in messages, tracebacks and the fields a record carries through `extra=`
alike. Lines are text, or one JSON object each (TOKENDESK_LOG_FORMAT=json), masked the same.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from typing import Any, Literal, TextIO

CAPPED_LOGGERS = ("slack_bolt", "slack_sdk", "aiohttp.access", "aiosqlite")
_MASKS = (
    (re.compile(r"tdk_[0-9A-Za-z]{4,}"), "tdk_[masked]"),
    (re.compile(r"\b(Basic|Bearer)\s+[0-9A-Za-z+/=._~-]{8,}", re.IGNORECASE), r"\1 [masked]"),
    (re.compile(r"\bx(?:ox[a-z]|app)-[0-9A-Za-z-]+"), "[masked Slack token]"),
    (re.compile(r"https?://hooks\.slack(?:-gov)?\.com/\S+"), "[masked response_url]"),
    (re.compile(r"(response_url[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"), r"\1[masked]"),
)
# What every record has; anything else on a record came through `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, None, None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_FIELD_DEPTH = 8
# The reference bot/errors.py logs beside an unexpected error's traceback.
_REFERENCE = re.compile(r"\bref ([0-9A-F]{6})\b")


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _masked_field(value: Any, depth: int = 0) -> Any:
    """`value` made JSON-safe and masked: strings masked, containers walked, anything else
    `repr`'d then masked."""
    if isinstance(value, str):
        return mask(value)
    if (
        value is None
        or isinstance(value, int)
        or (isinstance(value, float) and math.isfinite(value))
    ):
        return value
    # The depth bound keeps a container that holds itself from recursing without end.
    if isinstance(value, list | tuple) and depth < _FIELD_DEPTH:
        return [_masked_field(item, depth + 1) for item in value]
    if isinstance(value, dict) and depth < _FIELD_DEPTH:
        return {mask(str(key)): _masked_field(item, depth + 1) for key, item in value.items()}
    # A filter that raises fails the caller's logging call, not just the line.
    try:
        return mask(repr(value))
    except Exception:
        return f"<{type(value).__name__}>"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields the record carries through `extra=`."""
    return {name: value for name, value in vars(record).items() if name not in _RECORD_ATTRIBUTES}


class MaskingFilter(logging.Filter):
    """Renders the record's message, traceback and `extra=` fields, masked, before any handler
    formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        for name, value in extra_fields(record).items():
            setattr(record, name, _masked_field(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and, when there are any,
    ref, exception, stack and fields. It writes what MaskingFilter left on the record."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        if reference := _REFERENCE.search(message):
            line["ref"] = reference.group(1)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        if fields := extra_fields(record):
            line["fields"] = fields
        # ASCII only: no character in a line that some reader takes for a line break.
        return json.dumps(line)


def configure_logging(
    level: str, *, stream: TextIO | None = None, log_format: Literal["text", "json"] = "text"
) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for existing in root.handlers:
        existing.addFilter(MaskingFilter())
    numeric = logging.getLevelName(level)
    for name in CAPPED_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))
