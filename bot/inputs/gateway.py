"""What the auth check reads about who presented a secret: the client's address and
`User-Agent`, as the gateway passes them on.

Both are untrusted (a client may send its own `X-Forwarded-For`) and only ever shown to a
token's owners, so they are bounded and kept as text, never parsed as addresses. The
gateway's `X-Real-IP` wins; else the last `X-Forwarded-For` entry, the one the nearest proxy
appended; else the peer of the connection.
"""

from __future__ import annotations

from multidict import CIMultiDictProxy

# Longer than any address or user agent worth showing; the store cuts them further.
HEADER_READ_MAX = 512


def _bounded(value: str) -> str:
    """`value` cut to HEADER_READ_MAX, stripped, without control characters."""
    cut = value[:HEADER_READ_MAX]
    # The usual header is printable whole: one test in C, not one per character.
    if not cut.isprintable():
        cut = "".join(character for character in cut if character.isprintable())
    return cut.strip()


def client_address(headers: CIMultiDictProxy[str], peer: str | None) -> str:
    """The address a presentation came from (see the module docstring); "" when none."""
    real_ip = _bounded(headers.get("X-Real-IP", ""))
    if real_ip:
        return real_ip
    forwarded = headers.getall("X-Forwarded-For", [])
    if forwarded:
        # Several header lines read as one list: the last entry is the last line's last.
        last = _bounded(forwarded[-1][-HEADER_READ_MAX:].rpartition(",")[2])
        if last:
            return last
    return _bounded(peer or "")


def user_agent(headers: CIMultiDictProxy[str]) -> str:
    return _bounded(headers.get("User-Agent", ""))
