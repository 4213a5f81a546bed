"""Several stores on one PostgreSQL database, exact together (storage/currency.py).

Each store here is one instance, in this process: a change made through one is in effect
on the others by the time the call that made it returns, an instance that stops renewing
its lease stops answering, and the instance that changes something waits for it only as
long as the rule says.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from storage.credential_index import Verdict
from storage.currency import LEASE_SECONDS, MARGIN_SECONDS
from storage.errors import StartupRefused
from storage.store import Store
from tests.conftest import OpenStore
from tests.storage.support_durability import ACTOR, KEY, create_token

BACKENDS = ["postgresql"]


async def instances(open_store: OpenStore, count: int) -> list[Store]:
    stores = await asyncio.gather(*(open_store() for _ in range(count)))
    for store in stores:
        await store.account.set_api_access(actor=ACTOR, enabled=True)
    return list(stores)


def passes(store: Store, secret: str) -> bool:
    verdict: Verdict = store.credentials.check(secret)
    return store.credentials.holds() and verdict.token is not None


async def test_a_change_through_one_instance_is_in_effect_on_the_others_when_it_returns(
    open_store: OpenStore,
) -> None:
    acting, other, third = await instances(open_store, 3)
    issued = await create_token(acting, "Shared Token")
    # Created through one: known to the others at once.
    assert passes(other, issued.secret) and passes(third, issued.secret)

    await acting.tokens.set_enabled(actor=ACTOR, token_id=issued.token.id, enabled=False)
    assert not passes(other, issued.secret) and not passes(third, issued.secret)
    await other.tokens.set_enabled(actor=ACTOR, token_id=issued.token.id, enabled=True)
    assert passes(acting, issued.secret) and passes(third, issued.secret)

    await third.account.set_api_access(actor=ACTOR, enabled=False)
    assert not passes(acting, issued.secret) and not passes(other, issued.secret)


async def test_an_instance_that_stops_renewing_stops_answering_and_is_waited_for_no_longer(
    open_store: OpenStore,
) -> None:
    acting, frozen = await instances(open_store, 2)
    issued = await create_token(acting, "Frozen Token")
    assert passes(frozen, issued.secret)
    # As if the process were stopped: its renewals stop, its memory stays as it was.
    frozen_currency: Any = frozen._currency
    frozen_currency._task.cancel()
    await asyncio.sleep(0)
    started = time.monotonic()
    await acting.tokens.set_enabled(actor=ACTOR, token_id=issued.token.id, enabled=False)
    waited = time.monotonic() - started
    # Acknowledged once the frozen instance could no longer answer, and no later than the
    # lease and its margin after the commit.
    assert waited <= LEASE_SECONDS + MARGIN_SECONDS + 0.5
    assert not frozen.credentials.holds()
    # Its memory still says the token works: the lease is what keeps it from saying so.
    assert frozen.credentials.check(issued.secret).token is not None
    # Renewing again catches up before answering.
    await frozen_currency.renew()
    assert frozen.credentials.holds() and not passes(frozen, issued.secret)


async def test_an_instance_renews_its_lease_while_nothing_changes(open_store: OpenStore) -> None:
    (store,) = await instances(open_store, 1)
    for _ in range(6):
        await asyncio.sleep(LEASE_SECONDS / 2)
        assert store.credentials.holds()
    assert await store.not_ready() is None


async def test_a_database_that_stops_answering_lapses_the_lease(
    open_store: OpenStore, postgres_cluster: Any
) -> None:
    (store,) = await instances(open_store, 1)
    postgres_cluster.stop()
    try:
        await asyncio.sleep(LEASE_SECONDS + 0.3)
        assert not store.credentials.holds()
        assert await store.not_ready() is not None
    finally:
        postgres_cluster.start()
    deadline = time.monotonic() + 10
    while not store.credentials.holds() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert store.credentials.holds()


async def test_two_instances_starting_at_once_on_an_empty_database_migrate_it_once(
    open_store: OpenStore, store_options: dict[str, Any]
) -> None:
    first, second = await asyncio.gather(open_store(), open_store())
    connection = await asyncpg.connect(store_options["database_url"])
    try:
        assert await connection.fetchval("SELECT count(*) FROM schema_version") == 1
        assert (
            await connection.fetchval("SELECT count(*) FROM settings WHERE key = 'key_check'") == 1
        )
        assert await connection.fetchval("SELECT count(*) FROM instances") == 2
    finally:
        await connection.close()
    await first.close()
    await second.close()


async def test_another_key_or_a_newer_schema_is_refused(
    open_store: OpenStore, store_options: dict[str, Any]
) -> None:
    store = await open_store()
    await store.close()
    with pytest.raises(StartupRefused, match="TOKENDESK_SECRET_KEY"):
        await open_store(secret_key=bytes(reversed(KEY)))
    connection = await asyncpg.connect(store_options["database_url"])
    try:
        await connection.execute("UPDATE schema_version SET version = version + 1")
    finally:
        await connection.close()
    with pytest.raises(StartupRefused, match="newer than this Token Desk knows"):
        await open_store()


async def test_an_unreachable_server_is_refused_naming_host_and_port_never_the_password(
    open_store: OpenStore,
) -> None:
    url = "postgresql://tokendesk:hunter2-password@127.0.0.1:9/tokendesk"
    with pytest.raises(StartupRefused) as refused:
        await asyncio.wait_for(open_store(database_url=url, connect_wait_seconds=1.0), timeout=30)
    assert "127.0.0.1:9" in str(refused.value)
    assert "hunter2" not in str(refused.value)


async def test_an_instance_whose_confirmations_aged_takes_no_lease_on_a_read_a_change_overtook(
    open_store: OpenStore,
) -> None:
    acting, late = await instances(open_store, 2)
    issued = await create_token(acting, "Overtaken Token")
    late_currency: Any = late._currency
    late_currency._task.cancel()
    await asyncio.sleep(LEASE_SECONDS + MARGIN_SECONDS + 0.2)
    assert not late.credentials.holds()
    apply = late_currency._apply

    async def apply_then_overtake(connection: Any, catch: Any) -> None:
        # The late instance has read the counter; a change commits before it confirms,
        # and is acknowledged at once: the late instance's last confirmation is old.
        await apply(connection, catch)
        started = time.monotonic()
        await acting.tokens.set_enabled(actor=ACTOR, token_id=issued.token.id, enabled=False)
        assert time.monotonic() - started < LEASE_SECONDS

    late_currency._apply = apply_then_overtake
    # A full read, so that the round applies something (and calls `_apply`).
    late_currency._full_read_due = True
    await late_currency.renew()
    # Its memory is from before the change; it must not answer from it.
    assert late.credentials.check(issued.secret).token is not None
    assert not late.credentials.holds()
    late_currency._apply = apply
    await late_currency.renew()
    assert late.credentials.holds() and not passes(late, issued.secret)
