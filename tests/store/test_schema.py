"""`controller/store/schema.sql` is exactly what the migrations build from nothing, and the
SQL the code calls names the current versions of the queue functions with named arguments."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import asyncpg

from controller.store import snapshot
from controller.store.migrations import migrate
from controller.store.queries import queries

SCHEMA = Path(snapshot.__file__).with_name("schema.sql")


async def test_migrations_build_exactly_the_schema_snapshot(fresh_database) -> None:  # type: ignore[no-untyped-def]
    """The migrations, applied to an empty database, build exactly schema.sql."""
    conn = await asyncpg.connect(fresh_database("snapshot"))
    try:
        await migrate(conn)
        built = await snapshot.dump(conn)
    finally:
        await conn.close()
    if os.environ.get("P38_WRITE_SCHEMA") == "1":
        SCHEMA.write_text(built)
    recorded = SCHEMA.read_text()
    diff = "".join(difflib.unified_diff(recorded.splitlines(True), built.splitlines(True),
                                        "schema.sql", "migrations"))
    assert built == recorded, ("the migrations no longer build schema.sql; if that is "
                               "intended, rewrite it with P38_WRITE_SCHEMA=1 pytest "
                               f"tests/store/test_schema.py\n{diff}")


def test_queue_functions_are_called_by_version_with_named_arguments() -> None:
    """A rolling deploy runs two releases on one database: each calls the function version it
    was written for, by argument name, so a new version never breaks the old release."""
    called = {name: sql for name, sql in queries().items()
              if re.search(r"\bp38_\w+\(", sql)}
    assert set(called) >= {"ingest_batch", "queue_settle", "queue_hint", "queue_resync"}
    for name, sql in called.items():
        for function, args in re.findall(r"\b(p38_\w+)\(([^;]*?)\)\s*(?:;|$)", sql, re.S):
            assert re.search(r"_v\d+$", function), f"{name}: {function} has no version"
            assert "=>" in args, f"{name}: {function} is called with positional arguments"
