"""The tests' private PostgreSQL cluster (tests/postgres_cluster.py): its databases work
through asyncpg, each is independent of the others, and the server stops and starts again
with its data."""

from __future__ import annotations

import asyncpg
import pytest

from tests.postgres_cluster import PostgresCluster


async def test_a_fresh_database_stores_and_returns_rows(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        assert (
            await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            == []
        )
        await connection.execute("CREATE TABLE tokens (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")
        await connection.executemany(
            "INSERT INTO tokens VALUES ($1, $2)", [(1, "Nightly export"), (2, "Ünïcode Ŧoken")]
        )
        rows = await connection.fetch("SELECT id, name FROM tokens ORDER BY id")
    finally:
        await connection.close()
    assert [tuple(row) for row in rows] == [(1, "Nightly export"), (2, "Ünïcode Ŧoken")]


async def test_the_cluster_runs_with_the_test_settings(postgres_cluster: PostgresCluster) -> None:
    connection = await asyncpg.connect(postgres_cluster.admin_url)
    try:
        settings = {
            name: await connection.fetchval(f"SHOW {name}")
            for name in (
                "listen_addresses",
                "fsync",
                "synchronous_commit",
                "full_page_writes",
                "max_connections",
                "server_encoding",
                "lc_collate",
                "lc_ctype",
            )
        }
    finally:
        await connection.close()
    assert settings == {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "server_encoding": "UTF8",
        "lc_collate": "C",
        "lc_ctype": "C",
    }


async def test_two_databases_are_independent(postgres_cluster: PostgresCluster) -> None:
    first, second = postgres_cluster.create_database(), postgres_cluster.create_database()
    assert first != second
    assert first.startswith(f"postgresql://postgres@127.0.0.1:{postgres_cluster.port}/")
    try:
        connection = await asyncpg.connect(first)
        try:
            await connection.execute("CREATE TABLE only_here (id BIGINT)")
        finally:
            await connection.close()
        connection = await asyncpg.connect(second)
        try:
            assert await connection.fetchval("SELECT to_regclass('only_here')") is None
        finally:
            await connection.close()
    finally:
        postgres_cluster.drop_database(first.rsplit("/", 1)[1])
        postgres_cluster.drop_database(second.rsplit("/", 1)[1])
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(first)


async def test_the_server_stops_and_starts_again_with_its_data(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("CREATE TABLE kept (id BIGINT)")
        await connection.execute("INSERT INTO kept VALUES (7)")
    finally:
        await connection.close()
    port = postgres_cluster.port
    postgres_cluster.stop()
    try:
        assert not postgres_cluster.running
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(postgres_url)
    finally:
        postgres_cluster.start()
    assert postgres_cluster.running
    assert postgres_cluster.port == port
    connection = await asyncpg.connect(postgres_url)
    try:
        assert await connection.fetchval("SELECT id FROM kept") == 7
    finally:
        await connection.close()
