"""The leak guard against what Slack would never send, or what people paste: huge messages,
thousands of forged secrets, a secret wherever formatting puts it, unknown events, events
of another workspace, bodies that are not JSON. Every one is acknowledged in time, none
crashes the app or is echoed back; a live secret among them is still found.

And a secret, once posted, appears in nothing the app writes: its Web API calls, the
response_url posts, the audit log, its DEBUG log, or the database file.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from bot.ids import ActionId
from bot.settings import Settings
from slack_standin.client import SlackClient, action_for, message_container
from slack_standin.events import Delivery
from slack_standin.server import SlackStandIn
from storage.credentials import PREFIX, generate_secret, is_valid_secret
from storage.store import Store
from tests.bot import test_leak_guard as guard
from tests.bot.blockwalk import SECRET_SHAPE, secret_of
from tests.bot.conftest import ALICE, BOB, STRANGER, Seed
from tests.bot.driver import modal_opened_with, settle
from tests.bot.test_leak_guard import (
    ACK_LIMIT,
    GENERAL,
    current,
    dm_call,
    leak_events,
    posted_with,
    posts,
    quiet,
    replies_in,
    where,
)

# The fixtures of tests/bot/test_leak_guard.py: the app reached over HTTP or Socket Mode,
# the channels, the alerts channel and TOKENDESK_LEAK_ACTION.
transport = guard.transport
leak_action = guard.leak_action
settings = guard.settings
standin = guard.standin
connected = guard.connected
slack = guard.slack
store = guard.store

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def forged() -> str:
    """A string shaped like a secret whose checksum is wrong."""
    secret = generate_secret()
    for other in BASE62:
        candidate = secret[:-1] + other
        if other != secret[-1] and not is_valid_secret(candidate):
            return candidate
    raise AssertionError("every last character gave a valid checksum")


def assert_acked_in_time(delivery: Delivery) -> None:
    assert delivery.acked, delivery
    assert delivery.ack_seconds is not None and delivery.ack_seconds < ACK_LIMIT


def assert_not_echoed(delivery: Delivery, *parts: str) -> None:
    """The app's answer repeats nothing it was sent."""
    answer = json.dumps(delivery.ack) if not isinstance(delivery.ack, str) else delivery.ack
    assert len(answer) < 200, answer
    for part in parts:
        assert part not in answer


# -- big and crowded messages ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_a_40000_character_message_is_scanned_to_its_end(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Long paste", contact=ALICE)
    filler = ("tdk_ lorem ipsum dolor sit amet " * 1300)[:40_000]
    clean = await posted_with(standin, filler)
    assert posts(standin) == []
    delivery = await posted_with(standin, filler[: 40_000 - 43] + " " + issued.secret)
    assert len(standin.messages[(GENERAL, str(delivery.ts))]["text"]) == 40_000
    assert_not_echoed(clean, "lorem")
    assert_not_echoed(delivery, issued.secret)
    (reply,) = replies_in(standin, GENERAL)
    assert reply.args["thread_ts"] == delivery.ts


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_thousands_of_forged_secrets_do_not_hide_a_real_one_posted_last(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Needle", contact=ALICE)
    fakes = [forged() for _ in range(3000)]
    unknown = [generate_secret() for _ in range(300)]
    started = time.monotonic()
    delivery = await posted_with(standin, " ".join([*fakes, *unknown, issued.secret]))
    assert time.monotonic() - started < guard.REPORT_LIMIT
    (reply,) = replies_in(standin, GENERAL)
    assert reply.args["thread_ts"] == delivery.ts
    (event,) = await leak_events(store)
    assert event.after["message_ts"] == delivery.ts


@pytest.mark.parametrize(
    "shaped",
    [
        "*{}*",
        "_{}_",
        "`{}`",
        "```\nexport TOKEN={}\n```",
        "<https://api.example.com/?key={}|the key>",
        "<https://api.example.com/|{}>",
        "> {}",
        "Authorization: Bearer {}",
        "key={},next",
        "xx{}yy",
        "{}tdk_",
    ],
)
async def test_a_secret_is_found_wherever_formatting_puts_it(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str, shaped: str
) -> None:
    issued = await seed("Formatted", contact=ALICE)
    await posted_with(standin, shaped.format(issued.secret))
    assert len(replies_in(standin, GENERAL)) == 1, shaped
    assert (await current(store, issued)).leaked_at is not None


@pytest.mark.parametrize("place", ["attachment", "blocks", "attachment_field"])
async def test_a_secret_only_in_blocks_or_attachments_is_found(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str, place: str
) -> None:
    issued = await seed("Hidden", contact=ALICE)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": f"key {issued.secret}"}}
    places: dict[str, dict[str, Any]] = {
        "attachment": {"blocks": [], "attachments": [{"text": issued.secret}]},
        "blocks": {"blocks": [section]},
        "attachment_field": {
            "blocks": [],
            "attachments": [{"fields": [{"title": "key", "value": issued.secret}]}],
        },
    }
    await posted_with(standin, "see below", **places[place])
    assert len(replies_in(standin, GENERAL)) == 1


# -- events that are not a person's message ------------------------------------------------


def message_event(**fields: Any) -> dict[str, Any]:
    ts = f"{int(time.time())}.{time.monotonic_ns() % 1_000_000:06d}"
    return {
        "type": "message",
        "channel": GENERAL,
        "channel_type": "channel",
        "user": BOB,
        "ts": ts,
        "event_ts": ts,
    } | fields


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_unknown_events_and_subtypes_are_acked_and_report_nothing(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Not reported", contact=ALICE)
    secret = issued.secret
    shapes: list[dict[str, Any]] = [
        {"type": "reaction_added", "user": BOB, "reaction": "key", "item": {"text": secret}},
        {"type": "made_up_event", "text": secret, "channel": GENERAL},
        {"type": "pin_added", "channel_id": GENERAL, "item": {"message": {"text": secret}}},
        message_event(subtype="channel_join", text=f"<@{BOB}> has joined the channel"),
        message_event(subtype="message_deleted", hidden=True, previous_message={"text": secret}),
        message_event(subtype="message_changed"),  # no inner message
        message_event(subtype="some_future_subtype"),
        message_event(text=secret, channel="D0NOTACHAN"),
        message_event(text=secret, ts="not a ts"),
        message_event(text=secret, ts=None),
        # Shapes Slack never sends (a secret in them may well be reported: it is in the
        # message; what matters here is the ack).
        message_event(text=[1], blocks="x", attachments={"text": 1}),
        message_event(text=None, blocks=[None, 1, "x", {"elements": "y"}], attachments=[[]]),
        message_event(text=secret[:-1]),  # cut short: not a secret
        message_event(message="not a mapping", subtype="message_changed", text="x"),
    ]
    unanswered = []
    for event in shapes:
        delivery = await standin.deliver_event(event)
        if not delivery.acked or delivery.ack_seconds is None:
            unanswered.append((event["type"], event.get("subtype"), delivery.status))
        assert delivery.status != "timeout" or connected == "socket"
        assert_not_echoed(delivery, secret)
    # Slack retries an event that was not acknowledged, and turns off the subscriptions of
    # an app that keeps failing: every event is acknowledged, handled or not.
    assert unanswered == []
    await quiet(standin)
    assert posts(standin) == [] and await leak_events(store) == []
    assert (await current(store, issued)).leaked_at is None


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_hostile_nesting_in_blocks_is_acked_in_time(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Deep", contact=ALICE)
    nested: Any = [issued.secret]
    for _ in range(400):  # as deep as the stand-in's own JSON encoder goes
        nested = [{"elements": nested}]
    # Wide, within what the stand-in sends in one piece (aiohttp warns past 1 MiB).
    wide = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 10_000
    for blocks in (nested, wide):
        delivery = await standin.deliver_event(message_event(text="hi", blocks=blocks))
        assert_acked_in_time(delivery)
    # The text is scanned to its end whatever the blocks hold.
    delivery = await standin.deliver_event(message_event(text=issued.secret, blocks=nested))
    assert_acked_in_time(delivery)
    await quiet(standin)
    assert len(replies_in(standin, GENERAL)) == 1


@pytest.mark.parametrize("transport", ["http", "socket"])
@pytest.mark.parametrize("other", ["team", "app"])
async def test_an_event_for_another_workspace_or_app_is_acked_in_time(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str, other: str
) -> None:
    issued = await seed("Elsewhere", contact=ALICE)
    where_from = {"team_id": "T0OTHER00"} if other == "team" else {"api_app_id": "A0OTHER00"}
    event = message_event(text=issued.secret, team="T0OTHER00" if other == "team" else "T0TEST")
    standin.messages[(GENERAL, event["ts"])] = dict(event)  # Slack holds the message
    delivery = await standin.deliver_event(event, **where_from)
    assert_acked_in_time(delivery)
    assert_not_echoed(delivery, issued.secret)
    await quiet(standin)
    # Signed with the app's signing secret, it is Slack's: a live secret in it is reported
    # like any other (Slack Connect channels carry other teams' messages too), and the
    # guard's posts go to this workspace's channel.
    assert len(await leak_events(store)) == 1
    assert len(posts(standin)) == 4 and all(call.ok for call in posts(standin))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"null",
        b"[]",
        b'"tdk_"',
        b'{"type":"event_callback"}',
        b'{"type":"event_callback","event":"x"}',
        b'{"type":"event_callback","event":{"type":"message","text":42}}',
        b'{"type":"event_callback","event":{"type":"message","channel":12345,"text":"tdk_"}}',
        b'{"type":"event_callback","event":{"type":"message","text":"\xff\xfe"}}',
        b'{"type":"url_verification","challenge":{"nested":1}}',
        b"\xff\xfe\x00garbage",
    ],
)
async def test_a_malformed_body_is_answered_in_time_and_not_echoed(
    seed: Seed, store: Store, standin: SlackStandIn, connected: str, body: bytes
) -> None:
    issued = await seed("Malformed", contact=ALICE)
    sent = body.replace(b"tdk_", issued.secret.encode())
    for signing in ("valid", "none"):
        delivery = await standin.deliver_raw(sent, signing=signing)
        assert isinstance(delivery.status, int)
        assert delivery.status < 500, "a malformed body is refused, not a crash of the handler"
        assert delivery.ack_seconds is not None and delivery.ack_seconds < ACK_LIMIT
        assert_not_echoed(delivery, issued.secret, "garbage", "not json")
    await quiet(standin)
    assert posts(standin) == [] and await leak_events(store) == []


async def test_a_body_nested_past_any_parser_is_answered_in_time(
    seed: Seed, store: Store, slack: SlackClient, standin: SlackStandIn, connected: str
) -> None:
    issued = await seed("Nested body", contact=ALICE)
    deep = b"[" * 200_000 + issued.secret.encode() + b"]" * 200_000
    body = b'{"type":"event_callback","event":{"type":"message","blocks":' + deep + b"}}"
    started = time.perf_counter()
    status, _, answer = await slack.post(body, content_type="application/json")
    assert time.perf_counter() - started < ACK_LIMIT
    assert status < 500, "a malformed body is refused, it does not crash the handler"
    assert issued.secret not in str(answer) and len(str(answer)) < 200
    for signing in ("bad", "stale", "none"):
        refused = await standin.deliver_raw(
            json.dumps(
                {"type": "event_callback", "event": message_event(text=issued.secret)}
            ).encode(),
            signing=signing,
        )
        assert refused.status == 401 and refused.ack_seconds is not None
        assert_not_echoed(refused, issued.secret)
    await quiet(standin)
    assert posts(standin) == [] and await leak_events(store) == []


# -- the secret appears nowhere ---------------------------------------------------------------


def database_bytes(path: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()
    )


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_a_posted_secret_appears_in_nothing_the_app_writes(
    seed: Seed,
    specialist: str,
    store: Store,
    settings: Settings,
    slack: SlackClient,
    standin: SlackStandIn,
    connected: str,
    captured_log: io.StringIO,
) -> None:
    issued = await seed("Everywhere", contact=specialist)
    other = await seed("Other", contact=ALICE)
    delivery = await posted_with(standin, f"key {issued.secret} and {other.secret}")
    await standin.redeliver(delivery)
    await standin.user_edits(GENERAL, str(delivery.ts), f"key `{issued.secret}`")
    await posted_with(standin, f"again {issued.secret}", user=STRANGER, thread_ts=delivery.ts)
    # Disable now, then Reset now, from the contact's first DM.
    dm = where([c for c in posts(standin) if c.args.get("channel") == specialist][0])
    token = await current(store, issued)
    disable = action_for(
        standin.messages[dm]["blocks"], ActionId.LEAK_DISABLE, f"{token.id}:{token.row_version}"
    )
    await slack.block_action(specialist, disable, container=message_container(*dm))
    await settle(until=lambda: standin.calls_to("chat.update"))
    token = await current(store, issued)
    reset = action_for(
        standin.messages[dm]["blocks"], ActionId.LEAK_RESET, f"{token.id}:{token.row_version}"
    )
    click = await slack.block_action(specialist, reset, container=message_container(*dm))
    await settle(until=lambda: modal_opened_with(standin, click.sent["trigger_id"]))
    opened = modal_opened_with(standin, click.sent["trigger_id"])
    assert opened is not None
    ack = await slack.view_submission(specialist, dict(opened.answer["view"]), {})
    new = secret_of(ack.body["view"])
    await posted_with(standin, f"the new one is {new}")
    await quiet(standin)
    assert len(await leak_events(store)) == 4 and dm_call(standin, ALICE).ok

    secrets = (issued.secret, other.secret, new)
    written = json.dumps(
        [[c.method, c.args, c.answer] for c in standin.calls]
        + [[r.url, r.body] for r in standin.responses]
    )
    assert not SECRET_SHAPE.search(written)
    audit = json.dumps(
        [
            [e.actor, e.action, e.token_name, e.before, e.after]
            for e in await store.audit.events(limit=500)
        ]
    )
    assert not SECRET_SHAPE.search(audit) and PREFIX not in audit
    log = captured_log.getvalue()
    assert log.strip(), "the app logged nothing at DEBUG"
    await store.close()
    stored = database_bytes(settings.tokendesk_db)
    for secret in secrets:
        for part in (secret, secret[len(PREFIX) : len(PREFIX) + 32]):
            assert part not in written and part not in audit and part not in log
            assert part.encode() not in stored
    with sqlite3.connect(settings.tokendesk_db) as database:
        rows = database.execute("SELECT channel, message_ts, digest FROM leak_reports").fetchall()
    assert len(rows) == 4
    assert all(len(digest) == 32 and PREFIX.encode() not in digest for *_, digest in rows)
