"""Several Token Desk instances on one PostgreSQL database, end to end: real `python -m bot`
processes in HTTP mode, driven the way Slack drives them (signed requests to
`/slack/events`) or through a store opened in the test process (one more instance), and
asked `/auth/check` over HTTP.

The rule under test (storage/currency.py): once a change is acknowledged, no instance
approves a secret the change revoked; an instance that cannot be sure it applied every
committed change answers 503 instead (`Retry-After: 1`), never a stale 200.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bot.ids import ActionId, GraceChoice
from slack_standin.client import Signing, SlackClient, action_for, signed_headers
from slack_standin.server import SlackStandIn
from storage.credentials import SecretHasher
from storage.models import IssuedToken
from storage.postgres import CONNECT_WAIT_SECONDS
from storage.schema import LATEST_VERSION
from storage.store import KEY_CHECK_SETTING, Store
from tests.bot.blockwalk import SECRET_SHAPE, all_text, create_action, menu_action, notice_of
from tests.bot.conftest import ADMIN, SIGNING_SECRET, free_port
from tests.bot.driver import SlackUser, settle
from tests.bot.instances_support import (
    OTHER_KEY,
    PASSWORD,
    SECRET_KEY,
    Answer,
    Instance,
    Instances,
    app_environment,
    instance_store,
    statuses,
    unavailable,
)
from tests.postgres_cluster import PostgresCluster
from tests.store_support import days_ahead, tokens_by_sid

# A change waits at most for the currency lease plus its margin (1.5 s) for an instance
# that does not confirm it; the rest is room for a busy machine.
ACKNOWLEDGED_WITHIN = 2.0
WATCHED_FOR = 2.0
# How often the server drops every connection of the instances in a row.
DROPS = 30


@pytest.fixture
async def instances(
    tmp_path: Path, standin: SlackStandIn, postgres_url: str
) -> AsyncIterator[Instances]:
    """The test's app processes; they end before its database is dropped."""
    async with Instances(tmp_path, standin.api_url) as running:
        yield running


async def issue(store: Store, name: str) -> IssuedToken:
    return await store.tokens.create(
        actor=ADMIN,
        name=name,
        access_rights=["reports:read"],
        primary_contact=ADMIN,
        expires_on=days_ahead(90, clock=store.clock),
    )


def assert_refused(answers: Sequence[Answer]) -> None:
    """No approval: a 401, or the 503 of an instance not current."""
    for answer in answers:
        assert answer.status == 401 or unavailable(answer), answers


def assert_approved(answers: Sequence[Answer]) -> None:
    """An approval, or the 503 of an instance not current."""
    for answer in answers:
        assert answer.status == 200 or unavailable(answer), answers


async def audited(store: Store, action: str) -> int:
    return [event.action for event in await store.audit.events(limit=1000)].count(action)


# -- 1. a change through one is in effect on the others at once --------------------------


async def test_a_change_through_one_instance_is_in_effect_on_every_other_at_once(
    instances: Instances, postgres_url: str, standin: SlackStandIn
) -> None:
    running = await instances.start(postgres_url, 3)
    async with instance_store(postgres_url) as store:
        await store.account.set_api_access(actor=ADMIN, enabled=True)
        issued = await issue(store, "Shared gateway")
    token_id, secret = issued.token.id, issued.secret
    assert statuses(await instances.check_all(running, secret)) == [200, 200, 200]
    first = running[0]

    async with SlackClient(
        f"{first.url}/slack/events", signing_secret=SIGNING_SECRET, standin=standin
    ) as slack:
        admin = SlackUser(slack, ADMIN)
        await admin.command()

        # `click` returns once the list was replaced through the response_url, which the
        # app does only after the change was acknowledged.
        listed = await admin.click(menu_action(admin.blocks, token_id, "disable"))
        assert "disabled" in notice_of(listed)
        assert_refused(await instances.check_all(running, secret))

        listed = await admin.click(menu_action(admin.blocks, token_id, "enable"))
        assert "enabled" in notice_of(listed)
        assert_approved(await instances.check_all(running, secret))

        _, confirmation = await admin.open(
            menu_action(admin.blocks, token_id, "reset"), "token_confirm"
        )
        # The submission is acknowledged with the new secret only after the change was.
        ack = await admin.submit(confirmation, {ActionId.GRACE_CHOICE: GraceChoice.STOP})
        (new_secret,) = set(SECRET_SHAPE.findall(json.dumps(ack["view"])))
        old, new = await asyncio.gather(
            instances.check_all(running, secret), instances.check_all(running, new_secret)
        )
        assert_refused(old)
        assert_approved(new)

        reply = await admin.send_command("access off")
        blocks = reply.body["blocks"]
        click = await admin.send_click(action_for(blocks, "api_access_off"), blocks=blocks)
        assert "API access is off" in (await admin.answer(click))["text"]
        assert_refused(await instances.check_all(running, new_secret))

    assert statuses(await instances.check_all(running, new_secret)) == [401, 401, 401]


# -- 2. a frozen instance never approves a secret revoked meanwhile ----------------------


async def test_a_stopped_instance_never_approves_a_token_disabled_meanwhile(
    instances: Instances, postgres_url: str
) -> None:
    active, frozen = await instances.start(postgres_url, 2)
    async with instance_store(postgres_url) as store:
        await store.account.set_api_access(actor=ADMIN, enabled=True)
        issued = await issue(store, "Frozen gateway")
        assert statuses(await instances.check_all([active, frozen], issued.secret)) == [200, 200]

        frozen.pause()
        started = time.monotonic()
        await store.tokens.set_enabled(actor=ADMIN, token_id=issued.token.id, enabled=False)
        took = time.monotonic() - started
        assert took < ACKNOWLEDGED_WITHIN, f"acknowledged after {took:.2f} s"
        assert (await instances.check(active, issued.secret)).status == 401

        # One check sent while it is stopped, answered as soon as it runs again.
        queued = asyncio.create_task(instances.check(frozen, issued.secret))
        await asyncio.sleep(0.1)
        frozen.resume()
        answers = [await queued]
        deadline = time.monotonic() + WATCHED_FOR
        while time.monotonic() < deadline:
            answers.append(await instances.check(frozen, issued.secret))
        assert_refused(answers)
        assert answers[-1].status == 401, statuses(answers)
        # 503 until it caught up, then 401 for good.
        first_refusal = statuses(answers).index(401)
        assert set(statuses(answers[first_refusal:])) == {401}, statuses(answers)


# -- 3. an instance killed during a burst of changes --------------------------------------


async def test_an_instance_killed_during_a_burst_holds_no_change_up(
    instances: Instances, postgres_url: str
) -> None:
    killed, third = await instances.start(postgres_url, 2)
    async with instance_store(postgres_url) as store:
        await store.account.set_api_access(actor=ADMIN, enabled=True)
        tokens = [await issue(store, name) for name in ("Burst one", "Burst two")]
        enabled = [True, True]
        waits: list[float] = []
        for step in range(16):
            if step == 4:
                killed.kill()
            which = step % 2
            enabled[which] = not enabled[which]
            started = time.monotonic()
            await store.tokens.set_enabled(
                actor=ADMIN, token_id=tokens[which].token.id, enabled=enabled[which]
            )
            waits.append(time.monotonic() - started)
            answers = await instances.check_all([third, third], tokens[0].secret)
            answers += await instances.check_all([third], tokens[1].secret)
            expected = [200 if enabled[0] else 401] * 2 + [200 if enabled[1] else 401]
            assert statuses(answers) == expected, (step, answers)
        assert max(waits) < ACKNOWLEDGED_WITHIN, [f"{wait:.2f}" for wait in waits]
    assert killed.process.wait(timeout=5) == -signal.SIGKILL


# -- 4. two instances starting at once on an empty database -------------------------------


async def test_two_instances_starting_at_once_migrate_an_empty_database_once(
    instances: Instances, postgres_url: str
) -> None:
    running = await instances.start(postgres_url, 2)
    connection = await asyncpg.connect(postgres_url)
    try:
        versions = await connection.fetch("SELECT version FROM schema_version")
        checks = await connection.fetch(
            "SELECT value FROM settings WHERE key = $1", KEY_CHECK_SETTING
        )
        registered = await connection.fetchval("SELECT count(*) FROM instances")
    finally:
        await connection.close()
    assert [row[0] for row in versions] == [LATEST_VERSION]
    expected = SecretHasher(bytes.fromhex(SECRET_KEY)).key_check_value()
    assert [row[0] for row in checks] == [expected]
    assert registered == 2

    async with instance_store(postgres_url) as store:
        await store.account.set_api_access(actor=ADMIN, enabled=True)
        issued = await issue(store, "After the race")
    assert statuses(await instances.check_all(running, issued.secret)) == [200, 200]
    for instance in running:
        assert "Traceback" not in instance.stderr, instance.stderr


# -- 5. the database stopped and started again ---------------------------------------------


async def until(
    probe: Callable[[], Awaitable[bool]], timeout: float, running: Sequence[Instance]
) -> float:
    """Polls `probe()` until it is true: the seconds it took; fails, with the end of every
    instance's stderr, when it did not become true within `timeout`."""
    started = time.monotonic()
    while not await probe():
        assert time.monotonic() - started < timeout, "\n".join(
            [f"not within {timeout} s", *(instance.tail() for instance in running)]
        )
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_with_the_database_stopped_every_instance_answers_503_then_recovers(
    instances: Instances, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    running = await instances.start(postgres_url, 2)
    async with instance_store(postgres_url) as store:
        await store.account.set_api_access(actor=ADMIN, enabled=True)
        issued = await issue(store, "Through the outage")
    assert statuses(await instances.check_all(running, issued.secret)) == [200, 200]

    async def refusing() -> bool:
        answers = await instances.check_all(running, issued.secret)
        ready = [await instances.readiness(instance) for instance in running]
        return all(unavailable(answer) for answer in answers) and ready == [503, 503]

    async def approving() -> bool:
        answers = await instances.check_all(running, issued.secret)
        ready = [await instances.readiness(instance) for instance in running]
        return statuses(answers) == [200, 200] and ready == [200, 200]

    try:
        started = time.monotonic()
        await asyncio.to_thread(postgres_cluster.stop)
        took = time.monotonic() - started + await until(refusing, 5.0, running)
        assert took < 2.0, f"503 after {took:.2f} s"
        await asyncio.sleep(0.5)
        assert await refusing(), "an instance answered while the database was down"
    finally:
        if not postgres_cluster.running:
            await asyncio.to_thread(postgres_cluster.start)
    await until(approving, 10.0, running)
    for instance in running:
        assert instance.process.poll() is None, instance.stderr


# -- 6. start-up refusals ------------------------------------------------------------------


async def refusal(instances: Instances, environment: dict[str, str]) -> tuple[int, str, float]:
    """The exit code, stderr and run time of an app that must refuse to start."""
    started = time.monotonic()
    instance = instances.launch(environment)
    deadline = started + CONNECT_WAIT_SECONDS + 15
    while instance.process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert instance.process.poll() is not None, f"still running:\n{instance.stderr}"
    return instance.process.returncode, instance.stderr, time.monotonic() - started


async def test_start_up_refusals_say_one_line_without_the_password(
    instances: Instances, postgres_url: str, standin: SlackStandIn
) -> None:
    async with instance_store(postgres_url):
        pass  # the database now holds the key check value of SECRET_KEY
    closed = free_port()
    unreachable = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed}/tokendesk"
    cases = {
        "not postgresql": app_environment(
            None,
            standin.api_url,
            TOKENDESK_DATABASE_URL=f"mysql://postgres:{PASSWORD}@127.0.0.1/tokendesk",
        ),
        "unreachable": app_environment(None, standin.api_url, TOKENDESK_DATABASE_URL=unreachable),
        "no key": app_environment(postgres_url, standin.api_url, TOKENDESK_SECRET_KEY=None),
        "other key": app_environment(postgres_url, standin.api_url, TOKENDESK_SECRET_KEY=OTHER_KEY),
    }
    results = dict(
        zip(
            cases,
            await asyncio.gather(*(refusal(instances, env) for env in cases.values())),
            strict=True,
        )
    )
    for case, (code, stderr, _) in results.items():
        assert code != 0, (case, stderr)
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("tokendesk: cannot start: "), (case, stderr)
        assert PASSWORD not in stderr and "Traceback" not in stderr, (case, stderr)
    assert "TOKENDESK_DATABASE_URL" in results["not postgresql"][1]
    assert f"127.0.0.1:{closed}" in results["unreachable"][1]
    assert results["unreachable"][2] < CONNECT_WAIT_SECONDS + 10
    assert "TOKENDESK_SECRET_KEY" in results["no key"][1]
    assert "TOKENDESK_SECRET_KEY" in results["other key"][1]
    assert "not the key" in results["other key"][1]


# -- 7. Slack's retries reaching two instances ---------------------------------------------


class Redelivering(SlackClient):
    """Delivers each signed request to every instance at once, byte for byte, as Slack's
    retry would (the later deliveries with `X-Slack-Retry-Num`); `deliveries` holds every
    answer of the latest request, and the first is the reply."""

    def __init__(self, urls: Sequence[str], *, standin: SlackStandIn) -> None:
        super().__init__(urls[0], signing_secret=SIGNING_SECRET, standin=standin)
        self.urls = urls
        self.deliveries: list[tuple[int, Any]] = []
        self._http = aiohttp.ClientSession()

    async def __aenter__(self) -> Redelivering:
        return self

    async def close(self) -> None:
        await self._http.close()
        await super().close()

    async def post(
        self, body: bytes, *, content_type: str, signing: Signing = "valid"
    ) -> tuple[int, Any, Any]:
        timestamp = int(self.clock())
        headers = {
            "Content-Type": content_type,
            **signed_headers(self.signing_secret, body, timestamp=timestamp, signing=signing),
        }

        async def deliver(url: str, retry: int) -> tuple[int, Any, Any]:
            again = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            sent = headers | (again if retry else {})
            async with self._http.post(url, data=body, headers=sent) as response:
                text = await response.text()
                parsed = json.loads(text) if response.content_type == "application/json" else text
                return response.status, response.headers, parsed

        answers = await asyncio.gather(*(deliver(url, n) for n, url in enumerate(self.urls)))
        self.deliveries = [(status, parsed) for status, _, parsed in answers]
        return answers[0]


def secrets_in(bodies: Sequence[Any]) -> list[list[str]]:
    return [sorted(set(SECRET_SHAPE.findall(json.dumps(body)))) for body in bodies]


async def test_a_request_delivered_to_two_instances_is_applied_once(
    instances: Instances, postgres_url: str, standin: SlackStandIn
) -> None:
    running = await instances.start(postgres_url, 2)
    urls = [f"{instance.url}/slack/events" for instance in running]
    async with (
        instance_store(postgres_url) as store,
        SlackClient(urls[0], signing_secret=SIGNING_SECRET, standin=standin) as one,
        Redelivering(urls, standin=standin) as both,
    ):
        admin, twice = SlackUser(one, ADMIN), SlackUser(both, ADMIN)

        # A slash command that changes something.
        await twice.send_command("access on")
        texts = [str(body["text"]) for _, body in both.deliveries]
        assert sorted("already on" in text for text in texts) == [False, True], texts
        assert await audited(store, "api_access") == 1

        # A modal's submission: one token, one secret shown.
        await admin.command()
        _, form = await admin.open(create_action(admin.blocks), "token_create")
        await twice.send_submission(form, {"name": "Once only", "access_rights": ["reports:read"]})
        assert [status for status, _ in both.deliveries] == [200, 200]
        bodies = [body for _, body in both.deliveries]
        shown = secrets_in(bodies)
        assert sorted(len(found) for found in shown) == [0, 1], bodies
        assert any("already created" in all_text(body) for body in bodies), bodies
        (secret,) = shown[0] or shown[1]
        found = await tokens_by_sid(store)
        assert [token.name for token in found.values()] == ["Once only"]
        (token,) = found.values()
        assert await audited(store, "create") == 1
        assert statuses(await instances.check_all(running, secret)) == [200, 200]

        # A confirmation's submission: one Reset.
        await admin.command()
        _, confirmation = await admin.open(
            menu_action(admin.blocks, token.id, "reset"), "token_confirm"
        )
        await twice.send_submission(confirmation, {ActionId.GRACE_CHOICE: GraceChoice.STOP})
        bodies = [body for _, body in both.deliveries]
        shown = secrets_in(bodies)
        assert sorted(len(found) for found in shown) == [0, 1], bodies
        assert any("already done" in all_text(body) for body in bodies), bodies
        (new_secret,) = shown[0] or shown[1]
        after = await store.token_reads.get(token_id=token.id)
        assert after.row_version == token.row_version + 1
        assert await audited(store, "reset") == 1
        assert statuses(await instances.check_all(running, secret)) == [401, 401]
        assert statuses(await instances.check_all(running, new_secret)) == [200, 200]

        # A click: one Disable.
        await admin.command()
        click = await twice.send_click(
            menu_action(admin.blocks, token.id, "disable"), blocks=admin.blocks
        )
        url = click.sent["response_url"]
        await settle(until=lambda: len(standin.responses_to(url)) == 2)
        notices = [all_text(post.body) for post in standin.responses_to(url)]
        assert sum("already disabled" in notice for notice in notices) == 1, notices
        assert await audited(store, "disable") == 1
        assert statuses(await instances.check_all(running, new_secret)) == [401, 401]


# -- 8. connections the server drops ------------------------------------------------------


async def test_after_the_server_drops_their_connections_every_instance_recovers(
    instances: Instances, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    running = await instances.start(postgres_url, 2)
    async with instance_store(postgres_url) as store:
        await store.account.set_api_access(actor=ADMIN, enabled=True)
        issued = await issue(store, "Dropped connections")
    assert statuses(await instances.check_all(running, issued.secret)) == [200, 200]

    # As a failover, an idle-session timeout or an operator's pg_terminate_backend do.
    admin = await asyncpg.connect(postgres_cluster.admin_url)
    try:
        for _ in range(DROPS):
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                postgres_url.rsplit("/", 1)[1],
            )
            assert_approved(await instances.check_all(running, issued.secret))
            await asyncio.sleep(0.1)
    finally:
        await admin.close()

    async def approving() -> bool:
        answers = await instances.check_all(running, issued.secret)
        return statuses(answers) == [200, 200]

    await until(approving, 5.0, running)
    # Longer than a lease: each instance goes on renewing its own.
    await asyncio.sleep(1.5)
    answers = await instances.check_all(running, issued.secret)
    assert statuses(answers) == [200, 200], [answers, *(i.tail() for i in running)]
    async with instance_store(postgres_url) as store:
        await store.tokens.set_enabled(actor=ADMIN, token_id=issued.token.id, enabled=False)
        answers = await instances.check_all(running, issued.secret)
        assert statuses(answers) == [401, 401], [answers, *(i.tail() for i in running)]
