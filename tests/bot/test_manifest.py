"""`manifest.yml` is valid for Slack and matches what the app answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from slack_standin.client import SlackClient
from tests.bot.conftest import ADMIN

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).parent / "manifest_schema" / "manifest.schema.1.0.0.json"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return loaded


def test_the_manifest_follows_slacks_schema(manifest: dict[str, Any]) -> None:
    validator = Draft7Validator(json.loads(SCHEMA.read_text()))
    assert [error.message for error in validator.iter_errors(manifest)] == []


def test_the_command_escapes_text_and_hints_usage(manifest: dict[str, Any]) -> None:
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/tokens"
    assert command["should_escape"] is True
    assert "search" in command["usage_hint"] and "help" in command["usage_hint"]


def test_only_the_scopes_the_app_needs(manifest: dict[str, Any]) -> None:
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "chat:write.public",
        "im:write",
        "users:read",
        "usergroups:read",
        "channels:history",
        "groups:history",
    }
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_interactivity_and_the_messages_tab(manifest: dict[str, Any]) -> None:
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert "subteam_members_changed" in manifest["settings"]["event_subscriptions"]["bot_events"]


async def test_the_app_answers_every_command_and_event_of_the_manifest(
    manifest: dict[str, Any], slack: SlackClient
) -> None:
    for command in manifest["features"]["slash_commands"]:
        reply = await slack.slash_command(ADMIN, "help", command=command["command"])
        assert reply.status == 200 and reply.body["text"]
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        reply = await slack.event({"user": ADMIN, **EVENT_FIELDS.get(event, {"type": event})})
        assert reply.status == 200, event


# What a subscription's event carries beyond its user, where the name is not the type.
EVENT_FIELDS: dict[str, dict[str, Any]] = {
    "subteam_members_changed": {"type": "subteam_members_changed", "subteam_id": "S0GROUP01"},
    "message.channels": {
        "type": "message",
        "channel_type": "channel",
        "channel": "C0TEST",
        "text": "hello",
        "ts": "1700000000.000100",
    },
    "message.groups": {
        "type": "message",
        "channel_type": "group",
        "channel": "G0TEST",
        "text": "hello",
        "ts": "1700000000.000200",
    },
}
