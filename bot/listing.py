"""The token list as a whole: reads the store for a ListView and renders the message."""

from __future__ import annotations

import secrets
from dataclasses import replace

from bot.blocks.common import Message
from bot.blocks.token_list import Notice, render_token_list
from bot.list_view import NAME_FILTER_MAX, PAGE_SIZE, ListView
from bot.text import escape
from storage.credentials import has_secret_part, secret_shaped
from storage.models import TokenFilter, TokenPage
from storage.store import Store


async def list_message(store: Store, *, view: ListView, notice: Notice | None = None) -> Message:
    """The list for `view`, with `notice` in its notice area.

    A pasted secret is never searched for by name nor shown back in the search box: a whole
    one finds its own token by HMAC, and that card alone is shown; a piece of one is refused."""
    candidate = secret_shaped(view.filters.name)
    if candidate is not None:
        token = await store.tokens.find_by_secret(secret=candidate)
        if token is not None:
            return _render(
                store,
                TokenPage(tokens=(token,), total=1, offset=0),
                ListView(filters=TokenFilter(name=token.name)),
                Notice(
                    f":rotating_light: That secret belongs to *{escape(token.name)}*. If it"
                    " was exposed, reset it now: integrations using the current value will"
                    " stop working.",
                    offer_reset=token,
                ),
            )
    if has_secret_part(view.filters.name):
        view, notice = (
            ListView(),
            Notice(
                ":mag: That looks like a Token Desk secret, or part of one, but no token has it"
                " (it may have been reset, or the token deleted). Search by name instead."
            ),
        )
    view = replace(view, filters=replace(view.filters, name=view.filters.name[:NAME_FILTER_MAX]))
    page = await store.tokens.page(filters=view.filters, offset=view.offset, limit=PAGE_SIZE)
    if not page.tokens and page.total > 0:
        # The page emptied since it was shown (tokens deleted, filters changed): show the last.
        view = view.at((page.total - 1) // PAGE_SIZE * PAGE_SIZE)
        page = await store.tokens.page(filters=view.filters, offset=view.offset, limit=PAGE_SIZE)
    return _render(store, page, view, notice)


def _render(store: Store, page: TokenPage, view: ListView, notice: Notice | None) -> Message:
    return render_token_list(
        page=page,
        view=view,
        newest_version=store.tokens.newest_version,
        api_access=store.tokens.api_access,
        notice=notice,
        nonce=secrets.token_hex(3),
    )
