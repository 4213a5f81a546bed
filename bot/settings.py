"""Every setting in one class, read from the environment and `.env`.

Validation messages name the variable and the rule, never the value: `describe()` turns a
ValidationError into the one line start-up prints.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.credentials import load_or_create_key, parse_key
from storage.errors import StartupRefused
from storage.fields import is_user_id
from storage.postgres import parse_url

DEFAULT_SCOPES = (
    "reports:read",
    "reports:write",
    "actions:read",
    "actions:write",
    "contacts:read",
    "contacts:write",
    "webhooks:manage",
)
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}")
_SCOPE = re.compile(r"[a-z0-9_.-]{1,30}:[a-z0-9_.-]{1,30}")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# A Slack select holds at most 100 options; the access-rights picker shows the whole catalog.
_CATALOG_MAX = 100
# A century: far beyond any sensible lifetime, and far from the end of the calendar.
_DAYS_MAX = 36_500
_IDLE_DAYS_MIN = 14
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,20}")

CommaList = Annotated[tuple[str, ...], NoDecode]
DayList = Annotated[tuple[int, ...], NoDecode]


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _unique(items: tuple[str, ...], what: str) -> tuple[str, ...]:
    if len(set(items)) != len(items):
        raise ValueError(f"must not list the same {what} twice")
    return items


def _days(value: Any, rule: str) -> int:
    """A whole number of days written in ASCII digits, or ValueError stating `rule`."""
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or int(text) > _DAYS_MAX:
        raise ValueError(rule)
    return int(text)


def _postgres_url(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        try:
            parse_url(value.get_secret_value())
        except StartupRefused as error:
            raise ValueError(error.rule) from None
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", hide_input_in_errors=True
    )

    slack_bot_token: SecretStr
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    tokendesk_db: Path = Path("tokendesk.db")
    # A secret: it may hold the database password.
    tokendesk_database_url: SecretStr | None = None
    tokendesk_secret_key: SecretStr | None = None
    tokendesk_admins: CommaList = ()
    tokendesk_api_versions: CommaList = ("v1", "v2", "v3")
    tokendesk_scopes: CommaList = DEFAULT_SCOPES
    tokendesk_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    tokendesk_log_format: Literal["text", "json"] = "text"
    port: int = 3000
    # Where `GET /metrics` is served (on HOST); None: no metrics, and no listener.
    tokendesk_metrics_port: int | None = None
    # Loopback by default: nothing off this host reaches the app until the operator opens it.
    host: str = "127.0.0.1"
    tokendesk_default_lifetime_days: int = 90
    tokendesk_max_lifetime_days: int = 365
    # Sorted most distant first: the order reminders come in.
    tokendesk_reminder_days: DayList = (30, 7, 1)
    tokendesk_disable_unused_days: int = 0
    tokendesk_alerts_channel: str | None = None
    # What the leak guard does on a live secret posted in Slack: tell (and mark the token
    # leaked), or disable the token at once as well.
    tokendesk_leak_action: Literal["notify", "disable"] = "notify"

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token, starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token, starting with xapp-")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError("must be an http or https URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("tokendesk_secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_key(value.get_secret_value())
            except StartupRefused as error:
                raise ValueError(error.rule) from None
        return value

    _database_url = field_validator("tokendesk_database_url")(_postgres_url)

    @field_validator(
        "tokendesk_admins", "tokendesk_api_versions", "tokendesk_scopes", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("tokendesk_admins")
    @classmethod
    def _admins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not all(is_user_id(item) for item in value):
            raise ValueError("must be Slack user IDs (U… or W…), separated by commas")
        return _unique(value, "user")

    @field_validator("tokendesk_api_versions")
    @classmethod
    def _versions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or not all(_VERSION.fullmatch(item) for item in value):
            raise ValueError("must list API versions such as v1,v2,v3, oldest first")
        return _unique(value, "version")

    @field_validator("tokendesk_scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(value) > _CATALOG_MAX:
            raise ValueError(f"must list between 1 and {_CATALOG_MAX} scopes")
        if not all(_SCOPE.fullmatch(item) for item in value):
            raise ValueError("must list scopes shaped like resource:action, e.g. reports:read")
        return _unique(value, "scope")

    @field_validator("tokendesk_log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().upper()
            if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
                raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    @field_validator("tokendesk_leak_action", mode="before")
    @classmethod
    def _leak_action(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in ("notify", "disable"):
                raise ValueError("must be notify or disable")
        return value

    @field_validator("port", "tokendesk_metrics_port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value).strip()
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise ValueError("must be a port number between 1 and 65535")
        return int(text)

    @field_validator("host", mode="before")
    @classmethod
    def _host(cls, value: Any) -> Any:
        text = str(value).strip()
        if not _is_ip_address(text) and not _is_host_name(text):
            raise ValueError("must be an IP address or host name to listen on, e.g. 127.0.0.1")
        return text

    @field_validator("tokendesk_max_lifetime_days", mode="before")
    @classmethod
    def _max_lifetime(cls, value: Any) -> int:
        return _days(value, f"must be a number of days from 0 (no maximum) to {_DAYS_MAX}")

    @field_validator("tokendesk_default_lifetime_days", mode="before")
    @classmethod
    def _default_lifetime(cls, value: Any) -> int:
        return _days(value, f"must be a number of days from 0 (no expiry) to {_DAYS_MAX}")

    @field_validator("tokendesk_reminder_days", mode="before")
    @classmethod
    def _reminder_days(cls, value: Any) -> tuple[int, ...]:
        rule = f"must list distinct numbers of days from 1 to {_DAYS_MAX}, e.g. 30,7,1"
        items = _split(value) if isinstance(value, str) else value
        if not isinstance(items, tuple | list) or not items:
            raise ValueError(rule)
        days = [_days(item, rule) for item in items]
        if 0 in days or len(set(days)) != len(days):
            raise ValueError(rule)
        return tuple(sorted(days, reverse=True))

    @field_validator("tokendesk_disable_unused_days", mode="before")
    @classmethod
    def _disable_unused(cls, value: Any) -> int:
        rule = f"must be 0 (never) or a number of days from {_IDLE_DAYS_MIN} to {_DAYS_MAX}"
        days = _days(value, rule)
        if 0 < days < _IDLE_DAYS_MIN:
            raise ValueError(rule)
        return days

    @field_validator("tokendesk_alerts_channel", mode="before")
    @classmethod
    def _alerts_channel(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value).strip()
        if not _CHANNEL_ID.fullmatch(text):
            raise ValueError("must be a Slack channel ID (C… or G…), not a channel name")
        return text

    @model_validator(mode="after")
    def _default_within_maximum(self) -> Settings:
        """The default must be one a new token may have: within the maximum, and "never"
        (0) only where there is no maximum."""
        default, maximum = self.tokendesk_default_lifetime_days, self.tokendesk_max_lifetime_days
        if maximum and not default:
            raise ValueError(
                "TOKENDESK_DEFAULT_LIFETIME_DAYS: may be 0 (no expiry) only when"
                " TOKENDESK_MAX_LIFETIME_DAYS is 0"
            )
        if maximum and default > maximum:
            raise ValueError(
                "TOKENDESK_DEFAULT_LIFETIME_DAYS: must not be longer than"
                " TOKENDESK_MAX_LIFETIME_DAYS"
            )
        return self

    @model_validator(mode="after")
    def _key_with_postgres(self) -> Settings:
        # Instances share the database, not a file system: no key file to fall back on.
        if self.tokendesk_database_url is not None and self.tokendesk_secret_key is None:
            raise ValueError(
                "TOKENDESK_SECRET_KEY: is required with TOKENDESK_DATABASE_URL (no key file)"
            )
        return self

    @model_validator(mode="after")
    def _signing_secret_in_http_mode(self) -> Settings:
        if self.slack_app_token is None and self.slack_signing_secret is None:
            raise ValueError(
                "SLACK_SIGNING_SECRET: is required in HTTP mode (when SLACK_APP_TOKEN is unset)"
            )
        return self

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_host_name(text: str) -> bool:
    labels = text.removesuffix(".").split(".")
    return (
        len(text) <= 253
        and all(_HOST_LABEL.fullmatch(label) for label in labels)
        # An all-digit last label is a mistyped IPv4 address, not a name.
        and not labels[-1].isdigit()
    )


def describe(error: ValidationError) -> str:
    """One line naming each bad variable and its rule; the values never appear."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False, include_context=False):
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "missing":
            message = "is required"
        elif detail["type"] == "literal_error":
            message = "is not one of the allowed values"
        location = detail["loc"]
        problems.append(f"{str(location[0]).upper()}: {message}" if location else message)
    return "; ".join(problems)


class OperatorSettings(BaseSettings):
    """What the operator commands read: the database, and the bootstrap admins (so that the
    roles they show and protect are the app's). Never a Slack variable."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", hide_input_in_errors=True
    )

    tokendesk_db: Path = Path("tokendesk.db")
    tokendesk_database_url: SecretStr | None = None
    tokendesk_admins: CommaList = ()

    _database_url = field_validator("tokendesk_database_url")(_postgres_url)
    _comma_separated = field_validator("tokendesk_admins", mode="before")(_split)

    @field_validator("tokendesk_admins")
    @classmethod
    def _admins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return Settings._admins(value)


def store_options(settings: Settings) -> dict[str, Any]:
    """`Store.open`'s options as the app opens its store: the PostgreSQL database at
    TOKENDESK_DATABASE_URL (with the configured key), else the SQLite file TOKENDESK_DB
    (with the configured key, or its key file); the catalogs, the bootstrap admins, the
    maximum lifetime."""
    configured = settings.tokendesk_secret_key
    url = settings.tokendesk_database_url
    if url is not None and configured is not None:
        place: dict[str, Any] = {"database_url": url.get_secret_value()}
        key = parse_key(configured.get_secret_value())
    else:
        place = {"path": settings.tokendesk_db}
        key = load_or_create_key(
            settings.tokendesk_db, configured.get_secret_value() if configured else None
        )
    return place | {
        "secret_key": key,
        "api_versions": settings.tokendesk_api_versions,
        "scopes": settings.tokendesk_scopes,
        "admins": settings.tokendesk_admins,
        "max_lifetime_days": settings.tokendesk_max_lifetime_days,
    }
