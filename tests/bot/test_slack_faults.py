"""Slack misbehaving under real flows: rate limits, server errors, answers slower than the
client waits, refused or worn-out response_urls, expired triggers, failing DMs.

Each test injects its fault on the stand-in while a flow runs end to end (the list from
`/tokens`, a click on what the app rendered, the modal it opened, its submission) and checks:
- the app keeps answering, and every ack comes back within Slack's 3 seconds;
- no change is lost or doubled (the store and the audit log hold exactly what they should);
- the user is told on the surface Slack still accepts (the click's response_url);
- retries stay bounded: `views.open` never, other Web API calls once (after `Retry-After` on
  a 429), a response_url never after `used_url` / `expired_url`.

The app runs with a 1 s Web API timeout (instead of `CLIENT_TIMEOUT_SECONDS`) so that "too
slow" costs little time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp

from bot.app import create_app
from bot.background import drain
from bot.settings import Settings
from bot.slack_client import create_web_client
from slack_standin.client import Reply, SlackClient, action_for, ephemeral_container, fill
from slack_standin.server import RESPONSE_URL_USES, TRIGGER_TTL, Call, ResponsePost, SlackStandIn
from storage.models import IssuedToken, Token, TokenState
from storage.store import Store
from tests.bot.conftest import ADMIN, SPECIALIST

Body = dict[str, Any]
Ledger = tuple[tuple[Token, ...], tuple[tuple[str, str | None], ...]]

FAST_TIMEOUT = 1
LATE = FAST_TIMEOUT + 0.1  # the stand-in answers after the app's client has given up
RETRY_AFTER = 1
ACK_LIMIT = 3.0
SETTLE_LIMIT = 8.0
CHANNEL, MESSAGE_TS = "C0TEST", "1700000000.000100"
CLICK_AGAIN = "click again"
NEVER_SHOWN = ("Traceback", "dispatch_failed", "SlackApiError", "TimeoutError")


@pytest.fixture
async def bolt(settings: Settings, store: Store) -> AsyncApp:
    """The app as `create_app` builds it, with the same retry handlers but a 1 s timeout."""
    client = create_web_client(settings)
    client.timeout = FAST_TIMEOUT
    return create_app(settings, store, client=client)


# -- the faults ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One way a Slack answer goes wrong; `times` answers in a row go wrong that way."""

    name: str
    error: str = ""
    status: int = 200
    retry_after: float | None = None
    late: bool = False
    times: int = 1

    @property
    def retriable(self) -> bool:
        return self.status in (429, 500, 503)

    def inject(self, standin: SlackStandIn, method: str) -> None:
        for _ in range(self.times):
            if self.late:
                standin.delay_next(method, LATE)
            else:
                standin.fail_next(
                    method, self.error, status=self.status, retry_after=self.retry_after
                )


RATE_LIMITED = Fault("429", "ratelimited", status=429, retry_after=RETRY_AFTER)
SERVER_ERROR = Fault("500", "internal_error", status=500)
SERVER_DOWN = Fault("500x2", "internal_error", status=500, times=2)
TIMED_OUT = Fault("timeout", late=True)
EXPIRED_TRIGGER = Fault("expired_trigger_id", "expired_trigger_id")
USER_GONE = Fault("user_not_found", "user_not_found")
CHANNEL_GONE = Fault("channel_not_found", "channel_not_found")


def fault_id(fault: Fault) -> str:
    return fault.name


# -- driving the app and waiting for it -------------------------------------------------


async def settle(until: Callable[[], bool] | None = None, *, timeout: float = SETTLE_LIMIT) -> None:
    """Let the work after an ack finish: until `until()` holds, or until nothing is left
    running (the app's spawned work is drained, so a retry would have happened by then)."""
    deadline = time.monotonic() + timeout
    rounds = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        await drain(timeout=timeout)
        rounds += 1
        if until is None and rounds >= 8:
            return
        if until is not None and until():
            await drain(timeout=timeout)
            return
    assert until is None, "the app did not get there in time"


class Desk:
    """One admin's ephemeral token list, with the round trip of every request measured."""

    def __init__(self, slack: SlackClient, standin: SlackStandIn, user: str = ADMIN) -> None:
        self.slack, self.standin, self.user = slack, standin, user
        self.blocks: list[Body] = []
        self.trips: list[tuple[str, float]] = []

    async def timed(self, what: str, request: Awaitable[Reply]) -> Reply:
        started = time.monotonic()
        reply = await request
        elapsed = time.monotonic() - started
        self.trips.append((what, elapsed))
        assert elapsed < ACK_LIMIT, f"{what} acknowledged after {elapsed:.2f} s"
        assert reply.status == 200, (what, reply.status, reply.body)
        return reply

    async def command(self, text: str = "", *, trigger_id: str | None = None) -> Reply:
        request = self.slack.slash_command(self.user, text, trigger_id=trigger_id)
        reply = await self.timed(f"/tokens {text}".strip(), request)
        if isinstance(reply.body, dict) and isinstance(reply.body.get("blocks"), list):
            self.blocks = reply.body["blocks"]
        return reply

    async def click(
        self,
        action: Body,
        *,
        values: dict[str, Any] | None = None,
        response_url: str | None = None,
    ) -> Reply:
        request = self.slack.block_action(
            self.user,
            action,
            container=ephemeral_container(CHANNEL, MESSAGE_TS),
            state=fill(self.blocks, values or {}),
            response_url=response_url,
        )
        reply = await self.timed(str(action["action_id"]), request)
        assert reply.body == "", reply.body
        return reply

    async def open(self, action: Body, callback_id: str) -> tuple[Reply, Body]:
        """A click that opens a modal (no fault): the click and the view Slack holds."""
        opened = len(self.standin.calls_to("views.open"))
        reply = await self.click(action)
        await settle(lambda: len(self.standin.calls_to("views.open")) > opened)
        calls = self.standin.calls_to("views.open")[opened:]
        assert len(calls) == 1 and calls[0].ok, [call.answer for call in calls]
        view = dict(calls[0].answer["view"])
        assert view["callback_id"] == callback_id
        return reply, view

    async def submit(self, view: Body, values: dict[str, Any] | None = None) -> Body:
        request = self.slack.view_submission(self.user, view, values or {})
        reply = await self.timed(f"submit {view.get('callback_id')}", request)
        assert isinstance(reply.body, dict), reply.body
        return dict(reply.body)

    async def still_answers(self, token_id: int | None = None) -> list[Body]:
        """The next request is served as usual: `/tokens` answers the list in its ack."""
        reply = await self.command()
        assert isinstance(reply.body, dict) and reply.body.get("response_type") == "ephemeral"
        if token_id is not None:
            assert block(self.blocks, f"details.{token_id}") is not None
        return self.blocks


@pytest.fixture
def desk(slack: SlackClient, standin: SlackStandIn) -> Desk:
    return Desk(slack, standin)


# -- reading what the app rendered and what Slack received ------------------------------


def block(blocks: list[Body], block_id: str) -> Body | None:
    return next((b for b in blocks if b.get("block_id") == block_id), None)


def menu_action(blocks: list[Body], token_id: int, choice: str) -> Body:
    details = block(blocks, f"details.{token_id}")
    assert details is not None, f"no card for token {token_id}"
    values = [str(option["value"]) for option in details["accessory"]["options"]]
    value = next((v for v in values if v.startswith(f"{choice}:")), None)
    assert value is not None, f"no {choice!r} in {values}"
    return action_for(blocks, "token_menu", value, block_id=f"details.{token_id}")


def opener(blocks: list[Body], flow: str, token_id: int) -> tuple[Body, str]:
    """The click that opens `flow`'s modal, and the modal's callback_id."""
    if flow == "create":
        return action_for(blocks, "token_create", block_id="create"), "token_create"
    if flow == "edit":
        return action_for(blocks, "token_edit", block_id=f"edit.{token_id}"), "token_edit"
    return menu_action(blocks, token_id, flow), "token_confirm"


def card_text(blocks: list[Body], token_id: int) -> str:
    found = block(blocks, f"details.{token_id}")
    assert found is not None, f"no card for token {token_id}"
    return str(found["text"]["text"])


def dm_channel(user_id: str) -> str:
    return "D" + user_id[1:]


def calls_for(standin: SlackStandIn, method: str, user_id: str) -> list[Call]:
    """The calls `method` made for one recipient's DM."""
    if method == "conversations.open":
        return [c for c in standin.calls_to(method) if c.args.get("users") == user_id]
    return [c for c in standin.calls_to(method) if c.args.get("channel") == dm_channel(user_id)]


def delivered(standin: SlackStandIn, user_id: str) -> list[Body]:
    """The DMs Slack accepted for `user_id`."""
    return [c.args for c in calls_for(standin, "chat.postMessage", user_id) if c.ok]


def posts_after(standin: SlackStandIn, url: str, skip: int) -> list[ResponsePost]:
    return standin.responses_to(url)[skip:]


def shown(post: ResponsePost) -> str:
    return repr(post.body)


async def seed(store: Store, name: str, *, contact: str = SPECIALIST) -> IssuedToken:
    return await store.tokens.create(
        actor=ADMIN, name=name, access_rights=["reports:read"], primary_contact=contact
    )


async def ledger(store: Store) -> Ledger:
    """Every token as stored and every audit event: what a fault must not change twice."""
    page = await store.tokens.page(limit=100)
    events = await store.audit.events(limit=10_000)
    return page.tokens, tuple((event.action, event.token_sid) for event in events)


async def new_events(store: Store, before: Ledger) -> list[tuple[str, str | None]]:
    events = (await ledger(store))[1]
    return list(events[: len(events) - len(before[1])])


async def wear_out(standin: SlackStandIn, url: str, how: str) -> None:
    """Make `url` refuse every further post: `expired`, or `used` five times already."""
    if how == "expired":
        standin.expire_response_url(url)
        return
    async with aiohttp.ClientSession() as session:
        for use in range(RESPONSE_URL_USES):
            async with session.post(url, json={"text": f"earlier answer {use}"}) as answer:
                assert answer.status == 200
    assert all(post.accepted for post in standin.responses_to(url))


# -- 1. views.open: never retried, the user asked to click again ------------------------


@pytest.mark.parametrize(
    "fault", [RATE_LIMITED, SERVER_ERROR, EXPIRED_TRIGGER, TIMED_OUT], ids=fault_id
)
@pytest.mark.parametrize("flow", ["create", "edit", "reset"])
async def test_a_modal_slack_did_not_open_is_never_retried_and_the_user_is_told(
    desk: Desk, store: Store, standin: SlackStandIn, fault: Fault, flow: str
) -> None:
    issued = await seed(store, "Gateway")
    await desk.command()
    action, callback_id = opener(desk.blocks, flow, issued.token.id)
    before = await ledger(store)
    fault.inject(standin, "views.open")

    click = await desk.click(action)
    url = click.sent["response_url"]
    await settle(lambda: bool(standin.responses_to(url)) and bool(standin.calls_to("views.open")))
    await settle()

    opens = standin.calls_to("views.open")
    assert len(opens) == 1, f"views.open called {len(opens)} times: it must never be retried"
    assert opens[0].args["trigger_id"] == click.sent["trigger_id"]
    if not fault.late:
        assert opens[0].answer["error"] == fault.error
    told = standin.responses_to(url)
    assert len(told) == 1 and told[0].accepted, [shown(post) for post in told]
    message = told[0].body
    assert message.get("response_type") == "ephemeral"
    assert message.get("replace_original") is False, "the list itself must stay"
    assert not any(word in shown(told[0]) for word in NEVER_SHOWN), message
    assert await ledger(store) == before

    # The app keeps answering: the same button, clicked again, opens the modal.
    await desk.click(action)
    await settle(lambda: len(standin.calls_to("views.open")) == 2)
    again = standin.calls_to("views.open")[1]
    assert again.ok and again.answer["view"]["callback_id"] == callback_id
    assert await ledger(store) == before
    await desk.still_answers(issued.token.id)

    # What the user read after the failed open: no form came up, so: click again.
    assert CLICK_AGAIN in str(message["text"]).lower(), (
        f"after a views.open {fault.name} the user was told {message['text']!r}"
    )


async def test_a_trigger_that_really_expired_asks_to_try_again(
    desk: Desk, store: Store, standin: SlackStandIn
) -> None:
    """`/tokens create` arriving with a trigger Slack already let expire (no injected
    answer: the stand-in's own 3 s rule refuses it)."""
    stale = standin.trigger_id()
    standin.advance(TRIGGER_TTL + 1)

    reply = await desk.command("create Nightly", trigger_id=stale)
    assert reply.body == ""
    url = reply.sent["response_url"]
    await settle(lambda: bool(standin.responses_to(url)))
    await settle()

    opens = standin.calls_to("views.open")
    assert len(opens) == 1 and opens[0].answer["error"] == "expired_trigger_id"
    told = standin.responses_to(url)
    assert len(told) == 1 and told[0].accepted
    assert told[0].body.get("response_type") == "ephemeral"
    assert "again" in str(told[0].body["text"]).lower()
    assert store.tokens.count == 0

    await desk.command("create Nightly")
    await settle(lambda: len(standin.calls_to("views.open")) == 2)
    assert standin.calls_to("views.open")[1].ok
    assert standin.latest_view("token_create")["callback_id"] == "token_create"


# -- 2. the list refresh: a worn-out response_url is tried once, the change stands -------


async def list_click(desk: Desk, flow: str, token_id: int, *, response_url: str) -> Reply:
    """A click answered in the list itself: a State filter, or a card's Disable."""
    if flow == "filter":
        action = action_for(desk.blocks, "filter_state", "disabled")
        return await desk.click(
            action, values={"filter_state": "disabled"}, response_url=response_url
        )
    return await desk.click(
        menu_action(desk.blocks, token_id, "disable"), response_url=response_url
    )


@pytest.mark.parametrize("worn", ["expired", "used"])
@pytest.mark.parametrize("flow", ["filter", "disable"])
async def test_a_worn_out_response_url_is_tried_once_and_the_change_stands(
    desk: Desk, store: Store, standin: SlackStandIn, flow: str, worn: str
) -> None:
    issued = await seed(store, "Lifecycle Alpha")
    token_id = issued.token.id
    await desk.command()
    url = standin.response_url()
    await wear_out(standin, url, worn)
    earlier = len(standin.responses_to(url))
    before = await ledger(store)

    await list_click(desk, flow, token_id, response_url=url)
    await settle(lambda: bool(posts_after(standin, url, earlier)))
    if flow == "disable":
        await settle(lambda: bool(delivered(standin, SPECIALIST)))
    await settle()

    refused = posts_after(standin, url, earlier)
    assert len(refused) == 1, f"{len(refused)} posts to a refused response_url"
    assert refused[0].error == f"{worn}_url"
    if flow == "disable":
        token = await store.tokens.get(token_id=token_id)
        assert token.state is TokenState.DISABLED
        assert token.row_version == issued.token.row_version + 1
        assert await new_events(store, before) == [("disable", issued.token.sid)]
        assert len(delivered(standin, SPECIALIST)) == 1, "the contact's DM went anyway, once"
        assert len(standin.calls_to("chat.postMessage")) == 1
    else:
        assert await ledger(store) == before
        assert standin.calls_to("chat.postMessage") == []

    # The app keeps answering: the next click, with its own response_url, refreshes.
    blocks = await desk.still_answers(token_id)
    expected = "Disabled" if flow == "disable" else "Enabled"
    assert expected in card_text(blocks, token_id)
    fresh = await desk.click(action_for(desk.blocks, "filters_clear"))
    await settle(lambda: bool(standin.responses_to(fresh.sent["response_url"])))
    posts = standin.responses_to(fresh.sent["response_url"])
    assert len(posts) == 1 and posts[0].accepted and posts[0].body["replace_original"] is True
    assert expected in card_text(posts[0].body["blocks"], token_id)
    assert await new_events(store, before) == (
        [("disable", issued.token.sid)] if flow == "disable" else []
    )


# -- 3. invalid_blocks on a response_url: bounded, and the user still hears of it --------


@pytest.mark.parametrize("flow", ["filter", "disable", "delete"])
async def test_a_refused_refresh_is_never_resent_as_is_and_the_user_is_told(
    desk: Desk, store: Store, standin: SlackStandIn, flow: str
) -> None:
    """Slack refuses the refreshed list (`invalid_blocks`, 400); the response_url itself
    still takes posts (the refusal used none of its five), so the user can be told."""
    issued = await seed(store, "Lifecycle Alpha")
    token_id = issued.token.id
    await desk.command()
    before = await ledger(store)
    if flow == "delete":
        click, view = await desk.open(menu_action(desk.blocks, token_id, "delete"), "token_confirm")
        standin.fail_next("response_url", "invalid_blocks", status=400, retry_after=None)
        ack = await desk.submit(view)
        assert ack.get("response_action") in ("clear", "update"), ack
    else:
        standin.fail_next("response_url", "invalid_blocks", status=400, retry_after=None)
        click = await list_click(desk, flow, token_id, response_url=standin.response_url())
    url = click.sent["response_url"]
    await settle(lambda: bool(standin.responses_to(url)))
    if flow != "filter":
        await settle(lambda: bool(delivered(standin, SPECIALIST)))
    await settle()

    posts = standin.responses_to(url)
    assert posts and posts[0].error == "invalid_blocks"
    assert len(posts) <= 2, f"{len(posts)} posts after invalid_blocks"
    assert all(post.body != posts[0].body for post in posts[1:]), "refused blocks resent"
    if flow == "filter":
        assert await ledger(store) == before
    else:
        assert await new_events(store, before) == [(flow, issued.token.sid)]
        assert len(delivered(standin, SPECIALIST)) == 1
        assert len(standin.calls_to("chat.postMessage")) == 1
    await desk.still_answers(None if flow == "delete" else token_id)
    told = [post for post in posts[1:] if post.accepted]
    assert told, (
        f"{flow}: Slack refused the refreshed list and the user was never told;"
        " the response_url had all its uses left"
    )
    assert told[0].body.get("response_type") == "ephemeral"


# -- 4. a modal's list gone: applied once, the refresh tried once ------------------------


@pytest.mark.parametrize("worn", ["expired", "used"])
@pytest.mark.parametrize("choice", ["reset", "delete"])
async def test_a_modal_whose_list_is_gone_applies_once_and_tries_the_refresh_once(
    desk: Desk, store: Store, standin: SlackStandIn, choice: str, worn: str
) -> None:
    issued = await seed(store, "Gateway")
    token_id = issued.token.id
    await desk.command()
    click, view = await desk.open(menu_action(desk.blocks, token_id, choice), "token_confirm")
    url = click.sent["response_url"]
    await wear_out(standin, url, worn)
    earlier = len(standin.responses_to(url))
    before = await ledger(store)

    ack = await desk.submit(view)
    assert ack.get("response_action") in ("clear", "update"), ack
    recipients = [SPECIALIST, ADMIN] if choice == "reset" else [SPECIALIST]
    await settle(lambda: bool(posts_after(standin, url, earlier)))
    await settle(lambda: all(delivered(standin, user) for user in recipients))
    await settle()

    refused = posts_after(standin, url, earlier)
    assert len(refused) == 1, f"{len(refused)} posts to a refused response_url"
    assert refused[0].error == f"{worn}_url"
    assert await new_events(store, before) == [(choice, issued.token.sid)]
    if choice == "reset":
        assert "tdk_" in repr(ack.get("view")), "the secret view did not show the new secret"
        assert store.tokens.verify(issued.secret) is None
    else:
        assert store.tokens.count == 0
    for user in recipients:
        assert len(delivered(standin, user)) == 1, f"{user}: DM not delivered exactly once"

    # The same submission again (Slack's retry, a double click) changes nothing more.
    again = await desk.submit(view)
    assert again.get("response_action") == "update", again
    await settle()
    assert await new_events(store, before) == [(choice, issued.token.sid)]
    assert len(posts_after(standin, url, earlier)) == 1
    assert len(standin.calls_to("chat.postMessage")) == len(recipients)
    await desk.still_answers(token_id if choice == "reset" else None)


# -- 5. DMs: retried once when Slack says so, never undoing the change ------------------

DM_FAULTS = [
    pytest.param("reset", "conversations.open", RATE_LIMITED),
    pytest.param("reset", "conversations.open", SERVER_ERROR),
    pytest.param("reset", "conversations.open", USER_GONE),
    pytest.param("reset", "conversations.open", TIMED_OUT),
    pytest.param("reset", "chat.postMessage", RATE_LIMITED),
    pytest.param("reset", "chat.postMessage", SERVER_ERROR),
    pytest.param("reset", "chat.postMessage", SERVER_DOWN),
    pytest.param("reset", "chat.postMessage", CHANNEL_GONE),
    pytest.param("reset", "chat.postMessage", TIMED_OUT),
    pytest.param("disable", "conversations.open", TIMED_OUT),
    pytest.param("disable", "chat.postMessage", RATE_LIMITED),
    pytest.param("disable", "chat.postMessage", TIMED_OUT),
]


def dm_case_id(value: object) -> str:
    return value.name if isinstance(value, Fault) else str(value)


@pytest.mark.parametrize(("flow", "method", "fault"), DM_FAULTS, ids=dm_case_id)
async def test_a_failing_dm_is_retried_at_most_once_and_the_change_is_applied_once(
    desk: Desk, store: Store, standin: SlackStandIn, flow: str, method: str, fault: Fault
) -> None:
    issued = await seed(store, "Gateway")
    token_id = issued.token.id
    await desk.command()
    before = await ledger(store)
    # Reset tells the contact, then the actor; Disable the contact only. The fault hits
    # the first recipient's DM.
    recipients = [SPECIALIST, ADMIN] if flow == "reset" else [SPECIALIST]
    first, others = recipients[0], recipients[1:]

    if flow == "reset":
        click, view = await desk.open(menu_action(desk.blocks, token_id, "reset"), "token_confirm")
        fault.inject(standin, method)
        ack = await desk.submit(view)
        assert ack.get("response_action") == "update", ack
        assert "tdk_" in repr(ack["view"]), "the new secret is shown while Slack misbehaves"
    else:
        fault.inject(standin, method)
        click = await desk.click(menu_action(desk.blocks, token_id, "disable"))
    # While the DM is still waiting on Slack, the app answers the next request at once.
    await desk.still_answers(token_id)

    url = click.sent["response_url"]
    await settle(lambda: bool(standin.responses_to(url)))
    await settle(lambda: all(delivered(standin, user) for user in others))
    await settle(lambda: bool(calls_for(standin, method, first)))
    await settle()

    # The change: applied exactly once, and the list refreshed once with it.
    assert await new_events(store, before) == [(flow, issued.token.sid)]
    token = await store.tokens.get(token_id=token_id)
    assert token.row_version == issued.token.row_version + 1
    if flow == "reset":
        assert store.tokens.verify(issued.secret) is None
    else:
        assert token.state is TokenState.DISABLED
    refreshed = standin.responses_to(url)
    assert len(refreshed) == 1 and refreshed[0].accepted
    assert "Gateway" in repr(refreshed[0].body)

    # Retries: bounded, and a 429's Retry-After honoured.
    tried = calls_for(standin, method, first)
    if fault.late:
        assert 1 <= len(tried) <= 2, f"{method} tried {len(tried)} times after a timeout"
    elif fault.retriable:
        assert len(tried) == 2, f"{method} tried {len(tried)} times after a {fault.status}"
        if fault.status == 429:
            waited = tried[1].time - tried[0].time
            assert waited >= RETRY_AFTER, f"retried {waited:.2f} s after a Retry-After: 1"
    else:
        assert len(tried) == 1, f"{method} retried after {fault.error}"
    # The first recipient's DM: delivered after one retry; a late postMessage may have
    # landed (once, or twice if retried); given up after a refusal or a second failure.
    if fault.late:
        low, high = (1, 2) if method == "chat.postMessage" else (0, 1)
    else:
        low = high = 1 if fault.retriable and fault.times == 1 else 0
    got_first = len(delivered(standin, first))
    assert low <= got_first <= high, f"{first} got {got_first} DMs"
    assert len(calls_for(standin, "chat.postMessage", first)) <= 2
    for user in others:
        assert len(delivered(standin, user)) == 1, f"{user} did not get exactly one DM"
        assert len(calls_for(standin, "conversations.open", user)) == 1

    # And the app still serves the next flow as usual.
    blocks = await desk.still_answers(token_id)
    assert ("Disabled" if flow == "disable" else "Enabled") in card_text(blocks, token_id)
