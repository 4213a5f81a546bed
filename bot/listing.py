"""The token list as a whole: reads the store for a ListView and renders the message."""

from __future__ import annotations

import secrets

from bot.blocks.common import Message
from bot.blocks.token_list import Notice, render_token_list
from bot.list_view import PAGE_SIZE, ListView
from bot.text import escape
from storage.credentials import secret_shaped
from storage.models import TokenFilter
from storage.store import Store


async def _secret_search(store: Store, view: ListView) -> tuple[ListView, Notice | None]:
    """A pasted secret is never searched for by name, nor shown back in the search box:
    it finds its own token by HMAC, or says that no token has it."""
    candidate = secret_shaped(view.filters.name)
    if candidate is None:
        return view, None
    token = await store.tokens.find_by_secret(secret=candidate)
    if token is None:
        return ListView(), Notice(
            ":mag: That looks like a Token Desk secret, but no token has it"
            " (it may have been reset, or the token deleted)."
        )
    return ListView(filters=TokenFilter(name=token.name)), Notice(
        f":rotating_light: That secret belongs to *{escape(token.name)}*. If it was exposed,"
        " reset it now: integrations using the current value will stop working.",
        offer_reset=token,
    )


async def list_message(store: Store, *, view: ListView, notice: Notice | None = None) -> Message:
    """The list for `view`, with `notice` in its notice area."""
    view, search_notice = await _secret_search(store, view)
    notice = notice or search_notice
    page = await store.tokens.page(filters=view.filters, offset=view.offset, limit=PAGE_SIZE)
    if not page.tokens and page.total > 0:
        # The page emptied since it was shown (tokens deleted, filters changed): show the last.
        view = view.at((page.total - 1) // PAGE_SIZE * PAGE_SIZE)
        page = await store.tokens.page(filters=view.filters, offset=view.offset, limit=PAGE_SIZE)
    return render_token_list(
        page=page,
        view=view,
        newest_version=store.tokens.newest_version,
        api_access=store.tokens.api_access,
        notice=notice,
        nonce=secrets.token_hex(3),
    )
