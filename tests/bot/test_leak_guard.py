"""The leak guard end to end: people post in the channels Token Desk was invited to (the
Slack stand-in sends the `message` events, signed over HTTP or in Socket Mode envelopes to
the real slack_bolt handler, as bot/server.py runs it), and a live Token Desk secret among
them is answered within seconds, once per message, in this order: the alerts channel, a
reply in the message's thread, DMs. From a DM a role holder resets or disables the token;
the card says it leaked, a Reset offers no grace, and Enable waits for a Reset.

The app's store is a real SQLite file. tests/bot/test_leak_guard_input.py sends the guard
what Slack would never send, and looks for the secret in everything the app wrote.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.app import create_app
from bot.background import drain
from bot.ids import ActionId
from bot.server import create_web_app
from bot.settings import Settings
from slack_standin.client import SlackClient, action_for, button, message_container, overflow
from slack_standin.events import Delivery
from slack_standin.server import Call, SlackStandIn
from storage.credentials import generate_secret
from storage.errors import InvalidInput, TokenLeaked
from storage.models import LEAKED, AuditEvent, IssuedToken, Token
from storage.store import Store
from tests.bot.blockwalk import (
    SECRET_SHAPE,
    Body,
    all_text,
    assert_harmless,
    card,
    interactive,
    menu_action,
    notice_of,
    refused,
    secret_of,
)
from tests.bot.conftest import (
    ADMIN,
    ALICE,
    BOB,
    SIGNING_SECRET,
    STRANGER,
    Seed,
    served,
)
from tests.bot.driver import SlackUser, dms, eventually, modal_opened_with, settle
from tests.conftest import OpenStore
from tests.store_support import days_ahead, verify

GENERAL, PRIVATE, ALERTS = "C0GENERAL", "G0PRIVATE", "C0ALERTS1"
REPORT_LIMIT = 5.0  # seconds from a post to the last of the guard's messages about it
ACK_LIMIT = 3.0


# -- the app, reached over HTTP or Socket Mode ---------------------------------------------


@pytest.fixture
def transport() -> str:
    """How Slack reaches the app: "http" (signed requests) or "socket" (parametrize it)."""
    return "http"


@pytest.fixture
def leak_action() -> str:
    """TOKENDESK_LEAK_ACTION (parametrize it)."""
    return "notify"


@pytest.fixture
def settings(settings: Settings, transport: str, leak_action: str) -> Settings:
    update: dict[str, Any] = {
        "tokendesk_alerts_channel": ALERTS,
        "tokendesk_leak_action": leak_action,
    }
    if transport == "socket":
        update["slack_app_token"] = SecretStr("xapp-test")
    return settings.model_copy(update=update)


@pytest.fixture
async def standin(standin: SlackStandIn) -> SlackStandIn:
    standin.add_channel(GENERAL, name="general")
    standin.add_channel(PRIVATE, name="ops-private", private=True)
    standin.add_channel(ALERTS, name="tokendesk-alerts")
    return standin


@pytest.fixture
async def connected(
    transport: str, settings: Settings, standin: SlackStandIn, bolt: AsyncApp, app_url: str
) -> AsyncIterator[str]:
    """Slack sends the app its events: to `/slack/events`, or over the Socket Mode
    connection the app opened with its app-level token (the only way then: no HTTP target
    is set). The transport's name."""
    if transport == "http":
        standin.deliver_over_http(f"{app_url}/slack/events", SIGNING_SECRET)
        yield transport
        return
    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]
    await standin.socket_connected()
    try:
        yield transport
    finally:
        await drain()
        await handler.close_async()  # type: ignore[no-untyped-call]


@pytest.fixture
async def slack(app_url: str, standin: SlackStandIn, connected: str) -> AsyncIterator[SlackClient]:
    """Commands and clicks, by the same transport as the events."""
    if connected == "socket":
        client = SlackClient.over_socket_mode(standin)
    else:
        client = SlackClient(
            f"{app_url}/slack/events", signing_secret=SIGNING_SECRET, standin=standin
        )
    async with client:
        yield client


@pytest.fixture
async def store(store: Store) -> Store:
    """The app's store with API access on, so that secrets pass the auth check."""
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    return store


# -- what the guard did -----------------------------------------------------------------------


async def quiet(standin: SlackStandIn) -> None:
    """Until the app and Slack are both done: the guard's work after its ack, the events
    its own posts caused (its reply, the parent re-delivered), and the app's answers."""
    for _ in range(3):
        await settle()
        await standin.deliveries_done()
    await settle()


def posts(standin: SlackStandIn) -> list[Call]:
    return standin.calls_to("chat.postMessage")


def replies_in(standin: SlackStandIn, channel: str) -> list[Call]:
    """The app's thread replies in `channel`."""
    return [
        c for c in posts(standin) if c.args.get("channel") == channel and c.args.get("thread_ts")
    ]


def alerts(standin: SlackStandIn) -> list[Call]:
    return [c for c in posts(standin) if c.args.get("channel") == ALERTS]


def guard_posts(standin: SlackStandIn) -> list[Call]:
    """Every post of the leak guard: alerts, thread replies and DMs about a posted secret
    (until a click, the app posts nothing else here)."""
    return [c for c in posts(standin) if "secret" in str(c.args.get("text"))]


def dm_call(standin: SlackStandIn, user: str) -> Call:
    """The one DM the guard sent `user`."""
    found = [c for c in posts(standin) if c.args.get("channel") == user]
    assert len(found) == 1, [c.args for c in found]
    assert found[0].ok
    return found[0]


def where(call: Call) -> tuple[str, str]:
    """The DM as Slack holds it: its channel and ts."""
    return str(call.answer["channel"]), str(call.answer["ts"])


async def leak_events(store: Store) -> list[AuditEvent]:
    """The `leak` audit records, oldest first."""
    return [e for e in reversed(await store.audit.events(limit=200)) if e.action == "leak"]


async def current(store: Store, token: Token | IssuedToken) -> Token:
    token = token.token if isinstance(token, IssuedToken) else token
    return await store.token_reads.get(token_id=token.id)


async def posted_with(
    standin: SlackStandIn, text: str, *, user: str = BOB, channel: str = GENERAL, **more: Any
) -> Delivery:
    """`user` posts `text`; the app acknowledged it in time, then everything settled."""
    delivery = await standin.user_posts(channel, user, text, **more)
    assert delivery.acked, delivery
    assert delivery.ack_seconds is not None and delivery.ack_seconds < ACK_LIMIT
    await quiet(standin)
    return delivery


def assert_harmless_but_the_link(message: Body, permalink: str) -> None:
    """`assert_harmless`, but for the one link the guard means to give: the message's."""
    link = f"<{permalink.replace('&', '&amp;')}|view the message>"
    assert link in json.dumps(message)
    assert_harmless(json.loads(json.dumps(message).replace(json.dumps(link)[1:-1], "")))


def assert_names_nothing(message: Body, token: Token, secret: str) -> None:
    """What the whole channel (or a poster without a role) reads: no token data."""
    text = all_text(message) + str(message)
    assert token.name not in text and token.sid not in text
    assert secret not in text and not SECRET_SHAPE.search(text)


# -- a live secret, reported ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_a_live_secret_is_told_to_alerts_then_the_thread_then_dms_within_seconds(
    seed: Seed, specialist: str, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Billing <export>", contact=specialist)
    token = issued.token
    started = time.time()
    delivery = await standin.user_posts(
        GENERAL, BOB, f"here you go: {issued.secret} — works for me"
    )
    assert delivery.acked and delivery.mode == connected
    assert delivery.ack_seconds is not None and delivery.ack_seconds < ACK_LIMIT
    await eventually(lambda: len(guard_posts(standin)) >= 4, timeout=REPORT_LIMIT)
    await quiet(standin)

    alert, reply, to_contact, to_poster = guard_posts(standin)
    assert all(c.ok for c in (alert, reply, to_contact, to_poster))
    assert max(c.time for c in (alert, reply, to_contact, to_poster)) - started < REPORT_LIMIT
    # In this order, with the permalink asked for first.
    assert [c.args["channel"] for c in (alert, reply, to_contact, to_poster)] == [
        ALERTS,
        GENERAL,
        specialist,
        BOB,
    ]
    (link,) = standin.calls_to("chat.getPermalink")
    assert (link.args["channel"], link.args["message_ts"]) == (GENERAL, delivery.ts)
    assert standin.calls.index(link) < standin.calls.index(alert)
    permalink = str(link.answer["permalink"])

    # The thread reply: on the message itself, naming neither token nor secret.
    assert reply.args["thread_ts"] == delivery.ts
    assert "contains a Token Desk secret" in all_text(reply.args)
    assert "Delete it" in all_text(reply.args)
    assert_names_nothing(reply.args, token, issued.secret)
    assert [m.get("text") for m in standin.thread(GENERAL, str(delivery.ts))][1] == (
        reply.args["text"]
    )

    # The contact, who holds a role: the token, the channel, the poster, a link, buttons.
    told = all_text(to_contact.args)
    assert "Billing &lt;export&gt;" in told and token.sid in told
    assert f"<#{GENERAL}>" in told and f"<@{BOB}>" in told and permalink in told
    assert "current secret" in told and "still enabled" in told
    assert_harmless_but_the_link(to_contact.args, permalink)
    ref = f"{token.id}:{token.row_version}"
    assert [(b["action_id"], b["value"]) for b in interactive(to_contact.args)] == [
        (ActionId.LEAK_RESET, ref),
        (ActionId.LEAK_DISABLE, ref),
    ]
    # The poster, without a role: what to do, and nothing about the token.
    asked = all_text(to_poster.args)
    assert "Delete it" in asked and "owners have been told" in asked and permalink in asked
    assert interactive(to_poster.args) == []
    assert_names_nothing(to_poster.args, token, issued.secret)
    # The alerts channel: the token and its contact.
    announced = all_text(alert.args)
    assert token.sid in announced and f"<@{specialist}>" in announced
    assert_harmless_but_the_link(alert.args, permalink)

    saved = await current(store, token)
    assert saved.leaked_at is not None and saved.enabled
    assert saved.row_version == token.row_version  # the mark alone moves no row version
    (event,) = await leak_events(store)
    assert (event.actor, event.token_sid) == ("tokendesk", token.sid)
    assert {k: event.after.get(k) for k in ("channel", "message_ts", "poster", "which")} == {
        "channel": GENERAL,
        "message_ts": delivery.ts,
        "poster": BOB,
        "which": "current",
    }
    assert event.after["action"] == "notify"
    assert issued.secret not in str((event.before, event.after))
    # Still working: notify does not disable.
    assert verify(store, issued.secret) is not None


async def test_a_reply_in_a_thread_is_answered_in_that_thread(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Threaded hook", contact=ALICE)
    parent = await posted_with(standin, "which key do I use?", user=ALICE)
    answer = await posted_with(
        standin, f"this one: `{issued.secret}`", thread_ts=parent.ts, channel=GENERAL
    )

    (reply,) = replies_in(standin, GENERAL)
    assert reply.args["thread_ts"] == parent.ts != answer.ts
    (event,) = await leak_events(store)
    assert event.after["message_ts"] == answer.ts
    (link,) = standin.calls_to("chat.getPermalink")
    assert link.args["message_ts"] == answer.ts
    assert f"?thread_ts={parent.ts}&amp;cid={GENERAL}" in all_text(dm_call(standin, ALICE).args)


async def test_a_private_channel_is_guarded_too(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Private hook", contact=ALICE)
    delivery = await posted_with(standin, issued.secret, channel=PRIVATE)
    (reply,) = replies_in(standin, PRIVATE)
    assert reply.ok and reply.args["thread_ts"] == delivery.ts
    assert (await current(store, issued)).leaked_at is not None


async def test_a_contact_without_a_role_is_told_without_buttons_and_a_poster_with_one_gets_them(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str, specialist: str
) -> None:
    issued = await seed("Alice's feed", contact=ALICE)
    await posted_with(standin, f"debugging with {issued.secret}", user=specialist)

    to_alice, to_specialist = dm_call(standin, ALICE), dm_call(standin, specialist)
    assert interactive(to_alice.args) == []
    assert "Ask an Account Administrator" in all_text(to_alice.args)
    assert issued.token.sid in all_text(to_alice.args)
    assert [b["action_id"] for b in interactive(to_specialist.args)] == [
        ActionId.LEAK_RESET,
        ActionId.LEAK_DISABLE,
    ]
    assert issued.token.sid in all_text(to_specialist.args)
    assert f"<@{specialist}>" in all_text(to_specialist.args)


async def test_a_poster_who_is_the_contact_gets_one_dm(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Admin's own")
    await posted_with(standin, f"note to self {issued.secret}", user=ADMIN)
    to_admin = dm_call(standin, ADMIN)
    assert issued.token.sid in all_text(to_admin.args)
    assert len(interactive(to_admin.args)) == 2


async def test_two_live_secrets_in_one_message_are_both_reported_in_one_thread_reply(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    first = await seed("First hook", contact=ALICE)
    second = await seed("Second hook", contact=ALICE)
    await posted_with(standin, f"{first.secret}\n{second.secret}\n{first.secret}")

    assert len(replies_in(standin, GENERAL)) == 1
    assert len(alerts(standin)) == 2
    to_alice = [all_text(c.args) for c in posts(standin) if c.args.get("channel") == ALICE]
    assert len(to_alice) == 2
    assert first.token.sid in to_alice[0] and second.token.sid in to_alice[1]
    assert len(await leak_events(store)) == 2
    for issued in (first, second):
        assert (await current(store, issued)).leaked_at is not None


@pytest.mark.parametrize("leak_action", ["disable"])
async def test_leak_action_disable_disables_at_once_and_every_message_says_so(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str, leak_action: str
) -> None:
    issued = await seed("Disabled on sight", contact=ALICE)
    await posted_with(standin, f"the key is {issued.secret}")

    saved = await current(store, issued)
    assert not saved.enabled and saved.disabled_reason == LEAKED and saved.leaked_at is not None
    assert saved.row_version == issued.token.row_version + 1
    assert verify(store, issued.secret) is None
    alert, reply, to_alice, to_bob = guard_posts(standin)
    assert "disabled the token" in all_text(reply.args)
    assert "disabled the token" in all_text(to_bob.args)
    for message in (alert, to_alice):
        assert "*disabled* the token at once" in all_text(message.args)
    (event,) = await leak_events(store)
    assert event.after["action"] == "disable" and event.after["state"] == "disabled"


@pytest.mark.parametrize("leak_action", ["disable"])
async def test_leak_action_disable_on_a_disabled_token_reports_without_disabling_again(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str, leak_action: str
) -> None:
    issued = await seed("Already off", contact=ALICE)
    off = await store.tokens.set_enabled(actor=ADMIN, token_id=issued.token.id, enabled=False)
    await posted_with(standin, f"old key {issued.secret}")

    saved = await current(store, issued)
    assert saved.row_version == off.after.row_version and saved.leaked_at is not None
    assert "already disabled" in all_text(dm_call(standin, ALICE).args)
    (event,) = await leak_events(store)
    assert event.after["action"] == "notify"


# -- the leaked token from the card ----------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_the_card_shows_leaked_reset_offers_no_grace_and_enable_waits_for_a_reset(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Posted hook", contact=ALICE)
    await posted_with(standin, issued.secret)
    token_id = issued.token.id

    await admin.command()
    assert "Leaked in Slack" in card(admin.blocks, token_id).text
    blocks = await admin.click(menu_action(admin.blocks, token_id, "disable"))
    assert card(blocks, token_id).option("enable") is None, "no Enable while leaked"
    # Enable, crafted from an older list: refused, and said so; nothing changed.
    before = await current(store, issued)
    crafted = overflow(
        ActionId.TOKEN_MENU,
        f"enable:{token_id}:{before.row_version}",
        block_id=f"details.{token_id}",
    )
    refusal = await admin.click(crafted)
    assert "was not enabled" in notice_of(refusal)
    assert await current(store, issued) == before
    with pytest.raises(TokenLeaked):
        await store.tokens.set_enabled(actor=ADMIN, token_id=token_id, enabled=True)

    # Reset offers no grace, and says why.
    _, view = await admin.open(menu_action(admin.blocks, token_id, "reset"), "token_confirm")
    assert all(b.get("block_id") != "grace" for b in view["blocks"])
    assert "posted in Slack" in all_text(view)
    new = secret_of((await admin.submit(view))["view"])
    reset = await current(store, issued)
    assert reset.leaked_at is None and reset.previous_until is None
    await admin.command()
    assert "Leaked in Slack" not in card(admin.blocks, token_id).text
    enabled = await admin.click(menu_action(admin.blocks, token_id, "enable"))
    assert "enabled" in notice_of(enabled)
    assert verify(store, new) is not None and verify(store, issued.secret) is None


async def test_a_grace_window_asked_for_a_leaked_token_is_refused(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("No grace", contact=ALICE)
    await posted_with(standin, issued.secret)
    token = await current(store, issued)
    with pytest.raises(InvalidInput):
        await store.tokens.reset(
            actor=ADMIN,
            token_id=token.id,
            row_version=token.row_version,
            expires_on=days_ahead(30, clock=store.clock),
            grace=timedelta(hours=1),
        )
    assert await current(store, issued) == token


# -- which secrets count ---------------------------------------------------------------------


async def test_a_previous_secret_in_its_window_ends_the_window_without_marking_the_token(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Rotating hook", contact=ALICE)
    renewed = await store.tokens.reset(
        actor=ADMIN,
        token_id=issued.token.id,
        row_version=issued.token.row_version,
        expires_on=days_ahead(30, clock=store.clock),
        grace=timedelta(days=1),
    )
    assert verify(store, issued.secret) is not None
    await posted_with(standin, f"old one: {issued.secret}")

    saved = await current(store, issued)
    assert saved.leaked_at is None and saved.enabled and saved.previous_until is None
    assert saved.row_version == renewed.token.row_version
    assert verify(store, issued.secret) is None and verify(store, renewed.secret) is not None
    assert len(replies_in(standin, GENERAL)) == 1
    to_alice = all_text(dm_call(standin, ALICE).args)
    assert "previous secret" in to_alice and "grace window has ended" in to_alice
    events = list(reversed(await store.audit.events(limit=50)))
    ended = [e for e in events if e.action == "end_grace"]
    assert ended[-1].after.get("reason") == "leaked" and ended[-1].actor == "tokendesk"
    (event,) = await leak_events(store)
    assert event.after["which"] == "previous" and event.after["action"] == "notify"


async def test_retired_and_unknown_secrets_get_no_reply_and_no_report(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Rotated hook", contact=ALICE)
    await store.tokens.reset(
        actor=ADMIN,
        token_id=issued.token.id,
        row_version=issued.token.row_version,
        expires_on=days_ahead(30, clock=store.clock),
    )
    await posted_with(standin, f"retired: {issued.secret}")
    await posted_with(standin, f"never issued: {generate_secret()}")
    await posted_with(standin, f"{issued.token.sid} is the token's SID, not a secret")

    assert guard_posts(standin) == [] and posts(standin) == []
    assert standin.calls_to("chat.getPermalink") == []
    assert await leak_events(store) == []
    assert (await current(store, issued)).leaked_at is None


async def test_the_apps_own_messages_are_ignored(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    """Token Desk never posts a secret; if a message of its own held one (a crafted event
    from its own bot), it is still not read."""
    issued = await seed("Own hook", contact=ALICE)
    own = await standin.user_posts(
        GENERAL, standin.bot_user_id, f"quoted {issued.secret}", bot_id=standin.bot_id
    )
    by_id_only = await standin.user_posts(
        GENERAL, "U0SOMEBOT", f"quoted {issued.secret}", bot_id=standin.bot_id
    )
    assert own.acked and by_id_only.acked
    await quiet(standin)
    assert posts(standin) == [] and await leak_events(store) == []


async def test_another_bots_message_is_reported(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Piped hook", contact=ALICE)
    await posted_with(standin, f"deploy log: {issued.secret}", user="U0CIBOT01", bot_id="B0CIBOT01")
    assert len(replies_in(standin, GENERAL)) == 1
    assert (await current(store, issued)).leaked_at is not None


async def test_a_dm_to_the_app_is_not_read(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("DM'd hook", contact=ALICE)
    for channel, kind in (("D0ALICE01", "im"), ("G0MPIM001", "mpim")):
        event = {
            "type": "message",
            "user": BOB,
            "text": issued.secret,
            "ts": f"{int(time.time())}.000001",
            "channel": channel,
            "channel_type": kind,
            "event_ts": f"{int(time.time())}.000001",
        }
        assert (await standin.deliver_event(event)).acked
    await quiet(standin)
    assert posts(standin) == [] and await leak_events(store) == []


# -- reported once per message ---------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "socket"])
@pytest.mark.parametrize("replied_subtype", ["message_replied", None])
async def test_retries_edits_and_thread_redeliveries_report_a_message_once(
    seed: Seed,
    store: Store,
    standin: SlackStandIn,
    connected: str,
    replied_subtype: str | None,
) -> None:
    standin.replied_subtype = replied_subtype
    issued = await seed("Once hook", contact=ALICE)
    delivery = await posted_with(standin, f"key: {issued.secret}")
    # The guard's own reply made Slack re-deliver the parent, secret and all.
    redelivered = [
        d
        for d in standin.deliveries
        if d.payload.get("event", {}).get("message", {}).get("ts") == delivery.ts
    ]
    assert redelivered and all(d.acked for d in redelivered)
    assert [d.payload["event"].get("subtype") for d in redelivered] == [replied_subtype]

    retry = await standin.redeliver(delivery)
    again = await standin.redeliver(delivery, retry_num=2, reason="http_error")
    assert retry.acked and again.acked and retry.event_id == delivery.event_id
    await standin.user_edits(GENERAL, str(delivery.ts), f"key: {issued.secret} (fixed typo)")
    await posted_with(standin, "thanks!", user=ALICE, thread_ts=delivery.ts)
    await quiet(standin)

    assert len(replies_in(standin, GENERAL)) == 1
    assert len(alerts(standin)) == 1 and dm_call(standin, ALICE).ok
    assert len(await leak_events(store)) == 1


async def test_an_edit_that_adds_a_secret_is_reported_as_that_message(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Edited in", contact=ALICE)
    delivery = await posted_with(standin, "the key is coming")
    assert posts(standin) == []
    edit = await standin.user_edits(GENERAL, str(delivery.ts), f"the key is {issued.secret}")
    assert edit.acked
    await quiet(standin)

    (reply,) = replies_in(standin, GENERAL)
    assert reply.args["thread_ts"] == delivery.ts
    (event,) = await leak_events(store)
    assert event.after["message_ts"] == delivery.ts and event.after["poster"] == BOB


async def test_the_same_secret_in_another_message_is_reported_again(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Twice posted", contact=ALICE)
    first = await posted_with(standin, issued.secret)
    second = await posted_with(standin, f"again {issued.secret}", user=ALICE)
    elsewhere = await posted_with(standin, issued.secret, channel=PRIVATE)

    assert [c.args["thread_ts"] for c in replies_in(standin, GENERAL)] == [first.ts, second.ts]
    assert len(replies_in(standin, PRIVATE)) == 1
    assert [e.after["message_ts"] for e in await leak_events(store)] == [
        first.ts,
        second.ts,
        elsewhere.ts,
    ]
    assert len(alerts(standin)) == 3


async def test_a_restarted_app_does_not_report_a_message_again(
    seed: Seed,
    store: Store,
    settings: Settings,
    standin: SlackStandIn,
    connected: str,
    open_store: OpenStore,
) -> None:
    issued = await seed("Remembered", contact=ALICE)
    delivery = await posted_with(standin, f"key {issued.secret}")
    assert len(guard_posts(standin)) == 4
    await store.close()

    restarted = await open_store()
    bolt = create_app(settings, restarted)
    async with served(create_web_app(restarted, bolt, serve_slack_events=True)) as url:
        standin.deliver_over_http(f"{url}/slack/events", SIGNING_SECRET)
        retry = await standin.redeliver(delivery, retry_num=3, reason="http_timeout")
        assert retry.acked
        await standin.user_edits(GENERAL, str(delivery.ts), f"key {issued.secret} !")
        await quiet(standin)
        assert len(guard_posts(standin)) == 4
        # Another message: reported by the restarted app.
        await posted_with(standin, f"and here {issued.secret}")
        assert len(guard_posts(standin)) == 8
    assert len(await leak_events(restarted)) == 2


# -- Reset now and Disable now from the DM ---------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_reset_now_from_the_dm_offers_no_grace_and_updates_the_dm(
    seed: Seed,
    specialist: str,
    store: Store,
    slack: SlackClient,
    standin: SlackStandIn,
    connected: str,
) -> None:
    issued = await seed("Reset from DM", contact=specialist)
    await posted_with(standin, f"oops {issued.secret}")
    dm = where(dm_call(standin, specialist))
    token = issued.token
    reset = action_for(
        standin.messages[dm]["blocks"], ActionId.LEAK_RESET, f"{token.id}:{token.row_version}"
    )

    click = await slack.block_action(specialist, reset, container=message_container(*dm))
    assert click.status == 200 and click.body == ""
    trigger = click.sent["trigger_id"]
    await settle(until=lambda: modal_opened_with(standin, trigger))
    call = modal_opened_with(standin, trigger)
    assert call is not None and call.ok
    view = dict(call.answer["view"])
    assert view["callback_id"] == "token_confirm"
    assert all(b.get("block_id") != "grace" for b in view["blocks"])
    ack = await slack.view_submission(specialist, view, {})
    new = secret_of(ack.body["view"])

    await settle(until=lambda: standin.calls_to("chat.update"))
    await quiet(standin)
    (update,) = standin.calls_to("chat.update")
    assert update.ok and (update.args["channel"], update.args["ts"]) == dm
    shown = standin.messages[dm]
    assert "new secret" in all_text(shown) and "no longer works" in all_text(shown)
    assert interactive(shown) == [] and not SECRET_SHAPE.search(str(shown))
    saved = await current(store, token)
    assert saved.leaked_at is None
    assert verify(store, issued.secret) is None and verify(store, new) is not None
    assert standin.responses_to(click.sent["response_url"]) == []


async def test_disable_now_from_the_dm_updates_it_and_leaves_reset_now(
    seed: Seed,
    specialist: str,
    store: Store,
    slack: SlackClient,
    standin: SlackStandIn,
    connected: str,
) -> None:
    issued = await seed("Disable from DM", contact=specialist)
    await posted_with(standin, f"oops {issued.secret}")
    dm = where(dm_call(standin, specialist))
    token = issued.token
    disable = action_for(
        standin.messages[dm]["blocks"], ActionId.LEAK_DISABLE, f"{token.id}:{token.row_version}"
    )

    click = await slack.block_action(specialist, disable, container=message_container(*dm))
    assert click.status == 200 and click.body == ""
    await settle(until=lambda: standin.calls_to("chat.update"))
    await quiet(standin)

    saved = await current(store, token)
    assert not saved.enabled and saved.leaked_at is not None
    assert verify(store, issued.secret) is None
    (update,) = standin.calls_to("chat.update")
    assert (update.args["channel"], update.args["ts"]) == dm
    shown = standin.messages[dm]
    assert "disabled" in all_text(shown) and "Still marked *leaked*" in all_text(shown)
    assert [b["action_id"] for b in interactive(shown)] == [ActionId.LEAK_RESET]
    assert interactive(shown)[0]["value"] == f"{saved.id}:{saved.row_version}"
    assert_harmless(shown)
    assert standin.responses_to(click.sent["response_url"]) == []


async def test_a_user_without_a_role_changes_nothing_from_a_leak_dm(
    seed: Seed, store: Store, slack: SlackClient, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Alice's leaked", contact=ALICE)
    await posted_with(standin, f"oops {issued.secret}", user=STRANGER)
    dm = where(dm_call(standin, ALICE))
    assert interactive(standin.messages[dm]) == []
    before = await current(store, issued)

    # Crafted: the buttons a role holder would have had, clicked in Alice's DM.
    ref = f"{before.id}:{before.row_version}"
    for action_id in (ActionId.LEAK_RESET, ActionId.LEAK_DISABLE):
        crafted = button(action_id, ref, block_id=f"leak_actions.{before.id}")
        click = await slack.block_action(ALICE, crafted, container=message_container(*dm))
        assert click.status == 200 and click.body == ""
        url = str(click.sent["response_url"])
        await settle(until=functools.partial(standin.responses_to, url))
        (post,) = standin.responses_to(url)
        assert post.body["replace_original"] is False and refused(post.body["text"])
    await quiet(standin)

    assert await current(store, issued) == before
    assert standin.calls_to("chat.update") == [] and standin.calls_to("views.open") == []
    assert verify(store, issued.secret) is not None


async def test_the_posters_dm_and_the_thread_never_carry_token_data_even_disabled(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Quiet <!here> name", contact=ALICE)
    await posted_with(standin, f"x {issued.secret}", user=STRANGER)
    for message in (dm_call(standin, STRANGER).args, replies_in(standin, GENERAL)[0].args):
        assert_names_nothing(message, issued.token, issued.secret)
        assert "Quiet" not in all_text(message)
    assert dms(standin, ALICE)
