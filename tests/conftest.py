"""Shared fixtures: a real PostgreSQL (DATABASE_URL, else the embedded server), a migrated
test database emptied before each test, and the real application."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from controller.store import Store
from controller.store.migrations import migrate

TABLES = ("deliveries", "delivery_payloads", "delivery_keys", "work_queue", "actions",
          "approvals", "resource_state", "transitions", "audit", "applied_objects",
          "manifest_blobs", "manifest_revisions", "object_status", "agent_versions",
          "agent_runs", "agent_state", "schedule_ticks", "killswitches", "claude_tasks",
          "service_bad_commits", "service_incidents", "controllers",
          "agent_rebuilds", "operator_actions")


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a server we may create databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg") / "pgdata",
                                     cleanup_mode="stop")
    yield str(server.get_uri())
    server.cleanup()


def _blocking(coroutine) -> None:  # type: ignore[no-untyped-def]
    """Run a coroutine to completion from sync code, even inside a running loop's thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def fresh_database(pg_server: str) -> Iterator[callable]:  # type: ignore[valid-type]
    """Factory of empty databases (dropped at the end of the session)."""
    made: list[str] = []

    def make(label: str) -> str:
        name = f"p38_{label}_{os.getpid()}_{len(made)}"
        _blocking(_admin(pg_server, f"DROP DATABASE IF EXISTS {name}",
                         f"CREATE DATABASE {name}"))
        made.append(name)
        return with_database(pg_server, name)

    yield make
    for name in made:
        _blocking(_admin(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def dsn(fresh_database) -> str:  # type: ignore[no-untyped-def]
    """A migrated database shared by the session; `store` empties it before each test."""
    url: str = fresh_database("tests")

    async def setup() -> None:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(setup())
    return url


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[Store]:
    await _admin(dsn, f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    s = await Store.connect(dsn, min_size=1, max_size=8)
    yield s
    await s.close()
