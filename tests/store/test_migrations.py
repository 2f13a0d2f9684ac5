"""Migrations apply once, in order, safely when many processes start at the same time."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from controller.store import migrations
from tests.conftest import TABLES


async def _schema(conn: asyncpg.Connection) -> list[tuple[str, str, str, str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, column_name")
    return [tuple(r) for r in rows]


async def test_concurrent_migrations_apply_each_version_once(fresh_database) -> None:  # type: ignore[no-untyped-def]
    """Eight processes migrating an empty database at once: all succeed, each version once."""
    dsn = fresh_database("migrate")
    conns = [await asyncpg.connect(dsn) for _ in range(8)]
    try:
        results = await asyncio.gather(*[migrations.migrate(c) for c in conns])
        applied = [v for r in results for v in r]
        assert sorted(applied) == [m.version for m in migrations.known_migrations()]
        rows = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in migrations.known_migrations()]
        assert await migrations.migrate(conns[0]) == []  # idempotent
        tables = {r["table_name"] for r in await conns[0].fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        # (policy_epoch is one row the tests never empty: its counter only goes up)
        assert set(TABLES) | {"schema_migrations", "policy_epoch"} == tables
    finally:
        for c in conns:
            await c.close()


async def test_migrated_schema_equals_a_fresh_one(fresh_database, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """The schema the tests run on (migrated at session start) equals a fresh migration."""
    fresh, used = await asyncpg.connect(fresh_database("fresh")), await asyncpg.connect(dsn)
    try:
        await migrations.migrate(fresh)
        assert await _schema(fresh) == await _schema(used)
    finally:
        await fresh.close()
        await used.close()


async def test_edited_migration_is_refused(fresh_database) -> None:  # type: ignore[no-untyped-def]
    """A migration whose file changed after it was applied stops start-up with a reason."""
    conn = await asyncpg.connect(fresh_database("edited"))
    try:
        await migrations.migrate(conn)
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(RuntimeError, match="changed after it was applied"):
            await migrations.migrate(conn)
    finally:
        await conn.close()


def test_migration_files_are_numbered_without_gaps() -> None:
    """Files are NNNN_name.sql, numbered 1..N."""
    versions = [m.version for m in migrations.known_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert migrations.latest_version() == versions[-1]
