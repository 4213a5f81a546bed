"""Expiry end to end, as a Slack user meets it: the `Works until` choice in Create, Edit and
the Reset and Duplicate confirmations, with every choice and every field error; the cards;
and the State and Last used filters, as a partition and combined with the others.

The store's clock is a wall clock the tests set back (to make tokens in the past) and
forward (to let them expire); lifetimes are capped at the default 365 days unless a test
says otherwise.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from bot.ids import ActionId
from bot.settings import Settings
from slack_standin.client import fill
from storage.models import IssuedToken, Token
from storage.store import Store
from tests.bot.blockwalk import (
    Body,
    block_in,
    card,
    card_names,
    chosen,
    create_action,
    edit_action,
    menu_action,
    notice_of,
    search_box,
    secret_of,
)
from tests.bot.conftest import ADMIN, Seed
from tests.bot.doubles import WallClock
from tests.bot.driver import SlackUser
from tests.conftest import OpenStore
from tests.store_support import days_ahead, verify

ON_A_DATE, NEVER = "on_a_date", "never"
PRESETS = {"7 days": 7, "30 days": 30, "60 days": 60, "90 days": 90, "1 year": 365}


@pytest.fixture
def lifetimes() -> tuple[int, int]:
    """TOKENDESK_MAX_LIFETIME_DAYS and TOKENDESK_DEFAULT_LIFETIME_DAYS (parametrize it)."""
    return 365, 90


@pytest.fixture
def settings(settings: Settings, lifetimes: tuple[int, int]) -> Settings:
    maximum, default = lifetimes
    return settings.model_copy(
        update={
            "tokendesk_max_lifetime_days": maximum,
            "tokendesk_default_lifetime_days": default,
        }
    )


@pytest.fixture
def store_clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def store(legacy: None, store: Store) -> Store:
    """The app's store with API access on, so that secrets can be verified; the tokens from
    before expiry (if any) are made first."""
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    return store


def today(clock: WallClock) -> date:
    return days_ahead(0, clock=clock)


def long_date(day: date) -> str:
    """How Token Desk names a date in its messages: `5 Mar 2027`."""
    return f"{day.day} {day:%b %Y}"


def expiry_options(view: Body) -> dict[str, str]:
    """The Works until options: label → value."""
    element = block_in(view, "expiry")["element"]
    return {o["text"]["text"]: o["value"] for o in element["options"]}


def initial_choice(view: Body) -> str | None:
    option = block_in(view, "expiry")["element"].get("initial_option")
    return None if option is None else str(option["value"])


def preset(view: Body, label: str) -> str:
    """The value of the preset whose label starts with `label` ("30 days", "1 year")."""
    found = [value for text, value in expiry_options(view).items() if text.startswith(label)]
    assert len(found) == 1, (label, expiry_options(view))
    return found[0]


def errors_of(ack: Body) -> dict[str, str]:
    assert ack.get("response_action") == "errors", ack
    return dict(ack["errors"])


async def current(store: Store, token: Token | IssuedToken) -> Token:
    token = token.token if isinstance(token, IssuedToken) else token
    return await store.token_reads.get(token_id=token.id)


async def open_create(admin: SlackUser) -> Body:
    await admin.command()
    return (await admin.open(create_action(admin.blocks), "token_create"))[1]


async def create_with(admin: SlackUser, store: Store, values: dict[str, Any]) -> Token:
    """Creates `Expiring hook` with the expiry `values` chosen; the token created."""
    form = await open_create(admin)
    ack = await admin.submit(
        form, {"name": "Expiring hook", "access_rights": ["reports:read"]} | values
    )
    secret_of(ack["view"])
    return (await store.token_reads.page()).tokens[0]


# -- create -------------------------------------------------------------------------------


async def test_create_starts_on_the_default_and_offers_the_presets_with_their_dates(
    admin: SlackUser, store: Store, store_clock: WallClock
) -> None:
    form = await open_create(admin)
    first = today(store_clock)
    expected = {
        f"{label} ({long_date(first + timedelta(days=days))})": str(first + timedelta(days=days))
        for label, days in PRESETS.items()
    } | {"On a date…": ON_A_DATE}
    assert expiry_options(form) == expected
    assert initial_choice(form) == str(first + timedelta(days=90))
    picker = block_in(form, "expiry_date")
    assert picker["element"]["type"] == "datepicker" and picker["optional"] is True
    assert "UTC date" in picker["hint"]["text"]

    token = await create_with(admin, store, {})
    assert token.expires_on == first + timedelta(days=90)


@pytest.mark.parametrize("label", PRESETS)
async def test_create_with_each_preset(
    admin: SlackUser, store: Store, store_clock: WallClock, label: str
) -> None:
    form = await open_create(admin)
    ack = await admin.submit(
        form,
        {
            "name": "Preset hook",
            "access_rights": ["reports:read"],
            "expiry_choice": preset(form, label),
        },
    )
    secret = secret_of(ack["view"])
    until = today(store_clock) + timedelta(days=PRESETS[label])
    token = (await store.token_reads.page()).tokens[0]
    assert token.expires_on == until
    authorized = verify(store, secret)
    assert authorized is not None and authorized.expires_at == token.stops_at


@pytest.mark.parametrize("days", [0, 1, 200, 365])
async def test_create_on_a_date(
    admin: SlackUser, store: Store, store_clock: WallClock, days: int
) -> None:
    """Any date from today (it works through today) to the maximum."""
    day = today(store_clock) + timedelta(days=days)
    token = await create_with(
        admin, store, {"expiry_choice": ON_A_DATE, "expiry_date": day.isoformat()}
    )
    assert token.expires_on == day


async def test_create_field_errors(admin: SlackUser, store: Store, store_clock: WallClock) -> None:
    form = await open_create(admin)
    good = {"name": "Refused hook", "access_rights": ["reports:read"]}
    first = today(store_clock)

    async def errors(values: dict[str, Any]) -> dict[str, str]:
        return errors_of(await admin.submit(form, good | values))

    said = await errors({"expiry_choice": ON_A_DATE})
    assert set(said) == {"expiry_date"} and "Pick a date" in said["expiry_date"]
    yesterday = (first - timedelta(days=1)).isoformat()
    said = await errors({"expiry_choice": ON_A_DATE, "expiry_date": yesterday})
    assert said == {"expiry_date": "must not be in the past"}
    too_late = (first + timedelta(days=366)).isoformat()
    said = await errors({"expiry_choice": ON_A_DATE, "expiry_date": too_late})
    assert set(said) == {"expiry_date"}
    assert long_date(first + timedelta(days=365)) in said["expiry_date"]
    assert "reset the token to go further" in said["expiry_date"]
    # Errors in other fields come together with the expiry's.
    said = await errors({"name": " ", "expiry_choice": ON_A_DATE, "expiry_date": yesterday})
    assert set(said) == {"name", "expiry_date"}

    # What Slack would never send: Never while a maximum is set, a date as a preset beyond
    # the maximum, nothing chosen at all.
    crafted = fill(form, good)
    crafted["expiry"]["expiry_choice"]["selected_option"]["value"] = NEVER
    said = errors_of((await admin.send_submission(form, state=crafted)).body)
    assert set(said) == {"expiry"} and "tokens must expire" in said["expiry"]
    crafted["expiry"]["expiry_choice"]["selected_option"]["value"] = too_late
    said = errors_of((await admin.send_submission(form, state=crafted)).body)
    assert set(said) == {"expiry"} and long_date(first + timedelta(days=365)) in said["expiry"]
    del crafted["expiry"]
    said = errors_of((await admin.send_submission(form, state=crafted)).body)
    assert set(said) == {"expiry"}
    assert store.token_reads.count == 0


@pytest.mark.parametrize("lifetimes", [(0, 0), (0, 45)])
async def test_without_a_maximum_never_is_offered(
    admin: SlackUser, store: Store, store_clock: WallClock, lifetimes: tuple[int, int]
) -> None:
    """`TOKENDESK_MAX_LIFETIME_DAYS=0`: Never is offered, and is the first choice when the
    default is 0 too; a default that is no preset gets its own option."""
    form = await open_create(admin)
    options = expiry_options(form)
    assert options["Never"] == NEVER
    if lifetimes[1]:
        default = today(store_clock) + timedelta(days=45)
        assert options[f"45 days ({long_date(default)})"] == initial_choice(form)
    else:
        assert initial_choice(form) == NEVER
    far = today(store_clock) + timedelta(days=5000)
    token = await create_with(
        admin, store, {"expiry_choice": ON_A_DATE, "expiry_date": far.isoformat()}
    )
    assert token.expires_on == far
    await admin.command()
    form = (await admin.open(create_action(admin.blocks), "token_create"))[1]
    ack = await admin.submit(
        form, {"name": "Forever hook", "access_rights": ["reports:read"], "expiry_choice": NEVER}
    )
    secret = secret_of(ack["view"])
    authorized = verify(store, secret)
    assert authorized is not None and authorized.expires_at is None


# -- edit ---------------------------------------------------------------------------------


async def seed_at(
    seed: Seed, clock: WallClock, name: str, *, days_ago: int, lifetime_days: int | None
) -> IssuedToken:
    """A token created `days_ago` days ago, working `lifetime_days` from then."""
    clock.days_ago(days_ago)
    try:
        return await seed(name, lifetime_days=lifetime_days)
    finally:
        clock.days_ago(0)


async def open_edit(admin: SlackUser, token: IssuedToken) -> tuple[Any, Body]:
    await admin.command()
    return await admin.open(edit_action(admin.blocks, token.token.id), "token_edit")


async def test_edit_starts_on_the_expiry_and_caps_it_from_the_secrets_issue_day(
    admin: SlackUser, seed: Seed, store: Store, store_clock: WallClock
) -> None:
    """Issued 300 days ago with a 365-day maximum: it may be extended by 65 days from
    today, no further; after a Reset, by a year."""
    issued = await seed_at(seed, store_clock, "Old hook", days_ago=300, lifetime_days=310)
    first = today(store_clock)
    latest = first + timedelta(days=65)
    click, form = await open_edit(admin, issued)
    assert initial_choice(form) == ON_A_DATE
    assert block_in(form, "expiry_date")["element"]["initial_date"] == str(
        first + timedelta(days=10)
    )
    assert [label.split(" (")[0] for label in expiry_options(form)] == [
        "7 days",
        "30 days",
        "60 days",
        "On a date…",
    ]
    assert long_date(latest) in block_in(form, "expiry")["hint"]["text"]

    beyond = {"expiry_choice": ON_A_DATE, "expiry_date": str(latest + timedelta(days=1))}
    said = errors_of(await admin.submit(form, beyond))
    assert set(said) == {"expiry_date"}
    assert long_date(latest) in said["expiry_date"]
    assert "365 days after this secret was issued" in said["expiry_date"]
    past = {"expiry_choice": ON_A_DATE, "expiry_date": str(first - timedelta(days=1))}
    assert errors_of(await admin.submit(form, past)) == {"expiry_date": "must not be in the past"}

    ack = await admin.submit(form, {"expiry_choice": ON_A_DATE, "expiry_date": str(latest)})
    assert ack == {"response_action": "clear"}
    listed = await admin.listed(click)
    assert "Old hook* saved" in notice_of(listed)
    assert (await current(store, issued)).expires_on == latest

    token = await current(store, issued)
    await store.tokens.reset(
        actor=ADMIN, token_id=token.id, row_version=token.row_version, expires_on=latest
    )
    _, form = await open_edit(admin, issued)
    year = preset(form, "1 year")
    assert year == str(first + timedelta(days=365))
    assert await admin.submit(form, {"expiry_choice": year}) == {"response_action": "clear"}
    assert (await current(store, issued)).expires_on == first + timedelta(days=365)


async def test_an_expired_token_stays_editable_and_a_new_date_brings_it_back(
    admin: SlackUser, seed: Seed, store: Store, store_clock: WallClock
) -> None:
    issued = await seed_at(seed, store_clock, "Lapsed hook", days_ago=20, lifetime_days=10)
    assert verify(store, issued.secret) is None
    blocks = await admin.command()
    assert "*State* Expired" in card(blocks, "Lapsed hook").text
    assert "*Stopped*" in card(blocks, "Lapsed hook").text

    # Left as it is, its past date is no error: other fields still save.
    _, form = await open_edit(admin, issued)
    assert await admin.submit(form, {"name": "Lapsed hook 2"}) == {"response_action": "clear"}
    token = await current(store, issued)
    assert token.name == "Lapsed hook 2" and token.expires_on == issued.token.expires_on
    assert verify(store, issued.secret) is None

    _, form = await open_edit(admin, issued)
    soon = today(store_clock) + timedelta(days=3)
    ack = await admin.submit(form, {"expiry_choice": ON_A_DATE, "expiry_date": str(soon)})
    assert ack == {"response_action": "clear"}
    assert (await current(store, issued)).expires_on == soon
    assert verify(store, issued.secret) is not None
    blocks = await admin.command()
    text = card(blocks, "Lapsed hook 2").text
    assert "*State* Enabled" in text and ":hourglass_flowing_sand: *Works until <!date^" in text


async def test_edit_leaves_the_expiry_as_it_is_unless_changed(
    admin: SlackUser, seed: Seed, store: Store
) -> None:
    issued = await seed("Steady hook")
    _, form = await open_edit(admin, issued)
    assert await admin.submit(form, {"description": "New"}) == {"response_action": "clear"}
    events = await store.audit.events(limit=1)
    assert "expires_on" not in events[0].after
    assert (await current(store, issued)).expires_on == issued.token.expires_on

    _, form = await open_edit(admin, issued)
    ack = await admin.submit(form, {"expiry_choice": ON_A_DATE, "expiry_date": ""})
    assert set(errors_of(ack)) == {"expiry_date"}


@pytest.fixture
def tokens_from_before_expiry() -> tuple[str, ...]:
    """Names of tokens made without expiry before a maximum was set (parametrize it)."""
    return ()


@pytest.fixture
async def legacy(open_store: OpenStore, tokens_from_before_expiry: tuple[str, ...]) -> None:
    """Makes `tokens_from_before_expiry` in the app's database before the app opens it."""
    if tokens_from_before_expiry:
        before = await open_store(max_lifetime_days=0)
        for name in tokens_from_before_expiry:
            await before.tokens.create(
                actor=ADMIN,
                name=name,
                access_rights=["reports:read"],
                primary_contact=ADMIN,
                expires_on=None,
            )
        await before.close()


@pytest.mark.parametrize("tokens_from_before_expiry", [("Ancient hook",)])
async def test_a_token_without_expiry_is_flagged_and_keeps_none_until_given_one(
    admin: SlackUser, store: Store, store_clock: WallClock
) -> None:
    blocks = await admin.command()
    found = card(blocks, "Ancient hook")
    assert ":warning: *No expiry*" in found.text and "*State* Enabled" in found.text
    click, form = await admin.open(edit_action(blocks, found.token_id), "token_edit")
    assert initial_choice(form) is None and block_in(form, "expiry")["optional"] is True
    assert "Never" not in expiry_options(form)

    assert await admin.submit(form, {"name": "Ancient hook, renamed"}) == {
        "response_action": "clear"
    }
    token = await store.token_reads.get(token_id=found.token_id)
    assert token.name == "Ancient hook, renamed" and token.expires_on is None

    _, form = await admin.open(edit_action(admin.blocks, found.token_id), "token_edit")
    assert await admin.submit(form, {"expiry_choice": preset(form, "30 days")}) == {
        "response_action": "clear"
    }
    token = await store.token_reads.get(token_id=found.token_id)
    assert token.expires_on == today(store_clock) + timedelta(days=30)


# -- reset and duplicate ------------------------------------------------------------------


async def open_confirmation(admin: SlackUser, token: IssuedToken, choice: str) -> Body:
    await admin.command()
    action = menu_action(admin.blocks, token.token.id, choice)
    return (await admin.open(action, "token_confirm"))[1]


async def test_reset_asks_until_when_the_new_secret_works_counted_from_today(
    admin: SlackUser, seed: Seed, store: Store, store_clock: WallClock
) -> None:
    """A Reset lets a token go past the maximum of its previous secret."""
    issued = await seed_at(seed, store_clock, "Rotated hook", days_ago=300, lifetime_days=310)
    first = today(store_clock)
    form = await open_confirmation(admin, issued, "reset")
    assert initial_choice(form) == str(first + timedelta(days=90))
    assert preset(form, "1 year") == str(first + timedelta(days=365))

    past = {"expiry_choice": ON_A_DATE, "expiry_date": str(first - timedelta(days=3))}
    assert errors_of(await admin.submit(form, past)) == {"expiry_date": "must not be in the past"}
    missing = {"expiry_choice": ON_A_DATE}
    assert set(errors_of(await admin.submit(form, missing))) == {"expiry_date"}
    beyond = {"expiry_choice": ON_A_DATE, "expiry_date": str(first + timedelta(days=366))}
    said = errors_of(await admin.submit(form, beyond))
    assert long_date(first + timedelta(days=365)) in said["expiry_date"]
    assert verify(store, issued.secret) is not None  # nothing applied

    ack = await admin.submit(form, {"expiry_choice": preset(form, "1 year")})
    secret = secret_of(ack["view"])
    token = await current(store, issued)
    assert token.expires_on == first + timedelta(days=365)
    assert verify(store, issued.secret) is None
    authorized = verify(store, secret)
    assert authorized is not None and authorized.expires_at == token.stops_at


async def test_duplicate_asks_until_when_the_copy_works(
    admin: SlackUser, seed: Seed, store: Store, store_clock: WallClock
) -> None:
    issued = await seed("Copied hook", lifetime_days=20)
    first = today(store_clock)
    form = await open_confirmation(admin, issued, "duplicate")
    assert initial_choice(form) == str(first + timedelta(days=90))
    beyond = {"expiry_choice": ON_A_DATE, "expiry_date": str(first + timedelta(days=400))}
    said = errors_of(await admin.submit(form, beyond))
    assert (
        set(said) == {"expiry_date"}
        and long_date(first + timedelta(days=365)) in said["expiry_date"]
    )
    assert store.token_reads.count == 1

    ack = await admin.submit(form, {"expiry_choice": ON_A_DATE, "expiry_date": str(first)})
    secret = secret_of(ack["view"])
    copy = verify(store, secret)
    assert copy is not None and copy.name == "Copied hook (copy)"
    assert (await store.token_reads.get(token_id=copy.id)).expires_on == first
    assert (await current(store, issued)).expires_on == first + timedelta(days=20)


async def test_a_confirmation_without_any_expiry_chosen_applies_nothing(
    admin: SlackUser, seed: Seed, store: Store
) -> None:
    issued = await seed("Guarded hook")
    form = await open_confirmation(admin, issued, "reset")
    crafted = fill(form, {})
    del crafted["expiry"]
    reply = await admin.send_submission(form, state=crafted)
    assert set(errors_of(reply.body)) == {"expiry"}
    assert verify(store, issued.secret) is not None


# -- cards and filters --------------------------------------------------------------------


async def used_at(store: Store, clock: WallClock, issued: IssuedToken, *, days_ago: int) -> None:
    """A gateway checked the token's secret `days_ago` days ago."""
    clock.days_ago(days_ago)
    try:
        assert verify(store, issued.secret) is not None
    finally:
        clock.days_ago(0)


@pytest.fixture
async def kinds(seed: Seed, store: Store, store_clock: WallClock) -> dict[str, IssuedToken]:
    """One token of each kind, created and last used at different times:

    | name         | created  | works until   | state    | last used    |
    | Fresh hook   | now      | in 90 days    | enabled  | never        |
    | Soon hook    | now      | in 3 days     | enabled  | now          |
    | Lapsed hook  | 50 d ago | 10 d ago      | expired  | 40 days ago  |
    | Off hook     | 120 d ago| in 80 days    | disabled | 100 days ago |
    | Off lapsed   | 60 d ago | 30 d ago      | disabled | never        |
    """
    made = {
        "Off hook": await seed_at(seed, store_clock, "Off hook", days_ago=120, lifetime_days=200),
        "Off lapsed": await seed_at(seed, store_clock, "Off lapsed", days_ago=60, lifetime_days=30),
        "Lapsed hook": await seed_at(
            seed, store_clock, "Lapsed hook", days_ago=50, lifetime_days=40
        ),
        "Fresh hook": await seed("Fresh hook"),
        "Soon hook": await seed("Soon hook", lifetime_days=3),
    }
    await used_at(store, store_clock, made["Lapsed hook"], days_ago=40)
    await used_at(store, store_clock, made["Off hook"], days_ago=100)
    await used_at(store, store_clock, made["Soon hook"], days_ago=0)
    for name in ("Off hook", "Off lapsed"):
        await store.tokens.set_enabled(actor=ADMIN, token_id=made[name].token.id, enabled=False)
    return made


ALL_KINDS = {"Fresh hook", "Soon hook", "Lapsed hook", "Off hook", "Off lapsed"}


async def shown(admin: SlackUser, action_id: str, value: str) -> set[str]:
    """The names listed once the user chose `value` in the filter `action_id`."""
    blocks = await admin.click(action_id, value)
    if action_id == ActionId.FILTER_NAME:
        assert search_box(blocks).get("initial_value") == (value or None)
    else:
        assert chosen(blocks, action_id) == (None if value == "any" else value)
    return set(card_names(blocks))


async def test_cards_show_each_state_and_when_each_token_stops(
    kinds: dict[str, IssuedToken], admin: SlackUser
) -> None:
    blocks = await admin.command()
    states = {
        name: card(blocks, name).text.split("*State* ")[1].split(" ")[0] for name in ALL_KINDS
    }
    assert states == {
        "Fresh hook": "Enabled",
        "Soon hook": "Enabled",
        "Lapsed hook": "Expired",
        "Off hook": "Disabled",
        "Off lapsed": "Disabled",
    }
    for name, issued in kinds.items():
        stops = issued.token.stops_at
        assert stops is not None
        assert f"<!date^{int(stops.timestamp())}^" in card(blocks, name).text
    assert ":hourglass_flowing_sand: *Works until" in card(blocks, "Soon hook").text
    assert "*Works until* <!date^" in card(blocks, "Fresh hook").text
    assert "*Stopped* <!date^" in card(blocks, "Lapsed hook").text


async def test_the_state_filter_partitions_the_tokens(
    kinds: dict[str, IssuedToken], admin: SlackUser
) -> None:
    await admin.command()
    enabled = await shown(admin, ActionId.FILTER_STATE, "enabled")
    expired = await shown(admin, ActionId.FILTER_STATE, "expired")
    disabled = await shown(admin, ActionId.FILTER_STATE, "disabled")
    soon = await shown(admin, ActionId.FILTER_STATE, "expiring_soon")
    assert enabled == {"Fresh hook", "Soon hook"}
    assert expired == {"Lapsed hook"}
    assert disabled == {"Off hook", "Off lapsed"}
    assert enabled | expired | disabled == ALL_KINDS
    assert not (enabled & expired or enabled & disabled or expired & disabled)
    assert soon == {"Soon hook"} and soon <= enabled
    assert await shown(admin, ActionId.FILTER_STATE, "any") == ALL_KINDS


async def test_the_last_used_filter(kinds: dict[str, IssuedToken], admin: SlackUser) -> None:
    """ "Not in N days" includes the tokens never used."""
    await admin.command()
    assert await shown(admin, ActionId.FILTER_LAST_USED, "never") == {"Fresh hook", "Off lapsed"}
    assert await shown(admin, ActionId.FILTER_LAST_USED, "not_30_days") == ALL_KINDS - {"Soon hook"}
    assert await shown(admin, ActionId.FILTER_LAST_USED, "not_90_days") == {
        "Fresh hook",
        "Off hook",
        "Off lapsed",
    }
    assert await shown(admin, ActionId.FILTER_LAST_USED, "any") == ALL_KINDS


async def test_the_new_filters_combine_with_the_others(
    kinds: dict[str, IssuedToken], admin: SlackUser
) -> None:
    await admin.command()
    assert await shown(admin, ActionId.FILTER_STATE, "disabled") == {"Off hook", "Off lapsed"}
    assert await shown(admin, ActionId.FILTER_LAST_USED, "never") == {"Off lapsed"}
    assert await shown(admin, ActionId.FILTER_STATE, "enabled") == {"Fresh hook"}
    assert await shown(admin, ActionId.FILTER_CREATED, "more_than_30_days") == set()
    assert await shown(admin, ActionId.FILTER_STATE, "any") == {"Off lapsed"}
    assert await shown(admin, ActionId.FILTER_LAST_USED, "not_30_days") == {
        "Lapsed hook",
        "Off hook",
        "Off lapsed",
    }
    assert await shown(admin, ActionId.FILTER_NAME, "OFF") == {"Off hook", "Off lapsed"}
    assert await shown(admin, ActionId.FILTER_STATE, "expired") == set()
    blocks = await admin.click(ActionId.FILTER_CREATED, "last_7_days")
    assert "No tokens match" in str(blocks)
    assert chosen(blocks, ActionId.FILTER_STATE) == "expired"
    assert chosen(blocks, ActionId.FILTER_LAST_USED) == "not_30_days"
    assert await shown(admin, ActionId.FILTER_NAME, "") == set()
    assert await shown(admin, ActionId.FILTER_STATE, "expiring_soon") == set()
    assert await shown(admin, ActionId.FILTER_LAST_USED, "any") == {"Soon hook"}

    blocks = await admin.click(ActionId.CLEAR_FILTERS)
    assert set(card_names(blocks)) == ALL_KINDS
    assert chosen(blocks, ActionId.FILTER_STATE) is None
    assert chosen(blocks, ActionId.FILTER_LAST_USED) is None


async def test_a_token_expires_under_the_users_eyes(
    seed: Seed, store: Store, store_clock: WallClock, admin: SlackUser
) -> None:
    """Moving the wall clock past the stop instant: the card, the filter and the auth
    check agree, a second before and a second after."""
    issued = await seed("Tonight hook", lifetime_days=0)
    stops = issued.token.stops_at
    assert stops is not None
    store_clock.advance(stops.timestamp() - 1 - store_clock())
    await admin.command()
    assert await shown(admin, ActionId.FILTER_STATE, "expiring_soon") == {"Tonight hook"}
    assert verify(store, issued.secret) is not None
    store_clock.advance(2)
    assert await shown(admin, ActionId.FILTER_STATE, "expiring_soon") == set()
    assert await shown(admin, ActionId.FILTER_STATE, "expired") == {"Tonight hook"}
    assert "*State* Expired" in card(admin.blocks, "Tonight hook").text
    assert verify(store, issued.secret) is None
