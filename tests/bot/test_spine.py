"""The app's spine through signed requests: verification, the role gate, errors, help."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.background import after_ack, drain
from slack_standin.blockkit import check_message, check_view
from slack_standin.client import SlackClient, button, ephemeral_container, overflow
from slack_standin.server import SlackStandIn
from storage.credentials import generate_secret
from storage.models import Role
from storage.store import Store
from tests.bot.blockwalk import refused
from tests.bot.conftest import ADMIN, SPECIALIST, STRANGER
from tests.bot.driver import settle


class Tripwire:
    """Stands in for the token and audit stores: any use fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"token or audit data touched: {name}")


@pytest.fixture
def tripwire(store: Store) -> Iterator[None]:
    tokens, audit = store.tokens, store.audit
    store.tokens, store.audit = Tripwire(), Tripwire()  # type: ignore[assignment]
    yield
    store.tokens, store.audit = tokens, audit


@pytest.mark.parametrize("signing", ["bad", "stale", "none"])
async def test_unverified_requests_are_refused(
    slack: SlackClient, standin: SlackStandIn, signing: Any
) -> None:
    command = await slack.slash_command(ADMIN, "help", signing=signing)
    click = await slack.block_action(
        ADMIN,
        button("anything", "1", block_id="b"),
        container=ephemeral_container("C1", "1.1"),
        signing=signing,
    )
    assert command.status == click.status == 401
    await drain()
    assert standin.responses == []


async def test_socket_mode_serves_no_slack_events(gateway_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{gateway_url}/slack/events", data=b"payload=%7B%7D") as answer:
            assert answer.status == 404
        async with session.get(f"{gateway_url}/healthz") as answer:
            assert answer.status == 200
            assert answer.headers["Cache-Control"] == "no-store"


async def test_help_lists_every_sub_command(slack: SlackClient) -> None:
    reply = await slack.slash_command(ADMIN, "help")
    assert reply.status == 200
    assert check_message(reply.body) == []
    listing = str(reply.body["blocks"])
    for usage in ("search TEXT", "create [NAME]", "access on|off", "roles grant", "audit"):
        assert usage in listing


async def test_an_unknown_word_is_named_escaped(slack: SlackClient) -> None:
    reply = await slack.slash_command(ADMIN, "<!channel> please")
    assert check_message(reply.body) == []
    text = reply.body["text"] + str(reply.body["blocks"])
    assert "&lt;!channel&gt;" in text
    assert "<!channel>" not in text
    assert "/tokens help" in reply.body["text"]


async def test_a_specialist_may_use_the_command(slack: SlackClient, store: Store) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    reply = await slack.slash_command(SPECIALIST, "help")
    assert "Token Desk" in reply.body["text"]


@pytest.mark.usefixtures("tripwire")
async def test_a_user_without_a_role_is_refused_on_a_slash_command(slack: SlackClient) -> None:
    reply = await slack.slash_command(STRANGER, "list")
    assert reply.status == 200
    assert reply.body["response_type"] == "ephemeral"
    assert refused(reply.body["text"])


@pytest.mark.usefixtures("tripwire")
async def test_a_user_without_a_role_is_refused_on_a_button(
    slack: SlackClient, standin: SlackStandIn
) -> None:
    for action in (
        button("token_edit", "1:1", block_id="card-1"),
        overflow("token_menu", "reset:1:1", block_id="card-1"),
    ):
        reply = await slack.block_action(
            STRANGER, action, container=ephemeral_container("C0TEST", "1700000000.000100")
        )
        assert reply.status == 200 and reply.body == ""
    await settle(lambda: len(standin.responses) >= 2)
    assert len(standin.responses) == 2
    for posted in standin.responses:
        assert posted.accepted
        assert posted.body["replace_original"] is False
        assert posted.body["response_type"] == "ephemeral"
        assert refused(posted.body["text"])


@pytest.mark.usefixtures("tripwire")
async def test_a_user_without_a_role_is_refused_on_a_modal_submission(
    slack: SlackClient,
) -> None:
    view = {
        "id": "V0CRAFTED",
        "callback_id": "token_create",
        "private_metadata": "{}",
        "blocks": [],
    }
    reply = await slack.view_submission(STRANGER, view, state={})
    assert reply.status == 200
    assert reply.body["response_action"] == "update"
    assert check_view(reply.body["view"]) == []
    assert "submit" not in reply.body["view"]
    assert refused(str(reply.body["view"]["blocks"]))


async def test_a_revoked_user_is_refused_on_the_next_request(
    slack: SlackClient, store: Store
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    assert "Token Desk:" in (await slack.slash_command(SPECIALIST, "help")).body["text"]
    await store.roles.revoke_user(actor=ADMIN, user_id=SPECIALIST)
    again = await slack.slash_command(SPECIALIST, "help")
    assert refused(again.body["text"])


async def test_an_unexpected_error_shows_a_reference_and_logs_it(
    bolt: AsyncApp, slack: SlackClient, standin: SlackStandIn, captured_log: io.StringIO
) -> None:
    secret = generate_secret()

    async def explode(ack: AsyncAck) -> None:
        raise RuntimeError(f"boom with {secret}")

    async def late_boom() -> None:
        raise RuntimeError("late boom")

    async def explode_after_ack(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        after_ack(late_boom(), respond=respond)

    bolt.command("/explode")(explode)
    bolt.action("explode_late")(explode_after_ack)

    reply = await slack.slash_command(ADMIN, "", command="/explode")
    click = await slack.block_action(
        ADMIN, button("explode_late", "x", block_id="b"), container=ephemeral_container("C1", "1.1")
    )
    await settle(lambda: len(standin.responses) >= 1)

    assert reply.status == 200 and click.status == 200
    for text in (reply.body["text"], standin.responses[0].body["text"]):
        assert text.startswith("Something went wrong (ref ")
        assert "Traceback" not in text and "boom" not in text
        reference = text.split("(ref ")[1][:6]
        assert f"ref {reference}" in captured_log.getvalue()
    log = captured_log.getvalue()
    assert "Traceback" in log
    assert secret not in log


async def test_debug_logging_leaks_no_body_response_url_or_secret(
    slack: SlackClient, standin: SlackStandIn, store: Store, captured_log: io.StringIO
) -> None:
    secret = generate_secret()
    marker = "zebra-crossing-marker"
    command = await slack.slash_command(ADMIN, f"frobnicate {marker} {secret}")
    stranger = await slack.slash_command(STRANGER, f"search {secret}")
    await slack.block_action(
        STRANGER,
        button("token_edit", secret, block_id="b"),
        container=ephemeral_container("C1", "1.1"),
    )
    await settle(lambda: len(standin.responses) >= 1)
    log = captured_log.getvalue()
    assert log, "DEBUG logging produced nothing at all"
    for leaked in (secret, marker, command.sent["response_url"], stranger.sent["response_url"]):
        assert leaked not in log
    assert "tdk_" not in log.replace("tdk_[masked]", "")
