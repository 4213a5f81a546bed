"""A store opens knowing whose each digest is, and makes a token's credentials on the first
check of one of its secrets: every secret is answered after a reopen as it was before, and
every change to a token not checked since the store opened takes effect."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from storage.credential_index import RETIRED, LiveSecret, Verdict
from storage.store import Store
from tests.storage.conftest import FakeClock, OpenStore
from tests.storage.support_durability import ACTOR, create_token, plain_connection
from tests.storage.support_grace import DIGEST, HOUR, reset, secret_used


async def opened(open_store: OpenStore) -> Store:
    store = await open_store()
    await store.account.set_api_access(actor=ACTOR, enabled=True)
    return store


async def reopened(store: Store, open_store: OpenStore) -> Store:
    await store.close()
    return await open_store()


async def test_a_reopened_store_answers_every_secret_as_before(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    plain = await create_token(store, "Plain")
    windowed = await create_token(store, "Windowed")
    windowed_new = await reset(store, windowed.token, grace=timedelta(hours=24))
    replaced = await create_token(store, "Replaced")
    replaced_new = await reset(store, replaced.token)
    lapsed = await create_token(store, "Lapsed")
    lapsed_new = await reset(store, lapsed.token, grace=timedelta(hours=1))
    disabled = await create_token(store, "Disabled")
    await store.tokens.set_enabled(actor=ACTOR, token_id=disabled.token.id, enabled=False)
    deleted = await create_token(store, "Deleted")
    await store.tokens.delete(
        actor=ACTOR, token_id=deleted.token.id, row_version=deleted.token.row_version
    )
    clock.advance(2 * HOUR)  # past the lapsed window, which nothing has retired yet
    secrets = [
        issued.secret
        for issued in (
            plain,
            windowed,
            windowed_new,
            replaced,
            replaced_new,
            lapsed,
            lapsed_new,
            disabled,
            deleted,
        )
    ]
    owners = [store.credentials.token_id_of(secret) for secret in secrets]
    live = [store.credentials.live_secret(secret) for secret in secrets]
    verdicts = [store.credentials.check(secret) for secret in secrets]
    assert store.credentials.check(lapsed.secret) == Verdict(None, RETIRED, lapsed.token.id)
    assert store.credentials.check(replaced.secret).reason == RETIRED
    assert store.credentials.check(deleted.secret).reason == "unknown secret"

    store = await reopened(store, open_store)

    assert store.credentials.count == 5
    # Before any check: whose each secret is needs no token's row.
    assert [store.credentials.token_id_of(secret) for secret in secrets] == owners
    assert [store.credentials.live_secret(secret) for secret in secrets] == live
    assert live[2] == LiveSecret(windowed.token.id, "current", DIGEST(windowed_new.secret))
    assert live[1] == LiveSecret(windowed.token.id, "previous", DIGEST(windowed.secret))
    assert live[5] is None and live[8] is None  # the lapsed window's and the deleted one's
    assert [store.credentials.check(secret) for secret in secrets] == verdicts
    # Built by the first checks, answered alike from then on.
    assert [store.credentials.check(secret) for secret in secrets] == verdicts
    assert store.credentials.count == 5


async def test_changes_to_tokens_not_checked_since_the_store_opened_take_effect(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await opened(open_store)
    disabled = await create_token(store, "To Disable")
    twice = await create_token(store, "Reset Twice")
    twice_first = await reset(store, twice.token, grace=timedelta(hours=24))
    deleted = await create_token(store, "To Delete")
    lapsing = await create_token(store, "Lapsing")
    lapsing_new = await reset(store, lapsing.token, grace=timedelta(hours=1))
    store = await reopened(store, open_store)

    await store.tokens.set_enabled(actor=ACTOR, token_id=disabled.token.id, enabled=False)
    twice_second = await reset(store, twice_first.token, grace=timedelta(hours=24))
    await store.tokens.delete(
        actor=ACTOR, token_id=deleted.token.id, row_version=deleted.token.row_version
    )
    clock.advance(2 * HOUR)
    assert await store.expiry.retire_lapsed_windows() == 1

    check = store.credentials.check
    assert check(disabled.secret) == Verdict(None, "token disabled")
    # The second Reset retires the first one's previous secret at once.
    assert check(twice.secret) == Verdict(None, RETIRED, twice.token.id)
    assert secret_used(store, twice_first.secret) == "previous"
    assert secret_used(store, twice_second.secret) == "current"
    assert check(deleted.secret) == Verdict(None, "unknown secret")
    assert check(lapsing.secret) == Verdict(None, RETIRED, lapsing.token.id)
    assert secret_used(store, lapsing_new.secret) == "current"
    assert store.credentials.count == 3


async def test_the_first_check_of_a_token_reads_its_row_as_committed(
    open_store: OpenStore, db_path: Path
) -> None:
    """On SQLite the row is read at the first check: what it says then is what counts (a
    change committed while its `after_commit` is still to run, here made behind the
    store's back)."""
    store = await opened(open_store)
    gone = await create_token(store, "Gone")
    turned_off = await create_token(store, "Turned Off")
    store = await reopened(store, open_store)
    connection = plain_connection(db_path)
    try:
        connection.execute("DELETE FROM tokens WHERE id = ?", (gone.token.id,))
        connection.execute("UPDATE tokens SET enabled = 0 WHERE id = ?", (turned_off.token.id,))
    finally:
        connection.close()

    assert store.credentials.check(gone.secret) == Verdict(None, "unknown secret")
    assert store.credentials.check(turned_off.secret) == Verdict(None, "token disabled")
    # The deleted token stays known to the index until its deletion is taken (`forget`).
    assert store.credentials.token_id_of(gone.secret) == gone.token.id
    assert store.credentials.count == 2
