"""Presentations of retired secrets, counted in memory and written with the last-used times.

A retired secret gets the auth check's one 401, but the check hands who presented it (the
client address and `User-Agent` the gateway passed on) to `record`, so that its owners can
find the integrations still using it. Only that refusal pays for it, and little: a count,
a time and the last few presenters per retired digest, kept in memory as they came (cut to
a bound, one sample per second) and made safe to keep only when written, at most once per
flush interval. Counts add up across flushes; the presenters kept are the latest ones. A
count waits in memory
until its digest has a row (a window that ended by time has one once the scheduler has
retired it), and goes when its digest is no longer known.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from storage.credentials import mask_secret_parts
from storage.models import PRESENTERS_KEPT
from storage.sql import Connection, both

ADDRESS_MAX = 64
USER_AGENT_MAX = 200
# Gateway text is kept in memory cut to this many times its bound, enough for
# `untrusted_text` to recognise a secret the cut splits.
_KEPT_RAW = 2

# (address, user agent, unix seconds), newest first.
StoredPresenter = tuple[str, str, int]

_ADD_PRESENTATIONS = both(
    sqlite="UPDATE retired_secrets SET presented = presented + ?,"
    " last_presented_at = max(coalesce(last_presented_at, 0), ?), presenters = ?"
    " WHERE digest = ?",
    postgres="UPDATE retired_secrets SET presented = presented + $1,"
    " last_presented_at = GREATEST(coalesce(last_presented_at, 0), $2), presenters = $3"
    " WHERE digest = $4",
)


def untrusted_text(text: str, limit: int) -> str:
    """Gateway input made safe to keep and show: unprintable characters replaced (never
    dropped, which could join the parts of a secret), anything shaped like a secret or a
    piece of one masked, and the length bounded."""
    # Cut first, so that a huge header costs no more than a short one; far enough past the
    # limit that a secret the cut splits is still long enough to be recognised and masked.
    printable = "".join(
        character if character.isprintable() else "?" for character in text[: _KEPT_RAW * limit]
    )
    masked = mask_secret_parts(printable)
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"


@dataclass(slots=True)
class _Pending:
    token_id: int
    count: int = 0
    last_at: int = 0
    presenters: deque[StoredPresenter] = field(
        default_factory=lambda: deque(maxlen=PRESENTERS_KEPT)
    )


@dataclass(frozen=True, slots=True)
class Taken:
    """What one flush writes of a digest's presentations."""

    count: int
    last_at: int
    presenters: tuple[StoredPresenter, ...]


class RetiredPresentations:
    def __init__(self) -> None:
        self._pending: dict[bytes, _Pending] = {}

    def record(
        self, *, digest: bytes, token_id: int, at: int, presenter: Callable[[], tuple[str, str]]
    ) -> None:
        """Count one presentation at `at`. The presenter, `(address, user agent)`, is asked
        for at most once per second per digest: reading the gateway's headers is most of
        what a presentation costs, and an integration that still uses an old secret keeps
        presenting it, so it is seen again within a second."""
        pending = self._pending.get(digest)
        if pending is None:
            pending = self._pending[digest] = _Pending(token_id)
        pending.count += 1
        if at <= pending.last_at:
            return
        pending.last_at = at
        address, user_agent = presenter()
        # Cleaned by `take`, once per flush, not once per presentation.
        kept = (address[: _KEPT_RAW * ADDRESS_MAX], user_agent[: _KEPT_RAW * USER_AGENT_MAX])
        presenters = pending.presenters
        if presenters and presenters[0][:2] == kept:
            # The same integration again, as it usually is: only its time moves.
            presenters[0] = (*kept, at)
            return
        presenters.appendleft((*kept, at))

    def __bool__(self) -> bool:
        return bool(self._pending)

    def pending_count(self, digest: bytes) -> int:
        pending = self._pending.get(digest)
        return 0 if pending is None else pending.count

    def take(self) -> dict[bytes, Taken]:
        """What is pending now, to be written, presenters made safe; it stays pending
        until `written`."""
        return {
            digest: Taken(
                pending.count,
                pending.last_at,
                tuple(
                    (
                        untrusted_text(address, ADDRESS_MAX),
                        untrusted_text(user_agent, USER_AGENT_MAX),
                        at,
                    )
                    for address, user_agent, at in pending.presenters
                ),
            )
            for digest, pending in self._pending.items()
        }

    def written(self, taken: dict[bytes, Taken], done: set[bytes]) -> None:
        """Forget what a committed flush wrote of `taken` (the digests `done`); what came
        in meanwhile stays, its presenters being the newest."""
        for digest in done:
            pending = self._pending.get(digest)
            if pending is None:
                continue
            pending.count -= taken[digest].count
            if pending.count <= 0:
                del self._pending[digest]
            else:
                unwritten = list(pending.presenters)[: pending.count]
                pending.presenters = deque(unwritten, maxlen=PRESENTERS_KEPT)

    def drop(self, keep: Callable[[bytes], bool]) -> None:
        """Forget the digests `keep` refuses (deleted or purged)."""
        for digest in [digest for digest in self._pending if not keep(digest)]:
            del self._pending[digest]

    def drop_token(self, token_id: int) -> None:
        for digest in [d for d, pending in self._pending.items() if pending.token_id == token_id]:
            del self._pending[digest]


async def write_presentations(connection: Connection, taken: dict[bytes, Taken]) -> set[bytes]:
    """Add `taken` to the retired digests' rows, in the caller's transaction; the digests
    that have a row (the others wait)."""
    done: set[bytes] = set()
    for digest, presented in taken.items():
        async with connection.execute(
            "SELECT presenters FROM retired_secrets WHERE digest = ?", (digest,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            continue
        known = [
            (entry["address"], entry["user_agent"], entry["at"]) for entry in json.loads(row[0])
        ]
        # Stable: of presenters at the same second, the ones written later stay first.
        latest = sorted([*presented.presenters, *known], key=lambda entry: entry[2], reverse=True)
        presenters = [
            {"address": address, "user_agent": user_agent, "at": at}
            for address, user_agent, at in latest[:PRESENTERS_KEPT]
        ]
        await connection.execute(
            _ADD_PRESENTATIONS,
            (presented.count, presented.last_at, json.dumps(presenters), digest),
        )
        done.add(digest)
    return done
