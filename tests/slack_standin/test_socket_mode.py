"""Socket Mode on the stand-in, driven by the real client: slack_bolt's AsyncSocketModeHandler
(as bot/server.py runs it) opens the connection with the app-level token, is greeted, and
acks events_api, slash_commands and interactive envelopes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from slack_standin.client import SlackClient, action_for, ephemeral_container
from slack_standin.server import SlackStandIn

CHANNEL, ALICE = "C0GENERAL", "U0ALICE"
Payload = dict[str, Any]


@dataclass
class Connected:
    standin: SlackStandIn
    bolt: AsyncApp
    received: list[Payload] = field(default_factory=list)  # every frame the client read
    messages: list[Payload] = field(default_factory=list)  # message events Bolt handled


def a_modal() -> Payload:
    plain = {"type": "plain_text", "text": "Create"}
    return {
        "type": "modal",
        "callback_id": "create",
        "title": plain,
        "submit": plain,
        "blocks": [
            {
                "type": "input",
                "block_id": "name",
                "label": plain,
                "element": {"type": "plain_text_input", "action_id": "name_input"},
            }
        ],
    }


@pytest.fixture
async def connected() -> AsyncIterator[Connected]:
    async with SlackStandIn() as standin:
        standin.add_channel(CHANNEL, name="general")
        bolt = AsyncApp(
            client=AsyncWebClient(token="xoxb-test", base_url=standin.api_url),
            raise_error_for_unhandled_request=False,
        )
        state = Connected(standin, bolt)

        @bolt.event("message")
        async def on_message(event: Payload) -> None:
            state.messages.append(event)

        @bolt.command("/tokens")
        async def command(ack: AsyncAck, command: Payload) -> None:
            await ack(text=f"you said {command['text']}")

        @bolt.view("create")
        async def submit(ack: AsyncAck, view: Payload) -> None:
            name = view["state"]["values"]["name"]["name_input"]["value"]
            await ack(response_action="errors", errors={"name": f"{name} is taken"})

        @bolt.action("go")
        async def go(ack: AsyncAck, respond: AsyncRespond) -> None:
            await ack()
            await respond(text="gone", replace_original=True)

        handler = AsyncSocketModeHandler(bolt, "xapp-test")

        async def record(_: AsyncBaseSocketModeClient, message: Payload, raw: str | None) -> None:
            state.received.append(message)

        handler.client.message_listeners.append(record)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await standin.socket_connected()
        try:
            yield state
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]


async def test_the_real_client_connects_and_is_greeted(connected: Connected) -> None:
    standin = connected.standin
    (opened,) = standin.calls_to("apps.connections.open")
    assert opened.ok and opened.answer["url"].startswith("ws://127.0.0.1:")
    assert standin.socket_mode.hellos == 1 and standin.socket_mode.connected


async def test_an_event_goes_in_an_envelope_and_is_acked(connected: Connected) -> None:
    standin = connected.standin
    delivery = await standin.user_posts(CHANNEL, ALICE, "hello")

    assert (delivery.mode, delivery.status, delivery.kind) == ("socket", "acked", "events_api")
    assert delivery.ack_seconds is not None and delivery.ack_seconds < 3
    assert delivery.ack is None  # a bare ack
    envelope = connected.received[-1]
    assert envelope["envelope_id"] == delivery.envelope_id and envelope["type"] == "events_api"
    assert envelope["payload"] == delivery.payload  # the same body as over HTTP
    assert envelope["payload"]["type"] == "event_callback"
    assert (envelope["accepts_response_payload"], envelope["retry_attempt"]) == (False, 0)
    assert [event["text"] for event in connected.messages] == ["hello"]
    (ack,) = standin.socket_mode.acks
    assert ack.envelope_id == delivery.envelope_id

    retry = await standin.redeliver(delivery, retry_num=1, reason="timeout")
    assert retry.acked and retry.event_id == delivery.event_id
    assert retry.envelope_id != delivery.envelope_id
    assert (connected.received[-1]["retry_attempt"], connected.received[-1]["retry_reason"]) == (
        1,
        "timeout",
    )


async def test_bolt_acks_its_own_posts_without_handling_them(connected: Connected) -> None:
    standin, bolt = connected.standin, connected.bolt
    posted = await bolt.client.chat_postMessage(channel=CHANNEL, text="from the app")
    await standin.deliveries_done()

    (echo,) = standin.deliveries
    assert echo.acked and echo.ts == posted["ts"]
    assert echo.payload["event"]["bot_id"] == "B0BOT"
    assert connected.messages == []  # Bolt ignores the app's own events


async def test_an_envelope_without_an_ack_times_out(connected: Connected) -> None:
    standin = connected.standin
    standin.ack_timeout = 0.3
    # No listener matches: Bolt answers 404 and sends no ack, so Slack would retry.
    delivery = await standin.deliver_event({"type": "reaction_added", "user": ALICE})
    assert (delivery.status, delivery.ack_seconds) == ("timeout", None)


async def test_commands_and_interactions_over_socket_mode(connected: Connected) -> None:
    standin = connected.standin
    async with SlackClient.over_socket_mode(standin) as slack:
        reply = await slack.slash_command(ALICE, "list")
        assert (reply.status, reply.body) == (200, {"text": "you said list"})
        command = standin.deliveries[-1]
        assert (command.kind, connected.received[-1]["accepts_response_payload"]) == (
            "slash_commands",
            True,
        )
        assert connected.received[-1]["payload"]["command"] == "/tokens"

        reply = await slack.view_submission(ALICE, a_modal(), {"name": "Alpha"})
        assert reply.body == {"response_action": "errors", "errors": {"name": "Alpha is taken"}}
        assert connected.received[-1]["type"] == "interactive"
        assert connected.received[-1]["accepts_response_payload"] is True

        blocks = [
            {
                "type": "actions",
                "block_id": "b",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "go",
                        "text": {"type": "plain_text", "text": "Go"},
                    }
                ],
            }
        ]
        reply = await slack.block_action(
            ALICE, action_for(blocks, "go"), container=ephemeral_container(CHANNEL, "1.000001")
        )
        assert (reply.status, reply.body) == (200, "")
        assert connected.received[-1]["accepts_response_payload"] is False
        async with asyncio.timeout(5):
            while not standin.responses_to(reply.sent["response_url"]):
                await asyncio.sleep(0.01)
        assert standin.responses_to(reply.sent["response_url"])[0].accepted
        with pytest.raises(ValueError):
            await slack.slash_command(ALICE, signing="bad")
