"""A throwaway database for a benchmark: on DATABASE_URL's server when set (created, then
dropped), else on the embedded PostgreSQL in a temporary P38_HOME (stopped after)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


async def make_database(server_dsn: str, name: str, drop: bool = False) -> str:
    import asyncpg

    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if not drop:
            await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))


@contextlib.contextmanager
def throwaway_database(label: str) -> Iterator[str]:
    """The DSN of an empty database, removed on exit."""
    from controller.store.embedded import start_embedded, stop_embedded

    server_dsn = os.environ.get("DATABASE_URL")
    home = None
    if not server_dsn:
        home = Path(tempfile.mkdtemp(prefix="p38-bench-"))
        server_dsn = start_embedded(home)
    name = f"p38_bench_{label}_{os.getpid()}"
    try:
        yield asyncio.run(make_database(server_dsn, name))
    finally:
        asyncio.run(make_database(server_dsn, name, drop=True))
        if home is not None:
            stop_embedded(home)
