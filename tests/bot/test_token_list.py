"""The token list end to end: `/tokens`, then clicks on what the app rendered, as Slack sends
them (signed requests, ephemeral containers, `state.values`), answered through response_urls
on the Slack stand-in, on a real SQLite store with a movable clock."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from bot.ids import ActionId
from slack_standin.blockkit import check_message
from slack_standin.server import SlackStandIn
from storage.credentials import ALPHABET, generate_secret
from storage.models import IssuedToken, Role
from storage.store import Store
from tests.bot.blockwalk import (
    Body,
    block,
    card,
    card_names,
    chosen,
    mrkdwn_texts,
    notice_of,
    pager,
    pager_button,
    plain_texts,
    range_of,
    refused,
    search_box,
    stateful_ids,
)
from tests.bot.conftest import ADMIN, SPECIALIST, STRANGER, Seed
from tests.bot.doubles import WallClock
from tests.bot.driver import SlackUser, settle
from tests.store_support import days_ahead, verify

MENU = ["Duplicate", "Reset", "Upgrade Version", "Disable", "Delete"]


@pytest.fixture
def store_clock() -> WallClock:
    """Tokens are created in the past by moving the store's clock back."""
    return WallClock()


async def seed_names(
    seed: Seed, *names: str, rights: tuple[str, ...] = ("reports:read",)
) -> dict[str, IssuedToken]:
    return {name: await seed(name, rights=rights) for name in names}


async def disable(store: Store, *tokens: IssuedToken) -> None:
    for issued in tokens:
        await store.tokens.set_enabled(actor=ADMIN, token_id=issued.token.id, enabled=False)


def assert_refusal(body: Body) -> None:
    assert body.get("response_type") == "ephemeral"
    assert refused(body["text"]), body["text"]
    assert "blocks" not in body or not any(
        str(b.get("block_id", "")).startswith(("card.", "filters.")) for b in body["blocks"]
    )


# -- the list ---------------------------------------------------------------------------


async def test_the_list_has_header_banner_create_filters_cards_and_range(
    seed: Seed, admin: SlackUser
) -> None:
    await seed_names(seed, "First Hook", "Second Hook")
    blocks = await admin.command()
    assert admin.message["text"] == "API Access Tokens: 1–2 of 2"
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == "API Access Tokens"

    banner = blocks[1]
    assert banner["block_id"] == "banner"
    assert "API access is off" in banner["text"]["text"]
    assert banner["accessory"]["text"]["text"] == "Enable API Access"
    assert block(blocks, "notice") is None

    create = blocks[2]
    assert create["type"] == "actions"
    assert [e["text"]["text"] for e in create["elements"]] == ["Create Access Token"]
    assert create["elements"][0]["action_id"] == ActionId.CREATE

    search_block = blocks[3]
    assert search_block["type"] == "input"
    assert search_block["block_id"].startswith("search.")
    assert search_block["label"]["text"] == "Search by Name"
    assert search_block["dispatch_action"] is True
    box = search_box(blocks)
    assert box["type"] == "plain_text_input"
    assert box["action_id"] == ActionId.FILTER_NAME
    assert box["dispatch_action_config"]["trigger_actions_on"] == ["on_enter_pressed"]
    assert "initial_value" not in box

    filters = blocks[4]
    assert filters["block_id"].startswith("filters.")
    created, state, last_used, clear = filters["elements"]
    assert created["type"] == state["type"] == last_used["type"] == "static_select"
    assert created["placeholder"]["text"] == "Created On"
    assert [o["text"]["text"] for o in created["options"]] == [
        "Any date",
        "Last 7 days",
        "Last 30 days",
        "More than 30 days",
    ]
    assert state["placeholder"]["text"] == "State"
    assert [o["text"]["text"] for o in state["options"]] == [
        "Any state",
        "Enabled",
        "Expired",
        "Disabled",
        "Expiring soon",
    ]
    assert last_used["placeholder"]["text"] == "Last used"
    assert [o["text"]["text"] for o in last_used["options"]] == [
        "Any last use",
        "Never used",
        "Not in 30 days",
        "Not in 90 days",
    ]
    assert all("initial_option" not in select for select in (created, state, last_used))
    assert clear["type"] == "button" and clear["text"]["text"] == "Clear All"

    assert card_names(blocks) == ["Second Hook", "First Hook"]  # newest first
    assert blocks[5]["text"]["text"] == "Second Hook"
    assert range_of(blocks) == "1–2 of 2"
    assert pager(blocks) == []


@pytest.mark.parametrize("legacy_tokens", [("Legacy Feed",)])
async def test_a_card_shows_every_field_and_its_menu(
    seed: Seed, store: Store, admin: SlackUser
) -> None:
    many = ("contacts:read", "reports:read", "actions:write", "webhooks:manage", "reports:write")
    issued = await seed_names(seed, "Reporting Bot", rights=many)
    issued |= await seed_names(seed, "Paused Hook")
    await disable(store, issued["Paused Hook"])
    blocks = await admin.command()
    assert card_names(blocks) == ["Paused Hook", "Reporting Bot", "Legacy Feed"]

    token = await store.token_reads.get(token_id=issued["Reporting Bot"].token.id)
    header, details, edit = card(blocks, "Reporting Bot")
    assert header["type"] == "header"
    assert header["text"] == {"type": "plain_text", "text": "Reporting Bot", "emoji": False}
    text = details["text"]["text"]
    assert details["text"]["type"] == "mrkdwn" and details["text"]["verbatim"] is True
    assert f"*SID* `{token.sid}`" in text
    assert "*State* Enabled" in text
    assert "*API version* `v3`" in text and "upgrade" not in text
    assert "*Access rights* `reports:read`, `reports:write`, `actions:write` +2 more" in text
    created = int(token.created_at.timestamp())
    assert f"*Created* <!date^{created}^{{date_short_pretty}}|" in text
    assert f"by <@{ADMIN}>" in text
    assert "*Last used* never" in text
    secret = issued["Reporting Bot"].secret
    assert f"*Secret* ends in `{secret[-4:]}`" in text

    menu = details["accessory"]
    assert menu["type"] == "overflow"
    assert [o["text"]["text"] for o in menu["options"]] == MENU
    assert [o["value"].split(":")[0] for o in menu["options"]] == [
        "duplicate",
        "reset",
        "upgrade",
        "disable",
        "delete",
    ]
    assert all(o["value"].endswith(f":{token.id}:{token.row_version}") for o in menu["options"])
    assert [(e["type"], e["text"]["text"]) for e in edit["elements"]] == [("button", "Edit")]
    assert edit["elements"][0]["value"] == f"{token.id}:{token.row_version}"

    _, paused, _ = card(blocks, "Paused Hook")
    assert "*State* Disabled" in paused["text"]["text"]
    assert [o["text"]["text"] for o in paused["accessory"]["options"]] == [
        "Duplicate",
        "Reset",
        "Upgrade Version",
        "Enable",
        "Delete",
    ]

    _, legacy, _ = card(blocks, "Legacy Feed")
    assert "*API version* `v2` (upgrade to `v3` available)" in legacy["text"]["text"]

    for name, one in issued.items():
        assert one.secret not in json.dumps(admin.message), name


async def test_last_used_shows_a_date_once_used(seed: Seed, store: Store, admin: SlackUser) -> None:
    issued = await seed_names(seed, "Busy Hook", "Idle Hook")
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    assert verify(store, issued["Busy Hook"].secret) is not None
    blocks = await admin.command()
    assert block(blocks, "banner") is None
    assert "*Last used* <!date^" in card(blocks, "Busy Hook")[1]["text"]["text"]
    assert "*Last used* never" in card(blocks, "Idle Hook")[1]["text"]["text"]


# -- paging -----------------------------------------------------------------------------


def numbered(prefix: str, numbers: range) -> list[str]:
    return [f"{prefix} {n:02d}" for n in numbers]


async def test_ten_cards_a_page_forward_and_back(seed: Seed, admin: SlackUser) -> None:
    await seed_names(seed, *numbered("Token", range(1, 26)))
    blocks = await admin.command()
    first = card_names(blocks)
    assert first == numbered("Token", range(25, 15, -1))
    assert range_of(blocks) == "1–10 of 25"
    assert pager(blocks) == ["Next"]

    blocks = await admin.turn("Next")
    second = card_names(blocks)
    assert second == numbered("Token", range(15, 5, -1))
    assert range_of(blocks) == "11–20 of 25"
    assert pager(blocks) == ["Previous", "Next"]
    assert admin.message["text"] == "API Access Tokens: 11–20 of 25"

    blocks = await admin.turn("Next")
    third = card_names(blocks)
    assert third == numbered("Token", range(5, 0, -1))
    assert range_of(blocks) == "21–25 of 25"
    assert pager(blocks) == ["Previous"]
    assert sorted(first + second + third) == numbered("Token", range(1, 26))

    blocks = await admin.turn("Previous")
    assert card_names(blocks) == second
    blocks = await admin.turn("Previous")
    assert card_names(blocks) == first
    assert pager(blocks) == ["Next"]


async def test_paging_keeps_the_filter(seed: Seed, admin: SlackUser) -> None:
    for n in range(1, 16):
        await seed_names(seed, f"Batch {n:02d}")
        if n <= 10:
            await seed_names(seed, f"Other {n:02d}")
    await admin.command()
    assert range_of(admin.blocks) == "1–10 of 25"

    blocks = await admin.click(ActionId.FILTER_NAME, "BATCH")
    assert range_of(blocks) == "1–10 of 15"
    assert card_names(blocks) == numbered("Batch", range(15, 5, -1))
    assert search_box(blocks)["initial_value"] == "BATCH"

    blocks = await admin.turn("Next")
    assert range_of(blocks) == "11–15 of 15"
    assert card_names(blocks) == numbered("Batch", range(5, 0, -1))
    assert search_box(blocks)["initial_value"] == "BATCH"
    assert pager(blocks) == ["Previous"]

    blocks = await admin.turn("Previous")
    assert range_of(blocks) == "1–10 of 15"
    assert search_box(blocks)["initial_value"] == "BATCH"

    # A select chosen on page 2 starts the filtered list again from its first page.
    await admin.turn("Next")
    blocks = await admin.click(ActionId.FILTER_STATE, "enabled")
    assert range_of(blocks) == "1–10 of 15"
    assert chosen(blocks, ActionId.FILTER_STATE) == "enabled"
    assert search_box(blocks)["initial_value"] == "BATCH"


async def test_the_page_survives_clicks_that_are_not_filters(seed: Seed, admin: SlackUser) -> None:
    await seed_names(seed, *numbered("Token", range(1, 26)))
    await admin.command()
    second = card_names(await admin.turn("Next"))

    blocks = await admin.click(ActionId.ENABLE_API_ACCESS)
    assert block(blocks, "notice") is not None
    assert range_of(blocks) == "11–20 of 25"
    assert card_names(blocks) == second
    assert pager(blocks) == ["Previous", "Next"]


async def test_a_page_that_emptied_shows_the_last_page(
    seed: Seed, store: Store, admin: SlackUser
) -> None:
    issued = await seed_names(seed, *numbered("Token", range(1, 26)))
    await admin.command()
    await admin.turn("Next")
    blocks = await admin.turn("Next")
    assert range_of(blocks) == "21–25 of 25"
    for name in numbered("Token", range(1, 11)):
        token = issued[name].token
        await store.tokens.delete(actor=ADMIN, token_id=token.id, row_version=token.row_version)
    blocks = await admin.click(ActionId.ENABLE_API_ACCESS)
    assert range_of(blocks) == "11–15 of 15"
    assert card_names(blocks) == numbered("Token", range(15, 10, -1))
    assert pager(blocks) == ["Previous"]


# -- filters ----------------------------------------------------------------------------


async def test_search_by_name_is_part_of_a_name_case_insensitive(
    seed: Seed, admin: SlackUser
) -> None:
    await seed_names(seed, "Reporting Bot", "CRM Sync", "Nightly REPORTS export")
    await admin.command()
    blocks = await admin.click(ActionId.FILTER_NAME, "report")
    assert card_names(blocks) == ["Nightly REPORTS export", "Reporting Bot"]
    assert search_box(blocks)["initial_value"] == "report"
    blocks = await admin.click(ActionId.FILTER_NAME, "sYnC")
    assert card_names(blocks) == ["CRM Sync"]
    assert search_box(blocks)["initial_value"] == "sYnC"
    blocks = await admin.click(ActionId.FILTER_NAME, "")
    assert len(card_names(blocks)) == 3
    assert "initial_value" not in search_box(blocks)


async def seed_dated(seed: Seed, store_clock: WallClock) -> dict[str, IssuedToken]:
    store_clock.days_ago(40)
    issued = await seed_names(seed, "Ancient Hook")
    store_clock.days_ago(10)
    issued |= await seed_names(seed, "Recent Hook")
    store_clock.days_ago(1)
    issued |= await seed_names(seed, "Fresh Hook")
    store_clock.days_ago(0)
    return issued


async def test_created_on_each_bucket(seed: Seed, store_clock: WallClock, admin: SlackUser) -> None:
    await seed_dated(seed, store_clock)
    await admin.command()
    everything = ["Fresh Hook", "Recent Hook", "Ancient Hook"]
    assert card_names(admin.blocks) == everything
    for bucket, expected in (
        ("last_7_days", ["Fresh Hook"]),
        ("last_30_days", ["Fresh Hook", "Recent Hook"]),
        ("more_than_30_days", ["Ancient Hook"]),
    ):
        blocks = await admin.click(ActionId.FILTER_CREATED, bucket)
        assert card_names(blocks) == expected, bucket
        assert chosen(blocks, ActionId.FILTER_CREATED) == bucket
        assert chosen(blocks, ActionId.FILTER_STATE) is None
    blocks = await admin.click(ActionId.FILTER_CREATED, "any")
    assert card_names(blocks) == everything
    assert chosen(blocks, ActionId.FILTER_CREATED) is None


async def test_state_each_value(seed: Seed, store: Store, admin: SlackUser) -> None:
    issued = await seed_names(seed, "On Hook", "Off Hook", "Also On")
    await disable(store, issued["Off Hook"])
    await admin.command()
    blocks = await admin.click(ActionId.FILTER_STATE, "disabled")
    assert card_names(blocks) == ["Off Hook"]
    assert chosen(blocks, ActionId.FILTER_STATE) == "disabled"
    blocks = await admin.click(ActionId.FILTER_STATE, "enabled")
    assert card_names(blocks) == ["Also On", "On Hook"]
    assert chosen(blocks, ActionId.FILTER_STATE) == "enabled"
    blocks = await admin.click(ActionId.FILTER_STATE, "any")
    assert card_names(blocks) == ["Also On", "Off Hook", "On Hook"]
    assert chosen(blocks, ActionId.FILTER_STATE) is None


async def test_filters_combine_keep_their_values_and_any_clears_one(
    seed: Seed, store: Store, store_clock: WallClock, admin: SlackUser
) -> None:
    store_clock.days_ago(45)
    old = await seed_names(seed, "Ops Old", "Ops Old Off")
    store_clock.days_ago(2)
    fresh = await seed_names(seed, "Ops Fresh", "Ops Fresh Off", "Billing Fresh Off")
    store_clock.days_ago(0)
    await disable(store, old["Ops Old Off"], fresh["Ops Fresh Off"], fresh["Billing Fresh Off"])
    await admin.command()

    blocks = await admin.click(ActionId.FILTER_NAME, "ops")
    assert card_names(blocks) == ["Ops Fresh Off", "Ops Fresh", "Ops Old Off", "Ops Old"]
    blocks = await admin.click(ActionId.FILTER_CREATED, "last_7_days")
    assert card_names(blocks) == ["Ops Fresh Off", "Ops Fresh"]
    blocks = await admin.click(ActionId.FILTER_STATE, "disabled")
    assert card_names(blocks) == ["Ops Fresh Off"]
    assert search_box(blocks)["initial_value"] == "ops"
    assert chosen(blocks, ActionId.FILTER_CREATED) == "last_7_days"
    assert chosen(blocks, ActionId.FILTER_STATE) == "disabled"

    blocks = await admin.click(ActionId.FILTER_CREATED, "any")
    assert card_names(blocks) == ["Ops Fresh Off", "Ops Old Off"]
    assert chosen(blocks, ActionId.FILTER_CREATED) is None
    assert chosen(blocks, ActionId.FILTER_STATE) == "disabled"
    assert search_box(blocks)["initial_value"] == "ops"

    blocks = await admin.click(ActionId.FILTER_NAME, "")
    assert card_names(blocks) == ["Billing Fresh Off", "Ops Fresh Off", "Ops Old Off"]
    assert chosen(blocks, ActionId.FILTER_STATE) == "disabled"

    blocks = await admin.click(ActionId.FILTER_CREATED, "more_than_30_days")
    assert card_names(blocks) == ["Ops Old Off"]
    blocks = await admin.click(ActionId.FILTER_STATE, "any")
    assert card_names(blocks) == ["Ops Old Off", "Ops Old"]
    assert chosen(blocks, ActionId.FILTER_CREATED) == "more_than_30_days"
    assert chosen(blocks, ActionId.FILTER_STATE) is None


async def test_clear_all_clears_every_filter_and_the_search_box(
    seed: Seed, store_clock: WallClock, admin: SlackUser
) -> None:
    await seed_dated(seed, store_clock)
    await admin.command()
    await admin.click(ActionId.FILTER_NAME, "hook")
    await admin.click(ActionId.FILTER_CREATED, "last_30_days")
    await admin.click(ActionId.FILTER_STATE, "enabled")
    blocks = await admin.click(ActionId.FILTER_LAST_USED, "never")
    assert card_names(blocks) == ["Fresh Hook", "Recent Hook"]
    assert chosen(blocks, ActionId.FILTER_LAST_USED) == "never"
    before = stateful_ids(blocks)

    blocks = await admin.click(ActionId.CLEAR_FILTERS)
    assert card_names(blocks) == ["Fresh Hook", "Recent Hook", "Ancient Hook"]
    assert "initial_value" not in search_box(blocks)
    assert chosen(blocks, ActionId.FILTER_CREATED) is None
    assert chosen(blocks, ActionId.FILTER_STATE) is None
    assert chosen(blocks, ActionId.FILTER_LAST_USED) is None
    assert stateful_ids(blocks).isdisjoint(before)
    assert len(stateful_ids(blocks)) == 2


async def test_every_render_has_fresh_stateful_block_ids(seed: Seed, admin: SlackUser) -> None:
    await seed_names(seed, "Some Hook")
    first = stateful_ids(await admin.command())
    second = stateful_ids(await admin.click(ActionId.FILTER_NAME, "some"))
    assert first.isdisjoint(second)


# -- /tokens search ---------------------------------------------------------------------


async def test_search_sub_command_opens_the_list_filtered(seed: Seed, admin: SlackUser) -> None:
    await seed_names(seed, "R&D ops", "Research Feed", "Billing")
    blocks = await admin.command("search rese")
    assert card_names(blocks) == ["Research Feed"]
    assert search_box(blocks)["initial_value"] == "rese"

    blocks = await admin.command("search R&amp;D")
    assert card_names(blocks) == ["R&D ops"]
    assert search_box(blocks)["initial_value"] == "R&D"

    # The filter from the command is kept by the next click.
    blocks = await admin.click(ActionId.FILTER_STATE, "enabled")
    assert card_names(blocks) == ["R&D ops"]
    assert search_box(blocks)["initial_value"] == "R&D"


def assert_not_echoed(body: Body, secret: str) -> None:
    dumped = json.dumps(body, ensure_ascii=False)
    assert secret not in dumped
    assert secret[4:] not in dumped
    assert secret[4:36] not in dumped


async def test_search_by_a_real_secret_finds_its_token_without_echoing_it(
    seed: Seed, admin: SlackUser
) -> None:
    issued = await seed_names(seed, "Leaky Hook", "Leaky Hook Backup", "Other Hook")
    secret = issued["Leaky Hook"].secret
    blocks = await admin.command(f"search {secret}")
    assert "Leaky Hook" in card_names(blocks)
    assert "Other Hook" not in card_names(blocks)
    assert search_box(blocks)["initial_value"] == "Leaky Hook"
    notice = notice_of(blocks)
    assert "*Leaky Hook*" in notice
    assert "reset" in notice.lower()
    assert search_box(blocks).get("initial_value") != secret
    assert_not_echoed(admin.message, secret)

    # The same secret typed into the search box and submitted with Enter.
    await admin.command()
    blocks = await admin.click(ActionId.FILTER_NAME, f"  {secret} ")
    assert "Leaky Hook" in card_names(blocks)
    assert "Other Hook" not in card_names(blocks)
    assert search_box(blocks)["initial_value"] == "Leaky Hook"
    assert "*Leaky Hook*" in notice_of(blocks)
    assert_not_echoed(admin.message, secret)


async def test_a_secret_after_other_words_is_not_echoed_even_in_part(
    seed: Seed, admin: SlackUser
) -> None:
    """A long search is cut to the search box's 100 characters: the cut must not turn a
    pasted secret into a name search that shows its first characters back."""
    issued = await seed_names(seed, "Leaky Hook", "Other Hook")
    secret = issued["Leaky Hook"].secret
    words = "the integration for the billing team failed overnight, here is the token it used:"
    assert len(words) + len(secret) > 100
    blocks = await admin.command(f"search {words} {secret}")
    assert_not_echoed(admin.message, secret)
    shown = str(search_box(blocks).get("initial_value", ""))
    assert "tdk_" not in shown, "the search box shows the start of the pasted secret"
    assert secret[:12] not in json.dumps(admin.message)


def bad_checksum(secret: str) -> str:
    last = secret[-1]
    return secret[:-1] + ALPHABET[(ALPHABET.index(last) + 1) % len(ALPHABET)]


@pytest.mark.parametrize("kind", ["unknown", "bad checksum", "reset away"])
async def test_an_unknown_secret_is_not_echoed(
    seed: Seed, store: Store, admin: SlackUser, kind: str
) -> None:
    issued = await seed_names(seed, "Some Hook", "Another Hook")
    if kind == "unknown":
        secret = generate_secret()
    elif kind == "bad checksum":
        secret = bad_checksum(issued["Some Hook"].secret)
    else:
        secret = issued["Some Hook"].secret
        token = issued["Some Hook"].token
        await store.tokens.reset(
            actor=ADMIN,
            token_id=token.id,
            row_version=token.row_version,
            expires_on=days_ahead(clock=store.clock),
        )

    for blocks in (
        await admin.command(f"search {secret}"),
        await admin.click(ActionId.FILTER_NAME, secret),
    ):
        assert "no token has it" in notice_of(blocks)
        assert card_names(blocks) == ["Another Hook", "Some Hook"]
        assert "initial_value" not in search_box(blocks)
        assert_not_echoed(admin.message, secret)


# -- empty states -----------------------------------------------------------------------


async def test_no_tokens_yet_offers_create(admin: SlackUser) -> None:
    blocks = await admin.command()
    empty = block(blocks, "empty")
    assert empty is not None
    assert "No tokens yet" in empty["text"]["text"]
    assert empty["accessory"]["text"]["text"] == "Create Access Token"
    assert card_names(blocks) == []
    assert range_of(blocks) is None and pager(blocks) == []
    assert admin.message["text"] == "API Access Tokens: no tokens"


async def test_no_match_offers_clear_all(seed: Seed, admin: SlackUser) -> None:
    await seed_names(seed, "Some Hook", "Other Hook")
    await admin.command()
    blocks = await admin.click(ActionId.FILTER_NAME, "zzz")
    empty = block(blocks, "empty")
    assert empty is not None
    assert "No tokens match" in empty["text"]["text"]
    assert empty["accessory"]["text"]["text"] == "Clear All"
    assert card_names(blocks) == []
    assert search_box(blocks)["initial_value"] == "zzz"

    blocks = await admin.click(ActionId.CLEAR_FILTERS, block_id="empty")
    assert card_names(blocks) == ["Other Hook", "Some Hook"]
    assert "initial_value" not in search_box(blocks)
    assert block(blocks, "empty") is None


# -- the API-access banner --------------------------------------------------------------


@pytest.mark.parametrize("user", [ADMIN, SPECIALIST])
async def test_enable_api_access_from_the_banner(
    seed: Seed, store: Store, slack_user: Callable[[str], SlackUser], user: str
) -> None:
    if user == SPECIALIST:
        await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    await seed_names(seed, "Some Hook")
    session = slack_user(user)
    blocks = await session.command()
    banner = block(blocks, "banner")
    assert banner is not None and banner["accessory"]["text"]["text"] == "Enable API Access"
    assert store.account.api_access is False

    blocks = await session.click(ActionId.ENABLE_API_ACCESS)
    assert store.account.api_access is True
    events = await store.audit.events()
    assert [(e.action, e.actor) for e in events if e.action == "api_access"] == [
        ("api_access", user)
    ]
    assert events[0].after == {"api_access": "on"}
    assert block(blocks, "banner") is None
    assert "API access is on" in notice_of(blocks)
    assert card_names(blocks) == ["Some Hook"]

    blocks = await session.command()
    assert block(blocks, "banner") is None
    assert block(blocks, "notice") is None


async def test_the_notice_sits_between_banner_and_create(seed: Seed, admin: SlackUser) -> None:
    issued = await seed_names(seed, "Some Hook")
    blocks = await admin.command(f"search {issued['Some Hook'].secret}")
    assert [b.get("block_id") for b in blocks[:4]] == ["title", "banner", "notice", "create"]
    blocks = await admin.click(ActionId.ENABLE_API_ACCESS)
    assert [b.get("block_id") for b in blocks[:3]] == ["title", "notice", "create"]


# -- users without a role ---------------------------------------------------------------


async def test_a_user_without_a_role_is_refused_the_list(
    seed: Seed, slack_user: Callable[[str], SlackUser]
) -> None:
    await seed_names(seed, "Secret Project Hook")
    for text in ("", "list", "search x", "search Secret"):
        reply = await slack_user(STRANGER).send_command(text)
        assert check_message(reply.body) == []
        assert_refusal(reply.body)
        assert "Secret Project" not in json.dumps(reply.body)


async def refused_click(
    stranger: SlackUser,
    blocks: list[Body],
    action_id: str,
    value: str | None = None,
    *,
    block_id: str | None = None,
) -> Body:
    """A user without a role clicks on someone else's list: the one message they get."""
    posted = len(stranger.standin.responses)
    click = await stranger.send_click(action_id, value, block_id=block_id, blocks=blocks)
    answer = await stranger.answer(click)
    assert len(stranger.standin.responses) == posted + 1
    return answer


async def test_replayed_clicks_of_a_user_without_a_role_post_only_the_refusal(
    seed: Seed, slack_user: Callable[[str], SlackUser], admin: SlackUser
) -> None:
    await seed_names(seed, *numbered("Token", range(1, 16)))
    blocks = await admin.command()
    stranger = slack_user(STRANGER)
    for action_id, value, block_id in (
        (ActionId.FILTER_NAME, "token", None),
        (ActionId.FILTER_CREATED, "last_7_days", None),
        (ActionId.FILTER_STATE, "disabled", None),
        (ActionId.FILTER_STATE, "any", None),
        (*pager_button(blocks, "Next"), "pager"),
        (ActionId.CLEAR_FILTERS, None, None),
        (ActionId.CREATE, None, None),
    ):
        body = await refused_click(stranger, blocks, action_id, value, block_id=block_id)
        assert body.get("replace_original") is False, action_id
        assert_refusal(body)
        assert "Token 0" not in json.dumps(body), action_id


async def test_a_user_without_a_role_cannot_enable_api_access(
    seed: Seed, store: Store, slack_user: Callable[[str], SlackUser], admin: SlackUser
) -> None:
    await seed_names(seed, "Some Hook")
    blocks = await admin.command()
    body = await refused_click(slack_user(STRANGER), blocks, ActionId.ENABLE_API_ACCESS)
    assert body.get("replace_original") is False
    assert_refusal(body)
    assert store.account.api_access is False
    assert [e for e in await store.audit.events() if e.action == "api_access"] == []
    # Nothing changed for the admin either: the banner is still there.
    assert block(await admin.command(), "banner") is not None


# -- hostile names ----------------------------------------------------------------------

HOSTILE_NAMES = (
    "<!channel> & <@U1>",
    "*bold* _x_ ~y~ `z`",
    "🚀" * 100,
    "تقارير يومية للمبيعات",
    "דוחות לילה",
    "<https://evil.example|click>",
    "<!here> &amp; <!everyone>",
)


async def test_hostile_names_are_rendered_harmlessly(seed: Seed, admin: SlackUser) -> None:
    issued = await seed_names(seed, *HOSTILE_NAMES)
    blocks = await admin.command()
    assert sorted(card_names(blocks)) == sorted(HOSTILE_NAMES)
    for name in HOSTILE_NAMES:
        header, _, _ = card(blocks, name)
        assert header["text"]["type"] == "plain_text"
        assert header["text"]["text"] == name
        assert name in plain_texts(admin.message)
    for name in HOSTILE_NAMES:
        assert name not in "\n".join(mrkdwn_texts(admin.message))

    # Named in a notice (mrkdwn), escaped.
    blocks = await admin.command(f"search {issued['<!channel> & <@U1>'].secret}")
    assert "*&lt;!channel&gt; &amp; &lt;@U1&gt;*" in notice_of(blocks)
    assert card_names(blocks)[0] == "<!channel> & <@U1>"

    blocks = await admin.command(f"search {issued['<!here> &amp; <!everyone>'].secret}")
    assert "*&lt;!here&gt; &amp;amp; &lt;!everyone&gt;*" in notice_of(blocks)

    blocks = await admin.command(f"search {issued['<https://evil.example|click>'].secret}")
    assert "*&lt;https://evil.example|click&gt;*" in notice_of(blocks)

    # Searched for by typing the hostile text (plain in the search box, escaped by Slack in a
    # command).
    blocks = await admin.command("search &lt;!channel&gt;")
    assert card_names(blocks) == ["<!channel> & <@U1>"]
    assert search_box(blocks)["initial_value"] == "<!channel>"
    blocks = await admin.click(ActionId.FILTER_NAME, "<https://evil")
    assert card_names(blocks) == ["<https://evil.example|click>"]
    blocks = await admin.click(ActionId.FILTER_NAME, "🚀🚀")
    assert card_names(blocks) == ["🚀" * 100]
    blocks = await admin.click(ActionId.FILTER_NAME, "לילה")
    assert card_names(blocks) == ["דוחות לילה"]

    # Every message the app sent passed the harmlessness checks (done on each one).
    assert len(admin.lists) == 8


# -- everything the app sent ------------------------------------------------------------


async def test_every_message_the_app_sent_was_valid_and_accepted(
    seed: Seed, store_clock: WallClock, standin: SlackStandIn, admin: SlackUser
) -> None:
    await seed_dated(seed, store_clock)
    await seed_names(seed, *numbered("Token", range(1, 23)))
    await admin.command()
    await admin.turn("Next")
    await admin.click(ActionId.FILTER_CREATED, "last_30_days")
    await admin.click(ActionId.FILTER_NAME, "token 1")
    await admin.click(ActionId.CLEAR_FILTERS)
    await admin.click(ActionId.ENABLE_API_ACCESS)
    await admin.command("search hook")
    await settle(lambda: len(standin.responses) >= 5)
    assert len(standin.responses) == 5
    assert all(post.accepted for post in standin.responses)
    assert all(check_message(post.body) == [] for post in standin.responses)
    assert all(check_message(body) == [] for body in admin.lists)
    assert len(admin.lists) == 7
