"""What each person sees on the stand-in, driven through a real Bolt app: the change counter,
per-user modal stacks with submissions applied as Slack applies them, ephemeral messages
(posted, acked, replaced and deleted through response_urls), DMs, and clicks on any surface
sent exactly as Slack sends them from there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from slack_standin.client import SlackClient, Where, checked_state
from slack_standin.server import SlackStandIn

SECRET = "test-signing-secret"
ALICE, BOB = "U0ALICE", "U0BOB"
CHANNEL = "C0DESK"
Payload = dict[str, Any]


def plain(text: str) -> Payload:
    return {"type": "plain_text", "text": text}


def option(value: str) -> Payload:
    return {"text": plain(value.title()), "value": value}


def button(action_id: str, value: str | None = None) -> Payload:
    made = {"type": "button", "action_id": action_id, "text": plain(action_id.title())}
    return made if value is None else {**made, "value": value}


def a_list(page: int = 1) -> Payload:
    """An ephemeral list with every element a message of Token Desk's carries."""
    return {
        "text": f"Page {page}",
        "blocks": [
            {
                "type": "section",
                "block_id": "list",
                "text": {"type": "mrkdwn", "text": f"*Page {page}*"},
                "accessory": button("more", f"page:{page + 1}"),
            },
            {
                "type": "input",
                "block_id": "search",
                "dispatch_action": True,
                "label": plain("Search"),
                "element": {"type": "plain_text_input", "action_id": "q"},
            },
            {
                "type": "actions",
                "block_id": "controls",
                "elements": [
                    button("dismiss"),
                    button("note"),
                    {"type": "static_select", "action_id": "pick", "options": [option("a")]},
                    {
                        "type": "overflow",
                        "action_id": "card",
                        "options": [option("reset"), option("delete")],
                    },
                ],
            },
            {"type": "actions", "elements": [{"type": "users_select", "action_id": "who"}]},
        ],
    }


def a_form(title: str = "Create") -> Payload:
    return {
        "type": "modal",
        "callback_id": "form",
        "title": plain(title),
        "submit": plain("Save"),
        "close": plain("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": "name",
                "label": plain("Name"),
                "element": {"type": "plain_text_input", "action_id": "name_input"},
            },
            {
                "type": "input",
                "block_id": "when",
                "optional": True,
                "label": plain("Expires"),
                "element": {"type": "datepicker", "action_id": "date"},
            },
            {
                "type": "actions",
                "block_id": "tools",
                "elements": [
                    button("deeper"),
                    {
                        "type": "multi_static_select",
                        "action_id": "tags",
                        "options": [option("red"), option("blue")],
                    },
                ],
            },
        ],
    }


@dataclass
class App:
    standin: SlackStandIn
    slack: SlackClient
    web: AsyncWebClient
    clicks: list[Payload] = field(default_factory=list)


def listen(bolt: AsyncApp, clicks: list[Payload]) -> None:
    @bolt.command("/tokens")
    async def command(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        text, user = body["text"], body["user_id"]
        if text == "list":
            await ack(**a_list())
            return
        await ack()
        if text == "modal":
            await client.views_open(trigger_id=body["trigger_id"], view=a_form())
        elif text == "dm":
            await client.chat_postMessage(
                channel=user,
                text="Your token expires",
                blocks=[{"type": "actions", "block_id": "dm", "elements": [button("seen")]}],
            )
        elif text == "whisper":
            await client.chat_postEphemeral(channel=body["channel_id"], user=user, text="psst")
        elif text == "announce":
            await client.chat_postMessage(
                channel=body["channel_id"],
                text="Tokens",
                blocks=[
                    {
                        "type": "actions",
                        "block_id": "card",
                        "elements": [button("open"), button("close"), button("shout")],
                    }
                ],
            )

    @bolt.view("form")
    async def submitted(ack: AsyncAck, view: Payload) -> None:
        name = view["state"]["values"]["name"]["name_input"]["value"] or ""
        clicks.append(view)
        if name == "bad":
            await ack(response_action="errors", errors={"name": "Taken"})
        elif name in ("update", "push"):
            await ack(response_action=name, view=a_form(name.title()))
        elif name == "push all":
            await ack(response_action="push", view={**a_form("All"), "clear_on_close": True})
        elif name == "too long":
            await ack(response_action="update", view=a_form("t" * 25))
        elif name == "clear":
            await ack(response_action="clear")
        else:
            await ack()

    async def record(ack: AsyncAck, body: Payload) -> None:
        await ack()
        clicks.append(body)

    for action_id in ("pick", "card", "who", "q", "tags", "date"):
        bolt.action(action_id)(record)

    @bolt.action("more")
    async def more(ack: AsyncAck, body: Payload, respond: AsyncRespond) -> None:
        await ack()
        clicks.append(body)
        await respond(replace_original=True, **a_list(2))

    @bolt.action("dismiss")
    async def dismiss(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(delete_original=True)

    @bolt.action("note")
    async def note(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(text="noted", replace_original=False)

    @bolt.action("seen")
    async def seen(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        await ack()
        clicks.append(body)
        channel, ts = body["container"]["channel_id"], body["container"]["message_ts"]
        await client.chat_update(channel=channel, ts=ts, text="Seen", blocks=[])

    @bolt.action("open")
    async def open_form(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        await ack()
        clicks.append(body)
        await client.views_open(trigger_id=body["trigger_id"], view=a_form())

    @bolt.action("close")
    async def close(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(replace_original=True, text="Closed", blocks=[])

    @bolt.action("shout")
    async def shout(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(response_type="in_channel", replace_original=False, text="Everyone")

    @bolt.action("deeper")
    async def deeper(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        await ack()
        clicks.append(body)
        await client.views_push(trigger_id=body["trigger_id"], view=a_form("Deeper"))


@pytest.fixture
async def app() -> AsyncIterator[App]:
    async with SlackStandIn() as standin:
        standin.add_user(ALICE, name="alice")
        standin.add_user(BOB, name="bob")
        standin.add_channel(CHANNEL, name="token-desk")
        web_client = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
        bolt = AsyncApp(signing_secret=SECRET, client=web_client, process_before_response=True)
        clicks: list[Payload] = []
        listen(bolt, clicks)

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
        url = f"http://{host}:{port}/slack/events"
        async with SlackClient(url, signing_secret=SECRET, standin=standin) as slack:
            yield App(standin, slack, web_client, clicks)
        await runner.cleanup()


async def command(app: App, user: str, text: str) -> Any:
    reply = await app.slack.slash_command(user, text, channel_id=CHANNEL)
    assert reply.status == 200
    return reply


async def shown_list(app: App, user: str = ALICE) -> Payload:
    """The list a command acked with, shown to `user` as Slack shows an ack."""
    reply = await command(app, user, "list")
    return app.standin.add_ephemeral(
        user, CHANNEL, reply.body, response_url=reply.sent["response_url"]
    )


# -- the change counter ----------------------------------------------------------------


async def test_every_change_counts_and_changed_waits_for_the_next(app: App) -> None:
    standin = app.standin
    assert await standin.changed(standin.version, timeout=0.05) == standin.version

    waiting = asyncio.create_task(standin.changed(standin.version, timeout=5))
    await asyncio.sleep(0)
    before = standin.version
    posted = await app.web.chat_postMessage(channel=CHANNEL, text="hello")
    assert await waiting == before + 1

    steps = [
        app.web.chat_update(channel=CHANNEL, ts=posted["ts"], text="edited"),
        app.web.chat_postEphemeral(channel=CHANNEL, user=ALICE, text="psst"),
        app.web.views_publish(user_id=ALICE, view={"type": "home", "blocks": []}),
        command(app, ALICE, "modal"),
    ]
    for step in steps:
        seen = standin.version
        await step
        assert standin.version > seen
    seen = standin.version
    standin.close_view(ALICE, standin.modal_stack(ALICE)[0]["id"])
    assert standin.version > seen
    seen = standin.version
    await shown_list(app)
    assert standin.version > seen


# -- modal stacks ----------------------------------------------------------------------


async def test_each_person_has_a_stack_that_submissions_change_as_slack_does(app: App) -> None:
    standin, slack = app.standin, app.slack
    await command(app, ALICE, "modal")
    (first,) = standin.modal_stack(ALICE)
    assert first["title"]["text"] == "Create" and standin.modal_stack(BOB) == []

    refused = await slack.submit_view(ALICE, first["id"], {"name": "bad"})
    assert refused.problems == ()
    (shown,) = standin.modal_stack(ALICE)
    assert shown["_errors"] == {"name": "Taken"} and shown["id"] == first["id"]

    updated = await slack.submit_view(ALICE, first["id"], {"name": "update"})
    assert "_errors" not in updated.sent["view"]  # what the page shows never reaches the app
    (shown,) = standin.modal_stack(ALICE)
    assert (shown["id"], shown["title"]["text"]) == (first["id"], "Update")
    assert shown["hash"] != first["hash"] and "_errors" not in shown

    await slack.submit_view(ALICE, first["id"], {"name": "push"})
    bottom, top = standin.modal_stack(ALICE)
    assert (bottom["id"], top["title"]["text"]) == (first["id"], "Push")
    assert top["previous_view_id"] == first["id"] and top["root_view_id"] == first["id"]
    with pytest.raises(LookupError):  # only the top modal can be submitted
        await slack.submit_view(ALICE, first["id"], {"name": "x"})

    await slack.click(ALICE, ("modal", top["id"]), "tools", "deeper")  # views.push
    assert [v["title"]["text"] for v in standin.modal_stack(ALICE)] == ["Update", "Push", "Deeper"]
    deepest = standin.modal_stack(ALICE)[-1]
    too_deep = await slack.submit_view(ALICE, deepest["id"], {"name": "push"})
    assert too_deep.problems == ("push_limit_reached",)
    assert len(standin.modal_stack(ALICE)) == 3
    too_long = await slack.submit_view(ALICE, deepest["id"], {"name": "too long"})
    assert too_long.problems[0] == "invalid_arguments" and "24" in too_long.problems[1]

    standin.close_view(ALICE, top["id"])  # closes what was pushed above it too
    assert [v["id"] for v in standin.modal_stack(ALICE)] == [first["id"]]
    with pytest.raises(LookupError):
        standin.close_view(ALICE, top["id"])

    await slack.submit_view(ALICE, first["id"], {"name": "push"})
    await slack.submit_view(ALICE, standin.modal_stack(ALICE)[-1]["id"], {"name": "fine"})
    assert [v["id"] for v in standin.modal_stack(ALICE)] == [first["id"]]  # an empty ack pops
    await slack.submit_view(ALICE, first["id"], {"name": "push"})
    await slack.submit_view(ALICE, standin.modal_stack(ALICE)[-1]["id"], {"name": "clear"})
    assert standin.modal_stack(ALICE) == []

    await command(app, ALICE, "modal")
    (again,) = standin.modal_stack(ALICE)
    await slack.submit_view(ALICE, again["id"], {"name": "push all"})
    standin.close_view(ALICE, standin.modal_stack(ALICE)[-1]["id"])
    assert standin.modal_stack(ALICE) == []  # its clear_on_close closed the stack


async def test_a_submission_carries_the_state_the_person_left(app: App) -> None:
    await command(app, ALICE, "modal")
    (form,) = app.standin.modal_stack(ALICE)
    state: dict[str, dict[str, Payload]] = {
        "name": {"name_input": {"value": "Alpha"}},
        "tools": {"tags": {"selected_options": [{"value": "red"}]}},
    }
    reply = await app.slack.submit_view(ALICE, form["id"], state=state)
    values = reply.sent["view"]["state"]["values"]
    assert values["name"]["name_input"] == {"type": "plain_text_input", "value": "Alpha"}
    assert values["tools"]["tags"] == {
        "type": "multi_static_select",
        "selected_options": [option("red")],
    }
    assert values["when"]["date"] == {"type": "datepicker", "selected_date": None}
    assert app.standin.modal_stack(ALICE) == []
    with pytest.raises(LookupError):
        checked_state(form, {"name": {"nope": {"value": "x"}}})
    with pytest.raises(LookupError):
        checked_state(form, {"tools": {"tags": {"selected_options": ["green"]}}})


async def test_a_modal_opened_from_a_click_goes_on_the_clickers_stack(app: App) -> None:
    await command(app, ALICE, "announce")
    (message,) = app.standin.channel_messages(CHANNEL)
    reply = await app.slack.click(BOB, ("channel", message["ts"]), "card", "open")
    assert reply.status == 200
    click = app.clicks[-1]
    assert click["container"] == {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }
    assert click["message"]["ts"] == message["ts"] and click["channel"]["name"] == "token-desk"
    assert [v["callback_id"] for v in app.standin.modal_stack(BOB)] == ["form"]
    assert app.standin.modal_stack(ALICE) == []


# -- ephemeral messages ----------------------------------------------------------------


async def test_ephemerals_are_shown_to_one_person_and_answered_in_place(app: App) -> None:
    standin, slack = app.standin, app.slack
    shown = await shown_list(app)
    assert [m["text"] for m in standin.ephemerals(ALICE, CHANNEL)] == ["Page 1"]
    assert standin.ephemerals(BOB, CHANNEL) == []

    await slack.click(ALICE, ("ephemeral", shown["ts"]), "list", "more", value="page:2")
    (replaced,) = standin.ephemerals(ALICE, CHANNEL)
    assert (replaced["ts"], replaced["text"]) == (shown["ts"], "Page 2")
    click = app.clicks[-1]
    assert "message" not in click and click["container"]["is_ephemeral"] is True

    await slack.click(ALICE, ("ephemeral", shown["ts"]), "controls", "note")
    assert [m["text"] for m in standin.ephemerals(ALICE, CHANNEL)] == ["Page 2", "noted"]
    await slack.click(ALICE, ("ephemeral", shown["ts"]), "controls", "dismiss")
    assert [m["text"] for m in standin.ephemerals(ALICE, CHANNEL)] == ["noted"]

    await command(app, ALICE, "whisper")
    assert [m["text"] for m in standin.ephemerals(ALICE, CHANNEL)] == ["noted", "psst"]
    with pytest.raises(LookupError):  # Bob never saw Alice's messages
        await slack.click(BOB, ("ephemeral", shown["ts"]), "controls", "note")


async def test_the_commands_response_url_replaces_the_ack_it_showed(app: App) -> None:
    shown = await shown_list(app)
    async with aiohttp.ClientSession() as session:
        replace = {"text": "Later", "replace_original": True}
        async with session.post(shown["response_url"], json=replace) as response:
            assert response.status == 200
    (replaced,) = app.standin.ephemerals(ALICE, CHANNEL)
    assert (replaced["ts"], replaced["text"]) == (shown["ts"], "Later")
    with pytest.raises(ValueError, match="refuses"):
        app.standin.add_ephemeral(ALICE, CHANNEL, {"blocks": []})


async def test_a_channel_messages_response_url_replaces_it_or_posts_for_everyone(
    app: App,
) -> None:
    await command(app, ALICE, "announce")
    (message,) = app.standin.channel_messages(CHANNEL)
    await app.slack.click(BOB, ("channel", message["ts"]), "card", "shout")
    assert [m["text"] for m in app.standin.channel_messages(CHANNEL)] == ["Tokens", "Everyone"]
    await app.slack.click(BOB, ("channel", message["ts"]), "card", "close")
    closed = app.standin.channel_messages(CHANNEL)[0]
    assert (closed["ts"], closed["text"], closed["blocks"]) == (message["ts"], "Closed", [])
    assert app.standin.ephemerals(BOB, CHANNEL) == []


# -- DMs -------------------------------------------------------------------------------


async def test_dms_are_each_persons_and_update_in_place(app: App) -> None:
    await command(app, ALICE, "dm")
    (dm,) = app.standin.dm_messages(ALICE)
    assert dm["text"] == "Your token expires" and app.standin.dm_messages(BOB) == []
    with pytest.raises(LookupError):
        await app.slack.click(BOB, ("dm", dm["ts"]), "dm", "seen")

    await app.slack.click(ALICE, ("dm", dm["ts"]), "dm", "seen")
    click = app.clicks[-1]
    assert click["channel"] == {"id": app.standin.dm_channel(ALICE), "name": "directmessage"}
    assert click["message"]["ts"] == dm["ts"] and click["response_url"]
    (seen,) = app.standin.dm_messages(ALICE)
    assert (seen["ts"], seen["text"]) == (dm["ts"], "Seen")


# -- clicks ----------------------------------------------------------------------------


async def test_each_element_sends_its_own_action_shape(app: App) -> None:
    shown = await shown_list(app)
    where: Where = ("ephemeral", shown["ts"])
    typed = {"search": {"q": {"value": "alp"}}}
    await app.slack.click(ALICE, where, "controls", "pick", selected="a", values=typed)
    (action,) = app.clicks[-1]["actions"]
    assert (action["type"], action["selected_option"]) == ("static_select", option("a"))
    state = app.clicks[-1]["state"]["values"]
    assert state["search"]["q"]["value"] == "alp"
    assert state["controls"]["pick"]["selected_option"] == option("a")

    await app.slack.click(ALICE, where, "controls", "card", selected="reset")
    assert app.clicks[-1]["actions"][0]["selected_option"] == option("reset")
    await app.slack.click(ALICE, where, "auto3", "who", selected=BOB)
    assert app.clicks[-1]["actions"][0]["selected_user"] == BOB
    await app.slack.click(ALICE, where, "search", "q", value="beta")
    assert app.clicks[-1]["actions"][0]["value"] == "beta"
    assert app.clicks[-1]["state"]["values"]["search"]["q"]["value"] == "beta"

    await command(app, ALICE, "modal")
    (form,) = app.standin.modal_stack(ALICE)
    await app.slack.click(ALICE, ("modal", form["id"]), "when", "date", date="2030-01-31")
    click = app.clicks[-1]
    assert click["actions"][0]["selected_date"] == "2030-01-31"
    assert click["container"] == {"type": "view", "view_id": form["id"]}
    assert "response_url" not in click and click["view"]["id"] == form["id"]
    await app.slack.click(ALICE, ("modal", form["id"]), "tools", "tags", selected=["red", "blue"])
    assert app.clicks[-1]["actions"][0]["selected_options"] == [option("red"), option("blue")]


@pytest.mark.parametrize(
    ("block_id", "action_id", "chosen"),
    [
        ("controls", "nope", None),  # no such element
        ("list", "dismiss", None),  # an element of another block
        ("controls", "pick", "z"),  # an option it does not offer
        ("list", "more", "page:9"),  # a button with another value
    ],
)
async def test_what_the_person_could_not_click_is_refused(
    app: App, block_id: str, action_id: str, chosen: str | None
) -> None:
    shown = await shown_list(app)
    sent = len(app.clicks)
    with pytest.raises(LookupError):
        await app.slack.click(ALICE, ("ephemeral", shown["ts"]), block_id, action_id, value=chosen)
    assert len(app.clicks) == sent


async def test_only_the_top_modal_and_ones_own_home_can_be_clicked(app: App) -> None:
    await command(app, ALICE, "modal")
    (form,) = app.standin.modal_stack(ALICE)
    await app.slack.submit_view(ALICE, form["id"], {"name": "push"})
    with pytest.raises(LookupError):
        await app.slack.click(ALICE, ("modal", form["id"]), "tools", "deeper")
    home = {
        "type": "home",
        "blocks": [{"type": "actions", "block_id": "tools", "elements": [button("deeper")]}],
    }
    await app.web.views_publish(user_id=ALICE, view=home)
    with pytest.raises(LookupError):
        await app.slack.click(BOB, ("home", None), "tools", "deeper")
    published = app.standin.home_of(ALICE)
    assert published is not None
    await app.slack.click(ALICE, ("home", None), "tools", "deeper")
    click = app.clicks[-1]
    assert click["container"] == {"type": "view", "view_id": published["id"]}
    assert click["view"]["type"] == "home" and "response_url" not in click
