"""Where the outcome of a click or a modal submission is shown: one action path, three
surfaces.

A click is answered where it came from: in the DM about tokens (a reminder or a leak report,
updated with chat.update), on Home (published again with the notice, passing the `hash` of
the view clicked), or in the list (replaced through the click's response_url). A modal
carries where it was opened from (bot/inputs/modal_context.py) and its outcome goes there.
Then, wherever the change was made, its maker's Home follows: published again as it now is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.background import Respond, after_ack
from bot.blocks.token_list import Notice
from bot.home import HomeTab
from bot.inputs.modal_context import ModalContext, TokenDm
from bot.inputs.payloads import clicker_of, home_click_of, list_view_of, response_url_of
from bot.list_message import refresh_list
from bot.token_dm import update_token_dm
from storage.store import Store


@dataclass(frozen=True, slots=True)
class Surface:
    """Where a click came from (`body`), to answer it there."""

    body: Mapping[str, Any]
    client: AsyncWebClient
    store: Store
    home: HomeTab

    async def show(self, notice: Notice) -> None:
        """Answer the click with `notice` where it came from; then the clicker's Home."""
        clicker = clicker_of(self.body)
        home_click = home_click_of(self.body)
        if home_click is not None:
            if clicker is not None:
                await self.home.publish(clicker, notice=notice, view_hash=home_click.view_hash)
            return
        dm = TokenDm.of_click(self.body)
        if dm is not None:
            await update_token_dm(self.client, self.store, dm, notice)
        else:
            view = list_view_of(self.body)
            url = response_url_of(self.body)
            session = self.client.session
            await refresh_list(self.store, url, view=view, notice=notice, session=session)
        if clicker is not None:
            await self.home.publish(clicker)


def home_teller(body: Mapping[str, Any], home: HomeTab) -> Respond | None:
    """For a click on Home, which has no response_url for Bolt's `respond`: how its clicker
    is told something (a failure after the ack, an error) — Home published again with it.
    Rendered from the store then, it needs no hash: the view clicked may not even be theirs.
    None for a click elsewhere."""
    clicker = clicker_of(body)
    if home_click_of(body) is None or clicker is None:
        return None

    async def tell_on_home(*, text: str = "", **_: Any) -> None:
        await home.publish(clicker, notice=Notice(text))

    return tell_on_home


@dataclass(frozen=True, slots=True)
class ModalOrigin:
    """Where a submitted modal was opened from (its `context`) and who submitted it, to
    show the outcome there."""

    context: ModalContext
    actor: str
    client: AsyncWebClient
    store: Store
    home: HomeTab
    api_url: str

    def show(self, notice: Notice, *, now: float) -> bool:
        """After the ack, show `notice` where the modal was opened from, then publish the
        actor's Home; whether that surface can be reached (a list's response_url lasts 30
        minutes)."""
        context = self.context
        if context.home:
            after_ack(self.home.publish(self.actor, notice=notice), respond=None)
            return True
        reached = True
        if context.dm is not None:
            after_ack(update_token_dm(self.client, self.store, context.dm, notice), respond=None)
        else:
            url = context.usable_response_url(api_url=self.api_url, now=now)
            if url is None:
                reached = False
            else:
                refresh = refresh_list(
                    self.store,
                    url,
                    view=context.list_view,
                    notice=notice,
                    session=self.client.session,
                )
                after_ack(refresh, respond=None)
        self.home.publish_soon(self.actor)
        return reached
