"""The Slack test bench itself: Block Kit checks, the Web API stand-in, the signed client."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from slack_standin.blockkit import check_blocks, check_message, check_view
from slack_standin.client import (
    Signing,
    SlackClient,
    action_for,
    ephemeral_container,
    fill,
    signed_headers,
)
from slack_standin.server import SlackStandIn

SECRET = "test-signing-secret"
Payload = dict[str, Any]


def plain(text: str) -> Payload:
    return {"type": "plain_text", "text": text}


def option(value: str) -> Payload:
    return {"text": plain(value.title()), "value": value}


def a_message() -> Payload:
    """A message shaped like the token list: every block kind it uses, within limits."""
    card_actions = ["duplicate", "reset", "upgrade", "disable", "delete"]
    return {
        "text": "Access tokens",
        "blocks": [
            {"type": "header", "text": plain("Access tokens")},
            {
                "type": "input",
                "block_id": "search",
                "dispatch_action": True,
                "label": plain("Search by Name"),
                "element": {"type": "plain_text_input", "action_id": "q", "max_length": 100},
            },
            {
                "type": "actions",
                "block_id": "filters",
                "elements": [
                    {
                        "type": "static_select",
                        "action_id": "state",
                        "options": [option("enabled"), option("disabled")],
                    },
                    {"type": "button", "action_id": "clear", "text": plain("Clear All")},
                ],
            },
            {"type": "divider"},
            {
                "type": "section",
                "block_id": "card:1",
                "text": {"type": "mrkdwn", "text": "*Lifecycle Alpha*", "verbatim": True},
                "fields": [{"type": "mrkdwn", "text": "SID `AC1`"}],
                "accessory": {
                    "type": "overflow",
                    "action_id": "card",
                    "options": [option(f"{a}:1:3") for a in card_actions],
                },
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "1-1 of 1"}]},
        ],
    }


def a_modal() -> Payload:
    return {
        "type": "modal",
        "callback_id": "create",
        "title": plain("Create Access Token"),
        "submit": plain("Create"),
        "close": plain("Cancel"),
        "private_metadata": "{}",
        "blocks": [
            {
                "type": "input",
                "block_id": "name",
                "label": plain("Name"),
                "element": {"type": "plain_text_input", "action_id": "name_input"},
            },
            {
                "type": "input",
                "block_id": "version",
                "label": plain("API version"),
                "element": {
                    "type": "static_select",
                    "action_id": "version_select",
                    "options": [option("v2"), option("v3")],
                    "initial_option": option("v3"),
                },
            },
        ],
    }


# -- Block Kit checks --------------------------------------------------------------------


def test_valid_message_and_modal_pass() -> None:
    assert check_message(a_message()) == []
    assert check_view(a_modal()) == []


def test_modal_holds_100_blocks_message_50() -> None:
    dividers = [{"type": "divider"}] * 100
    assert check_blocks(dividers, surface="modal") == []
    assert check_blocks(dividers[:50], surface="message") == []
    assert check_blocks(dividers + [{"type": "divider"}], surface="modal") != []


def _set(path: str, value: Any) -> Callable[[Payload], None]:
    """A mutation setting the value at a dotted path ("blocks.4.accessory.options")."""

    def mutate(payload: Payload) -> None:
        *parents, last = path.split(".")
        node: Any = payload
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return mutate


def _append_blocks(*blocks: Payload) -> Callable[[Payload], None]:
    return lambda payload: payload["blocks"].extend(copy.deepcopy(list(blocks)))


def button_element(action_id: str) -> Payload:
    return {"type": "button", "action_id": action_id, "text": plain("B")}


def _long_section(chars: int) -> Payload:
    return {"type": "section", "text": {"type": "mrkdwn", "text": "x" * chars}}


MESSAGE_VIOLATIONS: dict[str, tuple[Callable[[Payload], None], str]] = {
    "51 blocks": (_append_blocks(*[{"type": "divider"}] * 45), "51 items, allowed 0-50"),
    "6 overflow options": (
        _set("blocks.4.accessory.options", [option(str(i)) for i in range(6)]),
        "6 items, allowed 1-5",
    ),
    "header 151": (_set("blocks.0.text.text", "h" * 151), "151 chars, max 150"),
    "option value 151": (
        _set("blocks.4.accessory.options.0.value", "v" * 151),
        "options[0].value: 151 chars, max 150",
    ),
    "option text 76": (
        _set("blocks.4.accessory.options.0.text", plain("t" * 76)),
        "options[0].text.text: 76 chars, max 75",
    ),
    "button text 76": (_set("blocks.2.elements.1.text", plain("b" * 76)), "76 chars, max 75"),
    "button value 2001": (_set("blocks.2.elements.1.value", "v" * 2001), "max 2000"),
    "missing text": (lambda m: m.pop("text"), "text is required"),
    "text 4000": (_set("text", "t" * 4000), "must stay under 4000"),
    "cumulative text": (_append_blocks(*[_long_section(2500)] * 5), "max 12000"),
    "section text 3001": (_set("blocks.4.text.text", "s" * 3001), "3001 chars, max 3000"),
    "empty section text": (_set("blocks.4.text.text", ""), "non-empty"),
    "11 fields": (_set("blocks.4.fields", [plain("f")] * 11), "11 items, allowed 1-10"),
    "field 2001": (_set("blocks.4.fields.0.text", "f" * 2001), "max 2000"),
    "header mrkdwn": (_set("blocks.0.text.type", "mrkdwn"), "not in ['plain_text']"),
    "unknown text type": (_set("blocks.4.text.type", "markdown"), "text type 'markdown'"),
    "unknown block type": (_append_blocks({"type": "file"}), "unknown block type 'file'"),
    "input max_length 3001": (_set("blocks.1.element.max_length", 3001), "outside 0-3000"),
    "input in actions": (
        _set("blocks.2.elements.1", {"type": "plain_text_input", "action_id": "x"}),
        "'plain_text_input' not allowed here",
    ),
    "101 select options": (
        _set("blocks.2.elements.0.options", [option(str(i)) for i in range(101)]),
        "101 items, allowed 1-100",
    ),
    "26 actions elements": (
        _set("blocks.2.elements", [button_element(f"b{i}") for i in range(26)]),
        "26 items, allowed 1-25",
    ),
    "11 context elements": (_set("blocks.5.elements", [plain("c")] * 11), "11 items"),
    "action_id 256": (_set("blocks.4.accessory.action_id", "a" * 256), "max 255"),
    "block_id 256": (_set("blocks.4.block_id", "b" * 256), "max 255"),
    "duplicate block_id": (_set("blocks.2.block_id", "search"), "duplicate block_id 'search'"),
    "duplicate action_id": (
        _set("blocks.2.elements.0", button_element("clear")),
        "duplicate action_id 'clear'",
    ),
}


@pytest.mark.parametrize("case", MESSAGE_VIOLATIONS)
def test_message_violation_is_reported(case: str) -> None:
    mutate, expected = MESSAGE_VIOLATIONS[case]
    message = a_message()
    mutate(message)
    problems = check_message(message)
    assert any(expected in p for p in problems), problems


MODAL_VIOLATIONS: dict[str, tuple[Callable[[Payload], None], str]] = {
    "title 25": (_set("title", plain("t" * 25)), "view.title.text: 25 chars, max 24"),
    "submit 25": (_set("submit", plain("s" * 25)), "view.submit.text: 25 chars"),
    "input without submit": (lambda v: v.pop("submit"), "needs a submit button"),
    "private_metadata 3001": (_set("private_metadata", "m" * 3001), "3001 chars, max 3000"),
    "callback_id 256": (_set("callback_id", "c" * 256), "max 255"),
    "101 blocks": (_append_blocks(*[{"type": "divider"}] * 99), "101 items, allowed 0-100"),
    "no title": (lambda v: v.pop("title"), "view.title: must be a text object"),
}


@pytest.mark.parametrize("case", MODAL_VIOLATIONS)
def test_modal_violation_is_reported(case: str) -> None:
    mutate, expected = MODAL_VIOLATIONS[case]
    modal = a_modal()
    mutate(modal)
    problems = check_view(modal)
    assert any(expected in p for p in problems), problems


def test_delete_original_needs_no_text() -> None:
    assert check_message({"delete_original": True}) == []


# -- the Web API stand-in --------------------------------------------------------------


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as running:
        yield running


@pytest.fixture
def web_client(standin: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=standin.api_url)


async def test_web_client_calls_are_answered_and_recorded(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    standin.add_user("U0ALICE", name="alice", tz="Europe/Paris")
    standin.set_group("S0ADMINS", ["U0ALICE"])

    auth = await web_client.auth_test()
    posted = await web_client.chat_postMessage(channel="U0ALICE", **a_message())
    user = await web_client.users_info(user="U0ALICE")
    group = await web_client.usergroups_users_list(usergroup="S0ADMINS")
    dm = await web_client.conversations_open(users="U0ALICE")

    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("U0BOT", "B0BOT", "T0TEST")
    assert posted["channel"] == dm["channel"]["id"] == "D0ALICE"
    assert user["user"]["tz"] == "Europe/Paris"
    assert group["users"] == ["U0ALICE"]
    assert [c.method for c in standin.calls][:2] == ["auth.test", "chat.postMessage"]
    assert standin.calls_to("chat.postMessage")[0].args["blocks"] == a_message()["blocks"]


@pytest.mark.parametrize(
    ("method", "args", "error"),
    [
        ("users.info", {"user": "U0NOBODY"}, "user_not_found"),
        ("usergroups.users.list", {"usergroup": "S0NONE"}, "no_such_subteam"),
        ("chat.update", {"channel": "C0TEST", "ts": "1.000001", "text": "x"}, "message_not_found"),
        ("chat.postMessage", {"channel": "C0TEST", "blocks": []}, "invalid_blocks"),
        ("views.open", {"trigger_id": "made.up", "view": {}}, "invalid_trigger_id"),
        ("files.upload", {}, "unknown_method"),
    ],
)
async def test_slack_errors(
    web_client: AsyncWebClient, method: str, args: Payload, error: str
) -> None:
    with pytest.raises(SlackApiError) as raised:
        await web_client.api_call(method, json=args)
    assert raised.value.response["error"] == error


async def test_tokens_are_checked(standin: SlackStandIn) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=standin.api_url)
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await wrong.auth_test()
    async with aiohttp.ClientSession() as session:
        async with session.post(standin.api_url + "auth.test") as response:
            assert (await response.json())["error"] == "not_authed"


async def test_form_bodies_are_decoded(standin: SlackStandIn) -> None:
    form = {"channel": "C0TEST", "text": "hi", "blocks": json.dumps(a_message()["blocks"])}
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": "Bearer xoxb-test"}
        async with session.post(
            standin.api_url + "chat.postMessage", data=form, headers=headers
        ) as response:
            assert (await response.json())["ok"] is True
    assert standin.calls[0].args["blocks"] == a_message()["blocks"]


async def test_block_kit_problems_are_refused(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    message = a_message()
    message["blocks"][0]["text"]["text"] = "h" * 151
    with pytest.raises(SlackApiError) as raised:
        await web_client.chat_postEphemeral(channel="C0TEST", user="U0ALICE", **message)
    assert raised.value.response["error"] == "invalid_blocks"
    assert raised.value.response["errors"] == ["blocks[0].text.text: 151 chars, max 150"]

    modal = a_modal()
    del modal["submit"]
    with pytest.raises(SlackApiError) as raised:
        await web_client.views_open(trigger_id=standin.trigger_id(), view=modal)
    assert raised.value.response["error"] == "invalid_arguments"
    assert "needs a submit" in raised.value.response["response_metadata"]["messages"][0]


async def test_trigger_ids_are_single_use(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    trigger = standin.trigger_id()
    opened = await web_client.views_open(trigger_id=trigger, view=a_modal())
    assert opened["view"]["id"].startswith("V")
    assert standin.latest_view("create")["hash"] == opened["view"]["hash"]
    with pytest.raises(SlackApiError, match="expired_trigger_id"):
        await web_client.views_open(trigger_id=trigger, view=a_modal())


async def test_trigger_ids_expire_after_3_seconds(
    standin: SlackStandIn, web_client: AsyncWebClient
) -> None:
    trigger = standin.trigger_id()
    standin.advance(3.01)
    with pytest.raises(SlackApiError, match="expired_trigger_id"):
        await web_client.views_open(trigger_id=trigger, view=a_modal())


async def test_views_update_and_push(standin: SlackStandIn, web_client: AsyncWebClient) -> None:
    opened = (await web_client.views_open(trigger_id=standin.trigger_id(), view=a_modal()))["view"]
    with pytest.raises(SlackApiError, match="hash_conflict"):
        await web_client.views_update(view_id=opened["id"], hash="stale", view=a_modal())
    updated = await web_client.views_update(
        view_id=opened["id"], hash=opened["hash"], view={**a_modal(), "callback_id": "edit"}
    )
    assert updated["view"]["id"] == opened["id"] and updated["view"]["callback_id"] == "edit"
    pushed = await web_client.views_push(
        trigger_id=standin.trigger_id(view_id=opened["id"]), view=a_modal()
    )
    assert pushed["view"]["previous_view_id"] == opened["id"]
    assert pushed["view"]["root_view_id"] == opened["id"]


async def test_response_url_takes_5_posts_then_refuses(standin: SlackStandIn) -> None:
    url = standin.response_url()
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(6):
            async with session.post(url, json={"text": "hi", "replace_original": True}) as r:
                statuses.append((r.status, (await r.json()).get("error")))
    assert statuses == [(200, None)] * 5 + [(404, "used_url")]
    assert [p.accepted for p in standin.responses_to(url)] == [True] * 5 + [False]


async def test_response_url_expires_and_checks_blocks(standin: SlackStandIn) -> None:
    expired, fresh = standin.response_url(), standin.response_url()
    standin.expire_response_url(expired)
    async with aiohttp.ClientSession() as session:
        async with session.post(expired, json={"text": "hi"}) as response:
            assert (response.status, (await response.json())["error"]) == (404, "expired_url")
        async with session.post(fresh, json={"blocks": []}) as response:
            assert (response.status, (await response.json())["error"]) == (400, "invalid_blocks")
    standin.advance(30 * 60 + 1)
    async with aiohttp.ClientSession() as session:
        async with session.post(fresh, json={"text": "hi"}) as response:
            assert response.status == 404


async def test_faults_are_one_shot(standin: SlackStandIn, web_client: AsyncWebClient) -> None:
    standin.fail_next("chat.postMessage")
    standin.delay_next("chat.postMessage", 0.01)
    with pytest.raises(SlackApiError) as raised:
        await web_client.chat_postMessage(channel="C0TEST", text="hi")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "1"
    assert (await web_client.chat_postMessage(channel="C0TEST", text="hi"))["ok"]


# -- signing and the client ------------------------------------------------------------


@pytest.mark.parametrize(
    ("signing", "valid"), [("valid", True), ("bad", False), ("stale", False), ("none", False)]
)
def test_signatures_as_slack_sdk_verifies_them(signing: Signing, valid: bool) -> None:
    body = b"command=%2Ftokens&text=list"
    clock_now = 1_700_000_000
    headers = signed_headers(SECRET, body, timestamp=clock_now, signing=signing)

    class FixedClock(Clock):
        def now(self) -> float:
            return clock_now

    verifier = SignatureVerifier(SECRET, clock=FixedClock())
    assert verifier.is_valid_request(body, headers) is valid


def test_fill_and_action_for_follow_the_rendered_blocks() -> None:
    state = fill(a_modal(), {"name_input": "Lifecycle Alpha"})
    assert state == {
        "name": {"name_input": {"type": "plain_text_input", "value": "Lifecycle Alpha"}},
        "version": {"version_select": {"type": "static_select", "selected_option": option("v3")}},
    }
    with pytest.raises(LookupError):
        fill(a_modal(), {"version": "v9"})
    with pytest.raises(KeyError):
        fill(a_modal(), {"nmae": "typo"})

    blocks = a_message()["blocks"]
    chosen = action_for(blocks, "card", "reset:1:3")
    assert chosen["block_id"] == "card:1"
    assert chosen["selected_option"] == option("reset:1:3")
    assert action_for(blocks, "q", "alpha")["value"] == "alpha"
    with pytest.raises(LookupError):
        action_for(blocks, "card", "explode:1:3")


@pytest.fixture
async def bolt_app_url(standin: SlackStandIn) -> AsyncIterator[str]:
    """A small real Bolt app on the stand-in, to prove the bench speaks Slack to Bolt."""
    bolt = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(token="xoxb-test", base_url=standin.api_url),
        process_before_response=True,
    )

    @bolt.command("/tokens")
    async def open_modal(ack: AsyncAck, body: Payload, client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=a_modal())

    @bolt.view("create")
    async def submit(ack: AsyncAck, view: Payload) -> None:
        name = view["state"]["values"]["name"]["name_input"]["value"]
        await ack(response_action="errors", errors={"name": f"{name} is taken"})

    @bolt.action("card")
    async def card_action(ack: AsyncAck, body: Payload, respond: AsyncRespond) -> None:
        await ack()
        assert "message" not in body
        await respond(text=body["actions"][0]["selected_option"]["value"], replace_original=True)

    async def dispatch(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/slack/events"
    await runner.cleanup()


async def test_client_drives_a_bolt_app(standin: SlackStandIn, bolt_app_url: str) -> None:
    async with SlackClient(bolt_app_url, signing_secret=SECRET, standin=standin) as slack:
        reply = await slack.slash_command("U0ALICE", "create")
        assert (reply.status, reply.body) == (200, "")
        modal = standin.latest_view("create")

        reply = await slack.view_submission("U0ALICE", modal, {"name": "Alpha"})
        assert reply.body == {"response_action": "errors", "errors": {"name": "Alpha is taken"}}

        action = action_for(a_message()["blocks"], "card", "disable:1:3")
        reply = await slack.block_action(
            "U0ALICE", action, container=ephemeral_container("C0TEST", "1.000001")
        )
        assert reply.status == 200
        assert standin.responses_to(reply.sent["response_url"])[0].body == {
            "text": "disable:1:3",
            "replace_original": True,
        }

        for signing in ("bad", "stale", "none"):
            assert (await slack.slash_command("U0ALICE", signing=signing)).status == 401
