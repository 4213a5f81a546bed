"""The mixed load of tests/bot/test_mixed_load.py, for it and for bench/mixedload.py: 20
Slack users working the token list while an API gateway hammers `/auth/check`, for a
bounded time; then every answer and invariant is checked.

Each user drives the app as Slack does (signed requests from a `SlackUser`, payloads
built from what the app rendered, the freshest list and each click's own response_url and
trigger). Modals are found by the trigger of the click that opened them, not by
`latest_view`: with 20 users at once, the newest view is usually someone else's.

`prepare` gives the users their role and seeds tokens, `run_load` runs the load,
`summary` tells its figures and `check_outcome` asserts every answer and invariant.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp

from bot.background import drain
from bot.ids import ActionId, CallbackId
from slack_standin.blockkit import check_message, check_view
from slack_standin.client import Reply, SlackClient, action_for
from slack_standin.server import Call, ResponsePost, SlackStandIn
from storage.credentials import generate_secret
from storage.models import Role, Token
from storage.store import Store
from tests.bot.blockwalk import (
    SECRET_SHAPE,
    Body,
    Card,
    all_text,
    cards,
    menu_action,
    notice_of,
    secret_view_problems,
)
from tests.bot.conftest import ADMIN
from tests.bot.driver import ACK_LIMIT, SlackUser, eventually, modal_opened_with
from tests.store_support import days_ahead, verify

T = TypeVar("T")

USERS = 20
SEEDED = 24
FOLLOW_UP_TIMEOUT = 5.0  # a list refresh or a modal after its click's ack
POLL = 0.02
THINK = (0.1, 0.5)  # seconds a user pauses between steps
GATEWAY_WORKERS = 4
GATEWAY_PAUSE = 0.001  # between one worker's checks: hammering, not spinning the loop
SID_IN_SECRET_VIEW = re.compile(r"\*SID\*\n`(TD[0-9A-F]{20})`")
# The scheduler's DM to a token's contact about a retired secret presented again.
SID_IN_RETIRED_NOTICE = re.compile(r"An old secret of \*.*?\* \(`(TD[0-9A-F]{20})`\) was presented")
FLOWS = (("list", 2), ("filter", 3), ("page", 2), ("create", 2), ("reset", 3), ("disable", 1))
SLACK_KINDS = ("slash_command", "block_actions", "view_submission")


def user_id(index: int) -> str:
    return f"ULOAD{index:04d}"


# -- what happened -----------------------------------------------------------------------


@dataclass
class Timings:
    """Round-trip times in seconds, by kind."""

    by_kind: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    acks: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds)

    def add(self, kind: str, seconds: float) -> None:
        self.by_kind[kind].append(seconds)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


def stats_line(label: str, values: list[float]) -> str:
    return (
        f"  {label:<38}{len(values):>7}{percentile(values, 0.5) * 1000:>10.1f}"
        f"{percentile(values, 0.99) * 1000:>10.1f}{max(values, default=0.0) * 1000:>10.1f}"
    )


@dataclass
class Ledger:
    """What the users were shown: every secret issued per SID, which is current, which tokens
    are disabled, and the changes the acknowledged flows applied (as the audit should say).

    `started` / `done` count, per SID, the changes that could invalidate a secret (reset,
    disable) sent and resolved: while none is in flight, the belief about a SID is exact
    and the gateway can expect exact answers."""

    issued: dict[str, list[str]] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)  # secret -> SID
    contact: dict[str, str] = field(default_factory=dict)  # SID -> primary contact
    dms: Counter[str] = field(default_factory=Counter)  # DMs owed, by recipient
    current: dict[str, str] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    tainted: set[str] = field(default_factory=set)
    started: Counter[str] = field(default_factory=Counter)
    done: Counter[str] = field(default_factory=Counter)
    applied: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, actor)
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    sids: list[str] = field(default_factory=list)  # for random choice
    old_secrets: list[str] = field(default_factory=list)

    def issue(self, sid: str, secret: str) -> None:
        if sid not in self.issued:
            self.issued[sid] = []
            self.sids.append(sid)
        if sid in self.current:
            self.old_secrets.append(self.current[sid])
        self.issued[sid].append(secret)
        self.owner[secret] = sid
        self.current[sid] = secret

    def begin(self, sid: str) -> None:
        self.started[sid] += 1

    def finish(self, sid: str, *, resolved: bool = True) -> None:
        self.done[sid] += 1
        if not resolved:
            self.tainted.add(sid)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def valid(self, sid: str, secret: str) -> bool:
        return self.current.get(sid) == secret and sid not in self.disabled

    def settled(self, sid: str) -> bool:
        return self.started[sid] == self.done[sid] and sid not in self.tainted


def view_in(ack: Body) -> Body:
    view = ack.get("view")
    return view if isinstance(view, dict) else {}


# -- one Slack user ---------------------------------------------------------------------------


class LoadUser:
    """One user's ephemeral token list and the flows they run on it, until the deadline.

    A problem is written down in the ledger, never raised: the load goes on, and every
    problem is reported at the end."""

    def __init__(
        self,
        index: int,
        *,
        slack: SlackClient,
        standin: SlackStandIn,
        ledger: Ledger,
        timings: Timings,
    ) -> None:
        self.index = index
        self.user = user_id(index)
        self.me = SlackUser(slack, self.user, on_ack=self._acknowledged)
        self.standin, self.ledger, self.timings = standin, ledger, timings
        self.rng = random.Random(f"token-desk-load-{index}")
        self.blocks: list[Body] = []
        self.created = 0

    # sending, timed ------------------------------------------------------------------------

    def _acknowledged(self, step: str, reply: Reply, started: float, seconds: float) -> None:
        kind = str(reply.sent.get("type", "slash_command"))
        self.timings.add(kind, seconds)
        self.timings.acks.append((started, seconds))
        self.timings.add(f"{kind}: {step}", seconds)
        if reply.status != 200:
            self.ledger.problem(f"{self.user} {step}: HTTP {reply.status} {reply.body!r}")
        elif kind == "block_actions" and reply.body != "":
            self.ledger.problem(f"{self.user} {step}: the click was acked with {reply.body!r}")

    async def command(self, text: str = "") -> None:
        reply = await self.me.send_command(text, what="/tokens")
        body = reply.body
        if not isinstance(body, dict) or not isinstance(body.get("blocks"), list):
            self.ledger.problem(f"{self.user} /tokens {text!r}: no list in the ack: {body!r}")
            return
        if problems := check_message(body):
            self.ledger.problem(f"{self.user} /tokens: the ack fails Block Kit checks {problems}")
        self.blocks = body["blocks"]

    async def click(self, step: str, action: Body, typed: Body | None = None) -> Reply:
        return await self.me.send_click(action, typed=typed, blocks=self.blocks, what=step)

    async def submit(self, step: str, view: Body, values: Body | None = None) -> Body:
        reply = await self.me.send_submission(view, values, what=step)
        body = reply.body if isinstance(reply.body, dict) else {}
        if isinstance(body.get("view"), dict) and (problems := check_view(body["view"])):
            self.ledger.problem(f"{self.user} {step}: the ack's view fails checks {problems}")
        return body

    # what follows a click --------------------------------------------------------------------

    async def _wait(self, probe: Callable[[], T | None]) -> T | None:
        try:
            found: T = await eventually(probe, timeout=FOLLOW_UP_TIMEOUT, poll=POLL)
        except TimeoutError:
            return None
        return found

    def _post_to(self, url: str, since: int) -> ResponsePost | None:
        return next((p for p in self.standin.responses[since:] if p.url == url), None)

    def _seen_list(self, step: str, post: ResponsePost, sent_at: float) -> str:
        """Take a list posted to a response_url as the user's list; its notice."""
        self.timings.add(f"follow-up: list refresh after {step}", post.time - sent_at)
        body = post.body if isinstance(post.body, dict) else {}
        if not post.accepted or body.get("replace_original") is not True:
            self.ledger.problem(f"{self.user} {step}: not a list refresh: {post.error} {body!r}")
            return all_text(body)
        self.blocks = body["blocks"]
        return notice_of(self.blocks)

    async def list_click(self, step: str, action: Body, typed: Body | None = None) -> str | None:
        """A click answered by the list itself, through the click's response_url: the notice."""
        since, sent_at = len(self.standin.responses), time.time()
        reply = await self.click(step, action, typed)
        post = await self._wait(lambda: self._post_to(reply.sent["response_url"], since))
        if post is None:
            self.ledger.problem(f"{self.user} {step}: the list was not refreshed in time")
            return None
        return self._seen_list(step, post, sent_at)

    async def modal_click(self, step: str, action: Body) -> tuple[Reply, Body | str | None]:
        """A click that opens a modal (the view) or answers in the list instead (its notice)."""
        posts, calls, sent_at = len(self.standin.responses), len(self.standin.calls), time.time()
        reply = await self.click(step, action)
        url, trigger = reply.sent["response_url"], reply.sent["trigger_id"]

        def probe() -> Call | ResponsePost | None:
            return modal_opened_with(self.standin, trigger, since=calls) or self._post_to(
                url, posts
            )

        found = await self._wait(probe)
        if isinstance(found, Call):
            self.timings.add(f"follow-up: modal open after {step}", found.time - sent_at)
            if not found.ok:
                self.ledger.problem(f"{self.user} {step}: views.open refused: {found.answer}")
                return reply, None
            return reply, dict(found.answer["view"])
        if isinstance(found, ResponsePost):
            return reply, self._seen_list(step, found, sent_at)
        self.ledger.problem(f"{self.user} {step}: neither a modal nor an answer in time")
        return reply, None

    async def refreshed_after(self, step: str, click: Reply, since: int, sent_at: float) -> None:
        """The list refreshed through the opening click's response_url after a modal."""
        post = await self._wait(lambda: self._post_to(click.sent["response_url"], since))
        if post is None:
            self.ledger.problem(f"{self.user} {step}: the list was not refreshed after the modal")
            return
        self._seen_list(step, post, sent_at)

    # the flows ------------------------------------------------------------------------------

    async def run(self, deadline: float) -> None:
        await asyncio.sleep(self.rng.uniform(0, 0.5))
        await self.command()
        flows = [name for name, weight in FLOWS for _ in range(weight)]
        while time.monotonic() < deadline:
            await asyncio.sleep(self.rng.uniform(*THINK))
            flow = self.rng.choice(flows)
            self.ledger.outcomes[f"flow {flow}"] += 1
            await getattr(self, f"flow_{flow}")()

    async def flow_list(self) -> None:
        if self.rng.random() < 0.3:
            await self.command(f"search load {self.rng.randrange(1, USERS + 1):02d}")
        else:
            await self.command()

    async def flow_filter(self) -> None:
        kind = self.rng.choice(("name", "name", "state", "created", "clear"))
        if kind == "name":
            text = self.rng.choice(("load", "seed", f"load {self.index:02d}", "0", ""))
            action = action_for(self.blocks, ActionId.FILTER_NAME, text)
            await self.list_click("filter: search", action, {ActionId.FILTER_NAME: text})
        elif kind == "state":
            value = self.rng.choice(("enabled", "disabled", "any"))
            action = action_for(self.blocks, ActionId.FILTER_STATE, value)
            await self.list_click("filter: state", action, {ActionId.FILTER_STATE: value})
        elif kind == "created":
            value = self.rng.choice(("last_7_days", "more_than_30_days", "any"))
            action = action_for(self.blocks, ActionId.FILTER_CREATED, value)
            await self.list_click("filter: created", action, {ActionId.FILTER_CREATED: value})
        else:
            await self.list_click("filter: clear", action_for(self.blocks, ActionId.CLEAR_FILTERS))

    async def flow_page(self) -> None:
        pager = next((b for b in self.blocks if b.get("block_id") == "pager"), None)
        if pager is None:
            await self.list_click("filter: clear", action_for(self.blocks, ActionId.CLEAR_FILTERS))
            return
        button = self.rng.choice(pager["elements"])
        action = action_for(self.blocks, button["action_id"], block_id="pager")
        await self.list_click("page", action)

    async def flow_create(self) -> None:
        since = len(self.standin.responses)
        click, opened = await self.modal_click(
            "create click", action_for(self.blocks, ActionId.CREATE, block_id="create")
        )
        if not isinstance(opened, dict) or opened.get("callback_id") != CallbackId.CREATE:
            self.ledger.outcomes["create: no form"] += 1
            self.ledger.problem(f"{self.user} create: no create form but {opened!r}")
            return
        await asyncio.sleep(self.rng.uniform(*THINK))
        self.created += 1
        rights_block = next(b for b in opened["blocks"] if b.get("block_id") == "access_rights")
        scopes = [str(option["value"]) for option in rights_block["element"]["options"]]
        values = {
            "name": f"Load {self.index:02d}-{self.created:04d}",
            "description": f"Made under load by user {self.index}",
            "access_rights": self.rng.sample(scopes, k=self.rng.randint(1, min(3, len(scopes)))),
        }
        sent_at = time.time()
        ack = await self.submit("create submit", opened, values)
        view = view_in(ack)
        if ack.get("response_action") == "update" and view.get("callback_id") == CallbackId.SECRET:
            problems = secret_view_problems(view)
            secret = SECRET_SHAPE.search(json.dumps(view))
            sid = SID_IN_SECRET_VIEW.search(all_text(view))
            if problems or secret is None or sid is None:
                self.ledger.problem(f"{self.user} create: bad secret view {problems}")
                return
            self.ledger.issue(sid.group(1), secret.group(0))
            self.ledger.contact[sid.group(1)] = self.user  # the form's default
            self.ledger.applied[("create", self.user)] += 1
            self.ledger.outcomes["create: secret shown"] += 1
            await self.refreshed_after("create submit", click, since, sent_at)
        else:
            self.ledger.outcomes["create: other"] += 1
            self.ledger.problem(f"{self.user} create: unexpected ack {ack!r}")

    def _card(self, choice: str) -> tuple[Card, Body] | None:
        """A card, at random, whose menu offers `choice`; and the user's pick of it."""
        offering = [card for card in cards(self.blocks) if card.option(choice)]
        if not offering:
            return None
        card = self.rng.choice(offering)
        return card, menu_action(self.blocks, card.token_id, choice)

    async def flow_reset(self) -> None:
        picked = self._card("reset")
        if picked is None:
            await self.command()
            return
        card, action = picked
        self.ledger.begin(card.sid)
        resolved = False
        try:
            resolved = await self._reset(card, action)
        finally:
            self.ledger.finish(card.sid, resolved=resolved)

    async def _reset(self, card: Card, action: Body) -> bool:
        since = len(self.standin.responses)
        click, opened = await self.modal_click("reset click", action)
        if isinstance(opened, str):
            if "was changed by" in opened and "nothing was applied" in opened:
                self.ledger.outcomes["reset: stale card, told in the list"] += 1
                return True
            self.ledger.problem(f"{self.user} reset click: unexpected answer {opened!r}")
            return False
        if opened is None or opened.get("callback_id") != CallbackId.CONFIRM:
            self.ledger.problem(f"{self.user} reset click: no confirmation but {opened!r}")
            return False
        await asyncio.sleep(self.rng.uniform(*THINK))
        sent_at = time.time()
        ack = await self.submit("reset submit", opened)
        view = view_in(ack)
        if ack.get("response_action") != "update":
            self.ledger.problem(f"{self.user} reset submit: unexpected ack {ack!r}")
            return False
        if view.get("callback_id") == CallbackId.SECRET:
            problems = secret_view_problems(view)
            secret = SECRET_SHAPE.search(json.dumps(view))
            sid = SID_IN_SECRET_VIEW.search(all_text(view))
            if problems or secret is None or sid is None or sid.group(1) != card.sid:
                self.ledger.problem(f"{self.user} reset: bad secret view {problems} {sid}")
                return False
            self.ledger.issue(card.sid, secret.group(0))
            self.ledger.applied[("reset", self.user)] += 1
            self.ledger.dms.update(dict.fromkeys((self.ledger.contact[card.sid], self.user), 1))
            self.ledger.outcomes["reset: secret shown"] += 1
            await self.refreshed_after("reset submit", click, since, sent_at)
            return True
        text = all_text(view)
        if "was changed by" in text and "Nothing was applied" in text:
            self.ledger.outcomes["reset: lost the race, told in the modal"] += 1
            return True
        self.ledger.problem(f"{self.user} reset submit: unexpected view {text!r}")
        return False

    async def flow_disable(self) -> None:
        picked = self._card("disable")
        if picked is None:
            value = self.rng.choice(("enabled", "any"))
            action = action_for(self.blocks, ActionId.FILTER_STATE, value)
            await self.list_click("filter: state", action, {ActionId.FILTER_STATE: value})
            return
        card, action = picked
        self.ledger.begin(card.sid)
        resolved = False
        try:
            notice = await self.list_click("disable", action)
            if notice is not None and "disabled. Calls using it now fail" in notice:
                self.ledger.disabled.add(card.sid)
                self.ledger.applied[("disable", self.user)] += 1
                self.ledger.dms[self.ledger.contact[card.sid]] += 1
                self.ledger.outcomes["disable: disabled"] += 1
                resolved = True
            elif notice is not None and "was already disabled" in notice:
                self.ledger.disabled.add(card.sid)
                self.ledger.outcomes["disable: was already disabled"] += 1
                resolved = True
            else:
                self.ledger.problem(f"{self.user} disable: unexpected answer {notice!r}")
        finally:
            self.ledger.finish(card.sid, resolved=resolved)


# -- the gateway ------------------------------------------------------------------------------


@dataclass
class GatewayReport:
    times: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    exact: int = 0
    unsure: int = 0
    unavailable: int = 0
    errors: list[str] = field(default_factory=list)


def unavailable_answer(status: int, body: object, headers: Mapping[str, str]) -> bool:
    """The 503 of an instance not current with a shared database (storage/currency.py)."""
    return status == 503 and body == {"active": False} and headers.get("Retry-After") == "1"


async def gateway(
    session: aiohttp.ClientSession,
    ledger: Ledger,
    report: GatewayReport,
    stop: asyncio.Event,
    rng: random.Random,
    *,
    shared_database: bool = False,
) -> None:
    """Checks current secrets (mostly), replaced and disabled ones, unknown and malformed
    ones; an answer must match the ledger whenever no change of that token was in flight.
    With a `shared_database` (several instances), an instance not current may answer 503
    instead, which a gateway takes elsewhere."""
    unknown = [generate_secret() for _ in range(8)] + ["tdk_short", "hunter2"]
    while not stop.is_set():
        await asyncio.sleep(GATEWAY_PAUSE)
        roll = rng.random()
        sid: str | None = None
        if roll < 0.7 and ledger.sids:
            sid = rng.choice(ledger.sids)
            secret = ledger.current[sid]
        elif roll < 0.85 and ledger.old_secrets:
            secret = rng.choice(ledger.old_secrets)
            sid = ledger.owner[secret]
        else:
            secret = rng.choice(unknown)
        settled = sid is None or ledger.settled(sid)
        started = ledger.started[sid] if sid else 0
        expected = sid is not None and ledger.valid(sid, secret)
        begun = time.perf_counter()
        try:
            async with session.get(
                "/auth/check", headers={"Authorization": f"Bearer {secret}"}
            ) as answer:
                body = await answer.json()
                status, headers = answer.status, answer.headers
        except (aiohttp.ClientError, ValueError) as error:
            report.errors.append(f"auth check failed: {type(error).__name__} {error}")
            continue
        report.times.append(time.perf_counter() - begun)
        report.sent.append(begun)
        report.statuses[status] += 1
        if shared_database and unavailable_answer(status, body, headers):
            report.unavailable += 1
            continue
        exact = settled and (
            sid is None or (ledger.settled(sid) and ledger.started[sid] == started)
        )
        if headers.get("Cache-Control") != "no-store":
            report.errors.append(f"auth check without Cache-Control: no-store ({status})")
        if status == 200:
            if sid is None or body.get("sid") != sid or headers.get("X-Token-Sid") != sid:
                report.errors.append(f"200 for the wrong token: expected {sid}, got {body!r}")
        elif status == 401:
            if body != {"active": False} or "WWW-Authenticate" not in headers:
                report.errors.append(f"401 not the one answer: {body!r}")
        else:
            report.errors.append(f"auth check answered {status} {body!r}")
        if exact:
            report.exact += 1
            if (status == 200) != expected:
                state = "disabled" if sid in ledger.disabled else "enabled"
                report.errors.append(
                    f"{status} for a secret that is {'valid' if expected else 'invalid'}"
                    f" (token {sid}, {state}, no change in flight)"
                )
        else:
            report.unsure += 1


def trend(
    timings: Timings, report: GatewayReport, *, began: float, load_seconds: float
) -> list[str]:
    """Slack acks and auth checks over time, in six windows of `load_seconds` of load from
    `began` (by `time.perf_counter`)."""
    width = load_seconds / 6
    lines = [
        f"  {'window':<12}{'acks':>7}{'ack p50':>10}{'ack max':>10}"
        f"{'checks':>9}{'checks/s':>10}{'check p50':>11}"
    ]
    for window in range(6):
        low, high = began + window * width, began + (window + 1) * width
        acks = [seconds for sent, seconds in timings.acks if low <= sent < high]
        checks = [
            seconds
            for sent, seconds in zip(report.sent, report.times, strict=True)
            if low <= sent < high
        ]
        lines.append(
            f"  {window * width:>5.1f}-{(window + 1) * width:<5.1f}s{len(acks):>6}"
            f"{percentile(acks, 0.5) * 1000:>10.1f}{max(acks, default=0) * 1000:>10.1f}"
            f"{len(checks):>9}{len(checks) / width:>10.0f}{percentile(checks, 0.5) * 1000:>11.1f}"
        )
    return lines


async def all_tokens(store: Store) -> list[Token]:
    tokens: list[Token] = []
    while True:
        page = await store.token_reads.page(offset=len(tokens), limit=100)
        tokens += page.tokens
        if len(tokens) >= page.total or not page.tokens:
            return tokens


# -- the run ------------------------------------------------------------------------------------


@dataclass
class LoadRun:
    """What one run of the load saw; `began` by `time.perf_counter`, as the acks' times."""

    ledger: Ledger
    timings: Timings
    report: GatewayReport
    seconds: float
    ran: float
    began: float
    baseline: int  # the newest audit event before the load


async def prepare(slack: SlackClient, standin: SlackStandIn, store: Store) -> tuple[Ledger, int]:
    """API access on (from Slack, as an admin would), the users made specialists, the seeded
    tokens: the ledger of their secrets, and the newest audit event id."""
    access = await slack.slash_command(ADMIN, "access on")
    assert access.status == 200 and "API access is on" in str(access.body), access.body
    # On a shared database, `store` learns it from the instance that made the change.
    with suppress(TimeoutError):
        await eventually(lambda: store.account.api_access, timeout=FOLLOW_UP_TIMEOUT)
    assert store.account.api_access, "API access is still off"
    ledger = Ledger()
    for index in range(1, USERS + 1):
        standin.add_user(user_id(index))
        await store.roles.grant_user(actor=ADMIN, user_id=user_id(index), role=Role.SPECIALIST)
    for index in range(1, SEEDED + 1):
        seeded = await store.tokens.create(
            actor=ADMIN,
            name=f"Seed {index:02d}",
            access_rights=["reports:read"],
            primary_contact=ADMIN,
            expires_on=days_ahead(clock=store.clock),
        )
        ledger.issue(seeded.token.sid, seeded.secret)
        ledger.contact[seeded.token.sid] = ADMIN
    baseline = max((event.id for event in await store.audit.events(limit=1)), default=0)
    return ledger, baseline


async def run_load(
    ledger: Ledger,
    *,
    slacks: Sequence[SlackClient],
    standin: SlackStandIn,
    gateway_sessions: Sequence[aiohttp.ClientSession],
    seconds: float,
    baseline: int,
    shared_database: bool = False,
) -> LoadRun:
    """USERS users and GATEWAY_WORKERS gateway workers for `seconds`, then until every flow
    ended and the work after the acks is done. User i sends through `slacks[i % n]`, gateway
    worker w asks `gateway_sessions[w % n]` (one each: one app instance); see `gateway` for
    `shared_database`."""
    timings, report = Timings(), GatewayReport()
    users = [
        LoadUser(
            index,
            slack=slacks[index % len(slacks)],
            standin=standin,
            ledger=ledger,
            timings=timings,
        )
        for index in range(1, USERS + 1)
    ]
    stop = asyncio.Event()
    began, began_at = time.monotonic(), time.perf_counter()
    deadline = began + seconds

    async def stop_at_deadline() -> None:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        stop.set()

    async with asyncio.TaskGroup() as group:
        for user in users:
            group.create_task(user.run(deadline))
        for worker in range(GATEWAY_WORKERS):
            rng = random.Random(f"gateway-{worker}")
            session = gateway_sessions[worker % len(gateway_sessions)]
            group.create_task(
                gateway(session, ledger, report, stop, rng, shared_database=shared_database)
            )
        group.create_task(stop_at_deadline())
    ran = time.monotonic() - began
    await drain()
    await asyncio.sleep(0.2)
    await drain()
    return LoadRun(ledger, timings, report, seconds, ran, began_at, baseline)


def summary(run: LoadRun) -> list[str]:
    """The figures of `run`: each kind's count, p50, p99 and max, the outcomes, the trend."""
    timings, report, ledger = run.timings, run.report, run.ledger
    lines = [
        "",
        f"mixed load: {USERS} users + {GATEWAY_WORKERS} gateway workers,"
        f" {run.seconds:.0f} s of load ({run.ran:.1f} s until the last flow ended)",
        f"  {'Slack requests (ack RTT)':<38}{'count':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]
    for kind in SLACK_KINDS:
        lines.append(stats_line(kind, timings.by_kind.get(kind, [])))
    for kind in sorted(timings.by_kind):
        if ": " in kind and not kind.startswith("follow-up"):
            lines.append(stats_line("  " + kind.split(": ", 1)[1], timings.by_kind[kind]))
    for kind in sorted(timings.by_kind):
        if kind.startswith("follow-up"):
            lines.append(stats_line(kind.removeprefix("follow-up: "), timings.by_kind[kind]))
    lines.append(stats_line("auth checks (RTT)", report.times))
    lines.append(
        f"  auth checks: {len(report.times)} ({len(report.times) / run.ran:.0f}/s),"
        f" statuses {dict(report.statuses)}, exact {report.exact}, unsure {report.unsure}"
        f", unavailable {report.unavailable}"
    )
    lines.append("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(ledger.outcomes.items())))
    return lines + trend(timings, report, began=run.began, load_seconds=run.seconds)


async def check_outcome(
    run: LoadRun,
    *,
    standin: SlackStandIn,
    store: Store,
    gateway_session: aiohttp.ClientSession,
    sqlite_file: Path | None,
    shared_database: bool = False,
    scheduled: bool = False,
) -> None:
    """Asserts every answer of `run` and every invariant after it: no problem any user met,
    every ack in time, everything sent to Slack valid and accepted, the DMs owed and no
    more (when the app ran its scheduler, `scheduled`, as app processes do: its notices
    too, one at most per replaced secret), the gateway's answers (see `gateway` for
    `shared_database`), the tokens and their secrets, the audit log; and, on SQLite
    (`sqlite_file`), the database's integrity."""
    ledger, report = run.ledger, run.report
    slack_times = {kind: run.timings.by_kind.get(kind, []) for kind in SLACK_KINDS}
    assert ledger.problems == [], ledger.problems[:20]
    for kind in SLACK_KINDS:
        assert slack_times[kind], f"no {kind} was sent"
        assert max(slack_times[kind]) < ACK_LIMIT, f"a {kind} ack took {max(slack_times[kind])} s"

    # Everything the app sent to Slack was valid and accepted.
    for post in standin.responses:
        assert post.accepted, (post.error, post.body)
        assert isinstance(post.body, dict) and check_message(post.body) == [], post.body
    for call in standin.calls:
        assert call.ok, (call.method, call.answer)
        if call.method.startswith("views."):
            assert check_view(call.args["view"]) == [], call.args["view"]
        if call.method == "chat.postMessage":
            assert check_message(call.args) == [], call.args
            assert not SECRET_SHAPE.search(json.dumps(call.args)), "a secret in a DM"

    # Reset told the contact and the actor, disable the contact: one DM each, no more,
    # each posted to the user id directly. App processes (`python -m bot`) run the scheduler
    # too: its first pass, seconds after start-up, tells a token's contact once about each
    # replaced secret the gateway presented since; an app served in the test runs none.
    delivered: Counter[str] = Counter()
    notices: Counter[str] = Counter()  # retired-secret notices, by SID
    for call in standin.calls_to("chat.postMessage"):
        channel = str(call.args.get("channel"))
        notice = SID_IN_RETIRED_NOTICE.search(json.dumps(call.args.get("blocks")))
        if notice is None:
            delivered[channel] += 1
            continue
        sid = notice.group(1)
        assert channel == ledger.contact.get(sid), ("a notice to another", channel, sid)
        notices[sid] += 1
    assert delivered == Counter(ledger.dms), (delivered, ledger.dms)
    assert scheduled or not notices, notices
    for sid, told in notices.items():
        assert told < len(ledger.issued[sid]), ("more notices than secrets replaced", sid)
    assert standin.calls_to("conversations.open") == [], "a DM opened a conversation"

    # The gateway: only the 401s it should get.
    assert report.times, "no auth check was made"
    assert report.errors == [], report.errors[:20]
    assert set(report.statuses) <= {200, 401, *([503] if shared_database else [])}, report.statuses

    # Invariants: the tokens are exactly those issued, each with one valid secret.
    tokens = await all_tokens(store)
    assert {token.sid for token in tokens} == set(ledger.issued), "not the tokens issued"
    for token in tokens:
        issued = ledger.issued[token.sid]
        matching = [
            s for s in issued if await store.token_reads.find_by_secret(secret=s) is not None
        ]
        assert matching == [ledger.current[token.sid]], (token.name, len(issued), len(matching))
        assert token.secret_hint == ledger.current[token.sid][-4:], token.name
        disabled = token.sid in ledger.disabled
        assert token.enabled is not disabled, token.name
        verified = [s for s in issued if verify(store, s) is not None]
        assert verified == ([] if disabled else [ledger.current[token.sid]]), token.name
        status = await final_check(gateway_session, ledger.current[token.sid], shared_database)
        assert status == (401 if disabled else 200), token.name

    # The audit log says what the acknowledged flows did, no more, no less.
    events = [e for e in await store.audit.events(limit=1_000_000) if e.id > run.baseline]
    audited = Counter((event.action, event.actor) for event in events)
    assert audited == +ledger.applied, (audited - ledger.applied, ledger.applied - audited)

    # The database is sound.
    if sqlite_file is not None:
        with closing(sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True)) as connection:
            integrity = connection.execute("PRAGMA integrity_check").fetchall()
        assert integrity == [("ok",)], integrity


async def final_check(session: aiohttp.ClientSession, secret: str, shared_database: bool) -> int:
    """The auth check's status for `secret` once the load is over; with a
    `shared_database`, asked again while the instance is not current yet."""
    deadline = time.monotonic() + FOLLOW_UP_TIMEOUT
    while True:
        async with session.get(
            "/auth/check", headers={"Authorization": f"Bearer {secret}"}
        ) as answer:
            body = await answer.json()
            if not (shared_database and unavailable_answer(answer.status, body, answer.headers)):
                return answer.status
        if time.monotonic() > deadline:
            return answer.status
        await asyncio.sleep(POLL)
