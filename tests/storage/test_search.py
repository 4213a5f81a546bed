"""The list's name search and the start-up's catalog check, read through indexes.

A search of 3 characters or more that finds few tokens finds them by trigram (an FTS5 table
kept by triggers on SQLite, a pg_trgm index on PostgreSQL); a shorter one, or on SQLite one
whose trigrams find many, reads every name. Either way the page holds exactly the tokens
whose case-folded name contains the case-folded search, newest first, with their count, as
the substring match over every name did. The catalog check reads the versions and scopes in
use one distinct value at a time.
"""

from __future__ import annotations

import random
import re
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage import token_reads
from storage.errors import InvalidInput, StartupRefused
from storage.fields import name_key
from storage.models import Token, TokenEdit, TokenFilter
from storage.schema import migrate
from storage.store import _SCOPES_IN_USE, _VERSIONS_IN_USE, Store
from tests.conftest import OpenStore
from tests.storage.support_durability import (
    ACTOR,
    KEY,
    SCOPES,
    VERSIONS,
    FakeClock,
    create_token,
    plain_connection,
)

# Pieces of names and searches: the LIKE wildcards and escape characters, quotes (FTS5's
# and SQL's), case pairs and characters whose case folding or NFKC form is longer than
# they are, characters outside the BMP, and runs that make trigrams repeat.
PIECES = (
    "ab",
    "abc",
    "bca",
    "x",
    "Y",
    "0",
    "01",
    " ",
    "-",
    "%",
    "_",
    "%_",
    "!",
    "!%",
    "\\",
    '"',
    '""',
    "'",
    "*",
    "é",
    "É",
    "ß",
    "SS",
    "İ",
    "ﬁ",
    "Ω",
    "東京",
    "😀",
    "Å",
)
# The old condition, the substring match over every name, as each backend ran it.
OLD_SEARCH = {
    "sqlite": "SELECT id FROM tokens WHERE instr(name_key, ?) > 0"
    " ORDER BY created_at DESC, id DESC",
    "postgresql": "SELECT id FROM tokens WHERE strpos(name_key, $1) > 0"
    " ORDER BY created_at DESC, id DESC",
}


def random_text(rng: random.Random, *, most: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, most)))


def expected_ids(tokens: list[Token], term: str) -> list[int]:
    """The tokens `term` finds, by the definition: newest first, then highest id first."""
    key = name_key(term.strip())
    found = [token for token in tokens if key in name_key(token.name)]
    return [token.id for token in sorted(found, key=lambda t: (t.created_at, t.id), reverse=True)]


async def old_search(database: dict[str, Any], backend: str, term: str) -> list[int]:
    key = name_key(term.strip())
    if backend == "sqlite":
        connection = plain_connection(database["path"])
        try:
            return [row[0] for row in connection.execute(OLD_SEARCH[backend], (key,))]
        finally:
            connection.close()
    postgres = await asyncpg.connect(database["database_url"])
    try:
        return [row[0] for row in await postgres.fetch(OLD_SEARCH[backend], key)]
    finally:
        await postgres.close()


async def all_tokens(store: Store) -> list[Token]:
    page = await store.token_reads.page(limit=100)
    assert page.total == len(page.tokens)
    return list(page.tokens)


async def search(store: Store, term: str, *, limit: int = 100, offset: int = 0) -> list[int]:
    page = await store.token_reads.page(filters=TokenFilter(name=term), limit=limit, offset=offset)
    return [token.id for token in page.tokens]


async def assert_found_as_before(
    store: Store, database: dict[str, Any], backend: str, term: str
) -> None:
    expected = expected_ids(await all_tokens(store), term)
    assert await old_search(database, backend, term) == expected, term
    page = await store.token_reads.page(filters=TokenFilter(name=term), limit=100)
    assert [token.id for token in page.tokens] == expected, term
    assert page.total == len(expected), term


async def create_named(store: Store, name: str) -> Token | None:
    """A token of that name, or None if its key is taken or it is blank."""
    try:
        return (await create_token(store, name)).token
    except InvalidInput:
        return None


@pytest.mark.parametrize("few", [True, False], ids=["by-trigram", "every-name"])
async def test_random_searches_find_what_the_substring_match_found(
    store: Store,
    clock: FakeClock,
    database: dict[str, Any],
    backend: str,
    few: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not few:
        # Any token found by trigram is too many: every name is read (on SQLite).
        monkeypatch.setattr(token_reads, "_FEW_MIN", 0)
        monkeypatch.setattr(token_reads, "_FEW_SHARE", 0.0)
    rng = random.Random(20)
    created: list[Token] = []
    while len(created) < 40:
        # Some tokens share a creation second: the id orders them.
        clock.advance(rng.choice((0, 1, 60)))
        token = await create_named(store, random_text(rng, most=7))
        if token is not None:
            created.append(token)
    # Renamed and deleted tokens leave the index as they leave the table.
    for token in rng.sample(created, 8):
        try:
            await store.tokens.edit(
                actor=ACTOR,
                token_id=token.id,
                row_version=token.row_version,
                edit=TokenEdit(name=random_text(rng, most=7)),
            )
        except InvalidInput:
            pass
    for token in rng.sample(created, 5):
        current = await store.token_reads.get(token_id=token.id)
        await store.tokens.delete(actor=ACTOR, token_id=token.id, row_version=current.row_version)
    tokens = await all_tokens(store)
    terms = [random_text(rng, most=4) for _ in range(60)]
    for _ in range(100):
        key = name_key(rng.choice(tokens).name)
        start = rng.randrange(len(key))
        term = key[start : start + rng.randint(1, 6)]
        terms.append(rng.choice((term, term.upper(), f"  {term} ")))
    assert any(len(name_key(term.strip())) < 3 for term in terms)
    assert sum(bool(expected_ids(tokens, term)) for term in terms) > 100
    for term in terms:
        if term.strip():
            await assert_found_as_before(store, database, backend, term)


@pytest.mark.parametrize(
    ("term", "names"),
    [
        ("100%", ["100% Done", "1000 Done", "100 Percent"]),
        ("0%", ["100% Done", "1000 Done"]),
        ("e_c", ["Snake_Case", "Snakecase", "Snake-case"]),
        ("%_", ["Odd %_ Name", "Odd % Name", "Odd _ Name"]),
        ("a!b", ["Bang a!b", "Bang ab", "Bang a!!b"]),
        ('"m"', ['Quote "m" Here', "Quote m Here", 'Quote ""m"" Here']),
        ("'s", ["It's Mine", "Its Mine"]),
        ("\\s", ["Back\\slash", "Backslash"]),
        ("STRASSE", ["Straße Nord", "Strasse Süd", "Stra Sse"]),
        ("ﬁle", ["File Export", "Fi Le"]),
        ("東京😀", ["東京😀 Ops", "東京 Ops"]),
        ("ab", ["Abacus", "Crab", "A B"]),
        ("é", ["Café", "Cafe"]),
    ],
)
async def test_search_characters_are_ordinary(
    store: Store, database: dict[str, Any], backend: str, term: str, names: list[str]
) -> None:
    for name in names:
        await create_token(store, name)
    found = await search(store, term)
    assert found
    await assert_found_as_before(store, database, backend, term)


async def test_a_search_with_a_nul_reads_every_name_and_finds_none(
    store: Store, db_path: Path
) -> None:
    """No name holds a NUL, which would end FTS5's query text (SQLite only: PostgreSQL's
    text cannot hold one at all)."""
    await create_token(store, "Nightly Export")
    for term in ("nightly\0", "\0nig", "ni\0"):
        page = await store.token_reads.page(filters=TokenFilter(name=term))
        assert (page.tokens, page.total) == ((), 0)


async def test_pages_of_a_search_follow_one_another(
    store: Store, clock: FakeClock, database: dict[str, Any], backend: str
) -> None:
    for number in range(23):
        clock.advance(number % 3)
        await create_token(store, f"Billing {number:02d}" if number % 2 else f"Other {number}")
    expected = expected_ids(await all_tokens(store), "billing")
    pages = [await search(store, "BILLING", limit=5, offset=offset) for offset in (0, 5, 10)]
    assert [token_id for page in pages for token_id in page] == expected
    assert await old_search(database, backend, "billing") == expected


async def test_an_upgraded_database_finds_its_tokens_by_trigram(tmp_path: Path) -> None:
    path = tmp_path / "tokendesk.db"
    connection = plain_connection(path)
    try:
        migrate(connection, target=9)
        for number, name in enumerate(("Nightly Export", "Nightly Import", "Weekly Export")):
            connection.execute(
                "INSERT INTO tokens (sid, name, name_key, description, enabled, api_version,"
                " access_rights, primary_contact, secret_hash, secret_hint, created_at,"
                " created_by, updated_at, updated_by, row_version)"
                " VALUES (?, ?, ?, '', 1, 'v1', '[\"reports:read\"]', 'U0001', ?, 'abcd',"
                " ?, 'U0001', ?, 'U0001', 1)",
                (f"TD{number}", name, name_key(name), bytes([number]) * 32, number, number),
            )
    finally:
        connection.close()
    store = await Store.open(
        path=path, secret_key=KEY, api_versions=VERSIONS, scopes=SCOPES, max_lifetime_days=0
    )
    try:
        export = await store.token_reads.page(filters=TokenFilter(name="export"))
        assert [token.name for token in export.tokens] == ["Weekly Export", "Nightly Export"]
        assert export.total == 2
        assert await search(store, "nightly") == [2, 1]
    finally:
        await store.close()


# Read through indexes -------------------------------------------------------------------

# The tokens table read whole, row by row.
FULL_SCAN = re.compile(r"SCAN t( .*)?")


def query_plan(path: Path, sql: str, parameters: tuple[Any, ...] = ()) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()
    finally:
        connection.close()
    return [row[3] for row in rows]


async def test_a_search_of_three_characters_reads_the_trigrams_not_every_token(
    store: Store, db_path: Path
) -> None:
    for number in range(20):
        await create_token(store, f"Token {number}")
    for term, indexed in (("ken 1", True), ("abc", True), ("ab", False), ("1", False)):
        filters = TokenFilter(name=term)
        assert await store.token_reads._finds_few(filters) is indexed
        where = store.token_reads._where(filters, now=0, by_trigram=indexed)
        parameters = tuple(where.parameters)
        for sql in (
            f"SELECT count(*) FROM tokens t{where.sqlite}",
            f"SELECT t.id FROM tokens t{where.sqlite} ORDER BY t.created_at DESC, t.id DESC"
            " LIMIT 10",
        ):
            plan = query_plan(db_path, sql, parameters)
            assert any("tokens_name_search" in line for line in plan) is indexed, plan
            assert any(FULL_SCAN.fullmatch(line) for line in plan) is not indexed, plan


async def test_postgresql_searches_through_the_trigram_index(
    postgres_url: str, clock: FakeClock
) -> None:
    store = await Store.open(
        database_url=postgres_url,
        secret_key=KEY,
        api_versions=VERSIONS,
        scopes=SCOPES,
        clock=clock,
        max_lifetime_days=0,
    )
    try:
        for number in range(20):
            await create_token(store, f"Token {number}")
        where = store.token_reads._where(TokenFilter(name="ken 1"), now=0, by_trigram=True)
    finally:
        await store.close()
    postgres = await asyncpg.connect(postgres_url)
    try:
        # Twenty rows are read faster whole, or through the unique index on the key, which
        # holds all a count needs: without both, what the condition is indexed by shows.
        await postgres.execute("ALTER TABLE tokens DROP CONSTRAINT tokens_name_key_key")
        await postgres.execute("SET enable_seqscan = off")
        plan = await postgres.fetch(
            f"EXPLAIN SELECT count(*) FROM tokens t{where.postgres}", *where.parameters
        )
    finally:
        await postgres.close()
    assert "tokens_name_trigrams" in "\n".join(line for (line,) in plan)


async def test_a_search_whose_trigrams_find_many_reads_every_name(
    store: Store, db_path: Path
) -> None:
    """Reading each of many candidates, and sorting them, costs more than walking the list
    newest first, which finds a page of them soon, and counting every name."""
    for number in range(120):
        await create_token(store, f"Common {number}" if number % 10 else f"Rare {number}")
    assert not await store.token_reads._finds_few(TokenFilter(name="COMMON"))
    assert await store.token_reads._finds_few(TokenFilter(name="rare"))
    assert await store.token_reads._finds_few(TokenFilter(name="mon 11"))
    page = await store.token_reads.page(filters=TokenFilter(name="common"), limit=5)
    assert page.total == 108
    assert [token.name for token in page.tokens] == [
        f"Common {n}" for n in (119, 118, 117, 116, 115)
    ]


async def test_the_catalog_check_seeks_each_value_in_use(store: Store, db_path: Path) -> None:
    for number in range(20):
        await create_token(store, f"Token {number}", access_rights=SCOPES[number % 2 :])
    for sql in (_VERSIONS_IN_USE, _SCOPES_IN_USE):
        plan = query_plan(db_path, sql)
        assert not any(line.startswith("SCAN tokens") for line in plan), plan
        assert any("COVERING INDEX tokens_by_" in line for line in plan), plan


async def test_the_catalog_check_finds_every_version_and_scope_in_use(
    open_store: OpenStore,
) -> None:
    """Each version, and each scope, in use by some token; missing from the catalog, the
    middle one of each is named, with its tokens."""
    for versions, rights, name in (
        (("v1",), ("reports:read",), "First"),
        (("v1", "v2"), ("actions:write", "reports:write"), "Second"),
        (VERSIONS, ("reports:read",), "Third"),
    ):
        store = await open_store(api_versions=versions)
        await create_token(store, name, access_rights=rights)
        await store.close()

    with pytest.raises(StartupRefused) as refused:
        await open_store(api_versions=("v1", "v3"))
    assert refused.value.subject == "TOKENDESK_API_VERSIONS"
    assert "v2" in refused.value.rule and "Second" in refused.value.rule
    with pytest.raises(StartupRefused) as refused:
        await open_store(scopes=("reports:read", "actions:write"))
    assert refused.value.subject == "TOKENDESK_SCOPES"
    assert "reports:write" in refused.value.rule and "Second" in refused.value.rule

    store = await open_store()
    assert store.token_reads.count == 3
