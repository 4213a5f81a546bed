"""The operator commands: `tokendesk backup`, `audit` and `roles`, and `tokendesk playground`.

They need only TOKENDESK_DB (or TOKENDESK_DATABASE_URL), never a Slack variable; they never
create or migrate a database (nor a key file) and take no instance lock, so they run beside
the app. On PostgreSQL, `backup` points to PostgreSQL's own pg_dump. Role changes go through the
store's own rules and are audited as `cli:<os user>`. Tokens and API access are not theirs
to change: the running app's in-memory credentials must stay exact.

`tokendesk playground` replaces this process with `python -m playground` (Token Desk and a
stand-in Slack on this machine, with demo data): the app never imports the playground.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import pwd
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NoReturn, TextIO

from pydantic import ValidationError

from bot.settings import OperatorSettings, describe
from storage.errors import (
    BackupFailed,
    BackupTargetExists,
    RoleChangeRefused,
    StartupRefused,
    StoreBusy,
)
from storage.models import AuditEvent
from storage.operator_store import OperatorStore, write_backup
from storage.roles import role_from_name

EXIT_REFUSED = 1
EXIT_UNUSABLE = 2
# Spreadsheets run a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class OperatorError(Exception):
    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokendesk",
        description="Token Desk. Without a command it runs the app; these commands are for"
        " the people who run it and need only TOKENDESK_DB.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    backup = commands.add_parser("backup", help="a consistent online copy of the database")
    backup.add_argument("path", type=Path)
    backup.add_argument("--force", action="store_true", help="replace an existing file")
    audit = commands.add_parser("audit", help="the audit log to stdout, oldest first (UTC)")
    audit.add_argument("--format", choices=("csv", "jsonl"), required=True)
    audit.add_argument("--since", type=date.fromisoformat, help="YYYY-MM-DD (UTC)")
    roles = commands.add_parser("roles", help="who holds which role")
    role_commands = roles.add_subparsers(dest="roles_command", required=True)
    role_commands.add_parser("list")
    grant = role_commands.add_parser("grant")
    grant.add_argument("user_id")
    grant.add_argument("role", choices=("admin", "specialist"))
    revoke = role_commands.add_parser("revoke")
    revoke.add_argument("user_id")
    commands.add_parser(
        "playground", help="try Token Desk in a browser, with demo data, on 127.0.0.1:PORT"
    )
    return parser


def start_playground() -> NoReturn:
    os.execv(sys.executable, [sys.executable, "-m", "playground"])


def run(argv: Sequence[str], *, out: TextIO = sys.stdout) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.command == "playground":
        start_playground()
    try:
        settings = OperatorSettings()
    except ValidationError as error:
        print(f"tokendesk: {describe(error)}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        if arguments.command == "backup":
            if settings.tokendesk_database_url is not None:
                raise OperatorError(
                    "the store is in PostgreSQL (TOKENDESK_DATABASE_URL): back it up with"
                    " PostgreSQL's pg_dump, and keep TOKENDESK_SECRET_KEY with it",
                    EXIT_UNUSABLE,
                )
            key_check = backup(settings.tokendesk_db, arguments.path, force=arguments.force)
            print(f"backup written to {arguments.path}; key check value {key_check}", file=out)
            print("keep the key (TOKENDESK_SECRET_KEY or the .key file) with it", file=out)
        elif arguments.command == "audit":
            since = (
                datetime.combine(arguments.since, datetime.min.time(), UTC)
                if arguments.since
                else None
            )
            asyncio.run(export_audit(settings, arguments.format, since, out))
        else:
            asyncio.run(roles_command(settings, arguments, out))
    except StartupRefused as error:
        print(f"tokendesk: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    except (OperatorError, RoleChangeRefused, StoreBusy) as error:
        print(f"tokendesk: {error}", file=sys.stderr)
        return error.code if isinstance(error, OperatorError) else EXIT_REFUSED
    return 0


def backup(database: Path, target: Path, *, force: bool) -> str:
    """A consistent copy of `database` at `target`, written while the app may write; the
    key check value to keep with it."""
    try:
        return write_backup(database, target, replace=force)
    except BackupTargetExists:
        raise OperatorError(f"{target} exists; add --force to replace it") from None
    except BackupFailed as error:
        raise OperatorError(str(error), EXIT_UNUSABLE) from None


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _record(event: AuditEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "token_sid": event.token_sid,
        "token_name": event.token_name,
        "before": event.before,
        "after": event.after,
    }


async def attach(settings: OperatorSettings) -> OperatorStore:
    url = settings.tokendesk_database_url
    return await OperatorStore.attach(
        settings.tokendesk_db,
        database_url=None if url is None else url.get_secret_value(),
        admins=settings.tokendesk_admins,
    )


async def export_audit(
    settings: OperatorSettings, output: str, since: datetime | None, out: TextIO
) -> None:
    store = await attach(settings)
    try:
        writer = csv.writer(out) if output == "csv" else None
        if writer is not None:
            writer.writerow(
                ["id", "at", "actor", "action", "token_sid", "token_name", "before", "after"]
            )
        async for event in store.audit.since(since):
            record = _record(event)
            if writer is None:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                writer.writerow(
                    [
                        _cell(json.dumps(value, ensure_ascii=False, sort_keys=True))
                        if isinstance(value, dict)
                        else _cell(value)
                        for value in record.values()
                    ]
                )
    finally:
        await store.close()


def audit_actor(uid: int) -> str:
    """Who ran a command, by the operating system's account rather than USER or LOGNAME,
    which whoever runs it may set to anything."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        # An account without a passwd entry (a container's arbitrary uid).
        name = str(uid)
    return f"cli:{name}"


async def roles_command(
    settings: OperatorSettings, arguments: argparse.Namespace, out: TextIO
) -> None:
    store = await attach(settings)
    try:
        actor = audit_actor(os.getuid())
        if arguments.roles_command == "grant":
            role = role_from_name(arguments.role)
            await store.roles.grant_user(actor=actor, user_id=arguments.user_id, role=role)
            print(f"{arguments.user_id} is now an {role.label}", file=out)
        elif arguments.roles_command == "revoke":
            previous = await store.roles.revoke_user(actor=actor, user_id=arguments.user_id)
            if previous is None:
                print(f"{arguments.user_id} had no direct role", file=out)
            else:
                print(f"{arguments.user_id} is no longer an {previous.label}", file=out)
        else:
            mappings = await store.roles.mappings()
            for user in mappings.bootstrap_admins:
                print(f"{user}\tadmin\tbootstrap (TOKENDESK_ADMINS)", file=out)
            for user, role in mappings.users:
                print(f"{user}\t{role.name.lower()}\tdirect", file=out)
            for group, role in mappings.groups:
                print(f"{group}\t{role.name.lower()}\tuser group", file=out)
    finally:
        await store.close()
