"""App Home's actions end to end: every card action, Create and the API-access banner,
clicked on a published Home as Slack sends them (a view container, the view with its
`hash`, a trigger, no response_url), answered on Home alone: published again in place
with the notice (or, from a modal opened there, published after the submission), with
the same confirmations, secret view, DMs, row versions and request keys as from the list.
A stale click, a token gone meanwhile and a publish that came second (hash_conflict) end
with Home as it is now; a change made from the list republishes its maker's Home.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bot.settings import Settings
from slack_standin.client import SlackClient, action_for
from slack_standin.server import SlackStandIn
from storage.models import TokenEdit
from storage.store import Store
from tests.bot.blockwalk import (
    SECRET_SHAPE,
    all_text,
    card,
    card_names,
    cards,
    create_action,
    edit_action,
    menu_action,
    notice_of,
    secret_of,
)
from tests.bot.conftest import ADMIN, ALICE, SIGNING_SECRET, Seed
from tests.bot.driver import SlackUser, dms, settle
from tests.bot.home_support import (
    answered_on_home,
    click_home,
    current,
    home_of,
    open_app_store,
    opened_from_home,
    opens_home,
    publishes,
    summary_of,
)
from tests.conftest import OpenStore
from tests.store_support import days_ahead

# -- the app's store ---------------------------------------------------------------------------


@pytest.fixture
def legacy() -> tuple[str, ...]:
    """Tokens made on an older catalog, without the newest API version; parametrize it."""
    return ()


@pytest.fixture
async def store(open_store: OpenStore, settings: Settings, legacy: tuple[str, ...]) -> Store:
    """The app's store with API access on, and the `legacy` tokens made before."""
    return await open_app_store(open_store, settings, legacy=legacy)


@pytest.fixture(autouse=True)
def events_over_http(standin: SlackStandIn, app_url: str) -> None:
    """Slack sends events to `/slack/events` while no Socket Mode connection is open."""
    standin.deliver_over_http(f"{app_url}/slack/events", SIGNING_SECRET)


# -- Create from Home ------------------------------------------------------------------------


async def test_create_from_home_shows_the_secret_and_publishes_home_with_the_notice(
    admin: SlackUser, store: Store, standin: SlackStandIn
) -> None:
    home = await opens_home(standin, ADMIN)
    _, form = await opened_from_home(admin, home, create_action(home["blocks"]), "token_create")
    since, responses = len(standin.calls), len(standin.responses)
    ack = await admin.submit(form, {"name": "From home", "access_rights": ["reports:read"]})
    assert ack["response_action"] == "update"
    secret = secret_of(ack["view"])
    await settle()

    (published,) = publishes(standin, ADMIN, since)
    assert published.ok
    after = home_of(standin, ADMIN)
    assert ":key: *From home* was created." in notice_of(after["blocks"])
    assert card_names(after["blocks"]) == ["From home"]  # never used yet
    assert secret not in json.dumps(after)
    assert len(standin.responses) == responses
    (token,) = (await store.token_reads.page()).tokens
    assert token.name == "From home"


# -- every card action from Home -------------------------------------------------------------


async def test_edit_from_home_publishes_home_with_the_notice(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Edited on home")
    home = await opens_home(standin, ADMIN)
    _, form = await opened_from_home(
        admin, home, edit_action(home["blocks"], issued.token.id), "token_edit"
    )
    since, responses = len(standin.calls), len(standin.responses)
    ack = await admin.submit(form, {"description": "Changed from Home"})
    assert ack == {"response_action": "clear"}
    await settle()

    assert [call.ok for call in publishes(standin, ADMIN, since)] == [True]
    after = home_of(standin, ADMIN)
    assert ":pencil2: *Edited on home* saved." in notice_of(after["blocks"])
    assert len(standin.responses) == responses  # no response_url: Home has none
    saved = await current(store, issued)
    assert saved.description == "Changed from Home"
    # The card shown carries the row version the edit made.
    assert (
        card(after["blocks"], saved.id).option("reset") == f"reset:{saved.id}:{saved.row_version}"
    )


async def test_disable_from_home_updates_it_in_place_and_tells_the_contact(
    seed: Seed, store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    issued = await seed("Switched off on home", contact=ALICE)
    home = await opens_home(standin, ADMIN)
    assert summary_of(home)["disabled"] == 0
    after = await answered_on_home(
        standin, slack, ADMIN, home, menu_action(home["blocks"], issued.token.id, "disable")
    )
    assert ":no_entry: *Switched off on home* disabled." in notice_of(after["blocks"])
    # A disabled token needs no attention: its card leaves Home, the count follows.
    assert summary_of(after)["disabled"] == 1 and cards(after["blocks"]) == []
    assert not (await current(store, issued)).enabled
    (told,) = dms(standin, ALICE)
    assert issued.token.sid in all_text(told)

    # Again from the Home shown before (a double click): nothing more happens, and that
    # Home, published over since, is published again as it is now.
    await click_home(slack, ADMIN, home, menu_action(home["blocks"], issued.token.id, "disable"))
    await settle()
    again = home_of(standin, ADMIN)
    assert "was already disabled" in notice_of(again["blocks"])
    assert len(dms(standin, ALICE)) == 1


async def test_reset_from_home_confirms_shows_the_secret_and_sends_the_dms(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Reset on home", contact=ALICE)
    home = await opens_home(standin, ADMIN)
    _, view = await opened_from_home(
        admin, home, menu_action(home["blocks"], issued.token.id, "reset"), "token_confirm"
    )
    since = len(standin.calls)
    ack = await admin.submit(view, {"grace_choice": "stop"})
    secret = secret_of(ack["view"])
    await settle()

    assert [call.ok for call in publishes(standin, ADMIN, since)] == [True]
    after = home_of(standin, ADMIN)
    assert ":key: *Reset on home* has a new secret." in notice_of(after["blocks"])
    assert secret not in json.dumps(after) and issued.secret not in json.dumps(after)
    for person in (ALICE, ADMIN):
        (message,) = dms(standin, person)
        assert issued.token.sid in all_text(message)
        assert not SECRET_SHAPE.search(json.dumps(message))
    assert (await current(store, issued)).row_version == issued.token.row_version + 1


async def test_duplicate_from_home_applies_once_for_the_same_submission(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Copied on home")
    home = await opens_home(standin, ADMIN)
    _, view = await opened_from_home(
        admin, home, menu_action(home["blocks"], issued.token.id, "duplicate"), "token_confirm"
    )
    first = await admin.submit(view, {})
    secret_of(first["view"])
    await settle()
    after = home_of(standin, ADMIN)
    assert "was created as a copy." in notice_of(after["blocks"])

    # The same submission again (Slack's retry, a double click): applied once.
    second = await admin.submit(view, {})
    assert "already done" in all_text(second["view"])
    assert not SECRET_SHAPE.search(json.dumps(second))
    assert (await store.token_reads.page()).total == 2


@pytest.mark.parametrize("legacy", [("Old version on home",)])
async def test_upgrade_from_home_publishes_home_with_the_notice(
    admin: SlackUser, store: Store, standin: SlackStandIn, settings: Settings
) -> None:
    (token,) = (await store.token_reads.page()).tokens
    home = await opens_home(standin, ADMIN)
    _, view = await opened_from_home(
        admin, home, menu_action(home["blocks"], token.id, "upgrade"), "token_confirm"
    )
    since = len(standin.calls)
    assert await admin.submit(view, {}) == {"response_action": "clear"}
    await settle()
    assert [call.ok for call in publishes(standin, ADMIN, since)] == [True]
    newest = settings.tokendesk_api_versions[-1]
    after = home_of(standin, ADMIN)
    assert f"*Old version on home* now uses `{newest}`" in notice_of(after["blocks"])
    assert (await current(store, token)).api_version == newest


async def test_delete_from_home_publishes_home_and_tells_the_contact(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Deleted on home", contact=ALICE)
    home = await opens_home(standin, ADMIN)
    _, view = await opened_from_home(
        admin, home, menu_action(home["blocks"], issued.token.id, "delete"), "token_confirm"
    )
    assert await admin.submit(view, {}) == {"response_action": "clear"}
    await settle()
    after = home_of(standin, ADMIN)
    assert ":wastebasket: *Deleted on home* deleted." in notice_of(after["blocks"])
    assert cards(after["blocks"]) == [] and summary_of(after)["enabled"] == 0
    (told,) = dms(standin, ALICE)
    assert issued.token.sid in all_text(told)


async def test_end_grace_now_from_home(
    seed: Seed, store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    issued = await seed("Window on home")
    token = issued.token
    await store.tokens.reset(
        actor=ADMIN,
        token_id=token.id,
        row_version=token.row_version,
        expires_on=days_ahead(90),
        grace=timedelta(days=1),
    )
    home = await opens_home(standin, ADMIN)
    assert summary_of(home)["in a grace window"] == 1
    end = action_for(home["blocks"], "token_end_grace", block_id=f"edit.{token.id}")
    after = await answered_on_home(standin, slack, ADMIN, home, end)
    assert "the previous secret stopped working" in notice_of(after["blocks"])
    assert "in a grace window" not in summary_of(after)
    assert (await current(store, token)).previous_until is None
    assert store.credentials.check(issued.secret).token is None


async def test_a_stale_click_on_home_says_so_and_applies_nothing(
    seed: Seed, store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    issued = await seed("Changed meanwhile on home")
    await opens_home(standin, ADMIN)
    for choice in ("reset", "delete"):
        home = home_of(standin, ADMIN)
        token = await current(store, issued)
        edited = await store.tokens.edit(
            actor=ALICE,
            token_id=token.id,
            row_version=token.row_version,
            edit=TokenEdit(description=f"by Alice before the {choice}"),
        )
        after = await answered_on_home(
            standin, slack, ADMIN, home, menu_action(home["blocks"], token.id, choice)
        )
        notice = notice_of(after["blocks"])
        assert f"was changed by <@{ALICE}>" in notice and "nothing was applied" in notice
        # Nothing applied, and the card shown now is the token as Alice left it.
        now = edited.after.row_version
        assert (await current(store, token)).row_version == now
        assert card(after["blocks"], token.id).option(choice) == f"{choice}:{token.id}:{now}"
    assert standin.calls_to("views.open") == []


async def test_a_click_on_a_token_deleted_meanwhile_is_told_on_home(
    seed: Seed, store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    issued = await seed("Deleted meanwhile")
    home = await opens_home(standin, ADMIN)
    token = issued.token
    await store.tokens.delete(actor=ALICE, token_id=token.id, row_version=token.row_version)
    since = len(standin.calls)
    await click_home(slack, ADMIN, home, menu_action(home["blocks"], token.id, "disable"))
    await settle()
    # The click fails after its ack; with no response_url to answer through, Home must
    # tell it (published again as it is now).
    published = publishes(standin, ADMIN, since)
    assert [call.ok for call in published] == [True], "the failure was told nowhere"
    after = home_of(standin, ADMIN)
    assert notice_of(after["blocks"]) == "That token no longer exists."
    assert cards(after["blocks"]) == [] and summary_of(after)["enabled"] == 0


async def test_api_access_turned_on_from_the_banner_on_home(
    seed: Seed, store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    await seed("Waiting for access")
    await store.account.set_api_access(actor=ADMIN, enabled=False)
    home = await opens_home(standin, ADMIN)
    assert "API access is off" in all_text(home)
    turn_on = action_for(home["blocks"], "api_access_enable", block_id="banner")
    after = await answered_on_home(standin, slack, ADMIN, home, turn_on)
    assert "*API access is on.*" in notice_of(after["blocks"])
    assert "API access is off" not in all_text(after)
    assert store.account.api_access


# -- a publish that comes second ------------------------------------------------------------


async def test_a_hash_conflict_renders_home_again_and_publishes_it(
    seed: Seed, store: Store, standin: SlackStandIn, slack: SlackClient
) -> None:
    issued = await seed("Conflicted on home")
    home = await opens_home(standin, ADMIN)
    # Another publish came meanwhile: the view clicked no longer bears the hash shown.
    standin.set_home_hash(ADMIN)
    since = len(standin.calls)
    await click_home(slack, ADMIN, home, menu_action(home["blocks"], issued.token.id, "disable"))
    await settle()
    conflicted, published = publishes(standin, ADMIN, since)
    assert conflicted.args.get("hash") == home["hash"]
    assert conflicted.answer == {"ok": False, "error": "hash_conflict"}
    assert published.ok and not published.args.get("hash")
    after = home_of(standin, ADMIN)
    assert "disabled" in notice_of(after["blocks"])
    assert summary_of(after)["disabled"] == 1 and cards(after["blocks"]) == []


# -- changes made elsewhere --------------------------------------------------------------------


async def test_a_change_from_the_list_republishes_the_actors_home(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Disabled from the list")
    home = await opens_home(standin, ADMIN)
    assert card_names(home["blocks"]) == ["Disabled from the list"]
    await admin.command()
    since = len(standin.calls)
    await admin.click(menu_action(admin.blocks, issued.token.id, "disable"))
    await settle()
    assert [call.ok for call in publishes(standin, ADMIN, since)] == [True]
    after = home_of(standin, ADMIN)
    assert summary_of(after)["disabled"] == 1 and cards(after["blocks"]) == []
