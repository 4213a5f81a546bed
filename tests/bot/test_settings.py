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
    assert loaded.tokendesk_default_lifetime_days == 90
    assert loaded.tokendesk_max_lifetime_days == 365
    assert loaded.tokendesk_reminder_days == (30, 7, 1)
    assert loaded.tokendesk_disable_unused_days == 0
    assert loaded.tokendesk_alerts_channel is None
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
        "TOKENDESK_DEFAULT_LIFETIME_DAYS": "30",
        "TOKENDESK_MAX_LIFETIME_DAYS": "90",
        "TOKENDESK_REMINDER_DAYS": "1, 14,3",
        "TOKENDESK_DISABLE_UNUSED_DAYS": "14",
        "TOKENDESK_ALERTS_CHANNEL": " C0ALERTS1 ",
        "TOKENDESK_LEAK_ACTION": " Disable ",
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
    assert loaded.tokendesk_default_lifetime_days == 30
    assert loaded.tokendesk_max_lifetime_days == 90
    assert loaded.tokendesk_reminder_days == (14, 3, 1)
    assert loaded.tokendesk_disable_unused_days == 14
    assert loaded.tokendesk_alerts_channel == "C0ALERTS1"
    assert loaded.tokendesk_leak_action == "disable"


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
        (BASE | {"tokendesk_leak_action": "delete"}, "TOKENDESK_LEAK_ACTION: must be", "delete"),
        (BASE | {"slack_api_url": "ftp://example"}, "SLACK_API_URL: must be an http", "ftp"),
        (BASE | {"host": "every where"}, "HOST: must be an IP address or host name", "where"),
        (BASE | {"host": "300.1.2.3"}, "HOST: must be an IP address or host name", "300"),
        (BASE | {"host": "[::1]"}, "HOST: must be an IP address or host name", "::1"),
        (BASE | {"host": "http://gw"}, "HOST: must be an IP address or host name", "gw"),
        (BASE | {"tokendesk_max_lifetime_days": "a year"}, "MAX_LIFETIME_DAYS: must be", "year"),
        (BASE | {"tokendesk_max_lifetime_days": "-365"}, "MAX_LIFETIME_DAYS: must be", "-365"),
        (BASE | {"tokendesk_max_lifetime_days": "99999"}, "MAX_LIFETIME_DAYS: must be", "99999"),
        (BASE | {"tokendesk_default_lifetime_days": "-7"}, "DEFAULT_LIFETIME_DAYS: must", "-7"),
        (BASE | {"tokendesk_default_lifetime_days": "9.5"}, "DEFAULT_LIFETIME_DAYS: must", "9.5"),
        (
            BASE | {"tokendesk_default_lifetime_days": "400"},
            "TOKENDESK_DEFAULT_LIFETIME_DAYS: must not be longer than TOKENDESK_MAX_LIFETIME_DAYS",
            "400",
        ),
        (
            BASE | {"tokendesk_default_lifetime_days": "91", "tokendesk_max_lifetime_days": "90"},
            "TOKENDESK_DEFAULT_LIFETIME_DAYS: must not be longer than",
            "91",
        ),
        (
            BASE | {"tokendesk_default_lifetime_days": "0"},
            "TOKENDESK_DEFAULT_LIFETIME_DAYS: may be 0 (no expiry) only when"
            " TOKENDESK_MAX_LIFETIME_DAYS is 0",
            None,
        ),
        (BASE | {"tokendesk_reminder_days": "7,7"}, "REMINDER_DAYS: must list distinct", None),
        (BASE | {"tokendesk_reminder_days": "30,0"}, "REMINDER_DAYS: must list distinct", None),
        (BASE | {"tokendesk_reminder_days": "30,-7"}, "REMINDER_DAYS: must list distinct", "-7"),
        (BASE | {"tokendesk_reminder_days": "soon"}, "REMINDER_DAYS: must list distinct", "soon"),
        (BASE | {"tokendesk_disable_unused_days": "13"}, "UNUSED_DAYS: must be 0 (never)", "13"),
        (BASE | {"tokendesk_disable_unused_days": "1"}, "UNUSED_DAYS: must be 0 (never)", None),
        (BASE | {"tokendesk_disable_unused_days": "-1"}, "UNUSED_DAYS: must be 0 (never)", "-1"),
        (BASE | {"tokendesk_alerts_channel": "#security"}, "ALERTS_CHANNEL: must be", "security"),
        (BASE | {"tokendesk_alerts_channel": "U0ALERTS1"}, "ALERTS_CHANNEL: must be", "U0ALERTS1"),
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


@pytest.mark.parametrize(
    ("maximum", "default"), [("0", "0"), ("0", "400"), ("365", "365"), ("30", "7"), ("1", "1")]
)
def test_a_default_within_the_maximum_is_taken(
    monkeypatch: pytest.MonkeyPatch, maximum: str, default: str
) -> None:
    """0 as the maximum means no cap, and only then may the default be 0: no expiry."""
    monkeypatch.setenv("TOKENDESK_MAX_LIFETIME_DAYS", maximum)
    monkeypatch.setenv("TOKENDESK_DEFAULT_LIFETIME_DAYS", default)
    loaded = settings(**BASE)
    assert (loaded.tokendesk_max_lifetime_days, loaded.tokendesk_default_lifetime_days) == (
        int(maximum),
        int(default),
    )
