"""What tests ask of a store that the app never does, built on the store's own API."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from storage.errors import TokenNotFound
from storage.models import AuthorizedToken, Token
from storage.store import Store
from storage.token_reads import PAGE_MAX


def days_ahead(days: int = 90, *, clock: Callable[[], float] = time.time) -> date:
    """The UTC date `days` after the clock's today: an expiry within the default maximum."""
    return datetime.fromtimestamp(clock(), UTC).date() + timedelta(days=days)


def verify(store: Store, secret: str, sid: str | None = None) -> AuthorizedToken | None:
    """The token the auth check lets `secret` (and `sid`, if given) through as, or None."""
    return store.credentials.check(secret, sid).token


async def tokens_by_sid(store: Store) -> dict[str, Token]:
    """Every token, by SID, read page by page as the list reads them."""
    found: dict[str, Token] = {}
    while True:
        page = await store.token_reads.page(offset=len(found), limit=PAGE_MAX)
        found.update((token.sid, token) for token in page.tokens)
        if len(page.tokens) < PAGE_MAX:
            return found


async def token_by_sid(store: Store, sid: str) -> Token:
    """The token with this SID, or TokenNotFound."""
    try:
        return (await tokens_by_sid(store))[sid]
    except KeyError:
        raise TokenNotFound() from None
