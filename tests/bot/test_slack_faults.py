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

from dataclasses import dataclass

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp

from bot.app import create_app
from bot.settings import Settings
from bot.slack_client import create_web_client
from slack_standin.client import Reply, action_for
from slack_standin.server import RESPONSE_URL_USES, TRIGGER_TTL, ResponsePost, SlackStandIn
from storage.models import Token
from storage.store import Store
from tests.bot.blockwalk import Body, card, card_ids, create_action, edit_action, menu_action
from tests.bot.conftest import ADMIN, SPECIALIST, Seed
from tests.bot.driver import SlackUser, dm_calls, dms, settle
from tests.store_support import verify

Ledger = tuple[tuple[Token, ...], tuple[tuple[str, str | None], ...]]

FAST_TIMEOUT = 1
LATE = FAST_TIMEOUT + 0.1  # the stand-in answers after the app's client has given up
RETRY_AFTER = 1
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


# -- driving the app and reading what Slack received --------------------------------------


async def still_answers(user: SlackUser, token_id: int | None = None) -> list[Body]:
    """The next request is served as usual: `/tokens` answers the list in its ack."""
    blocks = await user.command()
    if token_id is not None:
        assert token_id in card_ids(blocks)
    return blocks


def opener(blocks: list[Body], flow: str, token_id: int) -> tuple[Body, str]:
    """The click that opens `flow`'s modal, and the modal's callback_id."""
    if flow == "create":
        return create_action(blocks), "token_create"
    if flow == "edit":
        return edit_action(blocks, token_id), "token_edit"
    return menu_action(blocks, token_id, flow), "token_confirm"


def posts_after(standin: SlackStandIn, url: str, skip: int) -> list[ResponsePost]:
    return standin.responses_to(url)[skip:]


def shown(post: ResponsePost) -> str:
    return repr(post.body)


async def ledger(store: Store) -> Ledger:
    """Every token as stored and every audit event: what a fault must not change twice."""
    page = await store.token_reads.page(limit=100)
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
    seed: Seed, admin: SlackUser, store: Store, standin: SlackStandIn, fault: Fault, flow: str
) -> None:
    issued = await seed("Gateway", contact=SPECIALIST)
    await admin.command()
    action, callback_id = opener(admin.blocks, flow, issued.token.id)
    before = await ledger(store)
    fault.inject(standin, "views.open")

    click = await admin.send_click(action)
    url = click.sent["response_url"]
    await settle(lambda: bool(standin.responses_to(url)) and bool(standin.calls_to("views.open")))

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
    await admin.send_click(action)
    await settle(lambda: len(standin.calls_to("views.open")) == 2)
    again = standin.calls_to("views.open")[1]
    assert again.ok and again.answer["view"]["callback_id"] == callback_id
    assert await ledger(store) == before
    await still_answers(admin, issued.token.id)

    # What the user read after the failed open: no form came up, so: click again.
    assert CLICK_AGAIN in str(message["text"]).lower(), (
        f"after a views.open {fault.name} the user was told {message['text']!r}"
    )


async def test_a_trigger_that_really_expired_asks_to_try_again(
    admin: SlackUser, store: Store, standin: SlackStandIn
) -> None:
    """`/tokens create` arriving with a trigger Slack already let expire (no injected
    answer: the stand-in's own 3 s rule refuses it)."""
    stale = standin.trigger_id()
    standin.advance(TRIGGER_TTL + 1)

    reply = await admin.send_command("create Nightly", trigger_id=stale)
    assert reply.body == ""
    url = reply.sent["response_url"]
    await settle(lambda: bool(standin.responses_to(url)))

    opens = standin.calls_to("views.open")
    assert len(opens) == 1 and opens[0].answer["error"] == "expired_trigger_id"
    told = standin.responses_to(url)
    assert len(told) == 1 and told[0].accepted
    assert told[0].body.get("response_type") == "ephemeral"
    assert "again" in str(told[0].body["text"]).lower()
    assert store.token_reads.count == 0

    await admin.send_command("create Nightly")
    await settle(lambda: len(standin.calls_to("views.open")) == 2)
    assert standin.calls_to("views.open")[1].ok
    assert standin.latest_view("token_create")["callback_id"] == "token_create"


# -- 2. the list refresh: a worn-out response_url is tried once, the change stands -------


async def list_click(user: SlackUser, flow: str, token_id: int, *, response_url: str) -> Reply:
    """A click answered in the list itself: a State filter, or a card's Disable."""
    if flow == "filter":
        action = action_for(user.blocks, "filter_state", "disabled")
        return await user.send_click(
            action, typed={"filter_state": "disabled"}, response_url=response_url
        )
    return await user.send_click(
        menu_action(user.blocks, token_id, "disable"), response_url=response_url
    )


@pytest.mark.parametrize("worn", ["expired", "used"])
@pytest.mark.parametrize("flow", ["filter", "disable"])
async def test_a_worn_out_response_url_is_tried_once_and_the_change_stands(
    seed: Seed, admin: SlackUser, store: Store, standin: SlackStandIn, flow: str, worn: str
) -> None:
    issued = await seed("Lifecycle Alpha", contact=SPECIALIST)
    token_id = issued.token.id
    await admin.command()
    url = standin.response_url()
    await wear_out(standin, url, worn)
    earlier = len(standin.responses_to(url))
    before = await ledger(store)

    await list_click(admin, flow, token_id, response_url=url)
    await settle(lambda: bool(posts_after(standin, url, earlier)))
    if flow == "disable":
        await settle(lambda: bool(dms(standin, SPECIALIST)))
    await settle()

    refused = posts_after(standin, url, earlier)
    assert len(refused) == 1, f"{len(refused)} posts to a refused response_url"
    assert refused[0].error == f"{worn}_url"
    if flow == "disable":
        token = await store.token_reads.get(token_id=token_id)
        assert not token.enabled
        assert token.row_version == issued.token.row_version + 1
        assert await new_events(store, before) == [("disable", issued.token.sid)]
        assert len(dms(standin, SPECIALIST)) == 1, "the contact's DM went anyway, once"
        assert len(standin.calls_to("chat.postMessage")) == 1
    else:
        assert await ledger(store) == before
        assert standin.calls_to("chat.postMessage") == []

    # The app keeps answering: the next click, with its own response_url, refreshes.
    blocks = await still_answers(admin, token_id)
    expected = "Disabled" if flow == "disable" else "Enabled"
    assert expected in card(blocks, token_id).text
    fresh = await admin.send_click(action_for(admin.blocks, "filters_clear"))
    await settle(lambda: bool(standin.responses_to(fresh.sent["response_url"])))
    posts = standin.responses_to(fresh.sent["response_url"])
    assert len(posts) == 1 and posts[0].accepted and posts[0].body["replace_original"] is True
    assert expected in card(posts[0].body["blocks"], token_id).text
    assert await new_events(store, before) == (
        [("disable", issued.token.sid)] if flow == "disable" else []
    )


# -- 3. invalid_blocks on a response_url: bounded, and the user still hears of it --------


@pytest.mark.parametrize("flow", ["filter", "disable", "delete"])
async def test_a_refused_refresh_is_never_resent_as_is_and_the_user_is_told(
    seed: Seed, admin: SlackUser, store: Store, standin: SlackStandIn, flow: str
) -> None:
    """Slack refuses the refreshed list (`invalid_blocks`, 400); the response_url itself
    still takes posts (the refusal used none of its five), so the user can be told."""
    issued = await seed("Lifecycle Alpha", contact=SPECIALIST)
    token_id = issued.token.id
    await admin.command()
    before = await ledger(store)
    if flow == "delete":
        click, view = await admin.open(
            menu_action(admin.blocks, token_id, "delete"), "token_confirm"
        )
        standin.fail_next("response_url", "invalid_blocks", status=400, retry_after=None)
        ack = await admin.submit(view)
        assert ack.get("response_action") in ("clear", "update"), ack
    else:
        standin.fail_next("response_url", "invalid_blocks", status=400, retry_after=None)
        click = await list_click(admin, flow, token_id, response_url=standin.response_url())
    url = click.sent["response_url"]
    await settle(lambda: bool(standin.responses_to(url)))
    if flow != "filter":
        await settle(lambda: bool(dms(standin, SPECIALIST)))
    await settle()

    posts = standin.responses_to(url)
    assert posts and posts[0].error == "invalid_blocks"
    assert len(posts) <= 2, f"{len(posts)} posts after invalid_blocks"
    assert all(post.body != posts[0].body for post in posts[1:]), "refused blocks resent"
    if flow == "filter":
        assert await ledger(store) == before
    else:
        assert await new_events(store, before) == [(flow, issued.token.sid)]
        assert len(dms(standin, SPECIALIST)) == 1
        assert len(standin.calls_to("chat.postMessage")) == 1
    await still_answers(admin, None if flow == "delete" else token_id)
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
    seed: Seed, admin: SlackUser, store: Store, standin: SlackStandIn, choice: str, worn: str
) -> None:
    issued = await seed("Gateway", contact=SPECIALIST)
    token_id = issued.token.id
    await admin.command()
    click, view = await admin.open(menu_action(admin.blocks, token_id, choice), "token_confirm")
    url = click.sent["response_url"]
    await wear_out(standin, url, worn)
    earlier = len(standin.responses_to(url))
    before = await ledger(store)

    ack = await admin.submit(view)
    assert ack.get("response_action") in ("clear", "update"), ack
    recipients = [SPECIALIST, ADMIN] if choice == "reset" else [SPECIALIST]
    await settle(lambda: bool(posts_after(standin, url, earlier)))
    await settle(lambda: all(dms(standin, user) for user in recipients))

    refused = posts_after(standin, url, earlier)
    assert len(refused) == 1, f"{len(refused)} posts to a refused response_url"
    assert refused[0].error == f"{worn}_url"
    assert await new_events(store, before) == [(choice, issued.token.sid)]
    if choice == "reset":
        assert "tdk_" in repr(ack.get("view")), "the secret view did not show the new secret"
        assert verify(store, issued.secret) is None
    else:
        assert store.token_reads.count == 0
    for user in recipients:
        assert len(dms(standin, user)) == 1, f"{user}: DM not delivered exactly once"

    # The same submission again (Slack's retry, a double click) changes nothing more.
    again = await admin.submit(view)
    assert again.get("response_action") == "update", again
    await settle()
    assert await new_events(store, before) == [(choice, issued.token.sid)]
    assert len(posts_after(standin, url, earlier)) == 1
    assert len(standin.calls_to("chat.postMessage")) == len(recipients)
    await still_answers(admin, token_id if choice == "reset" else None)


# -- 5. DMs: retried once when Slack says so, never undoing the change ------------------

# A DM is one chat.postMessage to the user id (no conversations.open first).
DM_FAULTS = [
    pytest.param("reset", RATE_LIMITED),
    pytest.param("reset", SERVER_ERROR),
    pytest.param("reset", SERVER_DOWN),
    pytest.param("reset", USER_GONE),
    pytest.param("reset", CHANNEL_GONE),
    pytest.param("reset", TIMED_OUT),
    pytest.param("disable", SERVER_ERROR),
    pytest.param("disable", RATE_LIMITED),
    pytest.param("disable", TIMED_OUT),
]


def dm_case_id(value: object) -> str:
    return value.name if isinstance(value, Fault) else str(value)


@pytest.mark.parametrize(("flow", "fault"), DM_FAULTS, ids=dm_case_id)
async def test_a_failing_dm_is_retried_at_most_once_and_the_change_is_applied_once(
    seed: Seed,
    admin: SlackUser,
    store: Store,
    standin: SlackStandIn,
    flow: str,
    fault: Fault,
) -> None:
    method = "chat.postMessage"
    issued = await seed("Gateway", contact=SPECIALIST)
    token_id = issued.token.id
    await admin.command()
    before = await ledger(store)
    # Reset tells the contact, then the actor; Disable the contact only. The fault hits
    # the first recipient's DM.
    recipients = [SPECIALIST, ADMIN] if flow == "reset" else [SPECIALIST]
    first, others = recipients[0], recipients[1:]

    if flow == "reset":
        click, view = await admin.open(
            menu_action(admin.blocks, token_id, "reset"), "token_confirm"
        )
        fault.inject(standin, method)
        ack = await admin.submit(view)
        assert ack.get("response_action") == "update", ack
        assert "tdk_" in repr(ack["view"]), "the new secret is shown while Slack misbehaves"
    else:
        fault.inject(standin, method)
        click = await admin.send_click(menu_action(admin.blocks, token_id, "disable"))
    # While the DM is still waiting on Slack, the app answers the next request at once.
    await still_answers(admin, token_id)

    url = click.sent["response_url"]
    await settle(lambda: bool(standin.responses_to(url)))
    await settle(lambda: all(dms(standin, user) for user in others))
    await settle(lambda: bool(dm_calls(standin, method, first)))

    # The change: applied exactly once, and the list refreshed once with it.
    assert await new_events(store, before) == [(flow, issued.token.sid)]
    token = await store.token_reads.get(token_id=token_id)
    assert token.row_version == issued.token.row_version + 1
    if flow == "reset":
        assert verify(store, issued.secret) is None
    else:
        assert not token.enabled
    refreshed = standin.responses_to(url)
    assert len(refreshed) == 1 and refreshed[0].accepted
    assert "Gateway" in repr(refreshed[0].body)

    # Retries: bounded, and a 429's Retry-After honoured.
    tried = dm_calls(standin, method, first)
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
        low, high = 1, 2
    else:
        low = high = 1 if fault.retriable and fault.times == 1 else 0
    got_first = len(dms(standin, first))
    assert low <= got_first <= high, f"{first} got {got_first} DMs"
    assert len(dm_calls(standin, "chat.postMessage", first)) <= 2
    for user in others:
        assert len(dms(standin, user)) == 1, f"{user} did not get exactly one DM"
        assert len(dm_calls(standin, method, user)) == 1
    assert standin.calls_to("conversations.open") == [], "a DM opened a conversation first"

    # And the app still serves the next flow as usual.
    blocks = await still_answers(admin, token_id)
    assert ("Disabled" if flow == "disable" else "Enabled") in card(blocks, token_id).text
