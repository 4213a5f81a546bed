"""Reminders end to end: the app served on loopback and driven by signed requests, its store
and its scheduler on a wall clock moved forward, the Slack stand-in in between. A reminder
DM's Extend… and Reset… open the app's own modals and their outcome updates that DM; a user
without a role changes nothing from it. API access and role changes are told to the alerts
channel at once. And `python -m bot`, killed with SIGKILL between the mark and the post,
never sends a reminder twice.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.ids import ActionId
from bot.scheduler import Scheduler
from bot.settings import Settings, store_options
from bot.slack_client import create_web_client
from slack_standin.client import Reply, SlackClient, action_for, button, message_container
from slack_standin.server import Call, SlackStandIn
from storage.models import Token, TokenEdit
from storage.store import Store
from tests.bot.blockwalk import (
    SECRET_SHAPE,
    Body,
    all_text,
    assert_harmless,
    interactive,
    refused,
    secret_of,
)
from tests.bot.conftest import (
    ADMIN,
    ALICE,
    ALICE_MENTION,
    BOB,
    SIGNING_SECRET,
    Seed,
    free_port,
)
from tests.bot.driver import SlackUser, eventually, modal_opened_with, settle
from tests.storage.support_durability import python_env
from tests.store_support import verify

DAY = timedelta(days=1)
ALERTS = "C0ALERTS1"


class MovedClock:
    """Real time, moved forward by the test: the store's and the scheduler's wall clock."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return datetime.now(UTC).timestamp() + self.skew

    def set(self, moment: datetime) -> None:
        self.skew = moment.timestamp() - datetime.now(UTC).timestamp()


@pytest.fixture
def wall() -> MovedClock:
    return MovedClock()


@pytest.fixture
def store_clock(wall: MovedClock) -> Callable[[], float]:
    return wall


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tokendesk_alerts_channel": ALERTS})


@pytest.fixture
def scheduler(store: Store, settings: Settings, wall: MovedClock) -> Scheduler:
    """The scheduler as the app runs it, one pass at a time."""
    return Scheduler(store=store, client=create_web_client(settings), settings=settings, clock=wall)


def stops(token: Token) -> datetime:
    assert token.stops_at is not None
    return token.stops_at


async def reminded(
    scheduler: Scheduler, standin: SlackStandIn, wall: MovedClock, token: Token, days: int
) -> tuple[str, str]:
    """Move the clock to the token's `days` reminder and run a pass: the DM it posted
    (its channel and ts, as Slack holds it)."""
    wall.set(stops(token) - days * DAY)
    before = len(reminder_posts(standin, token.primary_contact))
    report = await scheduler.run_pass()
    assert [due.token.id for due in report.reminded] == [token.id]
    (call,) = reminder_posts(standin, token.primary_contact)[before:]
    assert call.ok
    return str(call.answer["channel"]), str(call.answer["ts"])


def reminder_posts(standin: SlackStandIn, user: str) -> list[Call]:
    """The posts made to reach `user` by DM (to the user id directly), accepted or not."""
    return [c for c in standin.calls_to("chat.postMessage") if c.args.get("channel") == user]


def dm(standin: SlackStandIn, where: tuple[str, str]) -> Body:
    message = standin.messages[where]
    assert_harmless(message)
    return message


async def click_in_dm(slack: SlackClient, user: str, where: tuple[str, str], action: Body) -> Reply:
    """`user` clicks `action` in the DM at `where`: the payload carries the message."""
    reply = await slack.block_action(user, action, container=message_container(*where))
    assert reply.status == 200 and reply.body == "", (reply.status, reply.body)
    return reply


async def opened(standin: SlackStandIn, reply: Reply, callback_id: str) -> Body:
    trigger = reply.sent["trigger_id"]
    await settle(until=lambda: modal_opened_with(standin, trigger))
    call = modal_opened_with(standin, trigger)
    assert call is not None and call.ok
    view = dict(call.answer["view"])
    assert view["callback_id"] == callback_id
    return view


def works_until_option(view: Body, days: int) -> str:
    """The value of the Works until preset `days` days from the store's today."""
    for block in view["blocks"]:
        element = block.get("element", {})
        if element.get("action_id") == ActionId.EXPIRY_CHOICE:
            for option in element["options"]:
                if option["text"]["text"].startswith(f"{days} days"):
                    return str(option["value"])
    raise LookupError(f"no {days}-day preset")


async def updates_of(standin: SlackStandIn, where: tuple[str, str], count: int = 1) -> Body:
    """The DM after `count` chat.update calls on it: the newest."""

    def done() -> bool:
        calls = [
            c
            for c in standin.calls_to("chat.update")
            if (c.args.get("channel"), c.args.get("ts")) == where
        ]
        return len(calls) >= count and all(c.ok for c in calls)

    await settle(until=done)
    return dm(standin, where)


# -- Extend… and Reset… from a DM --------------------------------------------------------


async def test_extend_from_a_dm_opens_the_edit_form_and_updates_that_dm(
    seed: Seed,
    store: Store,
    slack: SlackClient,
    standin: SlackStandIn,
    scheduler: Scheduler,
    wall: MovedClock,
) -> None:
    token = (await seed("Nightly export", lifetime_days=10)).token
    other = (await seed("Partner feed", lifetime_days=10)).token
    wall.set(stops(token) - 7 * DAY)
    report = await scheduler.run_pass()
    assert report.reminder_dms == 1 and len(report.reminded) == 2
    (call,) = reminder_posts(standin, ADMIN)
    where = (str(call.answer["channel"]), str(call.answer["ts"]))
    blocks = dm(standin, where)["blocks"]
    extend = action_for(blocks, ActionId.REMINDER_EXTEND, f"{token.id}:{token.row_version}")

    click = await click_in_dm(slack, ADMIN, where, extend)
    form = await opened(standin, click, "token_edit")
    later = works_until_option(form, 90)
    ack = await slack.view_submission(ADMIN, form, {ActionId.EXPIRY_CHOICE: later})
    assert ack.body == {"response_action": "clear"}, ack.body

    updated = await updates_of(standin, where)
    saved = await store.token_reads.get(token_id=token.id)
    assert saved.expires_on is not None and saved.expires_on.isoformat() == later
    text = all_text(updated)
    assert "Nightly export" in text and "saved" in text
    assert f"<!date^{int(stops(saved).timestamp())}^" in text
    # The DM still lists both tokens, with fresh buttons; no list was posted anywhere.
    values = {e["value"] for e in interactive(updated)}
    assert values == {f"{saved.id}:{saved.row_version}", f"{other.id}:{other.row_version}"}
    assert standin.responses_to(click.sent["response_url"]) == []


async def test_reset_from_a_dm_shows_the_secret_in_the_modal_only_and_updates_the_dm(
    seed: Seed,
    store: Store,
    slack: SlackClient,
    standin: SlackStandIn,
    scheduler: Scheduler,
    wall: MovedClock,
) -> None:
    issued = await seed("Expired feed", lifetime_days=10)
    token = issued.token
    where = await reminded(scheduler, standin, wall, token, 0)
    assert verify(store, issued.secret) is None, "an expired token fails the auth check"
    reset = action_for(
        dm(standin, where)["blocks"], ActionId.REMINDER_RESET, f"{token.id}:{token.row_version}"
    )

    click = await click_in_dm(slack, ADMIN, where, reset)
    confirmation = await opened(standin, click, "token_confirm")
    ack = await slack.view_submission(
        ADMIN, confirmation, {ActionId.EXPIRY_CHOICE: works_until_option(confirmation, 30)}
    )
    assert ack.body["response_action"] == "update"
    secret = secret_of(ack.body["view"])
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    assert verify(store, secret) is not None

    updated = await updates_of(standin, where)
    assert "has a new secret" in all_text(updated)
    assert secret not in json.dumps(updated) and not SECRET_SHAPE.search(json.dumps(updated))
    await settle()
    assert not SECRET_SHAPE.search(json.dumps([c.args for c in standin.calls]))


async def test_a_stale_reset_from_a_dm_says_so_in_that_dm(
    seed: Seed,
    store: Store,
    slack: SlackClient,
    standin: SlackStandIn,
    scheduler: Scheduler,
    wall: MovedClock,
) -> None:
    token = (await seed("Moved on", lifetime_days=10)).token
    where = await reminded(scheduler, standin, wall, token, 7)
    reset = action_for(
        dm(standin, where)["blocks"], ActionId.REMINDER_RESET, f"{token.id}:{token.row_version}"
    )
    await store.tokens.edit(
        actor=BOB,
        token_id=token.id,
        row_version=token.row_version,
        edit=TokenEdit(description="Changed meanwhile"),
    )

    click = await click_in_dm(slack, ADMIN, where, reset)
    updated = await updates_of(standin, where)
    assert "was changed by" in all_text(updated) and f"<@{BOB}>" in all_text(updated)
    assert standin.calls_to("views.open") == []
    assert standin.responses_to(click.sent["response_url"]) == []


async def test_a_user_without_a_role_changes_nothing_from_a_dm(
    seed: Seed,
    store: Store,
    slack: SlackClient,
    standin: SlackStandIn,
    scheduler: Scheduler,
    wall: MovedClock,
) -> None:
    token = (await seed("Alice's", contact=ALICE, lifetime_days=10)).token
    admins = (await seed("Admin's", lifetime_days=10)).token
    wall.set(stops(token) - 7 * DAY)
    assert (await scheduler.run_pass()).reminder_dms == 2
    (to_alice,) = reminder_posts(standin, ALICE)
    where = (str(to_alice.answer["channel"]), str(to_alice.answer["ts"]))
    message = dm(standin, where)
    assert interactive(message) == [], "no button for a contact without a role"
    assert "Ask an Account Administrator" in all_text(message)
    before = await store.token_reads.get(token_id=token.id)

    # Crafted: the buttons a manager would have had, clicked in Alice's DM.
    ref = f"{token.id}:{token.row_version}"
    for action_id in (ActionId.REMINDER_EXTEND, ActionId.REMINDER_RESET):
        crafted = button(action_id, ref, block_id=f"reminder_actions.{token.id}")
        click = await click_in_dm(slack, ALICE, where, crafted)
        await settle(until=lambda c=click: standin.responses_to(c.sent["response_url"]))
        (post,) = standin.responses_to(click.sent["response_url"])
        assert post.body["replace_original"] is False and refused(post.body["text"])

    # And the form the admin opened from their DM, submitted by Alice.
    (to_admin,) = reminder_posts(standin, ADMIN)
    admin_where = (str(to_admin.answer["channel"]), str(to_admin.answer["ts"]))
    extend = action_for(
        dm(standin, admin_where)["blocks"],
        ActionId.REMINDER_EXTEND,
        f"{admins.id}:{admins.row_version}",
    )
    form = await opened(standin, await click_in_dm(slack, ADMIN, admin_where, extend), "token_edit")
    replayed = await slack.view_submission(
        ALICE, form, {ActionId.EXPIRY_CHOICE: works_until_option(form, 90)}
    )
    assert replayed.body["response_action"] == "update"
    assert refused(all_text(replayed.body["view"]))

    await settle()
    assert await store.token_reads.get(token_id=token.id) == before
    assert (await store.token_reads.get(token_id=admins.id)).row_version == admins.row_version
    assert standin.calls_to("chat.update") == []
    assert len(standin.calls_to("views.open")) == 1


# -- the alerts channel, at once ----------------------------------------------------------


def alerts(standin: SlackStandIn) -> list[str]:
    """The texts posted to the alerts channel, in order."""
    found = []
    for call in standin.calls_to("chat.postMessage"):
        if call.ok and call.args.get("channel") == ALERTS:
            assert_harmless(call.args)
            found.append(str(call.args["text"]))
    return found


async def test_api_access_switches_are_told_to_the_alerts_channel(
    admin: SlackUser, standin: SlackStandIn
) -> None:
    await admin.send_command("access on")
    await settle(until=lambda: alerts(standin))
    again = await admin.send_command("access on")
    assert "already on" in again.body["text"]
    reply = await admin.send_command("access off")
    await admin.send_click(
        action_for(reply.body["blocks"], "api_access_off"), blocks=reply.body["blocks"]
    )
    await settle(until=lambda: len(alerts(standin)) == 2)
    on, off = alerts(standin)
    assert "turned *on* by <@UADMIN001>" in on
    assert "turned *off* by <@UADMIN001>" in off


async def test_role_changes_are_told_to_the_alerts_channel(
    admin: SlackUser, standin: SlackStandIn
) -> None:
    grant = await admin.send_command(f"roles grant {ALICE_MENTION} specialist")
    await admin.answer(grant)
    revoke = await admin.send_command(f"roles revoke {ALICE_MENTION}")
    await admin.answer(revoke)
    again = await admin.send_command(f"roles revoke {ALICE_MENTION}")
    await admin.answer(again)
    await settle()
    assert alerts(standin) == [
        f":busts_in_silhouette: Token Desk roles: <@{ADMIN}> gave <@{ALICE}> the"
        " Implementation Specialist role.",
        f":busts_in_silhouette: Token Desk roles: <@{ADMIN}> revoked the Implementation"
        f" Specialist role of <@{ALICE}>.",
    ]


# -- killed between the mark and the post -------------------------------------------------


def app_environment(settings: Settings) -> dict[str, str]:
    return python_env(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=settings.slack_api_url,
        TOKENDESK_DB=str(settings.tokendesk_db),
        TOKENDESK_SECRET_KEY="ab" * 32,
        TOKENDESK_ADMINS=ADMIN,
        TOKENDESK_LOG_LEVEL="INFO",
        PORT=str(free_port()),
    )


async def seed_due(settings: Settings, name: str, contact: str) -> Token:
    """A token whose 7-day reminder is due now, its date chosen a month ago."""
    month_ago = datetime.now(UTC) - 30 * DAY
    options: dict[str, Any] = store_options(settings) | {"clock": month_ago.timestamp}
    store = await Store.open(**options)
    try:
        issued = await store.tokens.create(
            actor=ADMIN,
            name=name,
            access_rights=["reports:read"],
            primary_contact=contact,
            expires_on=(datetime.now(UTC) + 6 * DAY).date(),
        )
    finally:
        await store.close()
    return issued.token


@pytest.fixture
async def app_process(
    tmp_path: Path,
) -> AsyncIterator[Callable[[dict[str, str]], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


async def test_killed_between_the_mark_and_the_post_a_reminder_is_never_sent_twice(
    settings: Settings,
    standin: SlackStandIn,
    app_process: Callable[[dict[str, str]], subprocess.Popen[str]],
) -> None:
    first = await seed_due(settings, "Killed midway", ADMIN)
    standin.delay_next("chat.postMessage", 3)
    app = app_process(app_environment(settings))
    await eventually(lambda: standin.held["chat.postMessage"] == 1, timeout=20)
    app.send_signal(signal.SIGKILL)
    app.wait(timeout=10)
    # Marked, and committed, before the post was sent.
    with sqlite3.connect(settings.tokendesk_db) as connection:
        marks = connection.execute("SELECT token_id, days FROM reminder_marks").fetchall()
    assert marks == [(first.id, 7)]

    # Restarted, with another token due (to see its pass done): that one is sent, the
    # first is not sent again.
    second = await seed_due(settings, "After the restart", BOB)
    restarted = app_process(app_environment(settings))
    await eventually(lambda: reminder_posts(standin, BOB), timeout=20)
    await asyncio.sleep(0.5)
    restarted.send_signal(signal.SIGTERM)
    _, stderr = restarted.communicate(timeout=15)
    assert restarted.returncode == 0, stderr
    assert "Traceback" not in stderr

    (to_bob,) = reminder_posts(standin, BOB)
    assert f"reminder.{second.id}" in json.dumps(to_bob.args)
    # The killed instance's post: Slack may have taken it after all, but only that once.
    assert len(reminder_posts(standin, ADMIN)) <= 1
