"""What the leak guard's scan costs per channel message, with and without a live secret.

Run with `.venv/bin/python bench/leakscan.py` (`--quick` for a smoke check). Not part of the
test suite.

Token Desk scans every message of the channels it is in (bot/leak_scan.py), so the scan of a
message without a candidate is the figure that counts: it is paid on every event. The
message is a realistic 4 kB one as Slack delivers it: about 4,096 characters of mrkdwn text
(words, a code block, a link) and the same content again as rich text blocks, as Slack adds
them to a person's message. The second message is the same with one live secret (a real
token's current secret, in the code block), and its figure includes the in-memory look-up of
each candidate (`store.credentials.token_id_of`) on a real Store opened on a temporary
database holding that token.

The yardstick is decoding the event's JSON body (`json.loads`), which every event costs
before any listener runs: judged is the scan of a message without a candidate against it.
As in bench/store.py, the machine is small and shared: each figure is the median over many
rounds of a batch of calls, the variants timed interleaved in a fresh shuffled order each
round, and what is judged is a ratio of figures measured side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from seed import API_VERSIONS, SCOPES
from verdict import judge

from bot.leak_scan import scan_event
from storage.credentials import SECRET_LENGTH
from storage.store import Store

ACTOR = "U0ADMIN01"
POSTER = "U0POSTER1"
CHANNEL = "C0ENGINEER"
OWN_BOT, OWN_USER = "B0TOKENDESK", "U0TOKENDESK"
MESSAGE_CHARACTERS = 4_096
# The scan of an ordinary message may cost at most this share of decoding its event.
TARGET = 1.0

WORDS = (
    "deploy the gateway config after review staging production rollback token service "
    "billing reports nightly job failed retry timeout latency dashboard alert owner team "
    "please check whether we should rotate it before friday thanks migration schema index "
    "query cache warm cold region replica primary failover runbook incident postmortem"
).split()
LINK = "<https://wiki.example.com/runbooks/rotate-api-tokens|the rotation runbook>"
# As long as a secret, so that both messages have the same length.
PLACEHOLDER = "$(vault kv get -field=token kv/reports/api)".ljust(SECRET_LENGTH, " ")[
    :SECRET_LENGTH
]


@dataclass(frozen=True)
class Plan:
    rounds: int
    batch: int


FULL = Plan(rounds=400, batch=200)
QUICK = Plan(rounds=40, batch=50)


def require(condition: bool, failure: str) -> None:
    """Like assert, but not stripped by `python -O`: a figure measured on the wrong
    data would be worse than none."""
    if not condition:
        raise SystemExit(f"benchmark set-up is wrong: {failure}")


# The messages -------------------------------------------------------------------------------


def sentences(rng: random.Random, characters: int) -> str:
    words: list[str] = []
    while sum(len(word) + 1 for word in words) < characters:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:characters]


def code_block(value: str) -> str:
    return (
        "export REPORTS_API_URL=https://api.example.com/v2\n"
        f"export REPORTS_API_TOKEN={value}\n"
        'curl -sf -H "Authorization: Bearer $REPORTS_API_TOKEN" "$REPORTS_API_URL/daily"'
    )


def section(text: str, rng: random.Random) -> dict[str, Any]:
    """A paragraph as rich text: runs of a few words, some of them bold."""
    words = text.split(" ")
    elements = []
    for start in range(0, len(words), 8):
        run = " ".join(words[start : start + 8]) + " "
        element: dict[str, Any] = {"type": "text", "text": run}
        if rng.random() < 0.2:
            element["style"] = {"bold": True}
        elements.append(element)
    return {"type": "rich_text_section", "elements": elements}


def message_event(value: str, rng: random.Random) -> dict[str, Any]:
    """A person's channel message of MESSAGE_CHARACTERS characters, `value` in its code
    block, as Slack delivers it: mrkdwn text and the same content as rich text."""
    code = code_block(value)
    fixed = len("\n```\n") + len(code) + len("\n```\n") + len("See ") + len(LINK) + len(".")
    first = sentences(rng, (MESSAGE_CHARACTERS - fixed) // 2)
    second = sentences(rng, MESSAGE_CHARACTERS - fixed - len(first))
    text = f"{first}\n```\n{code}\n```\n{second}See {LINK}."
    url, label = LINK[1:-1].split("|")
    link_section = section(second, rng)
    link_section["elements"] += [
        {"type": "text", "text": "See "},
        {"type": "link", "url": url, "text": label},
        {"type": "text", "text": "."},
    ]
    blocks = [
        {
            "type": "rich_text",
            "block_id": "Xq3vD",
            "elements": [
                section(first, rng),
                {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": code}]},
                link_section,
            ],
        }
    ]
    return {
        "type": "message",
        "channel": CHANNEL,
        "channel_type": "channel",
        "user": POSTER,
        "ts": "1714550400.123456",
        "event_ts": "1714550400.123456",
        "client_msg_id": "5f0c6a8e-1d2b-4c3a-9e7f-0a1b2c3d4e5f",
        "team": "T0AGENCY1",
        "text": text,
        "blocks": blocks,
    }


def event_body(event: dict[str, Any]) -> bytes:
    """The Events API request body that brings `event`."""
    envelope = {
        "token": "verification-token-unused",
        "team_id": "T0AGENCY1",
        "api_app_id": "A0TOKENDESK",
        "event": event,
        "type": "event_callback",
        "event_id": "Ev0LEAKSCAN1",
        "event_time": 1714550400,
        "authorizations": [
            {
                "team_id": "T0AGENCY1",
                "user_id": OWN_USER,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
    }
    return json.dumps(envelope).encode()


# Timing -------------------------------------------------------------------------------------


def interleaved(
    calls: dict[str, Callable[[], object]], plan: Plan, rng: random.Random
) -> dict[str, float]:
    """The median time of one call of each, from batches timed once per round in a fresh
    shuffled order."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for _ in range(plan.rounds):
        rng.shuffle(order)
        for name in order:
            call = calls[name]
            started = time.perf_counter()
            for _ in range(plan.batch):
                call()
            samples[name].append((time.perf_counter() - started) / plan.batch)
    return {name: statistics.median(times) for name, times in samples.items()}


def microseconds(seconds: float) -> str:
    return f"{seconds * 1e6:9.2f} µs"


# Running ------------------------------------------------------------------------------------


async def open_store_with_a_token(path: Path) -> tuple[Store, int, str]:
    store = await Store.open(
        path=path,
        secret_key=secrets.token_bytes(32),
        api_versions=API_VERSIONS,
        scopes=SCOPES,
        flush_seconds=3_600,
    )
    issued = await store.tokens.create(
        actor=ACTOR,
        name="Reports API",
        access_rights=[SCOPES[0]],
        primary_contact=ACTOR,
        expires_on=(datetime.now(UTC) + timedelta(days=90)).date(),
    )
    return store, issued.token.id, issued.secret


def run(plan: Plan, store: Store, token_id: int, secret: str) -> None:
    rng = random.Random(20_240_501)
    quiet = message_event(PLACEHOLDER, random.Random(15))
    leaking = message_event(secret, random.Random(15))
    quiet_body = event_body(quiet)

    def scan(event: dict[str, Any]) -> Any:
        return scan_event(event, own_bot_id=OWN_BOT, own_user_id=OWN_USER)

    def scan_and_look_up() -> list[int | None]:
        scanned = scan(leaking)
        candidates = () if scanned is None else scanned.candidates
        return [store.credentials.token_id_of(candidate) for candidate in candidates]

    require(len(quiet["text"]) == len(leaking["text"]) == MESSAGE_CHARACTERS, "text length")
    require(scan(quiet) is None, "a candidate in the message without a secret")
    require(scan_and_look_up() == [token_id], "the live secret was not found exactly once")
    require(json.loads(quiet_body)["event"] == quiet, "the event body")

    calls: dict[str, Callable[[], object]] = {
        "quiet": lambda: scan(quiet),
        "leaking": scan_and_look_up,
        "floor": lambda: json.loads(quiet_body),
    }
    interleaved(calls, Plan(rounds=max(3, plan.rounds // 20), batch=plan.batch), rng)  # warm
    medians = interleaved(calls, plan, rng)

    print(
        f"\nper message of {MESSAGE_CHARACTERS:,} characters (and its rich text blocks,"
        f" {len(quiet_body):,} bytes of event body): median of {plan.rounds} interleaved"
        f" rounds of {plan.batch} calls"
    )
    titles = {
        "quiet": "scan_event, no candidate",
        "leaking": "scan_event + token_id_of, one live secret",
        "floor": "floor: json.loads of the event body",
    }
    for name, title in titles.items():
        print(f"  {title:<46}{microseconds(medians[name])}")
    ratio = medians["quiet"] / medians["floor"]
    verdict = judge("leakscan", "no candidate/json.loads", ratio, "≤", TARGET)
    print(f"  {'no candidate / json.loads':<46}{ratio:9.2f}     {verdict}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke check")
    arguments = parser.parse_args(argv)
    plan = QUICK if arguments.quick else FULL
    print("Token Desk leak scan benchmark" + (" (quick)" if arguments.quick else ""))
    print(f"python {sys.version.split()[0]}, os.cpu_count() = {os.cpu_count()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tokendesk-bench-") as directory:
        loop = asyncio.new_event_loop()
        try:
            store, token_id, secret = loop.run_until_complete(
                open_store_with_a_token(Path(directory) / "tokens.db")
            )
            try:
                gc.collect()
                run(plan, store, token_id, secret)
            finally:
                loop.run_until_complete(store.close())
        finally:
            loop.close()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
