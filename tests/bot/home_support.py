"""Reading and using App Home as Slack holds it, for tests/bot/test_home*.py: the Home
published to a user (checked against Slack's limits, and for secrets), the app's
views.publish calls, clicks on a published Home as Slack sends them, and the store those
tests open, with tokens made before it (without expiry, on an older catalog)."""

from __future__ import annotations

import copy
import json
import re
import time

from bot.settings import Settings
from slack_standin.blockkit import check_view
from slack_standin.client import Reply, SlackClient, fill, view_container
from slack_standin.server import Call, SlackStandIn
from storage.models import IssuedToken, Token
from storage.store import Store
from tests.bot.blockwalk import (
    SECRET_SHAPE,
    Body,
    all_text,
    assert_harmless,
    cards,
    interactive,
)
from tests.bot.conftest import ADMIN
from tests.bot.doubles import WallClock
from tests.bot.driver import ACK_LIMIT, SlackUser, settle
from tests.conftest import OpenStore
from tests.store_support import days_ahead

HOME_BLOCKS_MAX = 100
METADATA_MAX = 3000
ATTENTION_SHOWN = 10
_COUNT = re.compile(r"\*([\d,]+)\* (.+)$")


async def create(
    store: Store, name: str, *, contact: str = ADMIN, lifetime_days: int | None = 90
) -> IssuedToken:
    return await store.tokens.create(
        actor=ADMIN,
        name=name,
        access_rights=["reports:read"],
        primary_contact=contact,
        expires_on=None if lifetime_days is None else days_ahead(lifetime_days, clock=store.clock),
    )


def use(store: Store, secret: str) -> None:
    """The gateway presents `secret` now, and it passes."""
    assert store.credentials.check(secret).token is not None


async def current(store: Store, token: Token | IssuedToken) -> Token:
    token = token.token if isinstance(token, IssuedToken) else token
    return await store.token_reads.get(token_id=token.id)


async def open_app_store(
    open_store: OpenStore,
    settings: Settings,
    *,
    clock: WallClock | None = None,
    without_expiry: dict[str, float] | None = None,
    legacy: tuple[str, ...] = (),
    earlier_secrets: dict[str, str] | None = None,
) -> Store:
    """The app's store with API access on; first, on the same database, the tokens made
    before: `without_expiry` (so many days ago by `clock`, while no maximum lifetime was
    set) and `legacy` (on a catalog without the newest API version), their secrets put in
    `earlier_secrets`."""
    secrets = {} if earlier_secrets is None else earlier_secrets
    if without_expiry:
        assert clock is not None
        uncapped = await open_store(max_lifetime_days=0)
        for name, days_ago in without_expiry.items():
            clock.days_ago(days_ago)
            secrets[name] = (await create(uncapped, name, lifetime_days=None)).secret
        clock.skew = 0
        await uncapped.close()
    if legacy:
        older = await open_store(api_versions=settings.tokendesk_api_versions[:-1])
        for name in legacy:
            secrets[name] = (await create(older, name)).secret
        await older.close()
    opened = await open_store()
    await opened.account.set_api_access(actor=ADMIN, enabled=True)
    return opened


# -- what Slack holds, and what a user does on Home ---------------------------------------


def home_problems(view: Body) -> list[str]:
    """What is wrong with a Home view as Slack takes it and as it must read."""
    problems = check_view(view)
    if view.get("type") != "home":
        problems.append(f"type {view.get('type')!r}")
    if len(view["blocks"]) > HOME_BLOCKS_MAX:
        problems.append(f"{len(view['blocks'])} blocks")
    problems += [f"a {name}" for name in ("title", "submit", "close") if view.get(name)]
    if len(view.get("private_metadata") or "") > METADATA_MAX:
        problems.append("private_metadata too long")
    if SECRET_SHAPE.search(json.dumps(view)):
        problems.append("a secret")
    return problems


def home_of(standin: SlackStandIn, user_id: str) -> Body:
    """`user_id`'s Home as Slack holds it now (a copy: a later publish leaves it as it was)."""
    home = standin.home_of(user_id)
    assert home is not None, f"no Home published to {user_id}"
    assert home_problems(home) == [], home_problems(home)
    assert_harmless(home)
    return copy.deepcopy(home)


def publishes(standin: SlackStandIn, user_id: str, since: int = 0) -> list[Call]:
    """The app's views.publish calls for `user_id` (among the calls from `since` on)."""
    return [
        call
        for call in standin.calls[since:]
        if call.method == "views.publish" and call.args.get("user_id") == user_id
    ]


async def opens_home(standin: SlackStandIn, user_id: str) -> Body:
    """`user_id` opens the Home tab: the Home the app published then."""
    since = len(standin.calls)
    delivery = await standin.user_opens_home(user_id)
    assert delivery.acked, delivery
    assert delivery.ack_seconds is not None and delivery.ack_seconds < ACK_LIMIT
    await settle()
    assert [call.ok for call in publishes(standin, user_id, since)] == [True]
    return home_of(standin, user_id)


async def click_home(slack: SlackClient, user_id: str, home: Body, action: Body) -> Reply:
    """`user_id` clicks `action` on the Home view `home`, as Slack sends it."""
    started = time.perf_counter()
    reply = await slack.block_action(
        user_id, action, container=view_container(home["id"]), view=home, state=fill(home, {})
    )
    assert time.perf_counter() - started < ACK_LIMIT
    assert reply.status == 200 and reply.body == "", (reply.status, reply.body)
    assert "response_url" not in reply.sent and reply.sent["view"]["hash"] == home["hash"]
    return reply


async def answered_on_home(
    standin: SlackStandIn,
    slack: SlackClient,
    user_id: str,
    home: Body,
    action: Body,
    *,
    in_place: bool = True,
) -> Body:
    """A click on Home answered on Home alone: published again (`in_place`: with the hash
    of the view clicked), and nothing else shown (no modal, no response_url post)."""
    since, responses = len(standin.calls), len(standin.responses)
    await click_home(slack, user_id, home, action)
    await settle()
    (published,) = publishes(standin, user_id, since)
    assert published.ok
    if in_place:
        assert published.args.get("hash") == home["hash"]
    assert all(call.method != "views.open" for call in standin.calls[since:])
    assert len(standin.responses) == responses
    return home_of(standin, user_id)


async def opened_from_home(
    user: SlackUser, home: Body, action: Body, callback_id: str
) -> tuple[Reply, Body]:
    """A click on Home that opens a modal: the click, and the modal."""
    reply = await click_home(user.slack, user.user_id, home, action)
    return reply, await user.opened(reply, callback_id)


def summary_of(home: Body) -> dict[str, int]:
    """The summary's counts by label ("enabled", "leaked", ...)."""
    summary = next(b for b in home["blocks"] if b.get("block_id") == "summary")
    counts: dict[str, int] = {}
    for field in summary["fields"]:
        found = _COUNT.search(field["text"])
        assert found is not None, field
        counts[found.group(2)] = int(found.group(1).replace(",", ""))
    return counts


def attention_of(home: Body) -> list[tuple[str, str]]:
    """Needs attention, in order: (the reason's text, the card's token name)."""
    blocks = home["blocks"]
    shown = []
    for index, block in enumerate(blocks):
        if str(block.get("block_id", "")).startswith("reason."):
            header = blocks[index + 1]
            assert header["block_id"] == f"card.{block['block_id'].split('.')[1]}"
            shown.append((all_text(block), header["text"]["text"]))
    assert len(shown) == len(cards(blocks))
    return shown


def no_token_data(home: Body, tokens: list[Token]) -> None:
    """Nothing of any token: no SID, no name, no card, no token button."""
    text = json.dumps(home)
    for token in tokens:
        assert token.sid not in text and token.name not in text
    assert cards(home["blocks"]) == [] and interactive(home) == []
    assert "summary" not in [b.get("block_id") for b in home["blocks"]]
