"""The stand-in's channels and Events API over HTTP: what people post and edit reaches the app
as Slack sends it, signed, retried with the same event_id, and the app's own posts and thread
replies come back the way Slack sends them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from slack_standin.server import SlackStandIn

SECRET = "test-signing-secret"
CHANNEL, PRIVATE, ELSEWHERE = "C0GENERAL", "G0SECRET", "C0RANDOM"
ALICE = "U0ALICE"
Payload = dict[str, Any]


@dataclass
class RequestUrl:
    """A request URL that checks Slack's signature and records what it was sent."""

    url: str = ""
    bodies: list[Payload] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0

    @property
    def events(self) -> list[Payload]:
        return [body["event"] for body in self.bodies]


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as running:
        running.add_channel(CHANNEL, name="general")
        running.add_channel(PRIVATE, name="secret", private=True)
        running.add_channel(ELSEWHERE, name="random", app_member=False)
        yield running


@pytest.fixture
async def app(standin: SlackStandIn) -> AsyncIterator[RequestUrl]:
    recorded = RequestUrl()
    verifier = SignatureVerifier(SECRET)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401)
        recorded.bodies.append(json.loads(body))
        recorded.headers.append(dict(request.headers))
        await asyncio.sleep(recorded.delay)
        return web.Response()

    web_app = web.Application()
    web_app.router.add_post("/slack/events", receive)
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    recorded.url = f"http://{host}:{port}/slack/events"
    standin.deliver_over_http(recorded.url, SECRET)
    yield recorded
    await runner.cleanup()


@pytest.fixture
def bot(standin: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=standin.api_url)


async def test_a_post_reaches_the_app_as_a_signed_event_callback(
    standin: SlackStandIn, app: RequestUrl
) -> None:
    delivery = await standin.user_posts(CHANNEL, ALICE, "see the report")

    assert delivery.status == 200 and delivery.acked and delivery.mode == "http"
    assert delivery.ack_seconds is not None and delivery.ack_seconds < 3
    assert standin.deliveries == [delivery]
    (body,) = app.bodies
    assert body == delivery.payload
    assert body["type"] == "event_callback" and body["event_id"] == delivery.event_id
    assert (body["team_id"], body["api_app_id"]) == ("T0TEST", "A0TEST")
    assert body["authorizations"][0]["user_id"] == "U0BOT"
    assert body["is_ext_shared_channel"] is False
    event = body["event"]
    assert event["type"] == "message" and "subtype" not in event
    assert (event["channel"], event["channel_type"], event["user"]) == (CHANNEL, "channel", ALICE)
    assert event["text"] == "see the report"
    assert event["ts"] == event["event_ts"] == delivery.ts
    assert event["blocks"][0]["type"] == "rich_text"  # as a Slack client sends it
    assert "X-Slack-Retry-Num" not in app.headers[0]
    assert standin.channel_messages(CHANNEL)[0]["text"] == "see the report"


async def test_a_private_channel_is_a_group_and_other_channels_send_nothing(
    standin: SlackStandIn, app: RequestUrl
) -> None:
    attachments = [{"text": "in an attachment"}]
    private = await standin.user_posts(PRIVATE, ALICE, "", blocks=[], attachments=attachments)
    elsewhere = await standin.user_posts(ELSEWHERE, ALICE, "not for the app")

    assert private.acked and app.events[0]["channel_type"] == "group"
    assert app.events[0]["attachments"] == attachments and "blocks" not in app.events[0]
    assert (elsewhere.status, elsewhere.ack_seconds) == ("not_sent", None)
    assert len(app.bodies) == 1 and len(standin.deliveries) == 1
    assert standin.channel_messages(ELSEWHERE)[0]["text"] == "not for the app"
    with pytest.raises(LookupError):
        await standin.user_posts("C0NEVERADDED", ALICE, "hi")


async def test_an_edit_is_message_changed_with_the_new_message_inside(
    standin: SlackStandIn, app: RequestUrl
) -> None:
    posted = await standin.user_posts(CHANNEL, ALICE, "first")
    edited = await standin.user_edits(CHANNEL, str(posted.ts), "second")

    event = app.events[1]
    assert event["subtype"] == "message_changed" and event["hidden"] is True
    assert event["message"]["ts"] == posted.ts == edited.ts
    assert event["message"]["text"] == "second" and event["message"]["user"] == ALICE
    assert event["message"]["edited"] == {"user": ALICE, "ts": event["ts"]}
    assert event["previous_message"]["text"] == "first"
    assert event["ts"] == event["event_ts"] != posted.ts
    assert "user" not in event
    assert standin.messages[(CHANNEL, str(posted.ts))]["text"] == "second"


async def test_a_late_ack_times_out_and_the_retry_keeps_the_event_id(
    standin: SlackStandIn, app: RequestUrl
) -> None:
    standin.ack_timeout, app.delay = 0.2, 0.5
    first = await standin.user_posts(CHANNEL, ALICE, "slow")
    app.delay = 0.0
    retry = await standin.redeliver(first)
    again = await standin.redeliver(first, retry_num=2, reason="http_error")

    assert (first.status, first.ack_seconds) == ("timeout", None) and not first.acked
    assert retry.status == again.status == 200
    assert first.event_id == retry.event_id == again.event_id == app.bodies[2]["event_id"]
    assert retry.payload == first.payload and retry.ts == first.ts
    assert (app.headers[1]["X-Slack-Retry-Num"], app.headers[1]["X-Slack-Retry-Reason"]) == (
        "1",
        "http_timeout",
    )
    assert app.headers[2]["X-Slack-Retry-Num"] == "2"
    assert [d.retry_num for d in standin.deliveries] == [0, 1, 2]


async def test_the_apps_thread_reply_comes_back_with_its_parent_redelivered(
    standin: SlackStandIn, app: RequestUrl, bot: AsyncWebClient
) -> None:
    parent = await standin.user_posts(CHANNEL, ALICE, "question")
    reply = await bot.chat_postMessage(channel=CHANNEL, thread_ts=parent.ts, text="answer")
    await standin.deliveries_done()

    own, replied = app.events[1:]
    assert (own["bot_id"], own["user"], own["ts"]) == ("B0BOT", "U0BOT", reply["ts"])
    assert own["thread_ts"] == parent.ts and own["parent_user_id"] == ALICE
    assert replied["subtype"] == "message_replied" and replied["ts"] != parent.ts
    inner = replied["message"]
    assert (inner["ts"], inner["thread_ts"], inner["text"]) == (parent.ts, parent.ts, "question")
    assert (inner["reply_count"], inner["latest_reply"], inner["reply_users"]) == (
        1,
        reply["ts"],
        ["U0BOT"],
    )
    assert standin.deliveries[2].ts == parent.ts  # the re-delivery is about the parent

    standin.replied_subtype = None  # as Slack often sends it
    await standin.user_posts(CHANNEL, ALICE, "me too", thread_ts=parent.ts)
    await standin.deliveries_done()
    assert "subtype" not in app.events[-1] and app.events[-1]["message"]["reply_count"] == 2
    assert [m["text"] for m in standin.thread(CHANNEL, str(parent.ts))] == [
        "question",
        "answer",
        "me too",
    ]


async def test_the_apps_posts_and_updates_in_its_channels_come_back(
    standin: SlackStandIn, app: RequestUrl, bot: AsyncWebClient
) -> None:
    posted = await bot.chat_postMessage(channel="#general", text="alert")
    await bot.chat_update(channel=CHANNEL, ts=posted["ts"], text="alert, updated")
    await bot.chat_postMessage(channel=ELSEWHERE, text="not in it: not sent")
    await bot.chat_postMessage(channel=ALICE, text="a DM: not sent")
    await standin.deliveries_done()

    assert posted["channel"] == CHANNEL
    own, updated = app.events
    assert own["bot_id"] == "B0BOT" and own["text"] == "alert"
    assert updated["subtype"] == "message_changed"
    assert updated["message"]["text"] == "alert, updated"


async def test_no_app_listening_leaves_the_apps_posts_undelivered(
    standin: SlackStandIn, bot: AsyncWebClient
) -> None:
    await bot.chat_postMessage(channel=CHANNEL, text="nobody listens")
    await standin.deliveries_done()
    assert standin.deliveries == []
    with pytest.raises(RuntimeError):
        await standin.user_posts(CHANNEL, ALICE, "hello?")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"channel": CHANNEL, "thread_ts": "1.000001"}, "thread_not_found"),
        ({"channel": "C0NEVERADDED", "thread_ts": "1.000001"}, "thread_not_found"),
        ({"channel": ALICE, "thread_ts": "1.000001"}, "thread_not_found"),
        ({"channel": "#nowhere"}, "channel_not_found"),
    ],
)
async def test_thread_and_channel_refusals(bot: AsyncWebClient, args: Payload, error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        await bot.chat_postMessage(text="hi", **args)
    assert raised.value.response["error"] == error


async def test_a_thread_ts_naming_a_reply_is_refused(
    standin: SlackStandIn, app: RequestUrl, bot: AsyncWebClient
) -> None:
    parent = await standin.user_posts(CHANNEL, ALICE, "question")
    reply = await standin.user_posts(CHANNEL, ALICE, "more", thread_ts=parent.ts)
    with pytest.raises(SlackApiError, match="thread_ts_is_a_reply"):
        await bot.chat_postMessage(channel=CHANNEL, thread_ts=reply.ts, text="answer")
    await standin.deliveries_done()


async def test_membership_decides_where_the_app_may_post(
    standin: SlackStandIn, bot: AsyncWebClient
) -> None:
    standin.add_channel("G0HIDDEN", name="hidden", private=True, app_member=False)
    with pytest.raises(SlackApiError, match="channel_not_found"):
        await bot.chat_postMessage(channel="G0HIDDEN", text="hi")
    # chat:write.public (manifest.yml) lets the app post in public channels it is not in.
    assert (await bot.chat_postMessage(channel=ELSEWHERE, text="hi"))["ok"]
    assert (await bot.chat_postMessage(channel="C0NEVERADDED", text="hi"))["ok"]
    standin.scopes.discard("chat:write.public")
    for channel in (ELSEWHERE, "C0NEVERADDED"):
        with pytest.raises(SlackApiError, match="not_in_channel"):
            await bot.chat_postMessage(channel=channel, text="hi")
    assert (await bot.chat_postMessage(channel=CHANNEL, text="a member still may"))["ok"]


async def test_permalinks(standin: SlackStandIn, app: RequestUrl, bot: AsyncWebClient) -> None:
    parent = await standin.user_posts(CHANNEL, ALICE, "question")
    reply = await standin.user_posts(CHANNEL, ALICE, "more", thread_ts=parent.ts)
    hidden = await standin.user_posts(ELSEWHERE, ALICE, "elsewhere")
    await standin.deliveries_done()

    link = await bot.chat_getPermalink(channel=CHANNEL, message_ts=str(parent.ts))
    digits = str(parent.ts).replace(".", "")
    assert link["channel"] == CHANNEL
    assert link["permalink"] == f"https://tokendesk-test.slack.com/archives/{CHANNEL}/p{digits}"
    threaded = await bot.chat_getPermalink(channel=CHANNEL, message_ts=str(reply.ts))
    assert threaded["permalink"].endswith(f"?thread_ts={parent.ts}&cid={CHANNEL}")
    for channel, ts, error in [
        (CHANNEL, "1.000001", "message_not_found"),
        (ELSEWHERE, str(hidden.ts), "channel_not_found"),
        ("C0NEVERADDED", "1.000001", "channel_not_found"),
    ]:
        with pytest.raises(SlackApiError) as raised:
            await bot.chat_getPermalink(channel=channel, message_ts=ts)
        assert raised.value.response["error"] == error
    assert [c.ok for c in standin.calls_to("chat.getPermalink")] == [
        True,
        True,
        False,
        False,
        False,
    ]


async def test_the_app_cannot_update_what_a_person_posted(
    standin: SlackStandIn, app: RequestUrl, bot: AsyncWebClient
) -> None:
    posted = await standin.user_posts(CHANNEL, ALICE, "mine")
    with pytest.raises(SlackApiError, match="cant_update_message"):
        await bot.chat_update(channel=CHANNEL, ts=str(posted.ts), text="yours")


async def test_raw_and_foreign_events_are_sent_as_given(
    standin: SlackStandIn, app: RequestUrl
) -> None:
    foreign = await standin.deliver_event(
        {"type": "reaction_added", "user": ALICE}, team_id="T0OTHER", api_app_id="A0OTHER"
    )
    raw = await standin.deliver_raw(b'{"type": "event_callback", "event": []}')
    garbage = await standin.deliver_raw(b"not json at all")
    unsigned = await standin.deliver_raw(b"{}", signing="bad")

    assert foreign.acked and app.bodies[0]["team_id"] == "T0OTHER"
    assert app.bodies[0]["event"] == {"type": "reaction_added", "user": ALICE}
    assert raw.acked and raw.payload["event"] == [] and raw.ts is None
    assert garbage.payload == {"raw": "not json at all"}
    assert unsigned.status == 401


async def test_socket_mode_urls_need_the_app_level_token(standin: SlackStandIn) -> None:
    bot = AsyncWebClient(token="xoxb-test", base_url=standin.api_url)
    app_level = AsyncWebClient(token="xapp-test", base_url=standin.api_url)
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await bot.apps_connections_open(app_token="xoxb-test")
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await app_level.chat_postMessage(channel=CHANNEL, text="hi")
    opened = await bot.apps_connections_open(app_token="xapp-test")
    assert opened["url"].startswith(
        standin.api_url.replace("http", "ws").replace("/api/", "/socket/")
    )
