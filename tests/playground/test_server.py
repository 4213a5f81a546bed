"""The playground's page API, end to end: a started playground (the real app, the stand-in,
the demo data) driven over HTTP as the page drives it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from bot.ids import ActionId, CallbackId
from playground import demo
from playground.server import Playground
from storage.credentials import contains_secret
from storage.errors import StartupRefused
from tests.bot.driver import eventually

Body = dict[str, Any]


@pytest.fixture
async def playground() -> AsyncIterator[Playground]:
    running = Playground(port=0)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def page(playground: Playground) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=playground.url) as session:
        yield session


async def call(page: aiohttp.ClientSession, path: str, body: Body) -> tuple[int, Body]:
    async with page.post(path, json=body) as response:
        return response.status, await response.json()


async def ok(page: aiohttp.ClientSession, path: str, body: Body) -> Body:
    status, answer = await call(page, path, body)
    assert status == 200, (path, answer)
    return answer


async def state(page: aiohttp.ClientSession, user: str) -> Body:
    async with page.get("/api/state", params={"user": user}) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        found: Body = await response.json()
        return found


def elements(blocks: list[Body]) -> Iterator[tuple[str, Body]]:
    """(block_id, element) of every element one can act on; Slack's `auto<index>` for a
    block the app left unnamed."""
    for index, block in enumerate(blocks):
        block_id = block.get("block_id", f"auto{index}")
        for element in (block.get("accessory"), block.get("element"), *block.get("elements", [])):
            if isinstance(element, dict) and "action_id" in element:
                yield block_id, element


def find(blocks: list[Body], action_id: str) -> tuple[str, Body]:
    return next((b, e) for b, e in elements(blocks) if e["action_id"] == action_id)


async def listed(page: aiohttp.ClientSession, user: str) -> Body:
    """`/tokens` as `user`: the ephemeral list it shows them."""
    await ok(page, "/api/command", {"user": user, "text": ""})
    (shown,) = (await state(page, user))["ephemerals"]
    return shown  # type: ignore[no-any-return]


def menu_value(element: Body, action: str, token_id: int) -> str:
    return next(
        option["value"]
        for option in element["options"]
        if option["value"].startswith(f"{action}:{token_id}:")
    )


async def token_id(playground: Playground, name: str) -> int:
    page = await playground.store.token_reads.page(offset=0, limit=50)
    return next(token.id for token in page.tokens if token.name == name)


# -- what the page asks ------------------------------------------------------------------


async def test_the_page_and_its_state_are_served(
    playground: Playground, page: aiohttp.ClientSession
) -> None:
    async with page.get("/") as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert response.headers["Cache-Control"] == "no-store"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    async with page.get("/static/app.js") as response:
        assert response.status == 200
    async with page.get("/static/../server.py") as response:
        assert response.status == 404
    shown = await state(page, demo.ANA)
    assert [user["name"] for user in shown["users"]] == ["Ana", "Sam", "Gus", "Nora"]
    assert shown["channel"] == {"id": demo.DESK_CHANNEL, "name": "token-desk", "messages": []}
    assert shown["modals"] == [] and shown["home"] is None
    async with page.get("/api/state", params={"user": "U0NOBODY"}) as response:
        assert response.status == 400 and "error" in await response.json()


async def test_a_command_shows_the_list_and_a_card_menu_opens_a_modal_that_shows_the_secret(
    playground: Playground, page: aiohttp.ClientSession
) -> None:
    before = (await state(page, demo.ANA))["version"]
    shown = await listed(page, demo.ANA)
    assert "Billing sync" in json.dumps(shown["blocks"])
    assert (await state(page, demo.SAM))["ephemerals"] == []  # shown to Ana alone
    async with page.get("/api/wait", params={"version": before}) as response:
        assert (await response.json())["version"] > before

    billing = await token_id(playground, "Billing sync")
    block_id, menu = next(
        (b, e)
        for b, e in elements(shown["blocks"])
        if e["action_id"] == ActionId.TOKEN_MENU and f":{billing}:" in json.dumps(e)
    )
    await ok(
        page,
        "/api/action",
        {
            "user": demo.ANA,
            "where": {"kind": "ephemeral", "ts": shown["ts"]},
            "block_id": block_id,
            "action_id": ActionId.TOKEN_MENU,
            "selected": menu_value(menu, "reset", billing),
        },
    )
    (confirmation,) = (await state(page, demo.ANA))["modals"]
    assert confirmation["callback_id"] == CallbackId.CONFIRM
    assert (await state(page, demo.SAM))["modals"] == []

    answer = await ok(
        page, "/api/submit", {"user": demo.ANA, "view_id": confirmation["id"], "values": {}}
    )
    assert answer["problems"] == []
    (secret_view,) = (await state(page, demo.ANA))["modals"]
    assert secret_view["callback_id"] == CallbackId.SECRET
    assert contains_secret(json.dumps(secret_view))

    await ok(page, "/api/close", {"user": demo.ANA, "view_id": secret_view["id"]})
    assert (await state(page, demo.ANA))["modals"] == []


async def test_a_field_error_is_shown_on_the_view(
    playground: Playground, page: aiohttp.ClientSession
) -> None:
    shown = await listed(page, demo.ANA)
    block_id, edit = find(shown["blocks"], ActionId.TOKEN_EDIT)
    await ok(
        page,
        "/api/action",
        {
            "user": demo.ANA,
            "where": {"kind": "ephemeral", "ts": shown["ts"]},
            "block_id": block_id,
            "action_id": ActionId.TOKEN_EDIT,
            "value": edit["value"],
        },
    )
    (form,) = (await state(page, demo.ANA))["modals"]
    taken = "billing sync" if "Billing sync" not in json.dumps(form) else "partner portal"
    await ok(
        page,
        "/api/submit",
        {"user": demo.ANA, "view_id": form["id"], "values": {"name": {"name": {"value": taken}}}},
    )
    (refused,) = (await state(page, demo.ANA))["modals"]
    assert refused["id"] == form["id"] and set(refused["_errors"]) == {"name"}


async def test_a_live_secret_posted_in_the_channel_gets_a_thread_reply_and_dms(
    playground: Playground, page: aiohttp.ClientSession
) -> None:
    secret = playground.demo.secrets["Billing sync"]
    posted = await ok(
        page, "/api/message", {"user": demo.NORA, "text": f"the billing key is {secret}"}
    )
    assert posted["delivered"] == 200

    async def replied() -> list[Body]:
        messages = (await state(page, demo.NORA))["channel"]["messages"]
        return [reply for message in messages for reply in message["thread"]]

    (reply,) = await eventually(replied)
    assert reply["bot"] and secret not in json.dumps(reply)

    async def leak_dms() -> list[Body]:
        dms = (await state(page, demo.ANA))["dms"]
        return [dm for dm in dms if "leak" in json.dumps(dm["blocks"])]

    (dm,) = await eventually(leak_dms)
    assert secret not in json.dumps(dm)

    status, refused = await call(
        page, "/api/message", {"user": demo.NORA, "text": "hi", "thread_ts": reply["ts"]}
    )
    assert status == 400 and refused["error"] == "thread_ts_is_a_reply"


async def test_home_opens_for_the_user(playground: Playground, page: aiohttp.ClientSession) -> None:
    await ok(page, "/api/home", {"user": demo.ANA})
    home = await eventually(lambda: playground.standin.home_of(demo.ANA))
    assert (await state(page, demo.ANA))["home"] == home
    assert (await state(page, demo.SAM))["home"] is None


async def test_the_gateway_box_tries_a_secret_against_the_auth_check(
    playground: Playground, page: aiohttp.ClientSession
) -> None:
    secret = playground.demo.secrets["Mobile app backend"]
    accepted = await ok(page, "/api/gateway", {"secret": secret})
    assert accepted["status"] == 200
    assert accepted["headers"]["X-Token-Api-Version"] == "v3"
    sid = accepted["headers"]["X-Token-Sid"]
    assert accepted["body"]["sid"] == sid and secret not in json.dumps(accepted)

    basic = await ok(page, "/api/gateway", {"secret": secret, "sid": sid})
    assert basic["status"] == 200
    wrong_sid = await ok(page, "/api/gateway", {"secret": secret, "sid": "SK0000000000"})
    assert wrong_sid["status"] == 401

    wrong = await ok(page, "/api/gateway", {"secret": secret[:-1] + "x"})
    assert wrong["status"] == 401 and "X-Token-Sid" not in wrong["headers"]
    assert (await state(page, demo.SAM))["last_gateway"] == {
        key: wrong[key] for key in ("status", "headers", "body")
    }
    status, refused = await call(page, "/api/gateway", {"secret": "tdk_\nHost: evil"})
    assert status == 400 and "tdk_" not in refused["error"]


async def test_roles_come_from_the_demo_workspace(
    playground: Playground, page: aiohttp.ClientSession
) -> None:
    await ok(page, "/api/command", {"user": demo.NORA, "text": ""})
    (refusal,) = (await state(page, demo.NORA))["ephemerals"]
    assert "Billing sync" not in json.dumps(refusal)

    # Gus is an Implementation Specialist through his group, once the app learned it.
    async def gus_lists() -> bool:
        await ok(page, "/api/command", {"user": demo.GUS, "text": ""})
        shown = (await state(page, demo.GUS))["ephemerals"]
        return "Billing sync" in json.dumps(shown[-1]["blocks"])

    assert await eventually(gus_lists, poll=0.2)


async def test_the_state_holds_no_secret_but_the_one_time_secret_view(
    playground: Playground, page: aiohttp.ClientSession
) -> None:
    shown = await listed(page, demo.ANA)
    await ok(page, "/api/home", {"user": demo.ANA})
    await eventually(lambda: playground.standin.home_of(demo.ANA))
    await ok(page, "/api/gateway", {"secret": playground.demo.secrets["Billing sync"]})
    block_id, create = find(shown["blocks"], ActionId.CREATE)
    where = {"kind": "ephemeral", "ts": shown["ts"]}
    await ok(
        page,
        "/api/action",
        {"user": demo.ANA, "where": where, "block_id": block_id, "action_id": create["action_id"]},
    )
    (form,) = (await state(page, demo.ANA))["modals"]
    values = {
        "name": {"name": {"value": "Playground check"}},
        "access_rights": {"access_rights": {"selected_options": ["reports:read"]}},
        "primary_contact": {"primary_contact": {"selected_user": demo.SAM}},
    }
    answer = await ok(
        page, "/api/submit", {"user": demo.ANA, "view_id": form["id"], "values": values}
    )
    assert answer["problems"] == []
    await eventually(lambda: playground.standin.calls_to("chat.postMessage"), timeout=5)

    known = {*playground.demo.secrets.values(), *playground.demo.retired.values()}
    for person in demo.PEOPLE:
        seen = await state(page, person.id)
        modals = seen.pop("modals")
        text = json.dumps(seen)
        assert not contains_secret(text), person.name
        assert not any(secret in text for secret in known)
        if person.id != demo.ANA:
            assert modals == []
    (secret_view,) = (await state(page, demo.ANA))["modals"]
    assert secret_view["callback_id"] == CallbackId.SECRET
    assert contains_secret(json.dumps(secret_view))


# -- who may ask -------------------------------------------------------------------------


async def test_only_the_pages_own_address_is_answered(
    playground: Playground, page: aiohttp.ClientSession
) -> None:
    port = playground.port
    for host, status in (
        (f"evil.example:{port}", 421),
        (f"127.0.0.1.nip.io:{port}", 421),
        ("localhost:1", 421),
        (f"localhost:{port}", 200),
        (f"127.0.0.1:{port}", 200),
    ):
        async with page.get("/api/state", params={"user": demo.ANA}, headers={"Host": host}) as r:
            assert r.status == status, host
    rebound = {"Host": f"evil.example:{port}"}
    async with page.post("/api/home", json={"user": demo.ANA}, headers=rebound) as response:
        assert response.status == 421
    other_page = {"Origin": "http://evil.example"}
    async with page.post("/api/home", json={"user": demo.ANA}, headers=other_page) as response:
        assert response.status == 403
    form = {"Content-Type": "text/plain"}
    body = json.dumps({"user": demo.ANA})
    async with page.post("/api/home", data=body, headers=form) as response:
        assert response.status == 415
    assert playground.standin.home_of(demo.ANA) is None


async def test_the_playground_listens_on_loopback_only() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "localhost"):
        with pytest.raises(StartupRefused) as refused:
            Playground(host=host, port=0)
        assert refused.value.subject == "HOST"


async def test_a_taken_port_is_refused_naming_port(playground: Playground) -> None:
    second = Playground(port=playground.port)
    with pytest.raises(StartupRefused) as refused:
        await second.start()
    assert refused.value.subject == "PORT"
