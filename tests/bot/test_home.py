"""App Home end to end: the stand-in sends `app_home_opened` (signed over HTTP, or in a
Socket Mode envelope) and the app publishes each user's Home with `views.publish`.

A manager sees the summary, the tokens that need attention most (the list's cards) and
Create, within Slack's limits whatever the names; anyone else sees what Token Desk is and
who the Account Administrators are, and no token data, and gets that Home when their role
goes. No Home ever holds a secret. The store's clock is a wall clock the tests set back to
build tokens in the past; the app's store is a real SQLite file. Actions from Home:
tests/bot/test_home_actions.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.background import drain
from bot.settings import Settings
from slack_standin.client import SlackClient
from slack_standin.server import SlackStandIn
from storage.credential_index import RETIRED
from storage.models import IssuedToken, Role
from storage.store import Store
from tests.bot.blockwalk import (
    SECRET_SHAPE,
    all_text,
    card,
    card_names,
    cards,
    create_action,
    interactive,
    menu_action,
    notice_of,
    secret_of,
)
from tests.bot.conftest import ADMIN, ALICE, BOB, SIGNING_SECRET, STRANGER, Seed
from tests.bot.doubles import WallClock
from tests.bot.driver import SlackUser, dms, settle
from tests.bot.home_support import (
    ATTENTION_SHOWN,
    answered_on_home,
    attention_of,
    click_home,
    create,
    current,
    home_of,
    no_token_data,
    open_app_store,
    opened_from_home,
    opens_home,
    summary_of,
    use,
)
from tests.conftest import OpenStore
from tests.store_support import days_ahead

# -- the app, its store, and how Slack reaches it ------------------------------------------


@pytest.fixture
def transport() -> str:
    """How Slack reaches the app: "http" (signed requests) or "socket" (parametrize it)."""
    return "http"


@pytest.fixture
def max_lifetime_days() -> int:
    """TOKENDESK_MAX_LIFETIME_DAYS (0: no maximum); parametrize it."""
    return 365


@pytest.fixture
def settings(settings: Settings, transport: str, max_lifetime_days: int) -> Settings:
    update: dict[str, object] = {"tokendesk_max_lifetime_days": max_lifetime_days}
    if transport == "socket":
        update["slack_app_token"] = SecretStr("xapp-test")
    return settings.model_copy(update=update)


@pytest.fixture
def store_clock() -> WallClock:
    return WallClock()


@pytest.fixture
def without_expiry() -> dict[str, float]:
    """Tokens without expiry, made (so many days ago) before a maximum lifetime was set;
    parametrize it."""
    return {}


@pytest.fixture
def earlier_secrets() -> dict[str, str]:
    """The secrets of `without_expiry`, by name, once the store is open."""
    return {}


@pytest.fixture
async def store(
    open_store: OpenStore,
    settings: Settings,
    store_clock: WallClock,
    without_expiry: dict[str, float],
    earlier_secrets: dict[str, str],
) -> Store:
    """The app's store with API access on, and the tokens `without_expiry` made before."""
    return await open_app_store(
        open_store,
        settings,
        clock=store_clock,
        without_expiry=without_expiry,
        earlier_secrets=earlier_secrets,
    )


@pytest.fixture(autouse=True)
def events_over_http(standin: SlackStandIn, app_url: str) -> None:
    """Slack sends events to `/slack/events` while no Socket Mode connection is open."""
    standin.deliver_over_http(f"{app_url}/slack/events", SIGNING_SECRET)


@pytest.fixture
async def socket_mode(
    transport: str, settings: Settings, standin: SlackStandIn, bolt: AsyncApp
) -> AsyncIterator[None]:
    """With transport "socket", the app holds a Socket Mode connection: events go there."""
    if transport != "socket":
        yield
        return
    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]
    await standin.socket_connected()
    try:
        yield
    finally:
        await drain()
        await handler.close_async()  # type: ignore[no-untyped-call]


# -- app_home_opened ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_opening_the_home_tab_publishes_it_and_the_messages_tab_does_not(
    standin: SlackStandIn, seed: Seed, transport: str, socket_mode: None
) -> None:
    await seed("Nightly export")
    messages = await standin.user_opens_home(ADMIN, tab="messages")
    assert messages.acked and messages.mode == transport
    await settle()
    assert standin.calls_to("views.publish") == []
    assert standin.home_of(ADMIN) is None

    home = await opens_home(standin, ADMIN)
    assert home["callback_id"] == "home"
    assert summary_of(home)["enabled"] == 1
    # Opened again (the event then carries the view shown): published again, as it is now.
    await seed("Second export")
    again = await opens_home(standin, ADMIN)
    assert summary_of(again)["enabled"] == 2


# -- a manager's Home ------------------------------------------------------------------------

KNOWN_WITHOUT_EXPIRY = {"Forever": 50.0, "Forever later": 40.0}


async def seed_known(store: Store, clock: WallClock, earlier: dict[str, str]) -> None:
    """Thirteen tokens, built in time order up to now (`earlier`: the two without expiry,
    made 50 and 40 days ago): Busy (used now), Dormant (last used 45 days ago), Off
    (disabled, never used), Gone (expired 29 days ago), Echo (reset 10 days ago, its old
    secret presented 3 times since, used now), Sooner and Soon (stopping in about 1 and 3
    days, used now), Fresh (created 2 days ago, never used), Leaky (leaked 2 days ago, used
    now), Leaky off (leaked a day ago and disabled by it), Grace (a window of 3 days from a
    day ago, used now), Forever and Forever later (without expiry, used now: the latter's
    use not written yet)."""
    made: dict[str, IssuedToken] = {}

    async def at(days_ago: float, *names: str, lifetime_days: int = 120) -> None:
        clock.days_ago(days_ago)
        for name in names:
            made[name] = await create(store, name, lifetime_days=lifetime_days)

    await at(60, "Busy", "Dormant", "Off", "Echo")
    await at(60, "Gone", lifetime_days=30)
    clock.days_ago(45)
    use(store, made["Dormant"].secret)
    await store.credentials.flush_last_used()
    await at(10, "Sooner", lifetime_days=11)
    await at(10, "Soon", lifetime_days=13)
    echo = made["Echo"].token
    renewed = await store.tokens.reset(
        actor=ADMIN,
        token_id=echo.id,
        row_version=echo.row_version,
        expires_on=days_ahead(90, clock=clock),
    )
    for _ in range(3):
        verdict = store.credentials.check(made["Echo"].secret)
        assert verdict.reason == RETIRED
        store.credentials.record_retired(verdict, lambda: ("10.0.0.9", "cron/2"))
    await store.credentials.flush_last_used()
    made["Echo"] = renewed
    clock.days_ago(5)
    await store.tokens.set_enabled(actor=ADMIN, token_id=made["Off"].token.id, enabled=False)
    await at(2, "Fresh", "Leaky")
    await at(1, "Leaky off", "Grace")
    for name, disable, days_ago in (("Leaky", False, 2), ("Leaky off", True, 1)):
        clock.days_ago(days_ago)
        reports = await store.leaks.report(
            candidates=[made[name].secret],
            channel="C0LEAKS01",
            message_ts=f"{clock():.6f}",
            poster=BOB,
            disable=disable,
        )
        assert len(reports) == 1
    clock.days_ago(1)
    grace = made["Grace"].token
    made["Grace"] = await store.tokens.reset(
        actor=ADMIN,
        token_id=grace.id,
        row_version=grace.row_version,
        expires_on=days_ahead(90, clock=clock),
        grace=timedelta(days=3),
    )
    clock.skew = 0
    for name in ("Busy", "Echo", "Sooner", "Soon", "Leaky", "Grace"):
        use(store, made[name].secret)
    use(store, earlier["Forever"])
    await store.credentials.flush_last_used()
    use(store, earlier["Forever later"])


@pytest.mark.parametrize("without_expiry", [KNOWN_WITHOUT_EXPIRY])
async def test_a_managers_home_counts_every_kind_and_lists_the_most_urgent_first(
    admin: SlackUser,
    store: Store,
    store_clock: WallClock,
    standin: SlackStandIn,
    earlier_secrets: dict[str, str],
) -> None:
    await seed_known(store, store_clock, earlier_secrets)
    home = await opens_home(standin, ADMIN)

    assert summary_of(home) == {
        "enabled": 10,
        "disabled": 2,
        "leaked": 2,
        "expired": 1,
        "expiring within 7 days": 2,
        "in a grace window": 1,
        "unused for 30 days or never used": 5,
        "without expiry": 2,
    }
    shown = attention_of(home)
    assert [name for _, name in shown] == [
        "Leaky off",
        "Leaky",
        "Gone",
        "Sooner",
        "Soon",
        "Echo",
        "Dormant",
        "Fresh",
        "Forever",
        "Forever later",
    ]
    reasons = [reason for reason, _ in shown]
    for index, expected in enumerate(
        ["Leaked"] * 2
        + ["Expired"]
        + ["Expiring within 7 days"] * 2
        + ["Old secret still presented"]
        + ["Unused for 30 days or never used"] * 2
        + ["No expiry"] * 2
    ):
        assert f"*{expected}*" in reasons[index], (index, reasons[index])
    assert [e["text"]["text"] for e in interactive(home) if e["action_id"] == "token_create"] == [
        "Create Access Token"
    ]

    # Each card as the list shows it: the same fields, menu and Edit.
    await admin.command()
    for name in ("Leaky off", "Gone", "Sooner", "Forever"):
        on_home, listed = card(home["blocks"], name), card(admin.blocks, name)
        assert on_home.details == listed.details and on_home.edit == listed.edit
    assert "enable" not in [v.split(":")[0] for v in card(home["blocks"], "Leaky off").options]


async def test_a_home_with_nothing_to_look_at_says_all_is_well(
    seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    empty = await opens_home(standin, ADMIN)
    assert summary_of(empty) == {"enabled": 0, "disabled": 0}
    assert "Nothing needs attention" in all_text(empty) and cards(empty["blocks"]) == []

    issued = await seed("Busy hook")
    use(store, issued.secret)
    home = await opens_home(standin, ADMIN)
    assert summary_of(home) == {"enabled": 1, "disabled": 0}
    assert "Nothing needs attention" in all_text(home) and cards(home["blocks"]) == []
    assert [e["action_id"] for e in interactive(home)] == ["token_create"]


async def test_at_most_ten_cards_within_slacks_limits_whatever_the_names(
    store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    """Thirty tokens need attention, each named with 100 characters of mrkdwn trouble:
    Slack (the stand-in) takes every Home, with ten cards, a notice included."""
    tokens = [
        (await create(store, f"{number:02} <!channel> & *bold* `code` " + "ñ" * 70)).token
        for number in range(30)
    ]
    assert all(len(token.name) == 100 for token in tokens)
    home = await opens_home(standin, ADMIN)
    assert len(cards(home["blocks"])) == ATTENTION_SHOWN
    assert summary_of(home)["unused for 30 days or never used"] == 30

    first = cards(home["blocks"])[0].token_id
    after = await answered_on_home(
        standin, slack, ADMIN, home, menu_action(home["blocks"], first, "disable")
    )
    assert "disabled" in notice_of(after["blocks"])
    assert len(cards(after["blocks"])) == ATTENTION_SHOWN
    assert first not in [found.token_id for found in cards(after["blocks"])]
    assert all(call.ok for call in standin.calls_to("views.publish"))


@pytest.mark.parametrize(("max_lifetime_days", "without_expiry"), [(0, {"Forever": 50.0})])
async def test_without_expiry_is_neither_counted_nor_flagged_while_no_maximum_is_set(
    store: Store, standin: SlackStandIn, earlier_secrets: dict[str, str]
) -> None:
    assert store.max_lifetime_days == 0
    use(store, earlier_secrets["Forever"])
    home = await opens_home(standin, ADMIN)
    assert summary_of(home) == {"enabled": 1, "disabled": 0}
    assert "Nothing needs attention" in all_text(home) and cards(home["blocks"]) == []


# -- someone without a role ---------------------------------------------------------------------


async def test_home_without_a_role_shows_no_token_data_and_names_the_admins(
    seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    await store.roles.grant_user(actor=ADMIN, user_id=BOB, role=Role.ADMIN)
    tokens = [(await seed(name)).token for name in ("Secret project", "Payroll feed")]
    home = await opens_home(standin, STRANGER)
    no_token_data(home, tokens)
    text = all_text(home)
    assert f"<@{ADMIN}>" in text and f"<@{BOB}>" in text
    assert "Account Administrators" in text


async def test_a_click_on_a_managers_home_by_someone_without_a_role_is_refused(
    seed: Seed, store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    """The admin's Home, crafted into a click by someone without a role: nothing is done,
    and their own Home (without token data) is published."""
    issued = await seed("Guarded on home", contact=ALICE)
    managers = await opens_home(standin, ADMIN)
    since = len(standin.calls)
    for action in (
        menu_action(managers["blocks"], issued.token.id, "disable"),
        menu_action(managers["blocks"], issued.token.id, "reset"),
        create_action(managers["blocks"]),
    ):
        await click_home(slack, STRANGER, managers, action)
    await settle()
    assert (await current(store, issued)) == issued.token
    assert [call.method for call in standin.calls[since:]] == ["views.publish"] * 3
    assert all(call.args["user_id"] == STRANGER for call in standin.calls[since:])
    no_token_data(home_of(standin, STRANGER), [issued.token])
    assert standin.home_of(ADMIN) is not None and dms(standin) == []


async def test_granting_and_revoking_a_role_republishes_that_users_home(
    admin: SlackUser, seed: Seed, standin: SlackStandIn
) -> None:
    issued = await seed("Seen by Alice")
    no_token_data(await opens_home(standin, ALICE), [issued.token])

    await admin.send_command(f"roles grant <@{ALICE}|alice> specialist")
    await settle()
    granted = home_of(standin, ALICE)
    assert card_names(granted["blocks"]) == ["Seen by Alice"]

    await admin.send_command(f"roles revoke <@{ALICE}|alice>")
    await settle()
    no_token_data(home_of(standin, ALICE), [issued.token])


async def test_a_manager_made_a_guest_gets_the_home_without_token_data(
    seed: Seed, store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    issued = await seed("Seen before the change")
    await store.roles.grant_user(actor=ADMIN, user_id=ALICE, role=Role.SPECIALIST)
    assert card_names((await opens_home(standin, ALICE))["blocks"]) == [issued.token.name]

    standin.users[ALICE]["is_restricted"] = True
    reply = await slack.event({"type": "user_change", "user": dict(standin.users[ALICE])})
    assert reply.status == 200
    await settle()
    no_token_data(home_of(standin, ALICE), [issued.token])


# -- no secret anywhere on Home -----------------------------------------------------------------


async def test_no_secret_in_any_home_view(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    """Every Home published through a create, a Reset, a Duplicate and a Disable from Home
    holds no secret, old or new."""
    issued = await seed("Secret keeper")
    secrets = [issued.secret]
    home = await opens_home(standin, ADMIN)
    _, form = await opened_from_home(admin, home, create_action(home["blocks"]), "token_create")
    ack = await admin.submit(form, {"name": "Another keeper", "access_rights": ["reports:read"]})
    secrets.append(secret_of(ack["view"]))
    await settle()
    for choice in ("reset", "duplicate"):
        home = home_of(standin, ADMIN)
        action = menu_action(home["blocks"], issued.token.id, choice)
        _, view = await opened_from_home(admin, home, action, "token_confirm")
        secrets.append(secret_of((await admin.submit(view, {}))["view"]))
        await settle()
        issued = IssuedToken(token=await current(store, issued), secret=secrets[-1])
    home = home_of(standin, ADMIN)
    await answered_on_home(
        standin, slack, ADMIN, home, menu_action(home["blocks"], issued.token.id, "disable")
    )
    published = [call.args for call in standin.calls_to("views.publish")]
    assert len(published) >= 5
    for args in published:
        text = json.dumps(args)
        assert not SECRET_SHAPE.search(text)
        assert all(secret not in text for secret in secrets)
