"""API access for the whole account: `/tokens access on|off`, the confirmation of turning it
off, and the list banner's Enable API Access. Both roles may switch it; each switch is told
to the alerts channel, if there is one (bot/alerts.py)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import alerts
from bot.background import after_ack
from bot.blocks import administration as replies
from bot.blocks import notices
from bot.home import HomeTab
from bot.ids import ActionId
from bot.inputs.command_text import switch
from bot.listeners.subcommand import SubCommand
from bot.settings import Settings
from bot.surfaces import Surface
from storage.store import Store


def register(app: AsyncApp) -> None:
    app.action(ActionId.API_ACCESS_OFF)(access_off_confirmed)
    app.action(ActionId.API_ACCESS_KEEP)(access_off_cancelled)
    app.action(ActionId.ENABLE_API_ACCESS)(api_access_enabled)


async def access_command(command: SubCommand) -> None:
    """`on` switches at once; `off` asks first, since every integration then stops."""
    store = command.store
    wanted = switch(command.parsed)
    if wanted is True:
        changed = await store.account.set_api_access(actor=command.actor, enabled=True)
        await command.reply(text=replies.access_switched_on(changed=changed))
        if changed:
            alert = alerts.api_access_switched(
                command.client, command.settings, actor=command.actor, enabled=True
            )
            after_ack(alert, respond=None)
    elif wanted is False and not store.account.api_access:
        await command.reply(text=replies.ACCESS_ALREADY_OFF)
    elif wanted is False:
        await command.reply(**replies.access_off_confirmation().as_dict())
    else:
        await command.reply(text=replies.access_state(on=store.account.api_access))


async def access_off_confirmed(
    ack: AsyncAck,
    respond: AsyncRespond,
    client: AsyncWebClient,
    store: Store,
    settings: Settings,
    actor: str,
) -> None:
    await ack()

    async def turn_off() -> None:
        changed = await store.account.set_api_access(actor=actor, enabled=False)
        await respond(
            replace_original=True, response_type="ephemeral", text=replies.ACCESS_TURNED_OFF
        )
        if changed:
            await alerts.api_access_switched(client, settings, actor=actor, enabled=False)

    after_ack(turn_off(), respond=respond)


async def access_off_cancelled(ack: AsyncAck, respond: AsyncRespond) -> None:
    await ack()
    after_ack(respond(delete_original=True), respond=respond)


async def api_access_enabled(
    ack: AsyncAck,
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    store: Store,
    settings: Settings,
    home: HomeTab,
    actor: str,
) -> None:
    """The banner's button, on the list or on Home: answered there."""
    await ack()

    async def enable() -> None:
        changed = await store.account.set_api_access(actor=actor, enabled=True)
        surface = Surface(body, client=client, store=store, home=home)
        await surface.show(notices.api_access_on())
        if changed:
            await alerts.api_access_switched(client, settings, actor=actor, enabled=True)

    after_ack(enable(), respond=respond)
