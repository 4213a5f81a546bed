"""App Home on the stand-in: views.publish checked and stored per user as Slack does (no
title or buttons, 100 blocks, private_metadata, the `hash` guard), `app_home_opened` sent over
HTTP and Socket Mode to a real Bolt app, and clicks from a published Home as Slack sends them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.slack_response import SlackResponse

from slack_standin.blockkit import check_view
from slack_standin.client import SlackClient, action_for, view_container
from slack_standin.server import SlackStandIn

SECRET = "test-signing-secret"
ALICE, BOB = "U0ALICE", "U0BOB"
Payload = dict[str, Any]


def plain(text: str) -> Payload:
    return {"type": "plain_text", "text": text}


def a_home(text: str = "Welcome", **fields: Any) -> Payload:
    return {
        "type": "home",
        "callback_id": "home",
        "private_metadata": "m1",
        "blocks": [
            {"type": "section", "block_id": "hello", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "actions",
                "block_id": "tools",
                "elements": [
                    {"type": "button", "action_id": "refresh", "text": plain("Refresh")},
                    {"type": "button", "action_id": "create", "text": plain("Create")},
                ],
            },
        ],
        **fields,
    }


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as running:
        running.add_user(ALICE, name="alice")
        running.add_user(BOB, name="bob")
        yield running


@pytest.fixture
def web_client(standin: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=standin.api_url)


async def refused(web_client: AsyncWebClient, **args: Any) -> SlackResponse:
    """Slack's answer to a views.publish it refuses."""
    with pytest.raises(SlackApiError) as raised:
        await web_client.views_publish(**args)
    response: SlackResponse = raised.value.response
    return response


# -- views.publish ---------------------------------------------------------------------


async def test_a_publish_is_stored_per_user_with_a_new_id_and_hash(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    first = (await web_client.views_publish(user_id=ALICE, view=a_home()))["view"]
    assert first["type"] == "home" and first["id"].startswith("V")
    assert first["root_view_id"] == first["id"] and first["previous_view_id"] is None
    assert (first["callback_id"], first["private_metadata"]) == ("home", "m1")
    assert "title" not in first and first["submit"] is None and first["close"] is None
    assert first["state"] == {"values": {}} and first["hash"]
    assert standin.home_of(ALICE) == first and standin.home_of(BOB) is None

    second = (await web_client.views_publish(user_id=ALICE, view=a_home("Again")))["view"]
    assert second["id"] != first["id"] and second["hash"] != first["hash"]
    assert standin.home_of(ALICE) == second
    assert standin.find_view(second["id"]) == second
    with pytest.raises(LookupError):
        standin.find_view(first["id"])  # replaced: one Home per user
    # A Home is not a modal: the newest modal is still what `latest_view` answers.
    with pytest.raises(LookupError):
        standin.latest_view()


async def test_an_unknown_user_is_invalid_arguments(web_client: AsyncWebClient) -> None:
    response = await refused(web_client, user_id="U0NOBODY", view=a_home())
    assert response["error"] == "invalid_arguments"
    assert response["response_metadata"]["messages"] == ["invalid `user_id`"]


async def test_more_than_100_blocks_are_refused(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    divider = {"type": "divider"}
    await web_client.views_publish(user_id=ALICE, view={"type": "home", "blocks": [divider] * 100})
    response = await refused(
        web_client, user_id=BOB, view={"type": "home", "blocks": [divider] * 101}
    )
    assert response["error"] == "invalid_arguments"
    assert response["response_metadata"]["messages"] == ["[ERROR] blocks: 101 items, allowed 0-100"]
    assert standin.home_of(BOB) is None


@pytest.mark.parametrize("name", ["title", "submit", "close"])
async def test_a_home_has_no_title_submit_or_close(
    standin: SlackStandIn, web_client: AsyncWebClient, name: str
) -> None:
    view = {**a_home(), name: plain("Token Desk")}
    assert check_view(view) == [f"view.{name}: a home view has none"]
    response = await refused(web_client, user_id=ALICE, view=view)
    assert response["error"] == "invalid_arguments"
    assert response["response_metadata"]["messages"] == [
        f"[ERROR] view.{name}: a home view has none"
    ]
    assert standin.home_of(ALICE) is None


async def test_private_metadata_holds_3000_characters(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    await web_client.views_publish(user_id=ALICE, view=a_home(private_metadata="m" * 3000))
    response = await refused(web_client, user_id=BOB, view=a_home(private_metadata="m" * 3001))
    assert response["response_metadata"]["messages"] == [
        "[ERROR] view.private_metadata: 3001 chars, max 3000"
    ]
    assert standin.home_of(BOB) is None


async def test_a_stale_hash_conflicts_and_stores_nothing(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    published = (await web_client.views_publish(user_id=ALICE, view=a_home()))["view"]
    newer = standin.set_home_hash(ALICE)  # as if another publish had come in between
    assert newer != published["hash"]

    response = await refused(
        web_client, user_id=ALICE, view=a_home("Stale"), hash=published["hash"]
    )
    assert response["error"] == "hash_conflict"
    home = standin.home_of(ALICE)
    assert home is not None and home["blocks"][0]["text"]["text"] == "Welcome"

    kept = await web_client.views_publish(user_id=ALICE, view=a_home("Fresh"), hash=newer)
    assert kept["view"]["blocks"][0]["text"]["text"] == "Fresh"
    # Nothing published yet: there is no hash a publish could name.
    assert (await refused(web_client, user_id=BOB, view=a_home(), hash="1.x"))[
        "error"
    ] == "hash_conflict"


async def test_a_publish_without_a_hash_always_wins(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    await web_client.views_publish(user_id=ALICE, view=a_home())
    standin.set_home_hash(ALICE, "somebody.else")
    again = await web_client.views_publish(user_id=ALICE, view=a_home("Mine"))
    assert standin.home_of(ALICE) == again["view"]


async def test_views_publish_takes_a_home_and_views_open_a_modal(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    modal = {"type": "modal", "title": plain("Modal"), "blocks": []}
    response = await refused(web_client, user_id=ALICE, view=modal)
    assert response["response_metadata"]["messages"] == ["[ERROR] view.type: must be 'home'"]
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        await web_client.views_open(trigger_id=standin.trigger_id(), view=a_home())


async def test_a_home_tab_left_off_is_not_enabled(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    standin.home_tab_enabled = False
    assert (await refused(web_client, user_id=ALICE, view=a_home()))["error"] == "not_enabled"


# -- app_home_opened and clicks, to a real Bolt app -------------------------------------


@dataclass
class HomeApp:
    """A small Bolt app that publishes a Home on app_home_opened and on its Refresh button."""

    standin: SlackStandIn
    bolt: AsyncApp
    url: str = ""  # the request URL in HTTP mode, "" in Socket Mode
    opened: list[Payload] = field(default_factory=list)
    clicks: list[Payload] = field(default_factory=list)

    def listen(self) -> None:
        @self.bolt.event("app_home_opened")
        async def opened(event: Payload, client: AsyncWebClient) -> None:
            self.opened.append(event)
            if event["tab"] == "home":
                view_hash = event.get("view", {}).get("hash")
                await client.views_publish(user_id=event["user"], view=a_home(), hash=view_hash)

        @self.bolt.action("refresh")
        async def refresh(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
            await ack()
            self.clicks.append(body)
            await client.views_publish(
                user_id=body["user"]["id"], view=a_home("Refreshed"), hash=body["view"]["hash"]
            )


@pytest.fixture(params=["http", "socket"])
async def home_app(request: pytest.FixtureRequest, standin: SlackStandIn) -> AsyncIterator[HomeApp]:
    client = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
    if request.param == "http":
        bolt = AsyncApp(signing_secret=SECRET, client=client, process_before_response=True)
        app = HomeApp(standin, bolt)
        app.listen()

        async def dispatch(incoming: web.Request) -> web.Response:
            return await to_aiohttp_response(
                await bolt.async_dispatch(await to_bolt_request(incoming))
            )

        web_app = web.Application()
        web_app.router.add_post("/slack/events", dispatch)
        runner = web.AppRunner(web_app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        app.url = f"http://{host}:{port}/slack/events"
        standin.deliver_over_http(app.url, SECRET)
        yield app
        await runner.cleanup()
    else:
        bolt = AsyncApp(client=client, process_before_response=True)
        app = HomeApp(standin, bolt)
        app.listen()
        handler = AsyncSocketModeHandler(bolt, "xapp-test")
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await standin.socket_connected()
        try:
            yield app
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]


def slack_for(app: HomeApp) -> SlackClient:
    if not app.url:
        return SlackClient.over_socket_mode(app.standin)
    return SlackClient(app.url, signing_secret=SECRET, standin=app.standin)


async def test_app_home_opened_reaches_the_app_for_both_tabs(home_app: HomeApp) -> None:
    standin = home_app.standin
    first = await standin.user_opens_home(ALICE)
    assert first.acked and first.mode == ("http" if home_app.url else "socket")
    event = first.payload["event"]
    assert (event["type"], event["user"], event["channel"], event["tab"]) == (
        "app_home_opened",
        ALICE,
        "D0ALICE",
        "home",
    )
    assert "view" not in event  # nothing published yet
    published = standin.home_of(ALICE)
    assert published is not None and home_app.opened == [event]

    again = (await standin.user_opens_home(ALICE, tab="home")).payload["event"]
    assert again["view"] == published  # the Home as published, with its id and hash
    republished = standin.home_of(ALICE)
    assert republished is not None and republished["id"] != published["id"]

    messages = await standin.user_opens_home(ALICE, tab="messages")
    assert messages.acked and messages.payload["event"]["tab"] == "messages"
    assert "view" not in messages.payload["event"]
    assert standin.home_of(ALICE) == republished  # the app publishes for the Home tab only
    with pytest.raises(LookupError):
        await standin.user_opens_home("U0NOBODY")


async def test_a_click_on_a_published_home_carries_its_view_and_no_response_url(
    home_app: HomeApp,
) -> None:
    standin = home_app.standin
    await standin.user_opens_home(ALICE)
    home = standin.home_of(ALICE)
    assert home is not None
    async with slack_for(home_app) as slack:
        reply = await slack.block_action(
            ALICE, action_for(home, "refresh"), container=view_container(home["id"])
        )
    assert reply.status == 200
    (click,) = home_app.clicks
    assert click["container"] == {"type": "view", "view_id": home["id"]}
    assert "response_url" not in click and "channel" not in click and "message" not in click
    assert click["trigger_id"]
    view = click["view"]
    assert (view["type"], view["id"], view["hash"], view["private_metadata"]) == (
        "home",
        home["id"],
        home["hash"],
        "m1",
    )
    assert view["blocks"] == home["blocks"] and view["state"] == {"values": {}}
    assert click["actions"][0]["action_id"] == "refresh"
    # The app published with the click's hash: it won, the Home changed in place.
    refreshed = standin.home_of(ALICE)
    assert refreshed is not None and refreshed["blocks"][0]["text"]["text"] == "Refreshed"
    assert standin.calls_to("views.publish")[-1].ok


async def test_a_click_on_a_home_republished_meanwhile_conflicts(home_app: HomeApp) -> None:
    standin = home_app.standin
    await standin.user_opens_home(ALICE)
    home = standin.home_of(ALICE)
    assert home is not None
    seen = dict(home)  # what the user's client still shows
    standin.set_home_hash(ALICE)
    async with slack_for(home_app) as slack:
        await slack.block_action(
            ALICE, action_for(seen, "refresh"), container=view_container(seen["id"]), view=seen
        )
    assert standin.calls_to("views.publish")[-1].answer["error"] == "hash_conflict"
    still = standin.home_of(ALICE)
    assert still is not None and still["blocks"][0]["text"]["text"] == "Welcome"
