"""The leak guard's store: Token Desk secrets found posted in Slack messages.

The bot scans, in memory, the messages of the channels it was invited to and hands here
every secret with a valid checksum it found in one message. A secret is live while it is
the current secret of a token, whatever the token's state (enabling the token would
revive it), or a previous secret inside its grace window; a retired or unknown secret is
never reported. Each is looked up in memory first (storage/credential_index.py), so a
message without a live secret costs no database work.

A live secret is reported once per message (channel and message ts): `leak_reports` keeps
its digest, never the secret, so that Slack's retries, edits and re-deliveries of the
message report nothing again, across restarts too; the same secret in another message is
reported again. A current secret marks its token leaked until a Reset (Enable is refused
and a Reset offers no grace window meanwhile) and, when asked, disables it; a previous
secret has its window ended at once, the token left unmarked. Only the disable moves the
token's row version. Every report is audited as `leak` by Token Desk, naming the message
and which secret, never the secret.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from storage import audit
from storage.credential_index import CredentialIndex
from storage.credentials import mask_secret_parts
from storage.models import LEAKED, LeakReport, SecretUsed, Token
from storage.retirement import SYSTEM_ACTOR, retire_lapsed, retire_previous
from storage.sql import Connection, Database
from storage.token_lifecycle import Update, apply_update
from storage.token_reads import read_token

# Which token a digest is live for at a moment (?2), read through the two secrets' unique
# indexes: the memory's answer may be stale by the time the transaction starts.
_LIVE_QUERY = (
    "SELECT id, 'current' FROM tokens WHERE secret_hash = ?1"
    " UNION ALL SELECT id, 'previous' FROM tokens"
    " WHERE previous_secret_hash = ?1 AND previous_until > ?2"
)
_REPORT = (
    "INSERT INTO leak_reports (channel, message_ts, digest, token_id, reported_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


@dataclass(slots=True)
class _Reported:
    """What one message's transaction reported: (token id, which, disabled) in order, and
    every token it read, as it is after the last of its reports."""

    reports: list[tuple[int, SecretUsed, bool]] = field(default_factory=list)
    tokens: dict[int, Token] = field(default_factory=dict)


class LeakReports:
    def __init__(
        self, database: Database, *, credentials: CredentialIndex, clock: Callable[[], float]
    ) -> None:
        self._database = database
        self._credentials = credentials
        self._clock = clock

    async def report(
        self,
        *,
        candidates: Sequence[str],
        channel: str,
        message_ts: str,
        poster: str | None,
        disable: bool,
    ) -> list[LeakReport]:
        """Report the live secrets among `candidates`, found in the message `message_ts`
        of `channel` posted (or edited) by `poster`; the reports made now, in the order of
        `candidates`, each secret at most once per message ever.

        What memory finds live is read again in one write transaction, and only what is
        still live then is reported: a Reset committed in between leaves its replaced
        secret unreported (retired), or reported as the previous one (kept for a window).
        A current secret marks its token leaked (the first report's time is kept) and,
        with `disable`, disables an enabled token (reason `leaked`, ending any window: the
        one change here that moves the row version); a previous secret has its window
        ended (audited `end_grace`, reason `leaked`)."""
        live = [self._credentials.live_secret(candidate) for candidate in candidates]
        digests = list(dict.fromkeys(found.digest for found in live if found is not None))
        if not digests:
            return []
        # Slack's identifiers, but never stored or audited with a secret in them.
        channel, message_ts = mask_secret_parts(channel), mask_secret_parts(message_ts)
        poster = None if poster is None else mask_secret_parts(poster)
        now = int(self._clock())

        async def write(connection: Connection) -> _Reported:
            reported = _Reported()
            for digest in digests:
                async with connection.execute(_LIVE_QUERY, (digest, now)) as cursor:
                    row = await cursor.fetchone()
                if row is None:
                    continue
                token_id, which = row
                cursor = await connection.execute(
                    _REPORT, (channel, message_ts, digest, token_id, now)
                )
                if cursor.rowcount != 1:
                    continue
                details = {
                    "channel": channel,
                    "message_ts": message_ts,
                    "poster": poster,
                    "which": which,
                }
                disabled = False
                if which == "current":
                    token, disabled = await _current_leaked(
                        connection, token_id=token_id, details=details, disable=disable, now=now
                    )
                else:
                    token = await _previous_leaked(
                        connection, token_id=token_id, details=details, now=now
                    )
                reported.reports.append((token_id, which, disabled))
                reported.tokens[token_id] = token
            return reported

        def apply(reported: _Reported) -> None:
            for token in reported.tokens.values():
                self._credentials.remember(token)

        reported = await self._database.transact(write, after_commit=apply)
        with_last_used = self._credentials.with_last_used
        return [
            LeakReport(token=with_last_used(reported.tokens[token_id]), which=which, disabled=off)
            for token_id, which, off in reported.reports
        ]


async def _current_leaked(
    connection: Connection,
    *,
    token_id: int,
    details: dict[str, Any],
    disable: bool,
    now: int,
) -> tuple[Token, bool]:
    """Mark the token leaked (unless it is) and, with `disable`, disable it if enabled,
    audited as one `leak` record; the token after it, and whether this disabled it.

    The mark alone moves no row version: a Reset its contact is about to confirm, the
    remedy, must not be refused as stale (one asking for a window is refused anyway)."""
    await retire_lapsed(connection, now=now, token_id=token_id)
    token = await read_token(connection, token_id)
    disabling = disable and token.enabled
    update = Update("leak", {}, after=details | {"action": "disable" if disabling else "notify"})
    marking = token.leaked_at is None
    if marking:
        update.before["leaked"] = False
        update.after["leaked"] = True
    if disabling:
        update.columns = {"enabled": 0, "disabled_reason": LEAKED}
        if marking:
            update.columns["leaked_at"] = now
        update.before["state"] = audit.state_of(token)
        update.after |= {"state": "disabled", "reason": LEAKED}
        update.end_window(token)
        token = await apply_update(
            connection, token=token, update=update, actor=SYSTEM_ACTOR, now=now
        )
        return token, True
    if marking:
        await connection.execute("UPDATE tokens SET leaked_at = ? WHERE id = ?", (now, token.id))
        token = await read_token(connection, token.id)
    await _audit(connection, token=token, update=update, now=now)
    return token, False


async def _previous_leaked(
    connection: Connection, *, token_id: int, details: dict[str, Any], now: int
) -> Token:
    """End the token's grace window (its previous secret leaked) as the scheduler ends
    one by time, moving no row version, then record the `leak`; the token after it,
    unmarked and in the state it had."""
    token = await read_token(connection, token_id)
    await retire_previous(connection, token_id=token_id, at=now)
    end = Update(
        "end_grace",
        {},
        before={"previous_until": audit.iso_time(token.previous_until)},
        after={"previous_until": None, "reason": LEAKED},
    )
    await _audit(connection, token=token, update=end, now=now)
    leak = Update("leak", {}, after=details | {"action": "notify"})
    await _audit(connection, token=token, update=leak, now=now)
    return await read_token(connection, token_id)


async def _audit(connection: Connection, *, token: Token, update: Update, now: int) -> None:
    """Audit `update`, which changed no column, as Token Desk's."""
    await audit.append(
        connection,
        at=now,
        actor=SYSTEM_ACTOR,
        action=update.action,
        token_sid=token.sid,
        token_name=token.name,
        before=update.before,
        after=update.after,
    )
