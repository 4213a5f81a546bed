"""The token list as a message: read from the store for a ListView and handed to the pure
builder (bot/blocks/token_list.py); and shown again in place, through a response_url.

A pasted secret is never searched for by name nor shown back in the search box: a whole one
finds its own token by HMAC, and that card alone is shown; a piece of one is refused.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime

from aiohttp import ClientSession

from bot.blocks import notices
from bot.blocks.common import Message
from bot.blocks.token_list import Notice, render_token_list
from bot.list_view import NAME_FILTER_MAX, PAGE_SIZE, ListView
from bot.slack_client import replace_message
from storage.credentials import has_secret_part, secret_shaped
from storage.models import TokenFilter, TokenPage
from storage.store import Store


async def list_message(store: Store, *, view: ListView, notice: Notice | None = None) -> Message:
    """The list for `view`, with `notice` in its notice area."""
    candidate = secret_shaped(view.filters.name)
    if candidate is not None:
        token = await store.token_reads.find_by_secret(secret=candidate)
        if token is not None:
            return _render(
                store,
                TokenPage(tokens=(token,), total=1, offset=0),
                ListView(filters=TokenFilter(name=token.name)),
                notices.secret_found(token),
            )
    if has_secret_part(view.filters.name):
        view, notice = ListView(), notices.secret_unknown()
    view = replace(view, filters=replace(view.filters, name=view.filters.name[:NAME_FILTER_MAX]))
    page = await store.token_reads.page(filters=view.filters, offset=view.offset, limit=PAGE_SIZE)
    if not page.tokens and page.total > 0:
        # The page emptied since it was shown (tokens deleted, filters changed): show the last.
        view = view.at((page.total - 1) // PAGE_SIZE * PAGE_SIZE)
        page = await store.token_reads.page(
            filters=view.filters, offset=view.offset, limit=PAGE_SIZE
        )
    return _render(store, page, view, notice)


async def refresh_list(
    store: Store,
    response_url: str | None,
    *,
    view: ListView,
    notice: Notice | None = None,
    session: ClientSession | None = None,
) -> None:
    """Replace the list behind `response_url` (an ephemeral message has no other handle),
    posted on `session`'s connections if given (bot/slack_client.py, `replace_message`)."""
    if response_url is not None:
        message = await list_message(store, view=view, notice=notice)
        await replace_message(response_url, message, session=session)


def _render(store: Store, page: TokenPage, view: ListView, notice: Notice | None) -> Message:
    return render_token_list(
        page=page,
        view=view,
        newest_version=store.token_reads.newest_version,
        api_access=store.account.api_access,
        now=datetime.fromtimestamp(store.clock(), UTC),
        expiry_required=store.max_lifetime_days > 0,
        notice=notice,
        nonce=secrets.token_hex(3),
    )
