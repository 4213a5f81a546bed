"""Rotation without an outage, end to end: a Reset that leaves the current secret working
for a grace window, both secrets passing `/auth/check` meanwhile (which one says
`secret_used`), every way the window ends from Slack, and retired secrets — refused like
any unknown one, counted with who presented them, shown on the card, and told once to the
token's primary contact by the scheduler.

The store's clock is a wall clock the tests set forward; the gateway calls the app it
serves, on loopback.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.slack_client import create_web_client
from slack_standin.blockkit import check_message
from slack_standin.client import Reply, SlackClient, action_for, fill
from slack_standin.server import Call, SlackStandIn
from storage.credentials import generate_secret
from storage.models import IssuedToken, Token, TokenEdit
from storage.store import Store
from tests.bot.blockwalk import (
    SECRET_SHAPE,
    Body,
    all_text,
    assert_harmless,
    card,
    menu_action,
    notice_of,
    refused,
    secret_of,
)
from tests.bot.conftest import ADMIN, ALICE, STRANGER, Seed
from tests.bot.doubles import WallClock
from tests.bot.driver import SlackUser, dms, send_payload, settle
from tests.store_support import days_ahead

HOUR = 3600
# The Reset confirmation's choices, by the value each option sends.
STOP, ONE_HOUR, ONE_DAY, SEVEN_DAYS = "stop", "1h", "24h", "7d"


@pytest.fixture
def store_clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def store(store: Store) -> Store:
    """The app's store with API access on, so that secrets pass the auth check."""
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    return store


@pytest.fixture
async def gateway(app_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    """The agency's API gateway, calling the app's `/auth/check`."""
    async with aiohttp.ClientSession(base_url=app_url) as session:
        yield session


@pytest.fixture
def scheduler(store: Store, settings: Settings, store_clock: WallClock) -> Scheduler:
    """The scheduler as the app runs it, one pass at a time."""
    return Scheduler(
        store=store, client=create_web_client(settings), settings=settings, clock=store_clock
    )


class Answer:
    """An auth check's answer exactly as the gateway got it."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def secret_used(self) -> str | None:
        return dict(self.headers).get("X-Token-Secret-Used")

    def json(self) -> Any:
        return json.loads(self.body)

    def without_date(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """Everything but the `Date` header, which only says when it was sent."""
        return self.status, [(k, v) for k, v in self.headers if k != "Date"], self.body


async def check(
    gateway: aiohttp.ClientSession, secret: str, headers: dict[str, str] | None = None
) -> Answer:
    sent = CIMultiDict(headers or {})
    sent["Authorization"] = f"Bearer {secret}"
    async with gateway.get("/auth/check", headers=sent) as answer:
        return Answer(answer.status, list(answer.headers.items()), await answer.read())


async def passes_as(gateway: aiohttp.ClientSession, secret: str) -> str | None:
    """Which of its token's secrets `secret` passed as (`current`, `previous`), or None
    when it was refused."""
    answer = await check(gateway, secret)
    if answer.status != 200:
        assert answer.status == 401
        return None
    assert answer.json()["secret_used"] == answer.secret_used
    return answer.secret_used


async def open_reset(user: SlackUser, token_id: int) -> Body:
    """`/tokens`, then Reset in the card's menu: the confirmation it opened."""
    await user.command()
    return (await user.open(menu_action(user.blocks, token_id, "reset"), "token_confirm"))[1]


async def reset(user: SlackUser, token_id: int, grace: str | None) -> str:
    """Reset from the card, letting the current secret work on for `grace` (None: the
    confirmation offered no choice); the new secret, as the one-time view showed it."""
    view = await open_reset(user, token_id)
    offered = any(b.get("block_id") == "grace" for b in view["blocks"])
    assert offered is (grace is not None)
    ack = await user.submit(view, {"grace_choice": grace} if grace else {})
    return secret_of(ack["view"])


async def current(store: Store, token: Token | IssuedToken) -> Token:
    token = token.token if isinstance(token, IssuedToken) else token
    return await store.token_reads.get(token_id=token.id)


def card_text(user: SlackUser, token_id: int) -> str:
    return card(user.blocks, token_id).text


def end_grace_action(blocks: list[Body], token_id: int) -> Body:
    return action_for(blocks, "token_end_grace", block_id=f"edit.{token_id}")


def audit_actions(events: Any, sid: str) -> list[str]:
    return [event.action for event in events if event.token_sid == sid]


# -- both secrets during a window ----------------------------------------------------------


async def test_during_a_window_both_secrets_pass_and_say_which(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    store_clock: WallClock,
    gateway: aiohttp.ClientSession,
    standin: SlackStandIn,
) -> None:
    issued = await seed("Rotating hook", contact=ALICE)
    new = await reset(admin, issued.token.id, ONE_DAY)
    store_clock.advance(5)

    assert await passes_as(gateway, issued.secret) == "previous"
    assert await passes_as(gateway, new) == "current"
    body = (await check(gateway, issued.secret)).json()
    assert body["sid"] == issued.token.sid and body["active"] is True

    token = await current(store, issued)
    assert token.previous_until is not None
    assert token.previous_until - token.updated_at == timedelta(hours=24)
    # The card says until when, and that the previous secret was used since.
    await admin.command()
    text = card_text(admin, token.id)
    until = int(token.previous_until.timestamp())
    assert f"*Previous secret works until* <!date^{until}^" in text
    assert f"ends in `{issued.secret[-4:]}`" in text and "last used <!date^" in text
    # Both Reset DMs say until when the old value works.
    await settle()
    for person in (ALICE, ADMIN):
        (message,) = dms(standin, person)
        assert f"keeps working until <!date^{until}^" in all_text(message)
        assert not SECRET_SHAPE.search(all_text(message))


async def test_a_previous_secret_not_used_since_the_reset_says_so(
    admin: SlackUser, seed: Seed, store: Store
) -> None:
    issued = await seed("Quiet hook")
    await reset(admin, issued.token.id, ONE_HOUR)
    await admin.command()
    assert "not used since the reset" in card_text(admin, issued.token.id)


async def test_stop_immediately_is_the_default_and_retires_the_old_secret(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    gateway: aiohttp.ClientSession,
    standin: SlackStandIn,
) -> None:
    issued = await seed("Strict hook")
    new = await reset(admin, issued.token.id, STOP)
    assert await passes_as(gateway, issued.secret) is None
    assert await passes_as(gateway, new) == "current"
    assert (await current(store, issued)).previous_until is None
    await admin.command()
    assert "Previous secret" not in card_text(admin, issued.token.id)
    await settle()
    (message,) = dms(standin, ADMIN)
    assert "The previous secret no longer works" in all_text(message)


# -- when grace is offered ----------------------------------------------------------------


async def test_no_grace_for_a_disabled_token(
    admin: SlackUser, seed: Seed, store: Store, gateway: aiohttp.ClientSession
) -> None:
    issued = await seed("Switched off")
    await store.tokens.set_enabled(actor=ADMIN, token_id=issued.token.id, enabled=False)
    view = await open_reset(admin, issued.token.id)
    assert all(b.get("block_id") != "grace" for b in view["blocks"])
    assert "unless you let it keep working" not in all_text(view)
    # A crafted grace choice changes nothing: the current secret did not work.
    chosen = {"type": "static_select", "selected_option": {"value": SEVEN_DAYS}}
    state = fill(view, {}) | {"grace": {"grace_choice": chosen}}
    secret_of((await admin.submit(view, state=state))["view"])
    assert (await current(store, issued)).previous_until is None
    await store.tokens.set_enabled(actor=ADMIN, token_id=issued.token.id, enabled=True)
    assert await passes_as(gateway, issued.secret) is None


async def test_no_grace_for_an_expired_token(
    admin: SlackUser, seed: Seed, store: Store, store_clock: WallClock
) -> None:
    issued = await seed("Lapsed hook", lifetime_days=1)
    store_clock.advance(3 * 86_400)
    view = await open_reset(admin, issued.token.id)
    assert all(b.get("block_id") != "grace" for b in view["blocks"])


# -- how a window ends --------------------------------------------------------------------


async def test_the_previous_secret_stops_at_the_tokens_expiry(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    store_clock: WallClock,
    gateway: aiohttp.ClientSession,
) -> None:
    """A week's grace on a token that stops tomorrow night ends with the token, for good:
    extending the token afterwards brings back only its current secret."""
    issued = await seed("Short-lived hook")
    view = await open_reset(admin, issued.token.id)
    tomorrow = days_ahead(1, clock=store_clock).isoformat()
    ack = await admin.submit(
        view,
        {"grace_choice": SEVEN_DAYS, "expiry_choice": "on_a_date", "expiry_date": tomorrow},
    )
    new = secret_of(ack["view"])
    token = await current(store, issued)
    assert token.stops_at is not None and token.previous_until == token.stops_at

    store_clock.advance(token.stops_at.timestamp() - store_clock() - 1)
    assert await passes_as(gateway, issued.secret) == "previous"
    store_clock.advance(2)
    assert await passes_as(gateway, issued.secret) is None
    assert await passes_as(gateway, new) is None

    later = days_ahead(30, clock=store_clock)
    await store.tokens.edit(
        actor=ADMIN,
        token_id=token.id,
        row_version=(await current(store, token)).row_version,
        edit=TokenEdit(expires_on=later),
    )
    assert await passes_as(gateway, new) == "current"
    assert await passes_as(gateway, issued.secret) is None
    await admin.command()
    text = card_text(admin, token.id)
    assert "Previous secret" not in text
    assert [e["action_id"] for e in card(admin.blocks, token.id).edit["elements"]] == ["token_edit"]


async def test_the_window_ends_at_its_end(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    store_clock: WallClock,
    gateway: aiohttp.ClientSession,
    scheduler: Scheduler,
) -> None:
    issued = await seed("Hourly hook")
    await reset(admin, issued.token.id, ONE_HOUR)
    store_clock.advance(HOUR - 5)
    assert await passes_as(gateway, issued.secret) == "previous"
    store_clock.advance(10)
    assert await passes_as(gateway, issued.secret) is None
    await admin.command()
    assert "Previous secret" not in card_text(admin, issued.token.id)
    # The scheduler retires it for good, audited as Token Desk's doing.
    await scheduler.run_pass()
    events = await store.audit.events(limit=100)
    ended = [e for e in events if e.action == "end_grace" and e.token_sid == issued.token.sid]
    assert len(ended) == 1 and ended[0].actor == "tokendesk"


async def test_end_grace_now_from_the_card(
    admin: SlackUser, seed: Seed, store: Store, gateway: aiohttp.ClientSession
) -> None:
    issued = await seed("Ending hook")
    new = await reset(admin, issued.token.id, SEVEN_DAYS)
    await admin.command()
    shown = admin.blocks
    labels = [e["text"]["text"] for e in card(shown, issued.token.id).edit["elements"]]
    assert labels == ["Edit", "End grace now"]

    blocks = await admin.click(end_grace_action(shown, issued.token.id))
    assert "the previous secret stopped working" in notice_of(blocks)
    assert await passes_as(gateway, issued.secret) is None
    assert await passes_as(gateway, new) == "current"
    after = card(blocks, issued.token.id)
    assert "Previous secret" not in after.text
    assert [e["action_id"] for e in after.edit["elements"]] == ["token_edit"]
    events = await store.audit.events(limit=100)
    assert audit_actions(events, issued.token.sid).count("end_grace") == 1

    # The same click again (a double click, a stale list): nothing more happens.
    again = await admin.click(end_grace_action(shown, issued.token.id), blocks=shown)
    assert "had already stopped working" in notice_of(again)
    events = await store.audit.events(limit=100)
    assert audit_actions(events, issued.token.sid).count("end_grace") == 1


async def test_end_grace_replayed_by_a_user_without_a_role_changes_nothing(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    slack: SlackClient,
    standin: SlackStandIn,
    gateway: aiohttp.ClientSession,
) -> None:
    """The admin's real End grace now click, sent again by someone without a role for the
    window a later Reset opened: refused where they clicked, and the window stays open."""
    issued = await seed("Guarded window")
    await reset(admin, issued.token.id, ONE_DAY)
    await admin.command()
    click = end_grace_action(admin.blocks, issued.token.id)
    real = await admin.send_click(click)
    await admin.listed(real)
    previous = await reset(admin, issued.token.id, ONE_DAY)
    await reset(admin, issued.token.id, ONE_DAY)
    token = await current(store, issued)
    forged = {
        **real.sent,
        "user": {"id": STRANGER, "username": "stranger", "name": "stranger"},
        "actions": [{**click, "value": f"{token.id}:{token.row_version}"}],
    }
    replayed = await send_payload(slack, forged)
    assert replayed.status == 200 and replayed.body == ""
    await settle()
    (refusal,) = standin.responses_to(real.sent["response_url"])[1:]
    assert refused(all_text(refusal.body))
    assert (await current(store, issued)).row_version == token.row_version
    assert await passes_as(gateway, previous) == "previous"


async def test_end_grace_on_a_card_that_moved_on_is_told_and_applies_nothing(
    admin: SlackUser, seed: Seed, store: Store, gateway: aiohttp.ClientSession
) -> None:
    issued = await seed("Edited meanwhile")
    await reset(admin, issued.token.id, ONE_DAY)
    await admin.command()
    shown = admin.blocks
    token = await current(store, issued)
    await store.tokens.edit(
        actor=ALICE,
        token_id=token.id,
        row_version=token.row_version,
        edit=TokenEdit(description="changed meanwhile"),
    )
    blocks = await admin.click(end_grace_action(shown, token.id))
    notice = notice_of(blocks)
    assert f"was changed by <@{ALICE}>" in notice and "nothing was applied" in notice
    assert await passes_as(gateway, issued.secret) == "previous"
    assert "End grace now" in all_text(card(blocks, token.id).edit)


async def test_a_second_reset_during_a_window_retires_the_earlier_previous_secret(
    admin: SlackUser, seed: Seed, store: Store, gateway: aiohttp.ClientSession
) -> None:
    issued = await seed("Twice reset")
    second = await reset(admin, issued.token.id, ONE_DAY)
    view = await open_reset(admin, issued.token.id)
    warning = all_text(view)
    assert f"previous secret (ends in `{issued.secret[-4:]}`) of an earlier Reset" in warning
    assert "stops working at once when you confirm" in warning
    third = secret_of((await admin.submit(view, {"grace_choice": ONE_HOUR}))["view"])

    assert await passes_as(gateway, issued.secret) is None
    assert await passes_as(gateway, second) == "previous"
    assert await passes_as(gateway, third) == "current"
    await admin.command()
    assert f"ends in `{second[-4:]}`" in card_text(admin, issued.token.id)


async def test_disable_ends_the_window_for_good(
    admin: SlackUser, seed: Seed, store: Store, gateway: aiohttp.ClientSession
) -> None:
    issued = await seed("Disabled in grace")
    new = await reset(admin, issued.token.id, ONE_DAY)
    await admin.command()
    await admin.click(menu_action(admin.blocks, issued.token.id, "disable"))
    await admin.click(menu_action(admin.blocks, issued.token.id, "enable"))
    assert await passes_as(gateway, new) == "current"
    assert await passes_as(gateway, issued.secret) is None


async def test_delete_ends_the_window_and_forgets_every_secret(
    admin: SlackUser, seed: Seed, store: Store, gateway: aiohttp.ClientSession
) -> None:
    issued = await seed("Deleted in grace")
    previous = await reset(admin, issued.token.id, STOP)
    new = await reset(admin, issued.token.id, ONE_DAY)
    await admin.command()
    _, view = await admin.open(
        menu_action(admin.blocks, issued.token.id, "delete"), "token_confirm"
    )
    assert (await admin.submit(view))["response_action"] == "clear"
    unknown = await check(gateway, generate_secret())
    for secret in (issued.secret, previous, new):
        assert (await check(gateway, secret)).without_date() == unknown.without_date()
        # Its digests went with it: none is even counted as an old secret any more.
        assert store.credentials.check(secret).reason == "unknown secret"


# -- retired secrets ----------------------------------------------------------------------


async def test_a_retired_secret_gets_exactly_the_401_of_an_unknown_one(
    admin: SlackUser, seed: Seed, store: Store, gateway: aiohttp.ClientSession
) -> None:
    issued = await seed("Retired hook")
    await reset(admin, issued.token.id, STOP)
    retired = await check(gateway, issued.secret)
    unknown = await check(gateway, generate_secret())
    assert retired.status == 401
    assert retired.without_date() == unknown.without_date()
    with_headers = {"X-Real-IP": "198.51.100.1", "User-Agent": "probe/1.0"}
    assert (await check(gateway, issued.secret, with_headers)).without_date() == (
        unknown.without_date()
    )


def presentation_dms(standin: SlackStandIn, user_id: str) -> list[Call]:
    """The scheduler's posts to `user_id` (to the user id directly) about old secrets."""
    return [
        call
        for call in standin.calls_to("chat.postMessage")
        if call.args.get("channel") == user_id and "old secret" in str(call.args.get("text"))
    ]


async def test_a_retired_secret_presented_many_times_is_counted_shown_and_told_once(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    gateway: aiohttp.ClientSession,
    standin: SlackStandIn,
    scheduler: Scheduler,
    store_clock: WallClock,
    captured_log: io.StringIO,
) -> None:
    issued = await seed("Forgotten <!channel> hook", contact=ALICE)
    new = await reset(admin, issued.token.id, STOP)
    for number in range(12):
        headers = {
            "X-Real-IP": f"203.0.113.{number % 2}",
            "User-Agent": f"nightly-export/{number % 2}",
        }
        assert (await check(gateway, issued.secret, headers)).status == 401
        # Who presented it is sampled once a second.
        store_clock.advance(1)

    await scheduler.run_pass()
    await admin.command()
    text = card_text(admin, issued.token.id)
    assert ":mag: *Old secret still presented* 12 times, last <!date^" in text
    assert "from 203.0.113.1 (nightly-export/1); 203.0.113.0 (nightly-export/0)" in text
    assert_harmless(admin.message)

    (call,) = presentation_dms(standin, ALICE)
    assert call.ok and check_message(call.args) == []
    assert_harmless(call.args)
    told = all_text(call.args)
    assert issued.token.sid in told and "&lt;!channel&gt;" in told and "<!date^" in told
    assert "From 203.0.113.1" in told and "nightly-export/1" in told

    # Presented again, in later passes: counted, never told twice.
    for _ in range(3):
        await check(gateway, issued.secret, {"User-Agent": "nightly-export/2"})
        await scheduler.run_pass()
    assert len(presentation_dms(standin, ALICE)) == 1
    await admin.command()
    assert "presented* 15 times" in card_text(admin, issued.token.id)

    log = captured_log.getvalue()
    for secret in (issued.secret, new):
        assert secret not in log and secret[4:36] not in log
        for message in [c.args for c in standin.calls_to("chat.postMessage")]:
            assert secret not in str(message)


@pytest.mark.parametrize(
    ("headers", "address"),
    [
        ({"X-Real-IP": "198.51.100.7", "X-Forwarded-For": "10.0.0.1, 203.0.113.9"}, "198.51.100.7"),
        ({"X-Forwarded-For": "10.0.0.1, 203.0.113.9"}, "203.0.113.9"),
        ({"X-Forwarded-For": "203.0.113.9 ,  "}, "127.0.0.1"),
        ({"X-Real-IP": "  "}, "127.0.0.1"),
        ({}, "127.0.0.1"),
    ],
)
async def test_the_presenter_is_the_gateways_client(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    gateway: aiohttp.ClientSession,
    headers: dict[str, str],
    address: str,
) -> None:
    """X-Real-IP, else the last X-Forwarded-For entry (the one the nearest proxy added),
    else the peer of the connection."""
    issued = await seed("Presented hook")
    await reset(admin, issued.token.id, STOP)
    await check(gateway, issued.secret, headers | {"User-Agent": "curl/8.4.0"})
    await store.credentials.flush_last_used()
    retired = (await current(store, issued)).retired
    assert retired is not None and retired.presented == 1
    (presenter,) = retired.presenters
    assert (presenter.address, presenter.user_agent) == (address, "curl/8.4.0")


async def test_hostile_presenters_are_bounded_escaped_and_never_keep_a_secret(
    admin: SlackUser, seed: Seed, store: Store, gateway: aiohttp.ClientSession
) -> None:
    issued = await seed("Probed hook")
    await reset(admin, issued.token.id, STOP)
    unknown = await check(gateway, generate_secret())
    pasted = generate_secret()
    for headers in (
        {"X-Real-IP": "<!channel> " + "9" * 5000, "User-Agent": "<https://evil.example|x> " * 400},
        {"X-Forwarded-For": f"10.0.0.1, {pasted}", "User-Agent": f"agent {pasted}"},
    ):
        answer = await check(gateway, issued.secret, headers)
        assert answer.without_date() == unknown.without_date()
    await store.credentials.flush_last_used()
    retired = (await current(store, issued)).retired
    assert retired is not None and retired.presented == 2
    for presenter in retired.presenters:
        assert len(presenter.address) <= 64 and len(presenter.user_agent) <= 200
        assert pasted not in presenter.address + presenter.user_agent
    await admin.command()
    text = card_text(admin, issued.token.id)
    assert "&lt;!channel&gt;" in text and not SECRET_SHAPE.search(text)


async def test_several_forwarded_for_lines_read_as_one_list(
    admin: SlackUser, seed: Seed, store: Store, gateway: aiohttp.ClientSession
) -> None:
    issued = await seed("Proxied hook")
    await reset(admin, issued.token.id, STOP)
    sent = CIMultiDict([("Authorization", f"Bearer {issued.secret}")])
    sent.add("X-Forwarded-For", "10.0.0.1")
    sent.add("X-Forwarded-For", "10.0.0.2, 192.0.2.44")
    async with gateway.get("/auth/check", headers=sent) as answer:
        assert answer.status == 401
    await store.credentials.flush_last_used()
    retired = (await current(store, issued)).retired
    assert retired is not None and retired.presenters[0].address == "192.0.2.44"
    assert retired.presenters[0].user_agent.startswith("Python")


# -- at once, from two users ----------------------------------------------------------------


@pytest.mark.parametrize("first", ["reset", "end_grace", "disable", None])
async def test_reset_end_grace_and_disable_at_once_from_two_users(
    admin: SlackUser,
    slack_user: Any,
    specialist: str,
    seed: Seed,
    store: Store,
    gateway: aiohttp.ClientSession,
    first: str | None,
) -> None:
    """The admin confirms a Reset while a specialist clicks End grace now and Disable on
    the list they saw: `first` is done before the two others, which go at once (None: all
    three at once). Reset and End grace carry the same row version, so at most one of them
    applies; Disable applies whatever. In every order the token ends disabled with no
    window, no secret passes, and each user is answered."""
    issued = await seed(f"Contended hook {first}")
    second = await reset(admin, issued.token.id, SEVEN_DAYS)
    other = slack_user(specialist)
    view = await open_reset(admin, issued.token.id)
    await other.command()
    shown = other.blocks
    await settle()
    requests = {
        "reset": lambda: admin.send_submission(view, {"grace_choice": ONE_DAY}),
        "end_grace": lambda: other.send_click(end_grace_action(shown, issued.token.id)),
        "disable": lambda: other.send_click(
            menu_action(shown, issued.token.id, "disable"), blocks=shown
        ),
    }
    replies: dict[str, Reply] = {}
    if first is not None:
        replies[first] = await requests[first]()
        await settle()
    later = [kind for kind in requests if kind != first]
    at_once = await asyncio.gather(*(requests[kind]() for kind in later))
    replies |= dict(zip(later, at_once, strict=True))
    await settle()

    token = await current(store, issued)
    assert not token.enabled and token.previous_until is None
    for secret in (issued.secret, second):
        assert await passes_as(gateway, secret) is None
    reset_view = replies["reset"].body["view"]
    reset_applied = reset_view["callback_id"] == "token_secret"
    if reset_applied:
        assert await passes_as(gateway, secret_of(reset_view)) is None
    else:
        assert "was changed by" in all_text(reset_view)
    grace_notice = notice_of((await other.answer(replies["end_grace"]))["blocks"])
    grace_applied = "the previous secret stopped working" in grace_notice
    assert grace_applied or "already stopped" in grace_notice or "was changed by" in grace_notice
    assert not (reset_applied and grace_applied)
    assert "disabled" in notice_of((await other.answer(replies["disable"]))["blocks"])
    if first is not None:
        assert {"reset": reset_applied, "end_grace": grace_applied, "disable": True}[first]
