"""The demo seed: every kind of token the app tells apart, the roles, random secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from bot.server import open_store
from bot.settings import Settings
from playground import demo
from slack_standin.server import SlackStandIn
from storage.credential_index import RETIRED
from storage.models import Role, Token, TokenState
from tests.store_support import tokens_by_sid


def demo_settings(directory: Path) -> Settings:
    return Settings(
        _env_file=None,
        slack_bot_token=SecretStr("xoxb-playground"),
        slack_signing_secret=SecretStr("demo-signing-secret"),
        tokendesk_db=directory / "tokendesk.db",
        tokendesk_admins=(demo.ANA,),
    )


async def test_the_seed_holds_every_kind_of_token_and_the_roles(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path)
    made = await demo.seed_tokens(settings)
    store = await open_store(settings)
    try:
        now = datetime.now(UTC)
        tokens: dict[str, Token] = {
            token.name: token for token in (await tokens_by_sid(store)).values()
        }
        assert set(tokens) == set(made.secrets)

        def kinds(token: Token) -> set[str]:
            found = {token.state_at(now).value}
            if token.created_at < now - timedelta(days=180):
                found.add("old")
            if token.created_at > now - timedelta(days=1):
                found.add("fresh")
            if token.state_at(now) is TokenState.ENABLED and token.expires_within(now, 7):
                found.add("expiring within 7 days")
            if token.grace_open_at(now):
                found.add("in a grace window")
            found.add("never used" if token.last_used_at is None else "used")
            if token.leaked_at is not None:
                found.add("leaked")
            if token.retired is not None and token.retired.presented:
                found.add("old secret presented")
            return found

        every = set().union(*(kinds(token) for token in tokens.values()))
        assert every >= {
            "enabled",
            "disabled",
            "expired",
            "old",
            "fresh",
            "expiring within 7 days",
            "in a grace window",
            "never used",
            "used",
            "leaked",
            "old secret presented",
        }
        assert kinds(tokens["Support inbox webhook"]) >= {"leaked"}
        assert kinds(tokens["Partner portal"]) >= {"in a grace window", "used"}
        assert kinds(tokens["Billing sync"]) >= {"expiring within 7 days"}
        assert {token.primary_contact for token in tokens.values()} == {
            person.id for person in demo.PEOPLE
        }

        # Each current secret works (unless its token is disabled or expired); the old
        # secret still presented is refused as a retired one.
        for name, secret in made.secrets.items():
            verdict = store.credentials.check(secret)
            working = tokens[name].state_at(now) is TokenState.ENABLED
            assert (verdict.token is not None) is working, name
        (retired,) = made.retired.values()
        assert store.credentials.check(retired).reason == RETIRED

        roles = store.roles
        assert await roles.effective_role(user_id=demo.ANA) is Role.ADMIN
        assert await roles.effective_role(user_id=demo.SAM) is Role.SPECIALIST
        # Gus's role comes from his group, once the app learned from Slack who he is.
        assert (await roles.mappings()).groups == ((demo.OPS_GROUP, Role.SPECIALIST),)
        assert await roles.effective_role(user_id=demo.GUS) is None
        assert await roles.effective_role(user_id=demo.NORA) is None
    finally:
        await store.close()


async def test_secrets_are_random_on_every_run(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = await demo.seed_tokens(demo_settings(tmp_path / "one"))
    second = await demo.seed_tokens(demo_settings(tmp_path / "two"))
    assert set(first.secrets) == set(second.secrets)
    assert not set(first.secrets.values()) & set(second.secrets.values())


async def test_the_workspace_knows_the_people_their_group_and_the_channels() -> None:
    async with SlackStandIn() as standin:
        demo.add_workspace(standin)
        assert {user: standin.users[user]["name"] for user in standin.users} == {
            demo.ANA: "ana",
            demo.SAM: "sam",
            demo.GUS: "gus",
            demo.NORA: "nora",
        }
        assert standin.groups == {demo.OPS_GROUP: [demo.GUS]}
        assert {channel.id for channel in standin.channels.values() if channel.app_member} == {
            demo.DESK_CHANNEL,
            demo.ALERTS_CHANNEL,
        }
