"""Hostile input everywhere a person (or a crafted payload) can put text or values.

Every text field and command argument gets the same list of hostile values (empty, huge,
control and invisible characters, mrkdwn and mentions, SQL and format strings, pasted
secrets). Crafted payloads get wrong shapes on top. Whatever arrives, the answer is a clear
error or a harmless rendering: HTTP 200 (401 for the auth check), no traceback, no "something
went wrong", no mrkdwn control sequence the app did not write itself, nothing Slack would
refuse, never a real secret, and nothing changed where an error was answered.

The cases run in batches inside a few tests (problems are collected, then reported together);
`pytest -s` prints how many inputs and targets each test tried.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from multidict import CIMultiDict
from slack_bolt.async_app import AsyncApp

from bot.auth_check import auth_check
from bot.inputs.modal_context import ModalContext
from bot.server import create_web_app
from bot.settings import Settings
from slack_standin.blockkit import check_message, check_view
from slack_standin.client import Reply, SlackClient, ephemeral_container, fill
from slack_standin.server import Call, ResponsePost, SlackStandIn
from storage.credentials import ALPHABET, generate_secret, is_valid_secret
from storage.models import Token
from storage.store import Store
from tests.bot.blockwalk import Body, block_starting, edit_action, text_objects
from tests.bot.conftest import ADMIN, SPECIALIST, STRANGER
from tests.bot.driver import CHANNEL, MESSAGE_TS, SlackUser, send_form, send_payload, settle
from tests.store_support import days_ahead

RUN_AGAIN = "Run `/tokens` again"
GONE = "no longer valid"
# Users the app may mention itself (actors, creators, contacts it validated with Slack).
KNOWN_USERS = frozenset({ADMIN, SPECIALIST, STRANGER})
# In a reply or a record: never. In the log: never either (an unexpected error's traceback).
REPLY_ALARMS = ("Traceback", "Something went wrong", "dispatch_failed")
LOG_ALARMS = ("Traceback", "unexpected error", "background work failed", "Error handling request")


# -- the hostile values -------------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """`real` belongs to a token in the store, `unknown` has a valid checksum and no token;
    the bad-checksum and cut-short strings come from a third, throwaway secret."""

    real: str
    unknown: str
    bad_checksum: str
    short: str

    @property
    def guarded(self) -> tuple[tuple[str, str], ...]:
        """What must never show: both valid secrets, whole or as their random part, in any
        case (a lower-cased secret is easily recovered through its checksum)."""
        return tuple(
            (label, piece.lower())
            for label, secret in (("real secret", self.real), ("unknown secret", self.unknown))
            for piece in (secret, secret[4:36])
        )


def make_secrets(real: str) -> Secrets:
    throwaway = generate_secret()
    last = throwaway[-1]
    wrong = next(c for c in ALPHABET if c != last)
    bad = throwaway[:-1] + wrong
    assert is_valid_secret(real) and is_valid_secret(throwaway) and not is_valid_secret(bad)
    return Secrets(real=real, unknown=generate_secret(), bad_checksum=bad, short=throwaway[:20])


def hostile_values(secrets: Secrets) -> list[tuple[str, str]]:
    """(id, value): the same list for every field and argument."""
    return [
        ("empty", ""),
        ("whitespace", " \t \u00a0\u3000 "),
        ("chars_10000", "a" * 10_000),
        ("emoji_10000", "\U0001f600" * 10_000),
        ("nul", "a\x00b"),
        ("bell", "a\x07b"),
        ("ansi", "\x1b[31mred\x1b[0m"),
        ("crlf", "one\r\ntwo"),
        ("rlo", "abc\u202edef"),
        ("bidi_isolates", "\u2066a\u2067b\u2068c\u2069"),
        ("zwsp", "zero\u200bwidth"),
        ("zwj", "a\u200db"),
        ("bom", "\ufeffbom"),
        ("line_para_separators", "line\u2028para\u2029end"),
        ("lone_surrogate", "x\ud800y"),
        ("channel", "<!channel>"),
        ("here", "<!here> hi"),
        ("channel_escaped", "&lt;!channel&gt;"),
        ("user_mention", "<@U0ADMIN1>"),
        ("subteam", "<!subteam^S123|@x>"),
        ("link", "<https://evil.example|click>"),
        ("formatting", "*b* _i_ ~s~ `c`"),
        ("double_escaped", "&amp;amp;"),
        ("sql_drop", "'; DROP TABLE tokens;--"),
        ("sql_percent", "%"),
        ("sql_underscore", "_"),
        ("backslash", "\\"),
        ("path", "../../etc/passwd"),
        ("format_brace", "{0}"),
        ("format_percent", "%s%n"),
        ("secret_real", secrets.real),
        ("secret_unknown", secrets.unknown),
        ("secret_bad_checksum", secrets.bad_checksum),
        ("secret_short", secrets.short),
    ]


# What a name or a description must refuse, written out independently of the app: control,
# format and invisible characters, line and paragraph separators, text that is not Unicode,
# more characters than the field holds, a Token Desk secret; a name also refuses an empty or
# blank value and a second line.
_INVISIBLE = {"nul", "bell", "ansi", "rlo", "bidi_isolates", "zwsp", "zwj", "bom"}
_ALWAYS_REFUSED = _INVISIBLE | {
    "chars_10000",
    "emoji_10000",
    "line_para_separators",
    "lone_surrogate",
    "secret_real",
    "secret_unknown",
}
NAME_REFUSED = _ALWAYS_REFUSED | {"empty", "whitespace", "crlf"}
DESCRIPTION_REFUSED = _ALWAYS_REFUSED
EXTRA_CONTACTS = [
    ("contact_short_id", "U1"),
    ("contact_mention", "<@U0ADMIN1>"),
    ("contact_unknown_id", "U0ADMIN1"),
    ("contact_long_id", "W" + "A" * 30),
    ("contact_lowercase", ADMIN.lower()),
]


# -- reading what the app said -------------------------------------------------------------

_SAFE_ANGLES = re.compile(r"<!date\^\d+\^[^<>|]*\|[^<>]*>|<@([UW][A-Z0-9]+)>")
_RAW_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt);)")
_ENTITY = re.compile(r"&(?:amp|lt|gt);")


def _short(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def mrkdwn_problems(node: Any, *, message: bool) -> list[str]:
    """Every mrkdwn text (and a message's top-level `text`): only the app's own `<…>`
    sequences (dates, mentions of users it knows), `&` only as an entity, and escaped user
    text only in verbatim texts."""
    texts: list[tuple[str, Body | None]] = [
        (o["text"], o) for o in text_objects(node) if o["type"] == "mrkdwn"
    ]
    if message and isinstance(node, dict) and isinstance(node.get("text"), str):
        texts.append((node["text"], None))
    problems = []
    for text, obj in texts:

        def strip(match: re.Match[str]) -> str:
            user = match.group(1)
            return match.group(0) if user is not None and user not in KNOWN_USERS else ""

        rest = _SAFE_ANGLES.sub(strip, text)
        if "<" in rest or ">" in rest:
            problems.append(f"unescaped control sequence in mrkdwn: {_short(text)}")
        if _RAW_AMPERSAND.search(text):
            problems.append(f"raw & in mrkdwn: {_short(text)}")
        if obj is not None and _ENTITY.search(text) and obj.get("verbatim") is not True:
            problems.append(f"escaped user text in a non-verbatim mrkdwn: {_short(text)}")
    return problems


def text_problems(dump: str, secrets: Secrets, *, alarms: tuple[str, ...]) -> list[str]:
    problems = [f"{alarm!r} shown" for alarm in alarms if alarm in dump]
    lowered = dump.lower()
    leaked = dict.fromkeys(label for label, piece in secrets.guarded if piece in lowered)
    return problems + [f"{label} leaked" for label in leaked]


def _dump(node: Any) -> str:
    return node if isinstance(node, str) else json.dumps(node, ensure_ascii=False)


def message_problems(body: Any, secrets: Secrets) -> list[str]:
    if not isinstance(body, dict):
        return [f"not a JSON message: {_short(str(body))}"]
    problems = check_message(body) + mrkdwn_problems(body, message=True)
    return problems + text_problems(_dump(body), secrets, alarms=REPLY_ALARMS)


def view_problems(view: Any, secrets: Secrets) -> list[str]:
    if not isinstance(view, dict):
        return ["not a view"]
    problems = check_view(view) + mrkdwn_problems(view, message=False)
    return problems + text_problems(_dump(view), secrets, alarms=REPLY_ALARMS)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def seeded(store: Store) -> tuple[Token, Secrets]:
    await store.account.set_api_access(actor=ADMIN, enabled=True)
    issued = await store.tokens.create(
        actor=ADMIN,
        name="Seed token",
        description="The token the pasted secret belongs to",
        access_rights=["reports:read"],
        primary_contact=ADMIN,
        expires_on=days_ahead(clock=store.clock),
    )
    return issued.token, make_secrets(issued.secret)


@dataclass
class Sweep:
    """Runs cases one after the other and collects every problem, with its case."""

    title: str
    slack: SlackClient
    standin: SlackStandIn
    store: Store
    log: io.StringIO
    secrets: Secrets
    problems: list[str] = field(default_factory=list)
    inputs: set[str] = field(default_factory=set)
    targets: set[str] = field(default_factory=set)
    cases: int = 0

    def add(self, label: str, problems: list[str]) -> None:
        self.problems += [f"{label}: {problem}" for problem in problems]

    async def snapshot(self) -> tuple[Any, ...]:
        page = await self.store.token_reads.page(limit=100)
        tokens = tuple((t.id, t.row_version, t.name, t.primary_contact) for t in page.tokens)
        events = len(await self.store.audit.events(limit=100_000))
        roles = await self.store.roles.mappings()
        return tokens, page.total, self.store.account.api_access, events, roles

    async def case(
        self,
        target: str,
        value_id: str,
        send: Callable[[], Awaitable[Reply]],
        *,
        unchanged: bool = True,
    ) -> tuple[str, Reply, list[Any], bool]:
        """Sends one case and checks everything it caused. Returns the label, the reply,
        the response_url posts it caused, and whether the state stayed as it was."""
        self.cases += 1
        self.inputs.add(value_id)
        self.targets.add(target)
        label = f"{target} [{value_id}]"
        before = await self.snapshot()
        calls, posts = len(self.standin.calls), len(self.standin.responses)
        logged = len(self.log.getvalue())
        reply = await send()
        await settle()
        new_posts = self.standin.responses[posts:]
        problems = self._reply_problems(reply)
        problems += self._call_problems(self.standin.calls[calls:])
        problems += self._post_problems(new_posts)
        written = self.log.getvalue()[logged:]
        problems += [f"log: {p}" for p in text_problems(written, self.secrets, alarms=LOG_ALARMS)]
        same = await self.snapshot() == before
        if unchanged and not same:
            problems.append("the state changed")
        self.add(label, problems)
        return label, reply, [post.body for post in new_posts], same

    async def form_case(
        self, target: str, value_id: str, view: Body, state: Body, *, refused: bool
    ) -> tuple[str, Body, list[Any]] | None:
        """Submits `view` with a crafted `state.values`, as one case. Field errors are
        checked here (they change nothing, and come only for a value that must be refused):
        then None. Else the label, the ack and the response_url posts, for the caller."""

        async def send() -> Reply:
            return await self.slack.view_submission(ADMIN, view, state=state)

        label, reply, posts, same = await self.case(target, value_id, send, unchanged=False)
        body = reply.body if isinstance(reply.body, dict) else {}
        if body.get("response_action") != "errors":
            return label, body, posts
        if not same:
            self.add(label, ["a field error was answered, yet the state changed"])
        if not refused:
            self.add(label, [f"refused a valid value: {_short(_dump(body['errors']))}"])
        return None

    async def payloads_at_once(self, cases: list[tuple[str, str, Body]]) -> None:
        """Sends block_actions payloads concurrently (a listener that fails after its ack
        holds its answer for Bolt's 3 s ack timeout: so they overlap) and checks what each
        caused through its own response_url and trigger_id. The log and the state are
        checked for the batch as a whole: none of these may change anything."""
        before = await self.snapshot()
        calls, logged = len(self.standin.calls), len(self.log.getvalue())
        replies = await asyncio.gather(
            *(send_payload(self.slack, payload) for _, _, payload in cases)
        )
        await settle()
        new_calls = self.standin.calls[calls:]
        claimed: set[int] = set()
        for (target, value_id, payload), reply in zip(cases, replies, strict=True):
            self.cases += 1
            self.inputs.add(value_id)
            self.targets.add(target)
            own = [
                index
                for index, call in enumerate(new_calls)
                if call.args.get("trigger_id") == payload["trigger_id"]
            ]
            claimed.update(own)
            posts = self.standin.responses_to(payload["response_url"])
            problems = self._reply_problems(reply)
            problems += self._call_problems([new_calls[index] for index in own])
            problems += self._post_problems(posts)
            self.add(f"{target} [{value_id}]", problems)
        others = [call for index, call in enumerate(new_calls) if index not in claimed]
        self.add("batch", self._call_problems(others))
        written = self.log.getvalue()[logged:]
        self.add("batch log", text_problems(written, self.secrets, alarms=LOG_ALARMS))
        if await self.snapshot() != before:
            self.add("batch", ["the state changed"])

    def _reply_problems(self, reply: Reply) -> list[str]:
        if reply.status != 200:
            return [f"HTTP {reply.status}: {_short(_dump(reply.body))}"]
        if isinstance(reply.body, dict):
            return self._ack_problems(reply.body)
        if reply.body != "":
            return [f"unexpected text answer {_short(reply.body)}"]
        return []

    def _call_problems(self, calls: list[Call]) -> list[str]:
        problems: list[str] = []
        for call in calls:
            if call.method in ("users.info", "auth.test"):
                continue
            if not call.ok:
                problems.append(f"Slack refused {call.method}: {_short(_dump(call.answer), 400)}")
            if call.method.startswith("views."):
                problems += view_problems(call.args.get("view"), self.secrets)
            else:
                problems += message_problems(call.args, self.secrets)
        return problems

    def _post_problems(self, posts: list[ResponsePost]) -> list[str]:
        problems: list[str] = []
        for post in posts:
            if not post.accepted:
                problems.append(
                    f"response_url post refused: {post.error} {_short(_dump(post.body))}"
                )
            if isinstance(post.body, dict) and post.body.get("delete_original"):
                continue
            problems += message_problems(post.body, self.secrets)
        return problems

    def _ack_problems(self, body: Body) -> list[str]:
        action = body.get("response_action")
        if action is None:
            return message_problems(body, self.secrets)
        problems: list[str] = []
        if action in ("update", "push"):
            problems += view_problems(body.get("view"), self.secrets)
        elif action == "errors":
            errors = body.get("errors")
            if not isinstance(errors, dict) or not errors:
                problems.append(f"errors without errors: {_short(_dump(body))}")
            else:
                for key, text in errors.items():
                    if not isinstance(text, str) or not text.strip():
                        problems.append(f"empty field error for {key!r}")
                problems += text_problems(_dump(errors), self.secrets, alarms=REPLY_ALARMS)
        elif action != "clear":
            problems.append(f"unknown response_action {action!r}")
        return problems

    def finish(self, db: Path) -> None:
        """Prints the counts, checks the database files, and fails with every problem."""
        for path in db.parent.glob(db.name + "*"):
            if path.is_file():
                content = path.read_bytes().decode("utf-8", errors="replace").lower()
                for label, piece in self.secrets.guarded:
                    if piece in content:
                        self.problems.append(f"{label} stored in {path.name}")
        print(
            f"\n[hostile input] {self.title}: {len(self.inputs)} inputs x"
            f" {len(self.targets)} targets -> {self.cases} cases,"
            f" {len(self.problems)} problems"
        )
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
def sweep_of(
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    captured_log: io.StringIO,
    seeded: tuple[Token, Secrets],
) -> Callable[[str], Sweep]:
    def make(title: str) -> Sweep:
        return Sweep(title, slack, standin, store, captured_log, seeded[1])

    return make


# -- sending as Slack does (and as Slack never would) ---------------------------------------


def plain(text: str) -> Body:
    return {"type": "plain_text", "text": text or " ", "emoji": True}


def option(value: Any) -> Body:
    return {"text": plain(str(value)[:75]), "value": value}


async def slash(slack: SlackClient, standin: SlackStandIn, text: str) -> Reply:
    """`/tokens text` from ADMIN, `text` sent as given, even when it cannot be UTF-8."""
    form = {
        "token": "verification-token-unused",
        "team_id": standin.team_id,
        "team_domain": standin.team_domain,
        "channel_id": CHANNEL,
        "channel_name": "token-desk",
        "user_id": ADMIN,
        "user_name": "uadmin001",
        "command": "/tokens",
        "text": text,
        "api_app_id": standin.app_id,
        "is_enterprise_install": "false",
        "response_url": standin.response_url(),
        "trigger_id": standin.trigger_id(),
    }
    return await send_form(slack, form, dict(form))


def action_payload(standin: SlackStandIn, action: Body, *, state: Any = None) -> Body:
    """A block_actions payload from the ephemeral list; `state` is the whole `state`."""
    return {
        "type": "block_actions",
        "user": {"id": ADMIN, "username": "uadmin001", "name": "uadmin001", "team_id": "T0TEST"},
        "api_app_id": standin.app_id,
        "token": "verification-token-unused",
        "container": ephemeral_container(CHANNEL, MESSAGE_TS),
        "trigger_id": standin.trigger_id(),
        "team": {"id": standin.team_id, "domain": standin.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": CHANNEL, "name": "token-desk"},
        "response_url": standin.response_url(),
        "state": state if state is not None else {"values": {}},
        "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
    }


def submission(view: Body, *, metadata: Any) -> Body:
    """A copy of `view` as a distinct modal (its own id: one request key per modal)."""
    return {**view, "id": "V" + uuid.uuid4().hex[:10].upper(), "private_metadata": metadata}


def fresh_metadata(standin: SlackStandIn, base: ModalContext | None = None) -> str:
    """Carries a fresh stand-in response_url, so the refreshed list is checked too."""
    context = base or ModalContext()
    return context.model_copy(
        update={"response_url": standin.response_url(), "response_url_at": time.time()}
    ).dump()


# -- 1. the slash command ---------------------------------------------------------------------

SLASH_TARGETS: list[tuple[str, str, str]] = [
    ("/tokens <v>", "", ""),
    ("search <v>", "search ", ""),
    ("create <v>", "create ", ""),
    ("access <v>", "access ", ""),
    ("roles grant <v> admin", "roles grant ", " admin"),
    ("roles <v>", "roles ", ""),
    ("audit <v>", "audit ", ""),
]


async def test_slash_command_arguments(
    sweep_of: Callable[[str], Sweep], slack: SlackClient, standin: SlackStandIn, settings: Settings
) -> None:
    sweep = sweep_of("slash command")
    for value_id, value in hostile_values(sweep.secrets):
        for target, before, after in SLASH_TARGETS:
            text = before + value + after

            async def send(text: str = text) -> Reply:
                return await slash(slack, standin, text)

            await sweep.case(target, value_id, send)
    sweep.finish(settings.tokendesk_db)


# -- 2. the create form -----------------------------------------------------------------------


async def test_create_form_fields(
    admin: SlackUser,
    sweep_of: Callable[[str], Sweep],
    standin: SlackStandIn,
    store: Store,
    settings: Settings,
) -> None:
    sweep = sweep_of("create form")
    form = await admin.opened(await admin.send_command("create"), "token_create")
    good = {"name": "", "description": "", "access_rights": ["reports:read"]}
    serial = iter(range(1, 10_000))

    async def submit(target: str, value_id: str, state: Body, refused: bool) -> None:
        view = submission(form, metadata=fresh_metadata(standin))
        count = store.token_reads.count
        answered = await sweep.form_case(target, value_id, view, state, refused=refused)
        if answered is None:
            return
        label, body, posts = answered
        updated = body["view"] if body.get("response_action") == "update" else {}
        if updated.get("callback_id") == "token_secret":
            if refused:
                sweep.add(label, ["accepted a value that must be refused"])
            if store.token_reads.count != count + 1:
                sweep.add(label, ["the secret was shown but no token was created"])
            if len(posts) != 1:
                sweep.add(label, [f"{len(posts)} list refreshes, expected 1"])
        else:
            sweep.add(label, [f"neither field errors nor the secret: {_short(_dump(body))}"])

    for value_id, value in hostile_values(sweep.secrets):
        unique = f"Probe {next(serial)}"
        state = fill(form, {**good, "name": value})
        await submit("name", value_id, state, value_id in NAME_REFUSED)
        state = fill(form, {**good, "name": unique, "description": value})
        await submit("description", value_id, state, value_id in DESCRIPTION_REFUSED)
        state = fill(form, {**good, "name": f"{unique} rights"})
        state["access_rights"]["access_rights"]["selected_options"] = [option(value)]
        await submit("access rights", value_id, state, True)
        state = fill(form, {**good, "name": f"{unique} contact", "primary_contact": value})
        await submit("primary contact", value_id, state, True)
    for value_id, value in EXTRA_CONTACTS:
        state = fill(form, {**good, "name": f"Probe {value_id}", "primary_contact": value})
        await submit("primary contact", value_id, state, True)
    sweep.finish(settings.tokendesk_db)


# -- 3. the edit form ---------------------------------------------------------------------------


async def test_edit_form_fields(
    admin: SlackUser,
    sweep_of: Callable[[str], Sweep],
    standin: SlackStandIn,
    store: Store,
    settings: Settings,
    seeded: tuple[Token, Secrets],
) -> None:
    sweep = sweep_of("edit form")
    token = seeded[0]
    await admin.command()
    _, form = await admin.open(edit_action(admin.blocks, token.id), "token_edit")
    opened = ModalContext.parse(form["private_metadata"])
    assert opened is not None and opened.token_id == token.id

    async def submit(target: str, value_id: str, values: Body, refused: bool) -> None:
        current = await store.token_reads.get(token_id=token.id)
        context = opened.model_copy(update={"row_version": current.row_version})
        view = submission(form, metadata=fresh_metadata(standin, context))
        answered = await sweep.form_case(
            target, value_id, view, fill(form, values), refused=refused
        )
        if answered is None:
            return
        label, body, _ = answered
        if body.get("response_action") == "clear":
            if refused:
                sweep.add(label, ["accepted a value that must be refused"])
        else:
            sweep.add(label, [f"neither field errors nor saved: {_short(_dump(body))}"])

    for value_id, value in hostile_values(sweep.secrets):
        await submit("name", value_id, {"name": value}, value_id in NAME_REFUSED)
        refused = value_id in DESCRIPTION_REFUSED
        await submit("description", value_id, {"description": value}, refused)
        await submit("primary contact", value_id, {"primary_contact": value}, True)
    for value_id, value in EXTRA_CONTACTS:
        await submit("primary contact", value_id, {"primary_contact": value}, True)
    # A real person, as a control: the contact changes and both hear about it.
    await submit("primary contact", "contact_valid_person", {"primary_contact": STRANGER}, False)
    sweep.finish(settings.tokendesk_db)


# -- 4. the list's elements with hostile values --------------------------------------------------


async def test_list_elements_with_hostile_values(
    admin: SlackUser,
    sweep_of: Callable[[str], Sweep],
    slack: SlackClient,
    standin: SlackStandIn,
    settings: Settings,
) -> None:
    sweep = sweep_of("list elements")
    blocks = await admin.command()
    search_id = block_starting(blocks, "search.")["block_id"]
    filters_id = block_starting(blocks, "filters.")["block_id"]
    base = fill(blocks, {})

    def with_entry(block_id: str, action_id: str, entry: Body) -> Body:
        values = json.loads(json.dumps(base))
        values.setdefault(block_id, {})[action_id] = entry
        return {"values": values}

    def targets(value: str) -> list[tuple[str, Body, Body, bool]]:
        """(target, action, state, refreshes the list)."""
        select = {"type": "static_select", "selected_option": option(value)}
        return [
            (
                "search box (filter_name)",
                {
                    "type": "plain_text_input",
                    "action_id": "filter_name",
                    "block_id": search_id,
                    "value": value,
                },
                with_entry(search_id, "filter_name", {"type": "plain_text_input", "value": value}),
                True,
            ),
            (
                "created on select (filter_created)",
                {"action_id": "filter_created", "block_id": filters_id, **select},
                with_entry(filters_id, "filter_created", select),
                True,
            ),
            (
                "state select (filter_state)",
                {"action_id": "filter_state", "block_id": filters_id, **select},
                with_entry(filters_id, "filter_state", select),
                True,
            ),
            (
                "pager button (page_next)",
                {
                    "type": "button",
                    "action_id": "page_next",
                    "block_id": "pager",
                    "text": plain("Next"),
                    "value": value,
                },
                {"values": base},
                True,
            ),
            (
                "card menu (token_menu)",
                {
                    "type": "overflow",
                    "action_id": "token_menu",
                    "block_id": "details.1",
                    "selected_option": option(value),
                },
                {"values": base},
                False,
            ),
            (
                "edit button (token_edit)",
                {
                    "type": "button",
                    "action_id": "token_edit",
                    "block_id": "edit.1",
                    "text": plain("Edit"),
                    "value": value,
                },
                {"values": base},
                False,
            ),
            (
                "reset now button (token_reset_now)",
                {
                    "type": "button",
                    "action_id": "token_reset_now",
                    "block_id": "notice",
                    "text": plain("Reset now"),
                    "value": value,
                },
                {"values": base},
                False,
            ),
            (
                "audit pager name (audit_next)",
                {
                    "type": "button",
                    "action_id": "audit_next",
                    "block_id": "audit_pager",
                    "text": plain("Older"),
                    "value": f"0:{value}",
                },
                {"values": {}},
                True,
            ),
        ]

    for value_id, value in hostile_values(sweep.secrets):
        for target, action, state, refreshes in targets(value):
            payload = action_payload(standin, action, state=state)

            async def send(payload: Body = payload) -> Reply:
                return await send_payload(slack, payload)

            label, _, posts, _ = await sweep.case(target, value_id, send)
            if refreshes and len(posts) != 1:
                sweep.add(label, [f"{len(posts)} answers through the response_url, expected 1"])
    sweep.finish(settings.tokendesk_db)


# -- 5. crafted action payloads -------------------------------------------------------------


def crafted_actions(blocks: list[Body], token: Token) -> list[tuple[str, str, Body, Any]]:
    """(target, case id, action, whole `state`) of payloads a Slack client never sends."""
    tid, rv = token.id, token.row_version
    search_id = block_starting(blocks, "search.")["block_id"]
    filters_id = block_starting(blocks, "filters.")["block_id"]
    base = {"values": fill(blocks, {})}
    cases: list[tuple[str, str, Body, Any]] = []

    def button(action_id: str, block_id: str, **value: Any) -> Body:
        return {
            "type": "button",
            "action_id": action_id,
            "block_id": block_id,
            "text": plain("Button"),
            **value,
        }

    weird_numbers = [
        ("negative", "-10"),
        ("not_a_number", "abc"),
        ("float", "1e9"),
        ("digits_100", "9" * 100),
        ("digits_8", "99999999"),
        ("empty", ""),
        ("superscript_digits", "\u00b2\u00b3"),
        ("arabic_indic_digits", "\u0661\u0660"),
        ("leading_space", " 10"),
        ("hex", "0x10"),
    ]
    for case_id, value in weird_numbers:
        cases.append(("pager value", case_id, button("page_next", "pager", value=value), base))
    cases += [
        ("pager value", "missing", button("page_next", "pager"), base),
        ("pager value", "object", button("page_next", "pager", value={"offset": 10}), base),
        ("pager value", "list", button("page_previous", "pager", value=[1, 2]), base),
        ("pager value", "number", button("page_previous", "pager", value=10**30), base),
    ]

    select = {
        "type": "static_select",
        "action_id": "filter_state",
        "block_id": filters_id,
        "selected_option": option("enabled"),
    }
    nested: Any = "deep"
    for _ in range(200):
        nested = {"n": nested}
    states: list[tuple[str, Any]] = [
        ("state_missing", None),
        ("state_string", "nope"),
        ("state_list", [1, 2]),
        ("values_string", {"values": "nope"}),
        ("values_list", {"values": [1, 2]}),
        ("values_null", {"values": None}),
        ("block_not_object", {"values": {search_id: "str"}}),
        ("entry_not_object", {"values": {search_id: {"filter_name": "str"}}}),
        ("offset_huge", {"values": {"filters.99999999.x": {}}}),
        ("offset_superscript", {"values": {"filters.\u00b2\u00b3.x": {}}}),
        ("offset_arabic_indic", {"values": {"filters.\u0661\u0660.x": {}}}),
        ("offset_negative", {"values": {"filters.-5.x": {}}}),
        ("offset_float", {"values": {"filters.1e3.x": {}}}),
        ("offset_extra_parts", {"values": {"filters.10.x.y.z": {}}}),
        ("search_value_object", {"values": {search_id: {"filter_name": {"value": {"a": [1]}}}}}),
        ("search_value_number", {"values": {search_id: {"filter_name": {"value": 10**30}}}}),
        ("search_value_list", {"values": {search_id: {"filter_name": {"value": ["a", "b"]}}}}),
        ("search_value_nested", {"values": {search_id: {"filter_name": {"value": nested}}}}),
        ("option_list", {"values": {filters_id: {"filter_created": {"selected_option": ["x"]}}}}),
        (
            "option_value_object",
            {"values": {filters_id: {"filter_state": {"selected_option": {"value": {"x": 1}}}}}},
        ),
        (
            "option_value_upper",
            {"values": {filters_id: {"filter_state": {"selected_option": {"value": "ENABLED"}}}}},
        ),
        (
            "option_value_any",
            {"values": {filters_id: {"filter_created": {"selected_option": {"value": "any"}}}}},
        ),
        (
            "extra_keys",
            {
                "values": {**base["values"], "extra.block": {"extra": {"type": "x"}}},
                "extra": {"key": 1},
            },
        ),
    ]
    for case_id, state in states:
        cases.append(("list state", case_id, select, state))

    menu_values = [
        ("choice_only", "reset"),
        ("no_id", "reset:"),
        ("no_row_version", "reset:1"),
        ("extra_part", f"reset:{tid}:{rv}:9"),
        ("negative_id", "reset:-1:1"),
        ("zero", "reset:0:0"),
        ("unknown_token", "reset:99999:1"),
        ("stale_row_version", f"reset:{tid}:999"),
        ("unknown_choice", f"nuke:{tid}:{rv}"),
        ("upper_case_choice", f"RESET:{tid}:{rv}"),
        ("id_30_digits", "reset:" + "9" * 30 + ":1"),
        ("disable_id_20_digits", "disable:" + "9" * 20 + ":1"),
        ("id_superscript", f"reset:\u00b2:{rv}"),
        ("row_version_superscript", f"upgrade:{tid}:\u00b2"),
        ("value_200_chars", "reset:" + "1" * 194),
    ]
    for case_id, value in menu_values:
        menu: Body = {
            "type": "overflow",
            "action_id": "token_menu",
            "block_id": f"details.{tid}",
            "selected_option": option(value),
        }
        cases.append(("card menu", case_id, menu, base))
    shapes: list[tuple[str, Any]] = [
        ("option_missing", None),
        ("option_string", "reset"),
        ("option_list", [option(f"reset:{tid}:{rv}")]),
        ("value_number", {"value": 5}),
        ("value_object", {"value": {"choice": "reset", "id": tid}}),
    ]
    for case_id, selected in shapes:
        menu = {"type": "overflow", "action_id": "token_menu", "block_id": f"details.{tid}"}
        if selected is not None:
            menu["selected_option"] = selected
        cases.append(("card menu", case_id, menu, base))

    refs = [
        ("not_a_ref", "abc"),
        ("id_only", "1"),
        ("no_row_version", f"{tid}:"),
        ("no_id", f":{rv}"),
        ("negative", f"-{tid}:{rv}"),
        ("unknown_token", "99999:1"),
        ("id_30_digits", "9" * 30 + ":1"),
        ("id_superscript", f"\u00b2:{rv}"),
        ("row_version_superscript", f"{tid}:\u00b2"),
    ]
    for action_id, block_id in (
        ("token_edit", f"edit.{tid}"),
        ("token_reset_now", "notice"),
        ("token_end_grace", f"edit.{tid}"),
    ):
        for case_id, value in refs:
            cases.append((action_id, case_id, button(action_id, block_id, value=value), base))
        cases.append((action_id, "missing", button(action_id, block_id), base))
        cases.append((action_id, "object", button(action_id, block_id, value={"id": tid}), base))

    audit_values: list[tuple[str, Any]] = [
        ("empty_object", "{}"),
        ("array", "[]"),
        ("string", '"str"'),
        ("null", "null"),
        ("bare_infinity", "Infinity"),
        ("offset_negative", '{"offset": -5}'),
        ("offset_text", '{"offset": "x"}'),
        ("offset_superscript", '{"offset": "\u00b2"}'),
        ("offset_infinite", '{"offset": 1e400}'),
        ("offset_nan", '{"offset": NaN}'),
        ("offset_30_digits", '{"offset": ' + "9" * 30 + "}"),
        ("offset_list", '{"offset": [1]}'),
        ("name_object", '{"name": {"a": 1}}'),
        ("name_null", '{"name": null, "offset": 0}'),
        ("extra_keys", '{"name": "", "offset": 0, "admin": true}'),
        ("nested_999", "[" * 999 + "]" * 999),
        ("not_json", "offset=10"),
        ("value_object", {"name": "x", "offset": 10}),
        ("value_missing", None),
    ]
    for case_id, value in audit_values:
        pager = button("audit_next", "audit_pager")
        if value is not None:
            pager["value"] = value
        cases.append(("audit pager", case_id, pager, {"values": {}}))
    clear_values: list[tuple[str, Any]] = [
        ("clear_value", "<!channel>"),
        ("clear_object", {"a": 1}),
    ]
    for case_id, value in clear_values:
        cases.append(("clear all", case_id, button("filters_clear", filters_id, value=value), base))
    return cases


async def test_crafted_action_payloads(
    admin: SlackUser,
    sweep_of: Callable[[str], Sweep],
    standin: SlackStandIn,
    settings: Settings,
    seeded: tuple[Token, Secrets],
) -> None:
    sweep = sweep_of("crafted actions")
    blocks = await admin.command()
    cases = []
    for target, case_id, action, state in crafted_actions(blocks, seeded[0]):
        payload = action_payload(standin, action, state=state)
        if state is None:
            del payload["state"]
        cases.append((target, case_id, payload))
    await sweep.payloads_at_once(cases)
    sweep.finish(settings.tokendesk_db)


# -- 6. crafted private_metadata --------------------------------------------------------------


def metadata_cases(token: Token, secrets: Secrets) -> list[tuple[str, Any]]:
    """(case id, private_metadata) for every callback; `{url}` marks a fresh stand-in
    response_url, `{now}` the current time."""
    return [
        ("not_json", "not json"),
        ("truncated_json", '{"response_url": '),
        ("array", "[]"),
        ("string", '"x"'),
        ("null", "null"),
        ("number", "12"),
        ("empty", ""),
        ("huge", json.dumps({"name": "x" * 5000})),
        ("padded_over_3000", " " * 3001 + "{}"),
        ("wrong_type_offset", '{"offset": "ten"}'),
        ("wrong_type_token_id", '{"token_id": [1]}'),
        ("wrong_type_created_on", '{"created_on": "yesterday"}'),
        ("wrong_type_response_url_at", '{"response_url": "{url}", "response_url_at": "now"}'),
        ("extra_key", '{"admin": true}'),
        ("negative_offset", '{"offset": -1}'),
        ("huge_offset", '{"offset": 1e30}'),
        ("lone_surrogate_name", '{"name": "\\ud800"}'),
        ("not_a_string", {"token_id": token.id}),
        ("a_number", 12),
        (
            "hostile_name",
            '{"name": "<!channel>", "response_url": "{url}", "response_url_at": {now}}',
        ),
        (
            "secret_name",
            '{"name": "' + secrets.real + '", "response_url": "{url}", "response_url_at": {now}}',
        ),
    ]


def evil_urls(elsewhere_url: str, standin: SlackStandIn) -> list[tuple[str, str]]:
    port = urlsplit(standin.api_url).port
    return [
        ("url_other_port", f"{elsewhere_url}/hook"),
        ("url_other_host", "https://evil.example/hook"),
        ("url_slack_lookalike", "https://hooks.slack.com.evil.example/x"),
        ("url_userinfo_trick", "https://hooks.slack.com@evil.example/x"),
        ("url_plain_http_slack", "http://hooks.slack.com/services/x"),
        ("url_localhost_alias", f"http://localhost:{port}/response/x"),
        ("url_javascript", "javascript:alert(1)"),
        ("url_file", "file:///etc/passwd"),
    ]


def _expand(metadata: Any, standin: SlackStandIn) -> Any:
    if not isinstance(metadata, str):
        return metadata
    return metadata.replace("{url}", standin.response_url()).replace("{now}", str(time.time()))


async def test_crafted_private_metadata(
    admin: SlackUser,
    sweep_of: Callable[[str], Sweep],
    slack: SlackClient,
    standin: SlackStandIn,
    store: Store,
    settings: Settings,
    seeded: tuple[Token, Secrets],
    elsewhere: tuple[str, list[str]],
) -> None:
    sweep = sweep_of("private_metadata")
    token, secrets = seeded
    await admin.command()
    _, edit_form = await admin.open(edit_action(admin.blocks, token.id), "token_edit")
    create_form = await admin.opened(await admin.send_command("create"), "token_create")
    serial = iter(range(1, 10_000))
    elsewhere_url, hits = elsewhere
    evil = evil_urls(elsewhere_url, standin)

    async def submit(
        target: str, case_id: str, form: Body, metadata: Any, values: Body, unchanged: bool
    ) -> Body:
        state = fill(form, values)
        view = submission(form, metadata=_expand(metadata, standin))

        async def send() -> Reply:
            return await slack.view_submission(ADMIN, view, state=state)

        label, reply, _, _ = await sweep.case(target, case_id, send, unchanged=unchanged)
        return reply.body if isinstance(reply.body, dict) else {}

    def evil_metadata(url: str, **fields: Any) -> str:
        return json.dumps({**fields, "response_url": url, "response_url_at": time.time()})

    # Create: a bad context only loses the list refresh; the token is still created.
    for case_id, metadata in metadata_cases(token, secrets) + [
        (case_id, evil_metadata(url)) for case_id, url in evil
    ]:
        count = store.token_reads.count
        values = {"name": f"Meta {next(serial)}", "access_rights": ["reports:read"]}
        body = await submit("create", case_id, create_form, metadata, values, False)
        label = f"create [{case_id}]"
        if body.get("response_action") != "update" or store.token_reads.count != count + 1:
            sweep.add(label, [f"not created: {_short(_dump(body))}"])
        elif case_id.startswith("url_") and RUN_AGAIN not in _dump(body["view"]):
            sweep.add(label, ["a response_url elsewhere was taken for the list"])

    # Edit and confirm: a bad context changes nothing and says so politely.
    current = await store.token_reads.get(token_id=token.id)
    tid, rv = current.id, current.row_version
    reference = {"token_id": tid, "row_version": rv}
    edit_cases = (
        metadata_cases(token, secrets)
        + [
            ("unknown_token", json.dumps({"token_id": 99999, "row_version": 1})),
            ("token_id_20_digits", json.dumps({"token_id": 10**20, "row_version": 1})),
            ("stale_row_version", json.dumps({"token_id": tid, "row_version": rv + 50})),
            ("row_version_20_digits", json.dumps({"token_id": tid, "row_version": 10**20})),
            ("extra_key_with_ref", json.dumps({**reference, "admin": True})),
            ("zero_ids", json.dumps({"token_id": 0, "row_version": 0})),
        ]
        + [(case_id, evil_metadata(url, **reference)) for case_id, url in evil]
    )
    for case_id, metadata in edit_cases:
        body = await submit("edit", case_id, edit_form, metadata, {}, True)
        if case_id.startswith("url_") and RUN_AGAIN not in _dump(body.get("view")):
            sweep.add(f"edit [{case_id}]", ["a response_url elsewhere was taken for the list"])

    confirm = {
        "type": "modal",
        "callback_id": "token_confirm",
        "title": plain("Reset token"),
        "submit": plain("Reset"),
        "close": plain("Cancel"),
        "blocks": [],
    }
    confirm_cases = metadata_cases(token, secrets) + [
        ("no_action", json.dumps(reference)),
        ("unknown_action", json.dumps({**reference, "action": "nuke"})),
        ("disable_action", json.dumps({**reference, "action": "disable"})),
        ("action_10000_chars", json.dumps({**reference, "action": "reset" * 2000})),
        ("unknown_token", json.dumps({"token_id": 99999, "row_version": 1, "action": "reset"})),
        (
            "token_id_20_digits",
            json.dumps({"token_id": 10**20, "row_version": 1, "action": "reset"}),
        ),
        (
            "stale_row_version",
            json.dumps({**reference, "row_version": rv + 50, "action": "delete"}),
        ),
        (
            "row_version_20_digits",
            json.dumps({**reference, "row_version": 10**20, "action": "reset"}),
        ),
        ("row_version_zero", json.dumps({**reference, "row_version": 0, "action": "delete"})),
        ("extra_key_delete", json.dumps({**reference, "action": "delete", "admin": True})),
        ("upgrade_when_newest", json.dumps({**reference, "action": "upgrade"})),
    ]
    for case_id, metadata in confirm_cases:
        await submit("confirm", case_id, confirm, metadata, {}, True)

    if hits:
        sweep.problems.append(f"the app posted to another host: {hits}")
    sweep.finish(settings.tokendesk_db)


# -- 7. the auth check's Authorization header --------------------------------------------------


def authorization_headers(value: str, sid: str, real: str) -> list[tuple[str, str]]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8", errors="surrogatepass")).decode()

    return [
        ("Bearer <v>", f"Bearer {value}"),
        ("Basic <v>", f"Basic {value}"),
        ("Basic b64(<v>:<v>)", f"Basic {b64(f'{value}:{value}')}"),
        ("Basic b64(SID:<v>)", f"Basic {b64(f'{sid}:{value}')}"),
        ("Basic b64(<v>:real secret)", f"Basic {b64(f'{value}:{real}')}"),
        ("<v> alone", value),
    ]


def auth_problems(status: int, headers: Any, body: Any, *, accepted: bool) -> list[str]:
    if accepted:
        if status != 200 or not isinstance(body, dict) or body.get("active") is not True:
            return [f"the real secret was refused: {status} {_short(_dump(body))}"]
    elif status != 401 or body != {"active": False}:
        return [f"expected 401 {{'active': false}}, got {status} {_short(_dump(body))}"]
    problems = []
    if headers.get("Cache-Control") != "no-store":
        problems.append("no Cache-Control: no-store")
    if not accepted and not headers.get("WWW-Authenticate"):
        problems.append("no WWW-Authenticate")
    return problems


HTTP_HEADER_LIMIT = 8190  # aiohttp's max_field_size: longer headers never reach the app


async def http_check(
    session: aiohttp.ClientSession, url: str, header: str
) -> tuple[int, Any, Any, str] | None:
    """(status, headers, body, raw text) over HTTP; None when aiohttp will not send it."""
    try:
        async with session.get(f"{url}/auth/check", headers={"Authorization": header}) as answer:
            text = await answer.text()
            status, headers = answer.status, answer.headers
    except ValueError:  # header injection guard, or not encodable
        return None
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    return status, headers, body, text


async def test_auth_check_authorization_header(
    sweep_of: Callable[[str], Sweep],
    store: Store,
    bolt: AsyncApp,
    settings: Settings,
    seeded: tuple[Token, Secrets],
    gateway_url: str,
) -> None:
    """Every hostile value in every header shape: to the handler as aiohttp would hand it
    over, and over HTTP where aiohttp sends it and it fits aiohttp's header limit (the
    longer ones: the next test)."""
    sweep = sweep_of("auth check")
    token, secrets = seeded
    web_app = create_web_app(store, bolt, serve_slack_events=False)
    skipped = 0
    async with aiohttp.ClientSession() as session:
        for value_id, value in hostile_values(secrets):
            for target, header in authorization_headers(value, token.sid, secrets.real):
                accepted = value_id == "secret_real" and target in (
                    "Bearer <v>",
                    "Basic b64(SID:<v>)",
                )
                label = f"{target} [{value_id}]"
                logged = len(sweep.log.getvalue())
                sweep.cases += 1
                sweep.inputs.add(value_id)
                sweep.targets.add(f"{target} (handler)")
                request = SimpleNamespace(
                    headers=CIMultiDict({"Authorization": header}), app=web_app
                )
                try:
                    answer = await auth_check(request)  # type: ignore[arg-type]
                except Exception as error:  # a 500 in a running server
                    sweep.add(f"{label} (handler)", [f"raised {type(error).__name__}: {error}"])
                else:
                    assert isinstance(answer.body, bytes)
                    problems = auth_problems(
                        answer.status, answer.headers, json.loads(answer.body), accepted=accepted
                    )
                    sweep.add(f"{label} (handler)", problems)
                sent = header.encode("utf-8", errors="surrogatepass")
                answered = None
                if len(sent) <= HTTP_HEADER_LIMIT:
                    answered = await http_check(session, gateway_url, header)
                if answered is None:
                    skipped += 1
                else:
                    status, headers, body, text = answered
                    sweep.cases += 1
                    sweep.targets.add(f"{target} (HTTP)")
                    problems = auth_problems(status, headers, body, accepted=accepted)
                    problems += text_problems(text, secrets, alarms=REPLY_ALARMS)
                    sweep.add(f"{label} (HTTP)", problems)
                written = sweep.log.getvalue()[logged:]
                sweep.add(
                    label, [f"log: {p}" for p in text_problems(written, secrets, alarms=LOG_ALARMS)]
                )
    print(f"\n[hostile input] auth check: {skipped} headers not sent over HTTP (see above)")
    sweep.finish(settings.tokendesk_db)


async def test_auth_check_oversized_header_is_a_plain_401(
    sweep_of: Callable[[str], Sweep],
    settings: Settings,
    seeded: tuple[Token, Secrets],
    gateway_url: str,
) -> None:
    """Headers longer than aiohttp's 8190-byte limit: the app means them to get its one 401
    (`_HEADER_MAX`), the same answer the auth check gives anything malformed."""
    sweep = sweep_of("auth check, oversized headers")
    secrets = seeded[1]
    oversized = [
        ("chars_10000", "a" * 10_000),
        ("emoji_10000", "\U0001f600" * 10_000),
        ("real_secret_then_padding", secrets.real + " " + "a" * 9_000),
    ]
    async with aiohttp.ClientSession() as session:
        for value_id, value in oversized:
            for target, header in (("Bearer <v>", f"Bearer {value}"), ("<v> alone", value)):
                sweep.cases += 1
                sweep.inputs.add(value_id)
                sweep.targets.add(target)
                logged = len(sweep.log.getvalue())
                answered = await http_check(session, gateway_url, header)
                assert answered is not None
                status, headers, body, text = answered
                problems = auth_problems(status, headers, body, accepted=False)
                problems += text_problems(text, secrets, alarms=REPLY_ALARMS)
                if secrets.real[4:] in text:
                    problems.append("the answer echoes the presented secret")
                written = sweep.log.getvalue()[logged:]
                problems += [
                    f"log: {p}" for p in text_problems(written, secrets, alarms=LOG_ALARMS)
                ]
                sweep.add(f"{target} [{value_id}]", problems)
    sweep.finish(settings.tokendesk_db)
