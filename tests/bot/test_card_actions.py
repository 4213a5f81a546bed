"""The card actions end to end, as a Slack user clicks them: `/tokens` (the list arrives in
the ack), a click on what the app rendered, the modal the app opened on the stand-in, its
submission, and then what each user sees: the ack, the list refreshed through the opening
click's response_url, and the direct messages."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot import slack_client
from bot.blocks.common import Message
from bot.settings import Settings
from slack_standin.blockkit import check_message, check_view
from slack_standin.client import Reply, SlackClient, action_for, fill
from slack_standin.server import SlackStandIn
from storage.credentials import generate_secret
from storage.errors import TokenNotFound
from storage.models import Token
from storage.store import Store
from tests.bot.blockwalk import (
    RANDOM_PART,
    SECRET_SHAPE,
    Body,
    all_text,
    assert_harmless,
    block,
    block_in,
    blocks_of,
    card,
    card_ids,
    create_action,
    edit_action,
    interactive,
    menu_action,
    notice_of,
    refused,
    secret_of,
)
from tests.bot.conftest import ADMIN, SPECIALIST, STRANGER, Seed
from tests.bot.driver import SlackUser, dm_recipients, dms, send_payload, settle
from tests.store_support import verify

HOSTILE_NAME = "<!channel> & <@U1>"
BOT_USER, GUEST_USER = "UBOT00001", "UGUEST001"
RUN_AGAIN = "Run `/tokens` again"


@pytest.fixture
async def store(store: Store) -> Store:
    """The app's store with API access on, so that secrets can be verified."""
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    return store


def verifies(store: Store, secret: str) -> bool:
    return verify(store, secret) is not None


async def audit_count(store: Store) -> int:
    return len(await store.audit.events(limit=10_000))


async def open_confirmation(user: SlackUser, token_id: int, choice: str) -> tuple[Reply, Body]:
    """`/tokens`, then `choice` in the card's menu: the click, and the confirmation it opened."""
    await user.command()
    return await user.open(menu_action(user.blocks, token_id, choice), "token_confirm")


# -- 1. create ---------------------------------------------------------------------------


async def test_create_from_the_button_shows_the_secret_once_and_refreshes_the_list(
    admin: SlackUser, store: Store, settings: Settings
) -> None:
    await admin.command()
    click, form = await admin.open(create_action(admin.blocks), "token_create")

    labels = [b["label"]["text"] for b in blocks_of(form) if b["type"] == "input"]
    assert labels == [
        "Name",
        "Description",
        "API version",
        "Access rights",
        "Primary contact",
        "Works until",
        "Date",
    ]
    version = block_in(form, "api_version")["element"]
    assert version["initial_option"]["value"] == settings.tokendesk_api_versions[-1]
    assert [o["value"] for o in version["options"]] == [settings.tokendesk_api_versions[-1]]
    rights = block_in(form, "access_rights")["element"]
    assert [o["value"] for o in rights["options"]] == list(settings.tokendesk_scopes)
    assert block_in(form, "primary_contact")["element"]["initial_user"] == ADMIN
    assert form["submit"] is not None

    ack = await admin.submit(
        form,
        {
            "name": "Nightly export",
            "description": "Feeds the warehouse",
            "access_rights": ["reports:read", "actions:write"],
        },
    )
    assert ack["response_action"] == "update"
    secret = secret_of(ack["view"])
    token = (await store.token_reads.page()).tokens[0]
    assert token.name == "Nightly export"
    assert token.sid in all_text(ack["view"])
    assert token.access_rights == ("reports:read", "actions:write")
    assert token.primary_contact == ADMIN and token.enabled
    assert token.api_version == settings.tokendesk_api_versions[-1]
    authorized = verify(store, secret)
    assert authorized is not None and authorized.sid == token.sid

    listed = await admin.listed(click)
    assert "Nightly export" in notice_of(listed)
    assert card_ids(listed) == [token.id]
    assert RUN_AGAIN not in all_text(ack["view"])


async def test_create_from_the_command_prefills_the_unescaped_name(
    admin: SlackUser, store: Store, standin: SlackStandIn
) -> None:
    reply = await admin.send_command("create R&amp;D &lt;x&gt;")
    form = await admin.opened(reply, "token_create")
    assert block_in(form, "name")["element"]["initial_value"] == "R&D <x>"
    assert block_in(form, "primary_contact")["element"]["initial_user"] == ADMIN

    ack = await admin.submit(form, {"access_rights": ["reports:read"]})
    assert ack["response_action"] == "update"
    secret = secret_of(ack["view"])
    issued = verify(store, secret)
    assert issued is not None and issued.name == "R&D <x>"
    assert "R&amp;D &lt;x&gt;" in all_text(ack["view"])
    # No list was open: the secret view sends the user back to `/tokens`.
    assert RUN_AGAIN in all_text(ack["view"])
    await settle()
    assert standin.responses == []


# -- 2. field errors ---------------------------------------------------------------------


async def test_field_errors_come_back_next_to_the_field(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    standin.add_user(BOT_USER, is_bot=True)
    standin.add_user(GUEST_USER, is_restricted=True)
    await seed("Nightly Export")
    pasted = generate_secret()
    await admin.command()
    _, form = await admin.open(create_action(admin.blocks), "token_create")
    good = {"name": "Fresh", "access_rights": ["reports:read"]}

    async def errors(values: dict[str, Any], state: Body | None = None) -> dict[str, str]:
        if state is None:
            ack = await admin.submit(form, {**good, **values})
        else:
            reply = await admin.send_submission(form, state=state)
            ack = reply.body
        assert ack["response_action"] == "errors", ack
        assert isinstance(ack["errors"], dict)
        return dict(ack["errors"])

    assert set(await errors({"name": "   "})) == {"name"}
    assert set(await errors({"name": "x" * 101})) == {"name"}
    assert set(await errors({"name": "abc\u202edef"})) == {"name"}
    assert set(await errors({"name": "zero\u200bwidth"})) == {"name"}
    for field in ("name", "description"):
        said = await errors({field: f"key {pasted} here"})
        assert set(said) == {field}
        assert pasted not in said[field] and pasted[RANDOM_PART] not in said[field]
    assert set(await errors({"name": "nightly export"})) == {"name"}
    assert set(await errors({"name": "NIGHTLY EXPORT "})) == {"name"}
    assert set(await errors({"access_rights": []})) == {"access_rights"}
    crafted = fill(form, good)
    crafted["access_rights"]["access_rights"]["selected_options"] = [
        {"text": {"type": "plain_text", "text": "admin:all"}, "value": "admin:all"}
    ]
    assert set(await errors({}, state=crafted)) == {"access_rights"}
    assert set(await errors({"primary_contact": BOT_USER})) == {"primary_contact"}
    assert set(await errors({"primary_contact": GUEST_USER})) == {"primary_contact"}
    assert set(await errors({"primary_contact": "UNOBODY01"})) == {"primary_contact"}

    assert store.token_reads.count == 1
    assert all(pasted not in json.dumps(ack) for ack in admin.acks)
    await settle()
    assert standin.responses == []


# -- 3. edit -----------------------------------------------------------------------------


async def test_edit_is_prefilled_and_saves_only_what_changed(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Billing sync", description="Old text", rights=("actions:read",))
    token = issued.token
    await admin.command()
    click, form = await admin.open(edit_action(admin.blocks, token.id), "token_edit")

    assert block_in(form, "name")["element"]["initial_value"] == "Billing sync"
    assert block_in(form, "description")["element"]["initial_value"] == "Old text"
    chosen = block_in(form, "access_rights")["element"]["initial_options"]
    assert [o["value"] for o in chosen] == ["actions:read"]
    assert block_in(form, "primary_contact")["element"]["initial_user"] == ADMIN
    version = block_in(form, "api_version")
    assert version["type"] != "input" and interactive(version) == []
    assert token.api_version in all_text(version)
    events_before = await audit_count(store)

    ack = await admin.submit(form, {"description": "New text", "primary_contact": SPECIALIST})
    assert ack == {"response_action": "clear"}
    listed = await admin.listed(click)
    assert "Billing sync" in notice_of(listed) and "saved" in notice_of(listed)

    after = await store.token_reads.get(token_id=token.id)
    assert after.description == "New text" and after.primary_contact == SPECIALIST
    assert after.name == token.name and after.access_rights == token.access_rights
    assert after.row_version == token.row_version + 1
    assert await audit_count(store) == events_before + 1
    event = (await store.audit.events(limit=1))[0]
    assert event.action == "edit" and event.actor == ADMIN
    assert event.before == {"description": "Old text", "primary_contact": ADMIN}
    assert event.after == {"description": "New text", "primary_contact": SPECIALIST}

    await settle(lambda: len(dms(standin)) >= 2)
    assert sorted(dm_recipients(standin)) == sorted([ADMIN, SPECIALIST])
    new, old = dms(standin, SPECIALIST), dms(standin, ADMIN)
    assert len(new) == 1 and len(old) == 1 and len(dms(standin)) == 2
    assert "You are now the primary contact" in new[0]["text"]
    assert "no longer the primary contact" in old[0]["text"]
    for message in new + old:
        assert check_message(message) == []
        assert "Billing sync" in all_text(message) and token.sid in all_text(message)
    assert issued.secret not in json.dumps(dms(standin))


async def test_a_stale_edit_names_who_changed_the_token_and_applies_nothing(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    specialist: str,
    slack_user: Callable[[str], SlackUser],
) -> None:
    token = (await seed("Shared token", description="First")).token
    other = slack_user(specialist)
    await admin.command()
    await other.command()
    _, admin_form = await admin.open(edit_action(admin.blocks, token.id), "token_edit")
    _, specialist_form = await other.open(edit_action(other.blocks, token.id), "token_edit")

    assert (await admin.submit(admin_form, {"description": "Second"})) == {
        "response_action": "clear"
    }
    changed = await store.token_reads.get(token_id=token.id)
    events = await audit_count(store)

    ack = await other.submit(specialist_form, {"name": "Renamed", "description": "Third"})
    assert ack["response_action"] == "update"
    told = all_text(ack["view"])
    assert f"<@{ADMIN}>" in told and "<!date^" in told
    assert "Nothing was applied" in told
    assert ack["view"].get("submit") is None
    assert await store.token_reads.get(token_id=token.id) == changed
    assert await audit_count(store) == events


async def test_edit_refuses_a_taken_name_or_a_bot_and_saving_nothing_moves_nothing(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    standin.add_user(BOT_USER, is_bot=True)
    await seed("Taken Name")
    token = (await seed("Editable")).token
    await admin.command()
    click, form = await admin.open(edit_action(admin.blocks, token.id), "token_edit")
    events = await audit_count(store)

    taken = await admin.submit(form, {"name": "taken name"})
    assert taken["response_action"] == "errors" and set(taken["errors"]) == {"name"}
    robot = await admin.submit(form, {"primary_contact": BOT_USER})
    assert robot["response_action"] == "errors" and set(robot["errors"]) == {"primary_contact"}
    guest = await admin.submit(form, {"access_rights": []})
    assert guest["response_action"] == "errors" and set(guest["errors"]) == {"access_rights"}
    assert await store.token_reads.get(token_id=token.id) == token

    unchanged = await admin.submit(form, {})
    assert unchanged == {"response_action": "clear"}
    assert "nothing changed" in notice_of(await admin.listed(click))
    assert await store.token_reads.get(token_id=token.id) == token
    assert await audit_count(store) == events
    await settle()
    assert dms(standin) == []


async def test_a_slow_contact_check_still_answers_within_three_seconds(
    admin: SlackUser, store: Store, standin: SlackStandIn
) -> None:
    await admin.command()
    _, form = await admin.open(create_action(admin.blocks), "token_create")
    standin.delay_next("users.info", 1.7)
    started = time.monotonic()
    ack = await admin.submit(form, {"name": "Patient", "access_rights": ["reports:read"]})
    assert time.monotonic() - started < 3.0
    assert ack["response_action"] == "errors"
    assert set(ack["errors"]) == {"primary_contact"}
    assert store.token_reads.count == 0
    await asyncio.sleep(0.3)  # let the stand-in finish its late answer


# -- 4. duplicate ------------------------------------------------------------------------


async def test_duplicate_confirms_then_shows_the_copys_secret(
    admin: SlackUser, seed: Seed, store: Store
) -> None:
    source = await seed("Mirror", description="Same", rights=("contacts:read",))
    click, confirmation = await open_confirmation(admin, source.token.id, "duplicate")
    assert "*Mirror*" in all_text(confirmation) and confirmation["submit"] is not None

    ack = await admin.submit(confirmation)
    assert ack["response_action"] == "update"
    secret = secret_of(ack["view"])
    copy = verify(store, secret)
    assert copy is not None and copy.name == "Mirror (copy)"
    assert copy.sid != source.token.sid and copy.sid in all_text(ack["view"])
    assert copy.access_rights == ("contacts:read",)
    duplicate = await store.token_reads.get(token_id=copy.id)
    assert duplicate.description == "Same" and duplicate.primary_contact == ADMIN
    assert verifies(store, source.secret)

    listed = await admin.listed(click)
    assert "Mirror (copy)" in notice_of(listed)
    assert set(card_ids(listed)) == {source.token.id, copy.id}

    # Copies of the source and of the copy both count on from the base name.
    names = []
    for token_id in (source.token.id, copy.id):
        click, confirmation = await admin.open(
            menu_action(admin.blocks, token_id, "duplicate"), "token_confirm"
        )
        again = verify(store, secret_of((await admin.submit(confirmation))["view"]))
        assert again is not None
        names.append(again.name)
        await admin.listed(click)
    assert names == ["Mirror (copy 2)", "Mirror (copy 3)"]


# -- 5. reset ----------------------------------------------------------------------------


@pytest.mark.parametrize("contact", [SPECIALIST, ADMIN])
async def test_reset_warns_then_replaces_the_secret_and_tells_contact_and_actor(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn, contact: str
) -> None:
    issued = await seed("Gateway", contact=contact)
    click, confirmation = await open_confirmation(admin, issued.token.id, "reset")
    text = all_text(confirmation)
    assert "*Gateway*" in text and "stop working" in text

    ack = await admin.submit(confirmation)
    assert ack["response_action"] == "update"
    secret = secret_of(ack["view"])
    assert secret != issued.secret
    assert not verifies(store, issued.secret)
    assert verifies(store, secret)
    assert issued.token.sid in all_text(ack["view"])
    assert "Gateway" in notice_of(await admin.listed(click))

    recipients = {contact, ADMIN}
    await settle(lambda: len(dms(standin)) >= len(recipients))
    assert sorted(dm_recipients(standin)) == sorted(recipients)
    for message in dms(standin):
        said = all_text(message)
        assert "Gateway" in said and f"<@{ADMIN}>" in said and "<!date^" in said
        assert "no longer works" in said
        # A URL in a token's name must not make Slack fetch and preview the page.
        assert (message.get("unfurl_links"), message.get("unfurl_media")) == (False, False)
        for value in (secret, issued.secret):
            assert value not in json.dumps(message)
            assert value[RANDOM_PART] not in json.dumps(message)


# -- 6. upgrade version ------------------------------------------------------------------


@pytest.mark.parametrize("legacy_tokens", [("Old client",)])
async def test_upgrade_confirms_then_moves_to_the_newest_version(
    admin: SlackUser, store: Store, settings: Settings
) -> None:
    token = (await store.token_reads.page()).tokens[0]
    older, newest = settings.tokendesk_api_versions[-2:]
    assert token.api_version == older
    click, confirmation = await open_confirmation(admin, token.id, "upgrade")
    text = all_text(confirmation)
    assert "*Old client*" in text and older in text and newest in text and "break" in text

    ack = await admin.submit(confirmation)
    assert ack == {"response_action": "clear"}
    notice = notice_of(await admin.listed(click))
    assert "Old client" in notice and newest in notice
    upgraded = await store.token_reads.get(token_id=token.id)
    assert upgraded.api_version == newest
    assert upgraded.row_version == token.row_version + 1


async def test_upgrade_on_the_newest_version_says_so_without_asking(
    admin: SlackUser, seed: Seed, store: Store, settings: Settings, standin: SlackStandIn
) -> None:
    token = (await seed("Current client")).token
    await admin.command()
    listed = await admin.click(menu_action(admin.blocks, token.id, "upgrade"))
    notice = notice_of(listed)
    assert "Current client" in notice and "already" in notice
    assert settings.tokendesk_api_versions[-1] in notice
    assert standin.calls_to("views.open") == []
    assert await store.token_reads.get(token_id=token.id) == token


# -- 7. disable / enable -----------------------------------------------------------------


async def test_disable_enable_and_reset_now(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Toggle me", contact=SPECIALIST)
    token = issued.token
    await admin.command()
    stale = admin.blocks

    listed = await admin.click(menu_action(stale, token.id, "disable"))
    assert "Toggle me" in notice_of(listed) and "disabled" in notice_of(listed)
    assert "Disabled" in card(listed, token.id).text
    assert not verifies(store, issued.secret)
    await settle(lambda: len(dms(standin)) >= 1)
    assert dm_recipients(standin) == [SPECIALIST]
    assert "Toggle me" in all_text(dms(standin)[0]) and "disabled" in all_text(dms(standin)[0])
    disabled = await store.token_reads.get(token_id=token.id)
    events = await audit_count(store)

    # The same option of the card as first shown: applied to the token as it is now.
    again = await admin.click(menu_action(stale, token.id, "disable"), blocks=stale)
    assert "already disabled" in notice_of(again)
    assert await store.token_reads.get(token_id=token.id) == disabled
    assert await audit_count(store) == events
    await settle()
    assert len(dms(standin)) == 1

    enabled = await admin.click(menu_action(admin.blocks, token.id, "enable"))
    notice = block(enabled, "notice")
    assert notice is not None and "enabled" in notice["text"]["text"]
    assert "reset it too" in notice["text"]["text"]
    assert notice["accessory"]["action_id"] == "token_reset_now"
    assert notice["accessory"]["text"]["text"] == "Reset now"
    assert verifies(store, issued.secret)
    await settle()
    assert len(dms(standin)) == 1, "enabling sends no DM"

    reset_now = action_for(enabled, "token_reset_now", block_id="notice")
    _, confirmation = await admin.open(reset_now, "token_confirm")
    assert "*Toggle me*" in all_text(confirmation) and "stop working" in all_text(confirmation)
    ack = await admin.submit(confirmation)
    secret = secret_of(ack["view"])
    assert verifies(store, secret) and not verifies(store, issued.secret)


# -- 8. delete ---------------------------------------------------------------------------


async def test_delete_confirms_removes_the_token_and_keeps_its_history(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Doomed", contact=SPECIALIST)
    keeper = await seed("Keeper")
    click, confirmation = await open_confirmation(admin, issued.token.id, "delete")
    assert "*Doomed*" in all_text(confirmation)

    ack = await admin.submit(confirmation)
    assert ack == {"response_action": "clear"}
    listed = await admin.listed(click)
    assert "Doomed" in notice_of(listed) and "deleted" in notice_of(listed)
    assert card_ids(listed) == [keeper.token.id]
    with pytest.raises(TokenNotFound):
        await store.token_reads.get(token_id=issued.token.id)
    assert not verifies(store, issued.secret)
    assert verifies(store, keeper.secret)
    history = [event.action for event in await store.audit.events(token_name="Doomed")]
    assert history == ["delete", "create"]

    await settle(lambda: len(dms(standin)) >= 1)
    assert dm_recipients(standin) == [SPECIALIST]
    assert "Doomed" in all_text(dms(standin)[0]) and "deleted" in all_text(dms(standin)[0])


# -- 9. concurrency ----------------------------------------------------------------------


async def test_two_users_resetting_at_once_one_wins_the_other_is_told(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    specialist: str,
    slack_user: Callable[[str], SlackUser],
) -> None:
    issued = await seed("Contested")
    other = slack_user(specialist)
    _, first = await open_confirmation(admin, issued.token.id, "reset")
    _, second = await open_confirmation(other, issued.token.id, "reset")

    acks = await asyncio.gather(admin.submit(first), other.submit(second))
    assert all(ack["response_action"] == "update" for ack in acks)
    shown = [ack for ack in acks if ack["view"].get("callback_id") == "token_secret"]
    told = [ack for ack in acks if ack["view"].get("callback_id") != "token_secret"]
    assert len(shown) == 1 and len(told) == 1
    secret = secret_of(shown[0]["view"])
    winner = ADMIN if shown[0] is acks[0] else specialist
    told_text = all_text(told[0]["view"])
    assert f"<@{winner}>" in told_text and "Nothing was applied" in told_text
    assert not SECRET_SHAPE.search(json.dumps(told[0]))
    assert verifies(store, secret) and not verifies(store, issued.secret)
    resets = [e for e in await store.audit.events() if e.action == "reset"]
    assert len(resets) == 1 and resets[0].actor == winner


async def test_a_click_on_a_stale_card_names_who_changed_it_and_opens_nothing(
    admin: SlackUser,
    seed: Seed,
    standin: SlackStandIn,
    store: Store,
    specialist: str,
    slack_user: Callable[[str], SlackUser],
) -> None:
    token = (await seed("Moving target")).token
    gone = (await seed("Vanishing")).token
    await admin.command()
    stale = admin.blocks
    other = slack_user(specialist)
    await other.command()
    _, form = await other.open(edit_action(other.blocks, token.id), "token_edit")
    assert (await other.submit(form, {"description": "Moved on"})) == {"response_action": "clear"}
    _, confirmation = await open_confirmation(other, gone.id, "delete")
    assert (await other.submit(confirmation)) == {"response_action": "clear"}
    changed = await store.token_reads.get(token_id=token.id)
    opened = len(standin.calls_to("views.open"))

    for choice in ("reset", "duplicate", "upgrade", "delete"):
        listed = await admin.click(menu_action(stale, token.id, choice), blocks=stale)
        notice = notice_of(listed)
        assert "Moving target" in notice and f"<@{specialist}>" in notice, notice
        assert "nothing was applied" in notice
    assert len(standin.calls_to("views.open")) == opened
    assert await store.token_reads.get(token_id=token.id) == changed

    click = await admin.send_click(menu_action(stale, gone.id, "reset"), blocks=stale)
    await settle(lambda: bool(standin.responses_to(click.sent["response_url"])))
    (post,) = standin.responses_to(click.sent["response_url"])
    assert post.accepted and post.body["replace_original"] is False
    assert "no longer exists" in post.body["text"]
    assert len(standin.calls_to("views.open")) == opened


async def test_two_users_disabling_at_once_disable_it_once(
    admin: SlackUser,
    seed: Seed,
    standin: SlackStandIn,
    store: Store,
    specialist: str,
    slack_user: Callable[[str], SlackUser],
) -> None:
    issued = await seed("Switched off", contact=STRANGER)
    other = slack_user(specialist)
    await admin.command()
    await other.command()
    events = await audit_count(store)

    clicks = await asyncio.gather(
        admin.send_click(menu_action(admin.blocks, issued.token.id, "disable")),
        other.send_click(menu_action(other.blocks, issued.token.id, "disable")),
    )
    notices = [notice_of(await d.listed(c)) for d, c in zip((admin, other), clicks, strict=True)]
    assert sum("already disabled" in notice for notice in notices) == 1
    assert await audit_count(store) == events + 1
    await settle(lambda: len(dms(standin)) >= 1)
    assert dm_recipients(standin) == [STRANGER]
    assert not verifies(store, issued.secret)


# -- 10. repeats -------------------------------------------------------------------------


async def test_a_create_delivered_twice_creates_one_token(admin: SlackUser, store: Store) -> None:
    await admin.command()
    _, form = await admin.open(create_action(admin.blocks), "token_create")
    values = {"name": "Once only", "access_rights": ["reports:read"]}

    first = await admin.submit(form, values)
    second = await admin.submit(form, values)
    secret = secret_of(first["view"])
    assert second["response_action"] == "update"
    assert "already created" in all_text(second["view"])
    assert not SECRET_SHAPE.search(json.dumps(second))
    assert store.token_reads.count == 1 and verifies(store, secret)

    # A double click: both deliveries at once.
    _, form = await admin.open(create_action(admin.blocks), "token_create")
    values = {"name": "Twice clicked", "access_rights": ["reports:read"]}
    acks = await asyncio.gather(admin.submit(form, values), admin.submit(form, values))
    secrets = [ack for ack in acks if ack["view"]["callback_id"] == "token_secret"]
    assert len(secrets) == 1 and store.token_reads.count == 2
    assert [e.action for e in await store.audit.events()].count("create") == 2


async def test_a_confirmation_delivered_twice_is_applied_once(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Reset once")
    _, confirmation = await open_confirmation(admin, issued.token.id, "reset")
    first = await admin.submit(confirmation)
    second = await admin.submit(confirmation)
    secret = secret_of(first["view"])
    assert second["response_action"] == "update"
    assert "already done" in all_text(second["view"])
    assert not SECRET_SHAPE.search(json.dumps(second))
    assert verifies(store, secret)
    token = await store.token_reads.get(token_id=issued.token.id)
    assert token.row_version == issued.token.row_version + 1
    assert [e.action for e in await store.audit.events()].count("reset") == 1
    await settle(lambda: len(dms(standin)) >= 1)
    assert len(dms(standin)) == 1


# -- the list a modal came from keeps its filters and page ---------------------------------


async def test_the_refreshed_list_keeps_the_filter_and_the_page_it_was_opened_from(
    admin: SlackUser, seed: Seed
) -> None:
    for index in range(12):
        await seed(f"Bulk {index:02}")
    alpha = await seed("Alpha one")
    await seed("Alpha two")

    listed = await admin.command("search alpha")
    assert len(card_ids(listed)) == 2
    click, confirmation = await admin.open(
        menu_action(listed, alpha.token.id, "reset"), "token_confirm"
    )
    secret_of((await admin.submit(confirmation))["view"])
    refreshed = await admin.listed(click)
    assert len(card_ids(refreshed)) == 2 and alpha.token.id in card_ids(refreshed)
    search = next(b for b in refreshed if str(b.get("block_id", "")).startswith("search."))
    assert search["element"]["initial_value"] == "alpha"

    await admin.command()
    page_two = await admin.click(action_for(admin.blocks, "page_next"))
    on_page_two = card_ids(page_two)
    assert len(on_page_two) == 4
    click, confirmation = await admin.open(
        menu_action(page_two, on_page_two[0], "delete"), "token_confirm"
    )
    assert (await admin.submit(confirmation)) == {"response_action": "clear"}
    refreshed = await admin.listed(click)
    assert card_ids(refreshed) == on_page_two[1:]
    range_block = block(refreshed, "range")
    assert range_block is not None and "11–13 of 13" in range_block["elements"][0]["text"]


async def test_a_crafted_api_version_is_ignored_a_new_token_gets_the_newest(
    admin: SlackUser, store: Store, settings: Settings
) -> None:
    await admin.command()
    _, form = await admin.open(create_action(admin.blocks), "token_create")
    state = fill(form, {"name": "Versioned", "access_rights": ["reports:read"]})
    oldest = settings.tokendesk_api_versions[0]
    state["api_version"]["api_version"]["selected_option"] = {
        "text": {"type": "plain_text", "text": oldest},
        "value": oldest,
    }
    reply = await admin.send_submission(form, state=state)
    authorized = verify(store, secret_of(reply.body["view"]))
    assert authorized is not None
    assert authorized.api_version == settings.tokendesk_api_versions[-1]


async def test_a_failed_list_refresh_does_not_stop_the_disable_or_its_dm(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Off anyway", contact=SPECIALIST)
    await admin.command()
    standin.fail_next("response_url", error="internal_error", status=500)
    await admin.send_click(menu_action(admin.blocks, issued.token.id, "disable"))
    await settle(lambda: len(dms(standin)) >= 1)
    assert not verifies(store, issued.secret)
    assert dm_recipients(standin) == [SPECIALIST]


# -- 11. search by a pasted secret -------------------------------------------------------


async def test_searching_a_real_secret_offers_a_reset_without_echoing_it(
    admin: SlackUser, seed: Seed, standin: SlackStandIn, captured_log: io.StringIO
) -> None:
    leaked = await seed("Leaked one")
    await seed("Bystander")
    listed = await admin.command(f"search {leaked.secret}")
    assert card_ids(listed) == [leaked.token.id]
    notice = block(listed, "notice")
    assert notice is not None and "Leaked one" in notice["text"]["text"]
    assert notice["accessory"]["action_id"] == "token_reset_now"

    _, confirmation = await admin.open(
        action_for(listed, "token_reset_now", block_id="notice"), "token_confirm"
    )
    assert "*Leaked one*" in all_text(confirmation)
    await settle()
    for value in (leaked.secret, leaked.secret[RANDOM_PART]):
        assert value not in json.dumps(admin.acks)
        assert value not in json.dumps([call.args for call in standin.calls])
        assert value not in json.dumps([post.body for post in standin.responses])
        assert value not in captured_log.getvalue()


async def test_a_secret_pasted_into_create_is_not_prefilled(
    admin: SlackUser, seed: Seed, standin: SlackStandIn
) -> None:
    pasted = (await seed("Pasted")).secret
    reply = await admin.send_command(f"create {pasted}")
    form = await admin.opened(reply, "token_create")
    assert block_in(form, "name")["element"].get("initial_value") in (None, "")
    for value in (pasted, pasted[RANDOM_PART]):
        assert value not in json.dumps([call.args for call in standin.calls])
        assert value not in json.dumps(reply.body)


# -- 12. a user without a role -----------------------------------------------------------


async def replay(slack: SlackClient, payload: Body, user: str) -> Reply:
    """The exact payload another user's click produced, sent again as `user`."""
    forged = {**payload, "user": {"id": user, "username": user.lower(), "name": user.lower()}}
    return await send_payload(slack, forged)


async def state_of(store: Store, secrets: list[str]) -> tuple[Any, ...]:
    page = await store.token_reads.page(limit=100)
    return (
        tuple((t.id, t.row_version, t.enabled) for t in page.tokens),
        tuple(verifies(store, secret) for secret in secrets),
        await audit_count(store),
    )


async def test_a_user_without_a_role_replaying_real_payloads_changes_nothing(
    admin: SlackUser,
    seed: Seed,
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    slack_user: Callable[[str], SlackUser],
) -> None:
    target = await seed("Guarded", contact=SPECIALIST)
    await admin.command()
    blocks = admin.blocks
    clicks: list[Reply] = []
    views: dict[str, Body] = {}
    click, views["create"] = await admin.open(create_action(blocks), "token_create")
    clicks.append(click)
    click, views["edit"] = await admin.open(edit_action(blocks, target.token.id), "token_edit")
    clicks.append(click)
    for choice in ("duplicate", "reset", "delete"):
        click, views[choice] = await admin.open(
            menu_action(blocks, target.token.id, choice), "token_confirm"
        )
        clicks.append(click)
    for choice in ("upgrade", "disable"):
        clicks.append(await admin.send_click(menu_action(admin.blocks, target.token.id, choice)))
        await admin.listed(clicks[-1])
    clicks.append(await admin.send_click(menu_action(admin.blocks, target.token.id, "enable")))
    enabled = await admin.listed(clicks[-1])
    clicks.append(await admin.send_click(action_for(enabled, "token_reset_now", block_id="notice")))
    await settle(lambda: len(standin.calls_to("views.open")) == 6)
    # Opened after Disable and Enable moved the row version: the one still current.
    views["reset now"] = standin.latest_view("token_confirm")

    before = await state_of(store, [target.secret])
    calls_before = {m: len(standin.calls_to(m)) for m in ("views.open", "chat.postMessage")}
    posts_before = len(standin.responses)

    for click in clicks:
        replayed = await replay(slack, click.sent, STRANGER)
        assert replayed.status == 200 and replayed.body == ""
    await settle(lambda: len(standin.responses) >= posts_before + len(clicks))
    refusals = standin.responses[posts_before:]
    assert len(refusals) == len(clicks)
    for post in refusals:
        assert post.accepted and post.body["replace_original"] is False
        assert refused(post.body["text"])
        assert "Guarded" not in json.dumps(post.body)

    submissions: dict[str, dict[str, Any]] = {
        "create": {"name": "Stranger's own", "access_rights": ["reports:read"]},
        "edit": {"description": "Taken over", "primary_contact": STRANGER},
        "duplicate": {},
        "reset": {},
        "delete": {},
        "reset now": {},
    }
    stranger = slack_user(STRANGER)
    for kind, values in submissions.items():
        reply = await stranger.send_submission(views[kind], values)
        assert reply.body["response_action"] == "update"
        assert refused(all_text(reply.body["view"]))
        assert not SECRET_SHAPE.search(json.dumps(reply.body))
        assert "Guarded" not in json.dumps(reply.body)

    await settle()
    assert await state_of(store, [target.secret]) == before
    for method, count in calls_before.items():
        assert len(standin.calls_to(method)) == count, f"{method} called for a stranger"

    # The very confirmation the stranger submitted works for the admin ...
    applied = await admin.send_submission(views["reset now"])
    new_secret = secret_of(applied.body["view"])
    after_admin = await state_of(store, [target.secret, new_secret])
    assert after_admin[1] == (False, True)
    # ... and the admin's own submission payloads, replayed by the stranger, do nothing.
    await admin.command()
    _, fresh_form = await admin.open(edit_action(admin.blocks, target.token.id), "token_edit")
    edited = await admin.send_submission(fresh_form, {"description": "Admin's words"})
    assert edited.body == {"response_action": "clear"}
    after_admin = await state_of(store, [target.secret, new_secret])
    for reply in (applied, edited):
        replayed = await replay(slack, reply.sent, STRANGER)
        assert replayed.body["response_action"] == "update"
        assert refused(all_text(replayed.body["view"]))
        assert not SECRET_SHAPE.search(json.dumps(replayed.body))
    await settle()
    assert await state_of(store, [target.secret, new_secret]) == after_admin
    assert (await store.token_reads.get(token_id=target.token.id)).description == "Admin's words"


async def test_the_role_is_checked_again_when_a_modal_is_submitted(
    seed: Seed,
    standin: SlackStandIn,
    store: Store,
    specialist: str,
    slack_user: Callable[[str], SlackUser],
) -> None:
    issued = await seed("Revoked midway")
    other = slack_user(specialist)
    _, confirmation = await open_confirmation(other, issued.token.id, "reset")
    await other.command()
    _, form = await other.open(create_action(other.blocks), "token_create")
    await store.roles.revoke_user(actor=ADMIN, user_id=specialist)
    before = await state_of(store, [issued.secret])

    for view, values in ((confirmation, {}), (form, {"name": "Late", "access_rights": []})):
        ack = await other.submit(view, values)
        assert ack["response_action"] == "update"
        assert refused(all_text(ack["view"]))
    await settle()
    assert await state_of(store, [issued.secret]) == before
    assert dms(standin) == []


# -- 13. secrets never leak --------------------------------------------------------------


async def test_secrets_never_leak_anywhere(
    admin: SlackUser,
    store: Store,
    standin: SlackStandIn,
    settings: Settings,
    captured_log: io.StringIO,
) -> None:
    await admin.command()
    click, form = await admin.open(create_action(admin.blocks), "token_create")
    secret_views: list[Body] = []
    created = await admin.submit(form, {"name": "Leak check", "access_rights": ["reports:read"]})
    secret_views.append(created["view"])
    token = (await store.token_reads.page()).tokens[0]
    await admin.listed(click)
    for choice in ("duplicate", "reset"):
        click, confirmation = await open_confirmation(admin, token.id, choice)
        ack = await admin.submit(confirmation)
        secret_views.append(ack["view"])
        await admin.listed(click)
    await settle(lambda: len(dms(standin)) >= 1)
    issued = [secret_of(view) for view in secret_views]
    assert len(set(issued)) == 3

    other_views = [
        ack["view"]
        for ack in admin.acks
        if "view" in ack and ack["view"].get("callback_id") != "token_secret"
    ]
    other_views += [call.args.get("view") for call in standin.calls if "views." in call.method]
    other_views += list(standin.views.values())
    events = await store.audit.events(limit=10_000)
    places = {
        "log": captured_log.getvalue(),
        "DMs": json.dumps([call.args for call in standin.calls_to("chat.postMessage")]),
        "Web API calls": json.dumps([call.args for call in standin.calls], default=str),
        "response_url posts": json.dumps([post.body for post in standin.responses]),
        "other views": json.dumps(other_views),
        "list acks": json.dumps([ack for ack in admin.acks if "blocks" in ack]),
        "audit": repr(events) + json.dumps([[e.before, e.after] for e in events]),
    }
    database = settings.tokendesk_db
    files = sorted(database.parent.glob(f"{database.name}*"))
    assert database in files
    raw = {f"file {path.name}": path.read_bytes() for path in files}
    for value in issued:
        for piece in (value, value[RANDOM_PART]):
            for where, text in places.items():
                assert piece not in text, f"a secret in the {where}"
            for where, data in raw.items():
                assert piece.encode() not in data, f"a secret in the {where}"
    assert "tdk_" not in captured_log.getvalue().replace("tdk_[masked]", "")


# -- 14. hostile names -------------------------------------------------------------------


async def test_hostile_names_render_harmlessly_everywhere(
    admin: SlackUser, store: Store, standin: SlackStandIn
) -> None:
    await admin.command()
    click, form = await admin.open(create_action(admin.blocks), "token_create")
    created = await admin.submit(
        form,
        {"name": HOSTILE_NAME, "access_rights": ["reports:read"], "primary_contact": SPECIALIST},
    )
    secret_of(created["view"])
    await admin.listed(click)
    token = (await store.token_reads.page()).tokens[0]
    assert token.name == HOSTILE_NAME

    click, confirmation = await open_confirmation(admin, token.id, "duplicate")
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in all_text(confirmation)
    copy_secret = secret_of((await admin.submit(confirmation))["view"])
    await admin.listed(click)
    copy = verify(store, copy_secret)
    assert copy is not None and copy.name == f"{HOSTILE_NAME} (copy)"

    click, confirmation = await open_confirmation(admin, token.id, "reset")
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in all_text(confirmation)
    secret_of((await admin.submit(confirmation))["view"])
    await admin.listed(click)

    await admin.command()
    await admin.click(menu_action(admin.blocks, token.id, "upgrade"))
    await admin.click(menu_action(admin.blocks, copy.id, "disable"))
    await admin.click(menu_action(admin.blocks, copy.id, "enable"))

    click, confirmation = await open_confirmation(admin, token.id, "delete")
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in all_text(confirmation)
    assert (await admin.submit(confirmation)) == {"response_action": "clear"}
    await admin.listed(click)
    # DMs: the reset (contact and actor), the copy disabled, the original deleted.
    await settle(lambda: len(dms(standin)) >= 4)
    assert len(dms(standin)) == 4

    surfaces: list[Body] = [*admin.acks]
    surfaces += [call.args["view"] for call in standin.calls_to("views.open")]
    surfaces += [post.body for post in standin.responses]
    surfaces += dms(standin)
    for surface in surfaces:
        assert_harmless(surface)
        assert_harmless(surface.get("view"))
    escaped = "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert all(escaped in message["text"] for message in dms(standin))
    assert any(escaped in all_text(ack.get("view")) for ack in admin.acks if "view" in ack)

    for call in standin.calls:
        assert call.ok, (call.method, call.answer)
        if call.method == "chat.postMessage":
            assert check_message(call.args) == []
        if call.method.startswith("views."):
            assert check_view(call.args["view"]) == []
    for post in standin.responses:
        assert post.accepted and check_message(post.body) == []
    for ack in admin.acks:
        if "view" in ack:
            assert check_view(ack["view"]) == []


# -- 15. an expired or foreign response_url ----------------------------------------------


def with_metadata(view: Body, **changes: Any) -> Body:
    metadata = json.loads(view["private_metadata"])
    return {**view, "private_metadata": json.dumps({**metadata, **changes})}


async def test_an_expired_list_is_not_refreshed_and_the_user_is_told(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn
) -> None:
    issued = await seed("Old list")
    click, confirmation = await open_confirmation(admin, issued.token.id, "reset")
    url = click.sent["response_url"]
    assert json.loads(confirmation["private_metadata"])["response_url"] == url
    aged = with_metadata(confirmation, response_url_at=time.time() - 45 * 60)

    ack = await admin.submit(aged)
    secret = secret_of(ack["view"])
    assert verifies(store, secret)
    assert RUN_AGAIN in all_text(ack["view"])
    await settle()
    assert standin.responses_to(url) == []

    click, confirmation = await open_confirmation(admin, issued.token.id, "delete")
    url = click.sent["response_url"]
    ack = await admin.submit(with_metadata(confirmation, response_url_at=time.time() - 45 * 60))
    assert ack["response_action"] == "update"
    assert "Old list" in all_text(ack["view"]) and RUN_AGAIN in all_text(ack["view"])
    await settle()
    assert standin.responses_to(url) == []
    assert store.token_reads.count == 0


async def test_a_response_url_elsewhere_is_never_posted_to(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    standin: SlackStandIn,
    monkeypatch: pytest.MonkeyPatch,
    elsewhere: tuple[str, list[str]],
) -> None:
    elsewhere_url, received = elsewhere
    followed: list[str] = []
    real_replace = slack_client.replace_message

    async def spy(url: str, message: Message) -> bool:
        followed.append(url)
        return await real_replace(url, message)

    monkeypatch.setattr("bot.list_message.replace_message", spy)
    issued = await seed("Redirected")
    targets = ("https://evil.example/x", f"{elsewhere_url}/response/x")
    for target in targets:
        click, confirmation = await open_confirmation(admin, issued.token.id, "reset")
        ack = await admin.submit(with_metadata(confirmation, response_url=target))
        secret = secret_of(ack["view"])
        assert verifies(store, secret)
        assert RUN_AGAIN in all_text(ack["view"])
        await settle()
        assert standin.responses_to(click.sent["response_url"]) == []
    for target in targets:
        click, confirmation = await open_confirmation(admin, issued.token.id, "duplicate")
        forged = with_metadata(confirmation, response_url=target)
        secret_of((await admin.submit(forged))["view"])
    click, confirmation = await open_confirmation(admin, issued.token.id, "delete")
    ack = await admin.submit(with_metadata(confirmation, response_url=targets[0]))
    assert ack["response_action"] == "update" and RUN_AGAIN in all_text(ack["view"])
    await settle()
    assert followed == [] and received == []
    assert standin.responses == []


async def test_a_response_url_only_one_url_parser_sends_to_slack_is_not_followed(
    admin: SlackUser, seed: Seed, store: Store, standin: SlackStandIn, captured_log: io.StringIO
) -> None:
    """`urlsplit` reads this authority as hooks.slack.com; the HTTP client refuses it (and
    a WHATWG parser would go to evil.example). Such metadata is malformed: not followed,
    and no failure in the background."""
    issued = await seed("Backslashed")
    click, confirmation = await open_confirmation(admin, issued.token.id, "reset")
    crafted = "https://evil.example\\@hooks.slack.com/actions/x"
    ack = await admin.submit(with_metadata(confirmation, response_url=crafted))
    assert verifies(store, secret_of(ack["view"]))
    await settle()
    assert standin.responses == []
    log = captured_log.getvalue()
    assert "background work failed" not in log and "Traceback" not in log, log
    assert RUN_AGAIN in all_text(ack["view"])


# -- 16. a failed DM ---------------------------------------------------------------------


@pytest.mark.parametrize("error", ["channel_not_found", "user_disabled"])
async def test_a_failed_dm_is_logged_and_the_reset_stands(
    admin: SlackUser,
    seed: Seed,
    store: Store,
    standin: SlackStandIn,
    captured_log: io.StringIO,
    error: str,
) -> None:
    issued = await seed("Unreachable", contact=SPECIALIST)
    click, confirmation = await open_confirmation(admin, issued.token.id, "reset")
    standin.fail_next("chat.postMessage", error=error, status=200)

    ack = await admin.submit(confirmation)
    secret = secret_of(ack["view"])
    assert verifies(store, secret) and not verifies(store, issued.secret)
    assert "Unreachable" in notice_of(await admin.listed(click))
    await settle(lambda: "not delivered" in captured_log.getvalue())
    await settle(lambda: len(dms(standin)) >= 1)

    log = captured_log.getvalue()
    assert f"direct message to {SPECIALIST} not delivered" in log
    assert error in log
    assert secret not in log and issued.secret not in log
    assert dm_recipients(standin) == [ADMIN]
    token: Token = await store.token_reads.get(token_id=issued.token.id)
    assert token.reset_at is not None
