"""`/auth/check` for the agency's API gateway.

Any method (an nginx `auth_request` subrequest works as is), `Authorization: Bearer <secret>`
or `Basic base64(<SID>:<secret>)`. One identical 401 for every failure (an expired token's
too), so the endpoint is no oracle; the reason goes to a debug log line, without the secret.

What a 200 says of the token is in headers as well as in the JSON body, because gateways
forward headers, not bodies: `X-Token-Sid`, `X-Token-Api-Version`, `X-Token-Scopes` (the
access rights, comma-separated), `X-Token-Secret-Used` and, when the token expires,
`X-Token-Expires` (its stop instant, RFC 3339 UTC). `secret_used` / `X-Token-Secret-Used`
say which of the token's secrets matched: `current`, or `previous` during the grace window
a Reset left it.

A retired secret (replaced by a Reset, or out of its grace window, kept as a digest for 30
days) gets the very same 401, but who presented it (the client address and `User-Agent`)
is handed to the store, which counts it in memory: its owners learn which integrations
still use it, and the check pays for that only on this refusal.

With several instances on PostgreSQL, an instance that cannot be sure it has applied every
committed change (its currency lease lapsed: storage/currency.py) answers `503 {"active":
false}` with `Retry-After: 1` instead, so that a revoked secret is never approved. So does
a token's first check since start-up on SQLite when the database cannot give its row at
once (another process holding it: storage/credential_index.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web

from bot.inputs.gateway import client_address, user_agent
from storage.credential_index import RETIRED
from storage.errors import StoreBusy
from storage.models import AuthorizedToken
from storage.store import Store

logger = logging.getLogger(__name__)
STORE = web.AppKey("auth_check_store", Store)
# Why a 401 was answered (the reason its debug line gives), for bot/metrics.py to count.
REFUSAL = web.ResponseKey("auth_check_refusal", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NO_STORE = {"Cache-Control": "no-store"}
DENIED_HEADERS = NO_STORE | {
    "WWW-Authenticate": 'Bearer realm="tokendesk", Basic realm="tokendesk"'
}
# On PostgreSQL, while this instance cannot be sure it knows every committed change: the
# gateway tries another instance (or again in a second).
UNAVAILABLE_HEADERS = NO_STORE | {"Retry-After": "1"}
_HEADER_MAX = 512
# What `web.json_response` answers with: the 200 says the same as the refusals.
JSON_TYPE = "application/json; charset=utf-8"
# Answers kept ready for this many tokens: the check answers busy tokens over and over.
_ANSWERS_KEPT = 4096


# Every refusal says the same, encoded once: a flood of unknown secrets costs no JSON work.
_INACTIVE = json.dumps({"active": False}).encode()
_DENIED_ANSWER = DENIED_HEADERS | {"Content-Type": JSON_TYPE}
_UNAVAILABLE_ANSWER = UNAVAILABLE_HEADERS | {"Content-Type": JSON_TYPE}


def _denied(reason: str) -> web.Response:
    logger.debug("auth check refused: %s", reason)
    response = web.Response(body=_INACTIVE, status=401, headers=_DENIED_ANSWER)
    response[REFUSAL] = reason
    return response


def _unavailable() -> web.Response:
    logger.debug("auth check not answered: the database could not confirm the answer")
    return web.Response(body=_INACTIVE, status=503, headers=_UNAVAILABLE_ANSWER)


def rfc3339(moment: datetime) -> str:
    """`2026-12-31T00:00:00Z`: an instant in UTC, as gateways and JSON readers expect it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=_ANSWERS_KEPT)
def _accepted(token: AuthorizedToken) -> tuple[bytes, dict[str, str]]:
    """The 200's JSON body, encoded, and headers for `token`, built once per version of the
    token (a changed token is another key): the check stays as cheap as it was before it
    said more. The content type is among the headers, so that the response has nothing to
    encode or work out on a check."""
    expires_at = None if token.expires_at is None else rfc3339(token.expires_at)
    headers = NO_STORE | {
        "Content-Type": JSON_TYPE,
        "X-Token-Sid": token.sid,
        "X-Token-Api-Version": token.api_version,
        "X-Token-Scopes": ",".join(token.access_rights),
        "X-Token-Secret-Used": token.secret_used,
    }
    if expires_at is not None:
        headers["X-Token-Expires"] = expires_at
    body = {
        "active": True,
        "sid": token.sid,
        "name": token.name,
        "api_version": token.api_version,
        "access_rights": list(token.access_rights),
        "expires_at": expires_at,
        "secret_used": token.secret_used,
    }
    return json.dumps(body).encode(), headers


def _credentials(header: str) -> tuple[str, str | None] | str:
    """(secret, SID or None) from one Authorization header, or why it is unusable."""
    if len(header) > _HEADER_MAX:
        return "header too long"
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value, None
    if scheme.lower() != "basic":
        return "unknown scheme"
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return "malformed Basic credentials"
    sid, colon, secret = decoded.partition(":")
    if not colon:
        return "malformed Basic credentials"
    return secret, sid


async def auth_check(request: web.Request) -> web.Response:
    headers = request.headers.getall("Authorization", [])
    if len(headers) != 1:
        return _denied("several Authorization headers" if headers else "no Authorization header")
    credentials = _credentials(headers[0])
    if isinstance(credentials, str):
        return _denied(credentials)
    secret, sid = credentials
    index = request.app[STORE].credentials
    if not index.holds():
        return _unavailable()
    try:
        verdict = index.check(secret, sid)
    except StoreBusy:
        # A token's first check reads its row, and the database did not answer in time.
        return _unavailable()
    token = verdict.token
    if token is None:
        if verdict.reason == RETIRED:
            index.record_retired(
                verdict,
                lambda: (
                    client_address(request.headers, request.remote),
                    user_agent(request.headers),
                ),
            )
        return _denied(verdict.reason)
    body, about = _accepted(token)
    return web.Response(body=body, headers=about)


def add_auth_check(
    app: web.Application, store: Store, *, measure: Callable[[Handler], Handler] | None = None
) -> None:
    """Serve the check at `/auth/check`, decorated by `measure` if given (bot/metrics.py):
    without it, the check is served as it is."""
    app[STORE] = store
    app.router.add_route("*", "/auth/check", auth_check if measure is None else measure(auth_check))


# Big enough that an oversized Authorization header reaches the check and gets its one 401,
# not the HTTP parser's 400.
MAX_FIELD_SIZE = 64 * 1024
