"""A Slack user's view of Token Desk, driven the way Slack drives the app.

`SlackUser` is one person in the channel: they type `/tokens …` and read the ephemeral list in
the ack, click what the app rendered (the request carries what they typed: `state.values`),
then see the list replaced through the click's response_url, or a modal opened with the
click's trigger, which they fill and submit. Slack gives up on an ack after 3 seconds, so
every request must be acknowledged with a 200 within that time.

`settle` waits for the work the app goes on with after its acks; `eventually` waits for one
thing to become true. The direct messages the app sent are read from the stand-in.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from bot.background import drain
from slack_standin.blockkit import check_message, check_view
from slack_standin.client import Reply, SlackClient, action_for, ephemeral_container, fill
from slack_standin.server import Call, ResponsePost, SlackStandIn
from storage.fields import is_user_id
from tests.bot.blockwalk import Body, assert_harmless, blocks_of, pager_button, refused

CHANNEL, MESSAGE_TS = "C0TEST", "1700000000.000100"  # where the user's list is shown
ACK_LIMIT = 3.0  # Slack tells the user the app failed when an ack takes longer
SETTLE_LIMIT = 8.0  # room for a retry after Slack's `Retry-After` and a timed-out call
# Elements whose new value travels in `state.values` of the very action that changed it.
_TYPED_INTO = ("static_select", "plain_text_input")

AckCheck = Callable[[str, Reply, float, float], None]


# -- waiting for the app --------------------------------------------------------------------


async def eventually(
    probe: Callable[[], Any], *, timeout: float = SETTLE_LIMIT, poll: float = 0.005
) -> Any:
    """The first truthy answer of `probe()` (a plain or an async function), polled; raises
    TimeoutError when none came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the app did not get there within {timeout} s")
        await asyncio.sleep(poll)


def _listener_tails() -> list[asyncio.Task[Any]]:
    """Bolt runs a listener as a task and answers the request as soon as it acks; the rest of
    the listener (and an error after the ack) finishes in that task."""
    current = asyncio.current_task()
    return [
        task
        for task in asyncio.all_tasks()
        if task is not current
        and not task.done()
        and "run_ack_function_asynchronously" in getattr(task.get_coro(), "__qualname__", "")
    ]


async def settle(until: Callable[[], Any] | None = None, *, timeout: float = SETTLE_LIMIT) -> None:
    """Waits until the app has done what its acks left to do: the rest of each listener and
    the work it spawned in the background. With `until`, first until `until()` holds."""
    if until is not None:
        await eventually(until, timeout=timeout)
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        left = deadline - time.monotonic()
        assert left > 0, "the app's work after its acks did not end in time"
        await asyncio.sleep(0)
        tails = _listener_tails()
        if tails:
            await asyncio.wait(tails, timeout=left)
        await drain(timeout=left)
        quiet = 0 if tails else quiet + 1


# -- what Slack holds ---------------------------------------------------------------------


def dms(standin: SlackStandIn, user_id: str | None = None) -> list[Body]:
    """The direct messages Slack accepted, in order (posted to a user id: the app sends a DM
    to the user id directly); only those to `user_id` when given."""
    return [
        call.args
        for call in standin.calls_to("chat.postMessage")
        if call.ok
        and is_user_id(str(call.args.get("channel")))
        and (user_id is None or call.args.get("channel") == user_id)
    ]


def dm_calls(standin: SlackStandIn, method: str, user_id: str) -> list[Call]:
    """The calls of `method` made to reach one user by direct message, accepted or not."""
    return [c for c in standin.calls_to(method) if c.args.get("channel") == user_id]


def dm_recipients(standin: SlackStandIn) -> list[str]:
    """Whom the app sent a direct message Slack accepted, in order; each posted to the user
    id directly, never after a `conversations.open` round trip."""
    assert standin.calls_to("conversations.open") == [], "a DM opened a conversation first"
    return [str(message["channel"]) for message in dms(standin)]


def modal_opened_with(standin: SlackStandIn, trigger_id: str, *, since: int = 0) -> Call | None:
    """The `views.open` the app made with `trigger_id` (among the calls from `since` on)."""
    return next(
        (
            call
            for call in standin.calls[since:]
            if call.method == "views.open" and call.args.get("trigger_id") == trigger_id
        ),
        None,
    )


# -- requests Slack would never send -----------------------------------------------------------


async def send_form(slack: SlackClient, form: dict[str, str], sent: Body) -> Reply:
    """Posts a form body, signed; text that cannot be UTF-8 (a lone surrogate) goes as its
    raw bytes."""
    body = urlencode(form, errors="surrogatepass").encode()
    status, headers, parsed = await slack.post(
        body, content_type="application/x-www-form-urlencoded"
    )
    return Reply(status, headers, parsed, sent)


async def send_payload(slack: SlackClient, payload: Body) -> Reply:
    """Posts an interaction payload exactly as given: crafted, or replayed by someone else."""
    return await send_form(slack, {"payload": json.dumps(payload)}, payload)


# -- one user -----------------------------------------------------------------------------


def assert_acknowledged(what: str, reply: Reply, started: float, seconds: float) -> None:
    """The ack Slack needs: a 200 within 3 seconds; bare for a click, whose answer goes
    through the response_url."""
    assert seconds < ACK_LIMIT, f"{what} acknowledged after {seconds:.2f} s"
    assert reply.status == 200, (what, reply.status, reply.body)
    if reply.sent.get("type") == "block_actions":
        assert reply.body == "", (what, reply.body)


class SlackUser:
    """One person using Token Desk from Slack: what they send and what they see.

    `message` is the ephemeral message they look at: the list `/tokens` showed, as each click
    answered in the list replaced it. A click is made on it (or on the `blocks` given) and
    carries its `state.values`. `on_ack` judges every ack (by default: `assert_acknowledged`).
    """

    def __init__(
        self, slack: SlackClient, user_id: str, *, on_ack: AckCheck = assert_acknowledged
    ) -> None:
        self.slack = slack
        self.standin = slack.standin
        self.user_id = user_id
        self.on_ack = on_ack
        self.message: Body = {}
        self.lists: list[Body] = []  # every list shown, in order
        self.acks: list[Body] = []  # every ack that carried JSON, in order

    @property
    def blocks(self) -> list[Body]:
        return blocks_of(self.message)

    # requests, as Slack sends them ------------------------------------------------------

    async def _send(self, what: str, request: Awaitable[Reply]) -> Reply:
        started = time.perf_counter()
        reply = await request
        self.on_ack(what, reply, started, time.perf_counter() - started)
        if isinstance(reply.body, dict):
            self.acks.append(reply.body)
        return reply

    async def send_command(
        self, text: str = "", *, trigger_id: str | None = None, what: str | None = None
    ) -> Reply:
        """`/tokens text`; `text` as Slack sends it, escaped (`&amp;`, `<@U…|name>`)."""
        request = self.slack.slash_command(self.user_id, text, trigger_id=trigger_id)
        return await self._send(what or f"/tokens {text}".strip(), request)

    async def send_click(
        self,
        action: Body | str,
        value: str | None = None,
        *,
        typed: Mapping[str, Any] | None = None,
        block_id: str | None = None,
        blocks: list[Body] | None = None,
        response_url: str | None = None,
        what: str | None = None,
    ) -> Reply:
        """The user acts on the message they see (or on `blocks`): `action` is built by
        `action_for`, or is the action_id of a rendered element, `value` then choosing its
        option or being what they typed into it. `typed` is what else they typed."""
        shown = self.blocks if blocks is None else blocks
        entered = dict(typed or {})
        if isinstance(action, str):
            action_id, action = action, action_for(shown, action, value, block_id=block_id)
            if action["type"] in _TYPED_INTO and value is not None:
                entered[action_id] = value
        request = self.slack.block_action(
            self.user_id,
            action,
            container=ephemeral_container(CHANNEL, MESSAGE_TS),
            state=fill(shown, entered),
            response_url=response_url,
        )
        reply = await self._send(what or str(action["action_id"]), request)
        assert "message" not in reply.sent, "Slack sends no copy of an ephemeral message"
        return reply

    async def send_submission(
        self,
        view: Body,
        values: Mapping[str, Any] | None = None,
        *,
        state: dict[str, Any] | None = None,
        what: str | None = None,
    ) -> Reply:
        """Submits the modal `view` with what the user typed or chose (see `fill`), or with
        a crafted `state.values`."""
        request = self.slack.view_submission(self.user_id, view, values or {}, state=state)
        return await self._send(what or f"submit {view.get('callback_id')}", request)

    # what the app answered ---------------------------------------------------------------

    async def posted(self, request: Reply, count: int = 1) -> list[ResponsePost]:
        """What the app posted through `request`'s response_url, once `count` posts came and
        the app's work settled; Slack accepted each."""
        url = request.sent["response_url"]
        await settle(until=lambda: len(self.standin.responses_to(url)) >= count)
        posts = self.standin.responses_to(url)
        assert all(post.accepted for post in posts), [post.error for post in posts]
        return posts

    async def answer(self, request: Reply) -> Body:
        """The one ephemeral message the app posted through `request`'s response_url after
        acknowledging it bare."""
        assert request.body == "", request.body
        posts = await self.posted(request)
        assert len(posts) == 1, [post.body for post in posts]
        body = posts[0].body
        assert isinstance(body, dict) and body.get("response_type") == "ephemeral", body
        assert check_message(body) == []
        return body

    async def listed(self, request: Reply) -> list[Body]:
        """The list as the app replaced it through `request`'s response_url."""
        body = await self.answer(request)
        assert body.get("replace_original") is True, body
        return self._show(body)

    async def opened(self, request: Reply, callback_id: str) -> Body:
        """The modal the app opened with `request`'s trigger, as Slack holds it."""
        trigger = request.sent["trigger_id"]
        await settle(until=lambda: modal_opened_with(self.standin, trigger))
        call = modal_opened_with(self.standin, trigger)
        assert call is not None and call.ok, call
        view = dict(call.answer["view"])
        assert view["callback_id"] == callback_id
        return view

    def _show(self, message: Body) -> list[Body]:
        """`message` is the user's list now, as Slack and a reader take it."""
        assert message.get("response_type") == "ephemeral"
        assert check_message(message) == []
        assert_harmless(message)
        assert len(blocks_of(message)) <= 50
        self.message = message
        self.lists.append(message)
        return self.blocks

    # a user's steps ------------------------------------------------------------------------

    async def command(self, text: str = "") -> list[Body]:
        """`/tokens text` answered with the list in the ack."""
        reply = await self.send_command(text)
        assert isinstance(reply.body, dict), reply.body
        return self._show(reply.body)

    async def click(self, action: Body | str, value: str | None = None, **where: Any) -> list[Body]:
        """A click answered in the list itself (the arguments of `send_click`): the list
        replaced through the click's response_url, and nothing else shown (no modal, no
        other message)."""
        await settle()  # what earlier requests left running is not this click's doing
        opened, posted = len(self.standin.calls_to("views.open")), len(self.standin.responses)
        reply = await self.send_click(action, value, **where)
        shown = await self.listed(reply)
        assert len(self.standin.calls_to("views.open")) == opened, "a modal opened"
        others = self.standin.responses[posted:]
        assert len(others) == 1, [post.body for post in others]
        return shown

    async def turn(self, label: str) -> list[Body]:
        """Clicks the pager button labelled `label` ("Previous" / "Next")."""
        action_id, value = pager_button(self.blocks, label)
        return await self.click(action_id, value, block_id="pager")

    async def open(self, action: Body, callback_id: str) -> tuple[Reply, Body]:
        """A click that opens a modal, and nothing else: the click, and the view."""
        opened = len(self.standin.calls_to("views.open"))
        reply = await self.send_click(action)
        view = await self.opened(reply, callback_id)
        assert len(self.standin.calls_to("views.open")) == opened + 1
        assert view == self.standin.latest_view(callback_id)
        return reply, view

    async def submit(
        self,
        view: Body,
        values: Mapping[str, Any] | None = None,
        *,
        state: dict[str, Any] | None = None,
    ) -> Body:
        """The ack of the modal's submission (a view in it passes Slack's checks)."""
        reply = await self.send_submission(view, values, state=state)
        assert isinstance(reply.body, dict), reply.body
        if "view" in reply.body:
            assert check_view(reply.body["view"]) == []
        return dict(reply.body)

    async def has_role(self) -> bool:
        """Whether Token Desk lets this user in: `/tokens help` is not refused."""
        reply = await self.send_command("help")
        return not refused(reply.body["text"])

    async def is_admin(self) -> bool:
        """Whether this user is an Account Administrator: `/tokens roles` lists the roles."""
        reply = await self.send_command("roles")
        return bool(reply.body.get("text") == "Token Desk roles")
