from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.settings import DEFAULT_SCOPES, Settings, describe

BOT_TOKEN = "xoxb-test-bot-token"
SIGNING = "signing-secret-value"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        settings(**values)
    return describe(refused.value)


def test_defaults() -> None:
    loaded = settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING)
    assert loaded.slack_api_url == "https://slack.com/api/"
    assert loaded.tokendesk_db == Path("tokendesk.db")
    assert loaded.tokendesk_secret_key is None
    assert loaded.tokendesk_admins == ()
    assert loaded.tokendesk_api_versions == ("v1", "v2", "v3")
    assert loaded.tokendesk_scopes == DEFAULT_SCOPES
    assert loaded.tokendesk_log_level == "INFO"
    assert loaded.port == 3000
    assert loaded.host == "127.0.0.1"
    assert not loaded.socket_mode
    assert BOT_TOKEN not in repr(loaded) and SIGNING not in repr(loaded)


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": "xapp-test-app-token",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
        "TOKENDESK_ADMINS": "U0ADMIN01, W0ADMIN02",
        "TOKENDESK_API_VERSIONS": "2024-01,2025-06",
        "TOKENDESK_SCOPES": "a:read,b:write",
        "TOKENDESK_LOG_LEVEL": "debug",
        "PORT": "8080",
    }.items():
        monkeypatch.setenv(name, value)
    loaded = settings()
    assert loaded.socket_mode
    assert loaded.slack_api_url == "http://127.0.0.1:9/api/"
    assert loaded.tokendesk_admins == ("U0ADMIN01", "W0ADMIN02")
    assert loaded.tokendesk_api_versions == ("2024-01", "2025-06")
    assert loaded.tokendesk_scopes == ("a:read", "b:write")
    assert loaded.tokendesk_log_level == "DEBUG"
    assert loaded.port == 8080


def test_a_dotenv_file_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_SIGNING_SECRET={SIGNING}\nPORT=4000\n"
    )
    monkeypatch.chdir(tmp_path)
    assert Settings().port == 4000  # type: ignore[call-arg]


BASE = {"slack_bot_token": BOT_TOKEN, "slack_signing_secret": SIGNING}


@pytest.mark.parametrize(
    ("values", "expected", "hidden"),
    [
        ({}, "SLACK_BOT_TOKEN: is required", None),
        ({"slack_bot_token": "xoxp-user-token"}, "SLACK_BOT_TOKEN: must be a bot token", "xoxp"),
        ({"slack_bot_token": BOT_TOKEN}, "SLACK_SIGNING_SECRET: is required in HTTP mode", None),
        (BASE | {"slack_app_token": "xoxb-wrong-kind"}, "SLACK_APP_TOKEN: must be", "wrong"),
        (BASE | {"port": "http"}, "PORT: must be a port number", None),
        (BASE | {"port": "70000"}, "PORT: must be a port number", "70000"),
        (BASE | {"tokendesk_secret_key": "c2hvcnQ="}, "TOKENDESK_SECRET_KEY: must be", "c2hv"),
        (BASE | {"tokendesk_admins": "alice"}, "TOKENDESK_ADMINS: must be Slack user", "alice"),
        (BASE | {"tokendesk_api_versions": "v1,v1"}, "TOKENDESK_API_VERSIONS: must not", None),
        (BASE | {"tokendesk_api_versions": ""}, "TOKENDESK_API_VERSIONS: must list", None),
        (BASE | {"tokendesk_scopes": "read everything"}, "TOKENDESK_SCOPES: must", "everything"),
        (BASE | {"tokendesk_log_level": "LOUD"}, "TOKENDESK_LOG_LEVEL: must be one", "LOUD"),
        (BASE | {"slack_api_url": "ftp://example"}, "SLACK_API_URL: must be an http", "ftp"),
        (BASE | {"host": "every where"}, "HOST: must be an IP address or host name", "where"),
        (BASE | {"host": "300.1.2.3"}, "HOST: must be an IP address or host name", "300"),
        (BASE | {"host": "[::1]"}, "HOST: must be an IP address or host name", "::1"),
        (BASE | {"host": "http://gw"}, "HOST: must be an IP address or host name", "gw"),
    ],
)
def test_refusals_name_the_variable_and_the_rule_but_never_the_value(
    values: dict[str, str], expected: str, hidden: str | None
) -> None:
    message = refusal(**values)
    assert expected in message
    assert "\n" not in message
    if hidden:
        assert hidden not in message


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "::1", "10.1.2.3", "localhost", "gw.internal"])
def test_host_takes_addresses_and_names(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("HOST", f" {host} ")
    assert settings(**BASE).host == host
