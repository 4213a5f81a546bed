"""The token list end to end: `/tokens`, then clicks on what the app rendered, as Slack sends
them (signed requests, ephemeral containers, `state.values`), answered through response_urls
on the Slack stand-in, on a real SQLite store with a movable clock."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from bot.background import drain
from bot.ids import ActionId
from bot.settings import Settings
from slack_standin.blockkit import check_message
from slack_standin.client import SlackClient, action_for, ephemeral_container, fill
from slack_standin.server import SlackStandIn
from storage.credentials import ALPHABET, generate_secret, load_or_create_key
from storage.models import IssuedToken, Role
from storage.store import Store
from tests.bot.conftest import ADMIN, SPECIALIST, STRANGER

Body = dict[str, Any]
DAY = 86_400
ROLES = ("Account Administrators", "Implementation Specialists")
HOSTILE = ("<!channel>", "<!here>", "<!everyone>", "<@U1>", "<https://")
CHANNEL, MESSAGE_TS = "C0TEST", "1700000000.000100"
MENU = ["Duplicate", "Reset", "Upgrade Version", "Disable", "Delete"]
STATEFUL = ("static_select", "plain_text_input")


# -- a store on a movable clock ---------------------------------------------------------


class Clock:
    """Real time plus an offset, so tokens can be created in the past."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def days_ago(self, days: float) -> None:
        self.offset = -days * DAY


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def legacy_tokens() -> tuple[str, ...]:
    """Names of tokens created while the newest API version did not exist yet (override
    with `@pytest.mark.parametrize("legacy_tokens", [...])`)."""
    return ()


async def _open(settings: Settings, *, versions: tuple[str, ...], clock: Clock) -> Store:
    configured = settings.tokendesk_secret_key
    key = load_or_create_key(
        settings.tokendesk_db, configured.get_secret_value() if configured else None
    )
    return await Store.open(
        path=settings.tokendesk_db,
        secret_key=key,
        api_versions=versions,
        scopes=settings.tokendesk_scopes,
        admins=settings.tokendesk_admins,
        clock=clock,
    )


@pytest.fixture
async def store(
    settings: Settings, clock: Clock, legacy_tokens: tuple[str, ...]
) -> AsyncIterator[Store]:
    """Replaces the conftest's `store` (so `bolt` and `app_url` use it): the same settings,
    with a clock the tests move."""
    if legacy_tokens:
        older = await _open(settings, versions=settings.tokendesk_api_versions[:-1], clock=clock)
        try:
            for name in legacy_tokens:
                await older.tokens.create(
                    actor=ADMIN, name=name, access_rights=["reports:read"], primary_contact=ADMIN
                )
        finally:
            await older.close()
    opened = await _open(settings, versions=settings.tokendesk_api_versions, clock=clock)
    try:
        yield opened
    finally:
        await opened.close()


async def seed(
    store: Store, *names: str, rights: tuple[str, ...] = ("reports:read",)
) -> dict[str, IssuedToken]:
    issued = {}
    for name in names:
        issued[name] = await store.tokens.create(
            actor=ADMIN, name=name, access_rights=list(rights), primary_contact=ADMIN
        )
    return issued


async def disable(store: Store, *tokens: IssuedToken) -> None:
    for issued in tokens:
        await store.tokens.set_enabled(actor=ADMIN, token_id=issued.token.id, enabled=False)


# -- reading what the app rendered ------------------------------------------------------


def blocks_of(body: Body) -> list[Body]:
    blocks = body.get("blocks")
    assert isinstance(blocks, list), body
    return blocks


def card_names(blocks: list[Body]) -> list[str]:
    return [
        b["text"]["text"]
        for b in blocks
        if b["type"] == "header" and str(b.get("block_id", "")).startswith("card.")
    ]


def card(blocks: list[Body], name: str) -> tuple[Body, Body, Body]:
    """The card's header, details section and Edit actions block."""
    for index, b in enumerate(blocks):
        if b["type"] == "header" and str(b.get("block_id", "")).startswith("card."):
            if b["text"]["text"] == name:
                return blocks[index], blocks[index + 1], blocks[index + 2]
    raise LookupError(f"no card named {name!r} in {card_names(blocks)}")


def block(blocks: list[Body], block_id: str) -> Body | None:
    return next((b for b in blocks if b.get("block_id") == block_id), None)


def block_starting(blocks: list[Body], prefix: str) -> Body:
    found = [b for b in blocks if str(b.get("block_id", "")).startswith(prefix)]
    assert len(found) == 1, f"{len(found)} blocks start with {prefix!r}"
    return found[0]


def search_box(blocks: list[Body]) -> Body:
    element = block_starting(blocks, "search.")["element"]
    assert isinstance(element, dict)
    return element


def select(blocks: list[Body], action_id: str) -> Body:
    for element in block_starting(blocks, "filters.")["elements"]:
        if element["action_id"] == action_id:
            return dict(element)
    raise LookupError(action_id)


def chosen(blocks: list[Body], action_id: str) -> str | None:
    option = select(blocks, action_id).get("initial_option")
    return None if option is None else str(option["value"])


def range_of(blocks: list[Body]) -> str | None:
    found = block(blocks, "range")
    return None if found is None else str(found["elements"][0]["text"])


def pager(blocks: list[Body]) -> list[str]:
    found = block(blocks, "pager")
    return [] if found is None else [e["text"]["text"] for e in found["elements"]]


def pager_button(blocks: list[Body], label: str) -> tuple[str, str]:
    found = block(blocks, "pager")
    assert found is not None, "no pager"
    for element in found["elements"]:
        if element["text"]["text"] == label:
            return str(element["action_id"]), str(element["value"])
    raise LookupError(f"no {label!r} button in the pager")


def notice_of(blocks: list[Body]) -> str | None:
    found = block(blocks, "notice")
    return None if found is None else str(found["text"]["text"])


def stateful_ids(blocks: list[Body]) -> set[str]:
    return {
        str(b["block_id"])
        for b in blocks
        if str(b.get("block_id", "")).startswith(("search.", "filters."))
    }


def text_objects(node: Any) -> Iterator[Body]:
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_objects(item)


def mrkdwn_texts(body: Body) -> list[str]:
    """Every text Slack parses as mrkdwn: the top-level text and the mrkdwn objects."""
    found = [t["text"] for t in text_objects(body.get("blocks", [])) if t["type"] == "mrkdwn"]
    return [str(body.get("text", "")), *found]


def plain_texts(body: Body) -> list[str]:
    return [t["text"] for t in text_objects(body.get("blocks", [])) if t["type"] == "plain_text"]


def assert_harmless(body: Body) -> None:
    for text in mrkdwn_texts(body):
        for hostile in HOSTILE:
            assert hostile not in text, f"unescaped {hostile!r} in mrkdwn: {text!r}"
    for found in text_objects(body.get("blocks", [])):
        if found["type"] == "mrkdwn":
            assert found.get("verbatim") is True or not any(c in found["text"] for c in "<>&")


def assert_refusal(body: Body) -> None:
    assert body.get("response_type") == "ephemeral"
    assert all(role in body["text"] for role in ROLES), body["text"]
    assert "blocks" not in body or not any(
        str(b.get("block_id", "")).startswith(("card.", "filters.")) for b in body["blocks"]
    )


# -- driving it as Slack does ----------------------------------------------------------


async def settled(standin: SlackStandIn, count: int) -> None:
    await drain()
    for _ in range(200):
        if len(standin.responses) >= count:
            break
        await asyncio.sleep(0.01)
    await drain()


async def send_click(
    slack: SlackClient,
    standin: SlackStandIn,
    user: str,
    blocks: list[Body],
    action_id: str,
    value: str | None = None,
    *,
    typed: Mapping[str, Any] | None = None,
    block_id: str | None = None,
) -> Body:
    """The user acts on a rendered element (typing or choosing `value` where it takes one):
    Slack sends the action with `state.values`; the app acks empty and posts one answer to
    the click's response_url, which is returned."""
    action = action_for(blocks, action_id, value, block_id=block_id)
    entered = dict(typed or {})
    if action["type"] in STATEFUL and value is not None:
        entered[action_id] = value
    before = len(standin.responses)
    reply = await slack.block_action(
        user,
        action,
        container=ephemeral_container(CHANNEL, MESSAGE_TS),
        state=fill(blocks, entered),
    )
    assert reply.status == 200 and reply.body == ""
    assert "message" not in reply.sent
    await settled(standin, before + 1)
    posts = standin.responses[before:]
    assert len(posts) == 1, [p.body for p in posts]
    post = posts[0]
    assert post.url == reply.sent["response_url"]
    assert post.accepted, post.error
    assert isinstance(post.body, dict)
    assert check_message(post.body) == []
    return post.body


class TokenList:
    """One user's ephemeral token list: opened with `/tokens`, replaced by every click."""

    def __init__(self, slack: SlackClient, standin: SlackStandIn, user: str = ADMIN) -> None:
        self.slack, self.standin, self.user = slack, standin, user
        self.body: Body = {}
        self.messages: list[Body] = []

    @property
    def blocks(self) -> list[Body]:
        return blocks_of(self.body)

    def _shown(self, body: Body) -> list[Body]:
        assert body.get("response_type") == "ephemeral"
        assert check_message(body) == []
        assert_harmless(body)
        assert len(blocks_of(body)) <= 50
        self.body = body
        self.messages.append(body)
        return self.blocks

    async def command(self, text: str = "") -> list[Body]:
        reply = await self.slack.slash_command(self.user, text)
        assert reply.status == 200
        assert isinstance(reply.body, dict)
        return self._shown(reply.body)

    async def click(
        self,
        action_id: str,
        value: str | None = None,
        *,
        typed: Mapping[str, Any] | None = None,
        block_id: str | None = None,
    ) -> list[Body]:
        body = await send_click(
            self.slack,
            self.standin,
            self.user,
            self.blocks,
            action_id,
            value,
            typed=typed,
            block_id=block_id,
        )
        assert body.get("replace_original") is True
        return self._shown(body)

    async def turn(self, label: str) -> list[Body]:
        """Clicks the pager button labelled `label` ("Previous" / "Next")."""
        action_id, value = pager_button(self.blocks, label)
        return await self.click(action_id, value, block_id="pager")


@pytest.fixture
def tokens_list(slack: SlackClient, standin: SlackStandIn) -> TokenList:
    return TokenList(slack, standin)


# -- the list ---------------------------------------------------------------------------


async def test_the_list_has_header_banner_create_filters_cards_and_range(
    store: Store, tokens_list: TokenList
) -> None:
    await seed(store, "First Hook", "Second Hook")
    blocks = await tokens_list.command()
    assert tokens_list.body["text"] == "API Access Tokens: 1–2 of 2"
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == "API Access Tokens"

    banner = blocks[1]
    assert banner["block_id"] == "banner"
    assert "API access is off" in banner["text"]["text"]
    assert banner["accessory"]["text"]["text"] == "Enable API Access"
    assert notice_of(blocks) is None

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
    created, state, clear = filters["elements"]
    assert created["type"] == state["type"] == "static_select"
    assert created["placeholder"]["text"] == "Created On"
    assert [o["text"]["text"] for o in created["options"]] == [
        "Any date",
        "Last 7 days",
        "Last 30 days",
        "More than 30 days",
    ]
    assert state["placeholder"]["text"] == "State"
    assert [o["text"]["text"] for o in state["options"]] == ["Any state", "Enabled", "Disabled"]
    assert "initial_option" not in created and "initial_option" not in state
    assert clear["type"] == "button" and clear["text"]["text"] == "Clear All"

    assert card_names(blocks) == ["Second Hook", "First Hook"]  # newest first
    assert blocks[5]["text"]["text"] == "Second Hook"
    assert range_of(blocks) == "1–2 of 2"
    assert pager(blocks) == []


@pytest.mark.parametrize("legacy_tokens", [("Legacy Feed",)])
async def test_a_card_shows_every_field_and_its_menu(store: Store, tokens_list: TokenList) -> None:
    many = ("contacts:read", "reports:read", "actions:write", "webhooks:manage", "reports:write")
    issued = await seed(store, "Reporting Bot", rights=many)
    issued |= await seed(store, "Paused Hook")
    await disable(store, issued["Paused Hook"])
    blocks = await tokens_list.command()
    assert card_names(blocks) == ["Paused Hook", "Reporting Bot", "Legacy Feed"]

    token = await store.tokens.get(token_id=issued["Reporting Bot"].token.id)
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
        assert one.secret not in json.dumps(tokens_list.body), name


async def test_last_used_shows_a_date_once_used(store: Store, tokens_list: TokenList) -> None:
    issued = await seed(store, "Busy Hook", "Idle Hook")
    await store.tokens.set_api_access(actor=ADMIN, enabled=True)
    assert store.tokens.verify(issued["Busy Hook"].secret) is not None
    blocks = await tokens_list.command()
    assert block(blocks, "banner") is None
    assert "*Last used* <!date^" in card(blocks, "Busy Hook")[1]["text"]["text"]
    assert "*Last used* never" in card(blocks, "Idle Hook")[1]["text"]["text"]


# -- paging -----------------------------------------------------------------------------


def numbered(prefix: str, numbers: range) -> list[str]:
    return [f"{prefix} {n:02d}" for n in numbers]


async def test_ten_cards_a_page_forward_and_back(store: Store, tokens_list: TokenList) -> None:
    await seed(store, *numbered("Token", range(1, 26)))
    blocks = await tokens_list.command()
    first = card_names(blocks)
    assert first == numbered("Token", range(25, 15, -1))
    assert range_of(blocks) == "1–10 of 25"
    assert pager(blocks) == ["Next"]

    blocks = await tokens_list.turn("Next")
    second = card_names(blocks)
    assert second == numbered("Token", range(15, 5, -1))
    assert range_of(blocks) == "11–20 of 25"
    assert pager(blocks) == ["Previous", "Next"]
    assert tokens_list.body["text"] == "API Access Tokens: 11–20 of 25"

    blocks = await tokens_list.turn("Next")
    third = card_names(blocks)
    assert third == numbered("Token", range(5, 0, -1))
    assert range_of(blocks) == "21–25 of 25"
    assert pager(blocks) == ["Previous"]
    assert sorted(first + second + third) == numbered("Token", range(1, 26))

    blocks = await tokens_list.turn("Previous")
    assert card_names(blocks) == second
    blocks = await tokens_list.turn("Previous")
    assert card_names(blocks) == first
    assert pager(blocks) == ["Next"]


async def test_paging_keeps_the_filter(store: Store, tokens_list: TokenList) -> None:
    for n in range(1, 16):
        await seed(store, f"Batch {n:02d}")
        if n <= 10:
            await seed(store, f"Other {n:02d}")
    await tokens_list.command()
    assert range_of(tokens_list.blocks) == "1–10 of 25"

    blocks = await tokens_list.click(ActionId.FILTER_NAME, "BATCH")
    assert range_of(blocks) == "1–10 of 15"
    assert card_names(blocks) == numbered("Batch", range(15, 5, -1))
    assert search_box(blocks)["initial_value"] == "BATCH"

    blocks = await tokens_list.turn("Next")
    assert range_of(blocks) == "11–15 of 15"
    assert card_names(blocks) == numbered("Batch", range(5, 0, -1))
    assert search_box(blocks)["initial_value"] == "BATCH"
    assert pager(blocks) == ["Previous"]

    blocks = await tokens_list.turn("Previous")
    assert range_of(blocks) == "1–10 of 15"
    assert search_box(blocks)["initial_value"] == "BATCH"

    # A select chosen on page 2 starts the filtered list again from its first page.
    await tokens_list.turn("Next")
    blocks = await tokens_list.click(ActionId.FILTER_STATE, "enabled")
    assert range_of(blocks) == "1–10 of 15"
    assert chosen(blocks, ActionId.FILTER_STATE) == "enabled"
    assert search_box(blocks)["initial_value"] == "BATCH"


async def test_the_page_survives_clicks_that_are_not_filters(
    store: Store, tokens_list: TokenList
) -> None:
    await seed(store, *numbered("Token", range(1, 26)))
    await tokens_list.command()
    second = card_names(await tokens_list.turn("Next"))

    blocks = await tokens_list.click(ActionId.ENABLE_API_ACCESS)
    assert notice_of(blocks) is not None
    assert range_of(blocks) == "11–20 of 25"
    assert card_names(blocks) == second
    assert pager(blocks) == ["Previous", "Next"]


async def test_a_page_that_emptied_shows_the_last_page(
    store: Store, tokens_list: TokenList
) -> None:
    issued = await seed(store, *numbered("Token", range(1, 26)))
    await tokens_list.command()
    await tokens_list.turn("Next")
    blocks = await tokens_list.turn("Next")
    assert range_of(blocks) == "21–25 of 25"
    for name in numbered("Token", range(1, 11)):
        token = issued[name].token
        await store.tokens.delete(actor=ADMIN, token_id=token.id, row_version=token.row_version)
    blocks = await tokens_list.click(ActionId.ENABLE_API_ACCESS)
    assert range_of(blocks) == "11–15 of 15"
    assert card_names(blocks) == numbered("Token", range(15, 10, -1))
    assert pager(blocks) == ["Previous"]


# -- filters ----------------------------------------------------------------------------


async def test_search_by_name_is_part_of_a_name_case_insensitive(
    store: Store, tokens_list: TokenList
) -> None:
    await seed(store, "Reporting Bot", "CRM Sync", "Nightly REPORTS export")
    await tokens_list.command()
    blocks = await tokens_list.click(ActionId.FILTER_NAME, "report")
    assert card_names(blocks) == ["Nightly REPORTS export", "Reporting Bot"]
    assert search_box(blocks)["initial_value"] == "report"
    blocks = await tokens_list.click(ActionId.FILTER_NAME, "sYnC")
    assert card_names(blocks) == ["CRM Sync"]
    assert search_box(blocks)["initial_value"] == "sYnC"
    blocks = await tokens_list.click(ActionId.FILTER_NAME, "")
    assert len(card_names(blocks)) == 3
    assert "initial_value" not in search_box(blocks)


async def seed_dated(store: Store, clock: Clock) -> dict[str, IssuedToken]:
    clock.days_ago(40)
    issued = await seed(store, "Ancient Hook")
    clock.days_ago(10)
    issued |= await seed(store, "Recent Hook")
    clock.days_ago(1)
    issued |= await seed(store, "Fresh Hook")
    clock.days_ago(0)
    return issued


async def test_created_on_each_bucket(store: Store, clock: Clock, tokens_list: TokenList) -> None:
    await seed_dated(store, clock)
    await tokens_list.command()
    everything = ["Fresh Hook", "Recent Hook", "Ancient Hook"]
    assert card_names(tokens_list.blocks) == everything
    for bucket, expected in (
        ("last_7_days", ["Fresh Hook"]),
        ("last_30_days", ["Fresh Hook", "Recent Hook"]),
        ("more_than_30_days", ["Ancient Hook"]),
    ):
        blocks = await tokens_list.click(ActionId.FILTER_CREATED, bucket)
        assert card_names(blocks) == expected, bucket
        assert chosen(blocks, ActionId.FILTER_CREATED) == bucket
        assert chosen(blocks, ActionId.FILTER_STATE) is None
    blocks = await tokens_list.click(ActionId.FILTER_CREATED, "any")
    assert card_names(blocks) == everything
    assert chosen(blocks, ActionId.FILTER_CREATED) is None


async def test_state_each_value(store: Store, tokens_list: TokenList) -> None:
    issued = await seed(store, "On Hook", "Off Hook", "Also On")
    await disable(store, issued["Off Hook"])
    await tokens_list.command()
    blocks = await tokens_list.click(ActionId.FILTER_STATE, "disabled")
    assert card_names(blocks) == ["Off Hook"]
    assert chosen(blocks, ActionId.FILTER_STATE) == "disabled"
    blocks = await tokens_list.click(ActionId.FILTER_STATE, "enabled")
    assert card_names(blocks) == ["Also On", "On Hook"]
    assert chosen(blocks, ActionId.FILTER_STATE) == "enabled"
    blocks = await tokens_list.click(ActionId.FILTER_STATE, "any")
    assert card_names(blocks) == ["Also On", "Off Hook", "On Hook"]
    assert chosen(blocks, ActionId.FILTER_STATE) is None


async def test_filters_combine_keep_their_values_and_any_clears_one(
    store: Store, clock: Clock, tokens_list: TokenList
) -> None:
    clock.days_ago(45)
    old = await seed(store, "Ops Old", "Ops Old Off")
    clock.days_ago(2)
    fresh = await seed(store, "Ops Fresh", "Ops Fresh Off", "Billing Fresh Off")
    clock.days_ago(0)
    await disable(store, old["Ops Old Off"], fresh["Ops Fresh Off"], fresh["Billing Fresh Off"])
    await tokens_list.command()

    blocks = await tokens_list.click(ActionId.FILTER_NAME, "ops")
    assert card_names(blocks) == ["Ops Fresh Off", "Ops Fresh", "Ops Old Off", "Ops Old"]
    blocks = await tokens_list.click(ActionId.FILTER_CREATED, "last_7_days")
    assert card_names(blocks) == ["Ops Fresh Off", "Ops Fresh"]
    blocks = await tokens_list.click(ActionId.FILTER_STATE, "disabled")
    assert card_names(blocks) == ["Ops Fresh Off"]
    assert search_box(blocks)["initial_value"] == "ops"
    assert chosen(blocks, ActionId.FILTER_CREATED) == "last_7_days"
    assert chosen(blocks, ActionId.FILTER_STATE) == "disabled"

    blocks = await tokens_list.click(ActionId.FILTER_CREATED, "any")
    assert card_names(blocks) == ["Ops Fresh Off", "Ops Old Off"]
    assert chosen(blocks, ActionId.FILTER_CREATED) is None
    assert chosen(blocks, ActionId.FILTER_STATE) == "disabled"
    assert search_box(blocks)["initial_value"] == "ops"

    blocks = await tokens_list.click(ActionId.FILTER_NAME, "")
    assert card_names(blocks) == ["Billing Fresh Off", "Ops Fresh Off", "Ops Old Off"]
    assert chosen(blocks, ActionId.FILTER_STATE) == "disabled"

    blocks = await tokens_list.click(ActionId.FILTER_CREATED, "more_than_30_days")
    assert card_names(blocks) == ["Ops Old Off"]
    blocks = await tokens_list.click(ActionId.FILTER_STATE, "any")
    assert card_names(blocks) == ["Ops Old Off", "Ops Old"]
    assert chosen(blocks, ActionId.FILTER_CREATED) == "more_than_30_days"
    assert chosen(blocks, ActionId.FILTER_STATE) is None


async def test_clear_all_clears_every_filter_and_the_search_box(
    store: Store, clock: Clock, tokens_list: TokenList
) -> None:
    await seed_dated(store, clock)
    await tokens_list.command()
    await tokens_list.click(ActionId.FILTER_NAME, "hook")
    await tokens_list.click(ActionId.FILTER_CREATED, "last_30_days")
    blocks = await tokens_list.click(ActionId.FILTER_STATE, "enabled")
    assert card_names(blocks) == ["Fresh Hook", "Recent Hook"]
    before = stateful_ids(blocks)

    blocks = await tokens_list.click(ActionId.CLEAR_FILTERS)
    assert card_names(blocks) == ["Fresh Hook", "Recent Hook", "Ancient Hook"]
    assert "initial_value" not in search_box(blocks)
    assert chosen(blocks, ActionId.FILTER_CREATED) is None
    assert chosen(blocks, ActionId.FILTER_STATE) is None
    assert stateful_ids(blocks).isdisjoint(before)
    assert len(stateful_ids(blocks)) == 2


async def test_every_render_has_fresh_stateful_block_ids(
    store: Store, tokens_list: TokenList
) -> None:
    await seed(store, "Some Hook")
    first = stateful_ids(await tokens_list.command())
    second = stateful_ids(await tokens_list.click(ActionId.FILTER_NAME, "some"))
    assert first.isdisjoint(second)


# -- /tokens search ---------------------------------------------------------------------


async def test_search_sub_command_opens_the_list_filtered(
    store: Store, tokens_list: TokenList
) -> None:
    await seed(store, "R&D ops", "Research Feed", "Billing")
    blocks = await tokens_list.command("search rese")
    assert card_names(blocks) == ["Research Feed"]
    assert search_box(blocks)["initial_value"] == "rese"

    blocks = await tokens_list.command("search R&amp;D")
    assert card_names(blocks) == ["R&D ops"]
    assert search_box(blocks)["initial_value"] == "R&D"

    # The filter from the command is kept by the next click.
    blocks = await tokens_list.click(ActionId.FILTER_STATE, "enabled")
    assert card_names(blocks) == ["R&D ops"]
    assert search_box(blocks)["initial_value"] == "R&D"


def assert_not_echoed(body: Body, secret: str) -> None:
    dumped = json.dumps(body, ensure_ascii=False)
    assert secret not in dumped
    assert secret[4:] not in dumped
    assert secret[4:36] not in dumped


async def test_search_by_a_real_secret_finds_its_token_without_echoing_it(
    store: Store, tokens_list: TokenList
) -> None:
    issued = await seed(store, "Leaky Hook", "Leaky Hook Backup", "Other Hook")
    secret = issued["Leaky Hook"].secret
    blocks = await tokens_list.command(f"search {secret}")
    assert "Leaky Hook" in card_names(blocks)
    assert "Other Hook" not in card_names(blocks)
    assert search_box(blocks)["initial_value"] == "Leaky Hook"
    notice = notice_of(blocks)
    assert notice is not None and "*Leaky Hook*" in notice
    assert "reset" in notice.lower()
    assert search_box(blocks).get("initial_value") != secret
    assert_not_echoed(tokens_list.body, secret)

    # The same secret typed into the search box and submitted with Enter.
    await tokens_list.command()
    blocks = await tokens_list.click(ActionId.FILTER_NAME, f"  {secret} ")
    assert "Leaky Hook" in card_names(blocks)
    assert "Other Hook" not in card_names(blocks)
    assert search_box(blocks)["initial_value"] == "Leaky Hook"
    notice = notice_of(blocks)
    assert notice is not None and "*Leaky Hook*" in notice
    assert_not_echoed(tokens_list.body, secret)


async def test_a_secret_after_other_words_is_not_echoed_even_in_part(
    store: Store, tokens_list: TokenList
) -> None:
    """A long search is cut to the search box's 100 characters: the cut must not turn a
    pasted secret into a name search that shows its first characters back."""
    issued = await seed(store, "Leaky Hook", "Other Hook")
    secret = issued["Leaky Hook"].secret
    words = "the integration for the billing team failed overnight, here is the token it used:"
    assert len(words) + len(secret) > 100
    blocks = await tokens_list.command(f"search {words} {secret}")
    assert_not_echoed(tokens_list.body, secret)
    shown = str(search_box(blocks).get("initial_value", ""))
    assert "tdk_" not in shown, "the search box shows the start of the pasted secret"
    assert secret[:12] not in json.dumps(tokens_list.body)


def bad_checksum(secret: str) -> str:
    last = secret[-1]
    return secret[:-1] + ALPHABET[(ALPHABET.index(last) + 1) % len(ALPHABET)]


@pytest.mark.parametrize("kind", ["unknown", "bad checksum", "reset away"])
async def test_an_unknown_secret_is_not_echoed(
    store: Store, tokens_list: TokenList, kind: str
) -> None:
    issued = await seed(store, "Some Hook", "Another Hook")
    if kind == "unknown":
        secret = generate_secret()
    elif kind == "bad checksum":
        secret = bad_checksum(issued["Some Hook"].secret)
    else:
        secret = issued["Some Hook"].secret
        token = issued["Some Hook"].token
        await store.tokens.reset(actor=ADMIN, token_id=token.id, row_version=token.row_version)

    for blocks in (
        await tokens_list.command(f"search {secret}"),
        await tokens_list.click(ActionId.FILTER_NAME, secret),
    ):
        notice = notice_of(blocks)
        assert notice is not None and "no token has it" in notice
        assert card_names(blocks) == ["Another Hook", "Some Hook"]
        assert "initial_value" not in search_box(blocks)
        assert_not_echoed(tokens_list.body, secret)


# -- empty states -----------------------------------------------------------------------


async def test_no_tokens_yet_offers_create(tokens_list: TokenList) -> None:
    blocks = await tokens_list.command()
    empty = block(blocks, "empty")
    assert empty is not None
    assert "No tokens yet" in empty["text"]["text"]
    assert empty["accessory"]["text"]["text"] == "Create Access Token"
    assert card_names(blocks) == []
    assert range_of(blocks) is None and pager(blocks) == []
    assert tokens_list.body["text"] == "API Access Tokens: no tokens"


async def test_no_match_offers_clear_all(store: Store, tokens_list: TokenList) -> None:
    await seed(store, "Some Hook", "Other Hook")
    await tokens_list.command()
    blocks = await tokens_list.click(ActionId.FILTER_NAME, "zzz")
    empty = block(blocks, "empty")
    assert empty is not None
    assert "No tokens match" in empty["text"]["text"]
    assert empty["accessory"]["text"]["text"] == "Clear All"
    assert card_names(blocks) == []
    assert search_box(blocks)["initial_value"] == "zzz"

    blocks = await tokens_list.click(ActionId.CLEAR_FILTERS, block_id="empty")
    assert card_names(blocks) == ["Other Hook", "Some Hook"]
    assert "initial_value" not in search_box(blocks)
    assert block(blocks, "empty") is None


# -- the API-access banner --------------------------------------------------------------


@pytest.mark.parametrize("user", [ADMIN, SPECIALIST])
async def test_enable_api_access_from_the_banner(
    store: Store, slack: SlackClient, standin: SlackStandIn, user: str
) -> None:
    if user == SPECIALIST:
        await store.roles.grant_user(actor=ADMIN, user_id=SPECIALIST, role=Role.SPECIALIST)
    await seed(store, "Some Hook")
    session = TokenList(slack, standin, user)
    blocks = await session.command()
    banner = block(blocks, "banner")
    assert banner is not None and banner["accessory"]["text"]["text"] == "Enable API Access"
    assert store.tokens.api_access is False

    blocks = await session.click(ActionId.ENABLE_API_ACCESS)
    assert store.tokens.api_access is True
    events = await store.audit.events()
    assert [(e.action, e.actor) for e in events if e.action == "api_access"] == [
        ("api_access", user)
    ]
    assert events[0].after == {"api_access": "on"}
    assert block(blocks, "banner") is None
    notice = notice_of(blocks)
    assert notice is not None and "API access is on" in notice
    assert card_names(blocks) == ["Some Hook"]

    blocks = await session.command()
    assert block(blocks, "banner") is None
    assert notice_of(blocks) is None


async def test_the_notice_sits_between_banner_and_create(
    store: Store, tokens_list: TokenList
) -> None:
    issued = await seed(store, "Some Hook")
    blocks = await tokens_list.command(f"search {issued['Some Hook'].secret}")
    assert [b.get("block_id") for b in blocks[:4]] == ["title", "banner", "notice", "create"]
    blocks = await tokens_list.click(ActionId.ENABLE_API_ACCESS)
    assert [b.get("block_id") for b in blocks[:3]] == ["title", "notice", "create"]


# -- users without a role ---------------------------------------------------------------


async def test_a_user_without_a_role_is_refused_the_list(store: Store, slack: SlackClient) -> None:
    await seed(store, "Secret Project Hook")
    for text in ("", "list", "search x", "search Secret"):
        reply = await slack.slash_command(STRANGER, text)
        assert reply.status == 200
        assert check_message(reply.body) == []
        assert_refusal(reply.body)
        assert "Secret Project" not in json.dumps(reply.body)


async def test_replayed_clicks_of_a_user_without_a_role_post_only_the_refusal(
    store: Store, slack: SlackClient, standin: SlackStandIn, tokens_list: TokenList
) -> None:
    await seed(store, *numbered("Token", range(1, 16)))
    blocks = await tokens_list.command()
    for action_id, value, block_id in (
        (ActionId.FILTER_NAME, "token", None),
        (ActionId.FILTER_CREATED, "last_7_days", None),
        (ActionId.FILTER_STATE, "disabled", None),
        (ActionId.FILTER_STATE, "any", None),
        (*pager_button(blocks, "Next"), "pager"),
        (ActionId.CLEAR_FILTERS, None, None),
        (ActionId.CREATE, None, None),
    ):
        body = await send_click(
            slack, standin, STRANGER, blocks, action_id, value, block_id=block_id
        )
        assert body.get("replace_original") is False, action_id
        assert_refusal(body)
        assert "Token 0" not in json.dumps(body), action_id


async def test_a_user_without_a_role_cannot_enable_api_access(
    store: Store, slack: SlackClient, standin: SlackStandIn, tokens_list: TokenList
) -> None:
    await seed(store, "Some Hook")
    blocks = await tokens_list.command()
    body = await send_click(slack, standin, STRANGER, blocks, ActionId.ENABLE_API_ACCESS)
    assert body.get("replace_original") is False
    assert_refusal(body)
    assert store.tokens.api_access is False
    assert [e for e in await store.audit.events() if e.action == "api_access"] == []
    # Nothing changed for the admin either: the banner is still there.
    assert block(await tokens_list.command(), "banner") is not None


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


async def test_hostile_names_are_rendered_harmlessly(store: Store, tokens_list: TokenList) -> None:
    issued = await seed(store, *HOSTILE_NAMES)
    blocks = await tokens_list.command()
    assert sorted(card_names(blocks)) == sorted(HOSTILE_NAMES)
    for name in HOSTILE_NAMES:
        header, _, _ = card(blocks, name)
        assert header["text"]["type"] == "plain_text"
        assert header["text"]["text"] == name
        assert name in plain_texts(tokens_list.body)
    for name in HOSTILE_NAMES:
        assert name not in "\n".join(mrkdwn_texts(tokens_list.body))

    # Named in a notice (mrkdwn), escaped.
    blocks = await tokens_list.command(f"search {issued['<!channel> & <@U1>'].secret}")
    notice = notice_of(blocks)
    assert notice is not None
    assert "*&lt;!channel&gt; &amp; &lt;@U1&gt;*" in notice
    assert card_names(blocks)[0] == "<!channel> & <@U1>"

    blocks = await tokens_list.command(f"search {issued['<!here> &amp; <!everyone>'].secret}")
    notice = notice_of(blocks)
    assert notice is not None
    assert "*&lt;!here&gt; &amp;amp; &lt;!everyone&gt;*" in notice

    blocks = await tokens_list.command(f"search {issued['<https://evil.example|click>'].secret}")
    notice = notice_of(blocks)
    assert notice is not None
    assert "*&lt;https://evil.example|click&gt;*" in notice

    # Searched for by typing the hostile text (plain in the search box, escaped by Slack in a
    # command).
    blocks = await tokens_list.command("search &lt;!channel&gt;")
    assert card_names(blocks) == ["<!channel> & <@U1>"]
    assert search_box(blocks)["initial_value"] == "<!channel>"
    blocks = await tokens_list.click(ActionId.FILTER_NAME, "<https://evil")
    assert card_names(blocks) == ["<https://evil.example|click>"]
    blocks = await tokens_list.click(ActionId.FILTER_NAME, "🚀🚀")
    assert card_names(blocks) == ["🚀" * 100]
    blocks = await tokens_list.click(ActionId.FILTER_NAME, "לילה")
    assert card_names(blocks) == ["דוחות לילה"]

    # Every message the app sent passed the harmlessness checks (done on each one).
    assert len(tokens_list.messages) == 8


# -- everything the app sent ------------------------------------------------------------


async def test_every_message_the_app_sent_was_valid_and_accepted(
    store: Store, clock: Clock, standin: SlackStandIn, tokens_list: TokenList
) -> None:
    await seed_dated(store, clock)
    await seed(store, *numbered("Token", range(1, 23)))
    await tokens_list.command()
    await tokens_list.turn("Next")
    await tokens_list.click(ActionId.FILTER_CREATED, "last_30_days")
    await tokens_list.click(ActionId.FILTER_NAME, "token 1")
    await tokens_list.click(ActionId.CLEAR_FILTERS)
    await tokens_list.click(ActionId.ENABLE_API_ACCESS)
    await tokens_list.command("search hook")
    await settled(standin, 5)
    assert len(standin.responses) == 5
    assert all(post.accepted for post in standin.responses)
    assert all(check_message(post.body) == [] for post in standin.responses)
    assert all(check_message(body) == [] for body in tokens_list.messages)
    assert len(tokens_list.messages) == 7
