"""Building the app: nothing a newcomer would read as a misconfiguration."""

from __future__ import annotations

import logging

import pytest

from bot.app import create_app
from bot.settings import Settings
from storage.store import Store


async def test_creating_the_app_logs_no_warning(
    settings: Settings,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As in production: Bolt reads SLACK_BOT_TOKEN from the environment by itself.
    monkeypatch.setenv("SLACK_BOT_TOKEN", settings.slack_bot_token.get_secret_value())
    with caplog.at_level(logging.DEBUG):
        create_app(settings, store)
    assert [
        record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING
    ] == []


async def test_warnings_after_creation_still_reach_the_log(
    settings: Settings,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", settings.slack_bot_token.get_secret_value())
    app = create_app(settings, store)
    with caplog.at_level(logging.DEBUG):
        app.logger.warning("As you gave `client` as well, `token` will be unused.")
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
