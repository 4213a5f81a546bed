"""The masking filter every handler carries, and the text and JSON line formats."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import ClientSession, web
from pydantic import ValidationError

from bot.errors import user_message
from bot.logs import CAPPED_LOGGERS, configure_logging
from bot.settings import Settings, describe
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


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The app's logging configuration at DEBUG in the JSON format, into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in CAPPED_LOGGERS}
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer, log_format="json")
    yield buffer
    root.handlers, root.level = saved[0], saved[1]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = buffer.getvalue().split("\n")
    assert lines[-1] == ""
    return [json.loads(line) for line in lines[:-1]]


async def serve_one_request(secret: str) -> None:
    """A real aiohttp server, access-logging into "aiohttp.access", answers one request that
    carries `secret` in its query string and its Authorization header."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access"),
        access_log_format='%a "%r" %s %{Authorization}i',
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with (
            ClientSession() as session,
            session.get(
                f"http://{host}:{port}/hello?token={secret}",
                headers={"Authorization": f"Bearer {secret}"},
            ) as response,
        ):
            assert response.status == 200
    finally:
        await runner.cleanup()


async def test_json_lines_are_masked_for_every_logger_field_and_level(
    json_log: io.StringIO,
) -> None:
    secret = generate_secret()
    slack = "xoxb-1234-5678-abcdefghij"
    hook = "https://hooks.slack.com/actions/T0001/1234/abcdEFGH"
    logging.getLogger("bot.auth_check").debug(
        "checked %s",
        secret,
        extra={
            "credential": secret,
            "payload": {"token": slack, "response_url": hook, "ids": (1, 2.5, None, True)},
            "raw": b"response_url=" + hook.encode(),
            "ratio": float("nan"),
        },
    )
    logging.getLogger("slack_sdk.web").debug("request body token=%s", slack)
    logging.getLogger("slack_sdk.web").info("calling chat.postMessage with %s", slack)
    try:
        raise RuntimeError(f"could not use {secret}, response_url={hook}")
    except RuntimeError as error:
        told = user_message(error)
    await serve_one_request(secret)

    lines = json_lines(json_log)
    written = json_log.getvalue()
    for leaked in (secret[4:], slack, hook, "abcdEFGH"):
        assert leaked not in written
    assert all(
        set(line) <= {"time", "level", "logger", "message", "ref", "exception", "fields"}
        and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
        for line in lines
    )
    by_logger = {line["logger"]: line for line in lines}
    # Slack's libraries stay at INFO: their DEBUG line is not written at all.
    assert [line["level"] for line in lines if line["logger"] == "slack_sdk.web"] == ["INFO"]
    assert by_logger["slack_sdk.web"]["message"] == (
        "calling chat.postMessage with [masked Slack token]"
    )

    checked = by_logger["bot.auth_check"]
    assert (checked["level"], checked["message"]) == ("DEBUG", "checked tdk_[masked]")
    assert "ref" not in checked and "exception" not in checked
    assert checked["fields"] == {
        "credential": "tdk_[masked]",
        "payload": {
            "token": "[masked Slack token]",
            "response_url": "[masked response_url]",
            "ids": [1, 2.5, None, True],
        },
        "raw": checked["fields"]["raw"],
        "ratio": "nan",
    }
    assert checked["fields"]["raw"].startswith("b'response_url=[masked]")

    failed = by_logger["bot.errors"]
    reference = re.search(r"\(ref ([0-9A-F]{6})\)", told)
    assert reference and failed["ref"] == reference.group(1)
    assert (failed["level"], failed["message"]) == (
        "ERROR",
        f"unexpected error, ref {failed['ref']}",
    )
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert (
        failed["exception"]
        .splitlines()[-1]
        .startswith("RuntimeError: could not use tdk_[masked], response_url=[masked]")
    )
    assert "fields" not in failed

    access = by_logger["aiohttp.access"]
    assert access["level"] == "INFO"
    assert '"GET /hello?token=tdk_[masked] HTTP/1.1" 200 Bearer tdk_[masked]' in access["message"]
    assert access["fields"]["request_header"] == {"Authorization": "Bearer tdk_[masked]"}
    assert access["fields"]["first_request_line"] == "GET /hello?token=tdk_[masked] HTTP/1.1"


def test_the_text_format_is_unchanged(captured_log: io.StringIO) -> None:
    secret = generate_secret()
    logger = logging.getLogger("bot.text")
    logger.warning("plain %s words", secret, extra={"credential": secret})
    try:
        raise ValueError(secret)
    except ValueError:
        logger.exception("failed")
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(
        rf"{stamp} WARNING bot\.text: plain tdk_\[masked\] words\n"
        rf"{stamp} ERROR bot\.text: failed\nTraceback \(most recent call last\):\n"
        r'  File "[^"]+", line \d+, in test_the_text_format_is_unchanged\n'
        r"    raise ValueError\(secret\)\n"
        r"ValueError: tdk_\[masked\]\n",
        captured_log.getvalue(),
    )


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-bot-token")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-secret-value")


@pytest.mark.usefixtures("clean_environment")
def test_the_log_format_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).tokendesk_log_format == "text"
    monkeypatch.setenv("TOKENDESK_LOG_FORMAT", "json")
    assert Settings(_env_file=None).tokendesk_log_format == "json"


@pytest.mark.usefixtures("clean_environment")
def test_an_unknown_log_format_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENDESK_LOG_FORMAT", "yaml")
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    message = describe(refused.value)
    assert message == "TOKENDESK_LOG_FORMAT: is not one of the allowed values"
