"""Reads awaited together reach PostgreSQL as one statement and answer exactly what each read
alone answers (types included); a failure reaches every read of its statement; reads of two
reconciles are never mixed."""

from __future__ import annotations

import asyncio

import pytest

from controller.store import Store, statements


async def seed(store: Store) -> None:
    await store.execute("applied_object_upsert", "octo/infra", "Agent", "a", "h1",
                        {"spec": {"description": "é ✓", "n": [1, 2.5, None]}}, "abc123")
    await store.execute("applied_object_upsert", "octo/infra", "Schedule", "s", "h2",
                        {"spec": {"agent": "a"}}, None)


async def test_reads_awaited_together_are_one_statement_with_the_same_answers(
        store: Store) -> None:
    await seed(store)
    alone = [await store.fetch("applied_objects_of", "octo/infra"),
             await store.fetch("applied_object_get", "octo/infra", "Agent", "a"),
             await store.fetch("applied_object_get", "octo/infra", "Agent", "missing"),
             await store.fetch("clock_now")]
    with statements.counting() as sent:
        together = await asyncio.gather(
            store.gathered.fetch("applied_objects_of", "octo/infra"),
            store.gathered.fetch("applied_object_get", "octo/infra", "Agent", "a"),
            store.gathered.fetch("applied_object_get", "octo/infra", "Agent", "missing"),
            store.gathered.fetch("clock_now"))
    names = [n for n in sent if n != "(describe)"]  # (column names are learned once)
    assert names == ["applied_objects_of+applied_object_get+applied_object_get+clock_now"]
    assert sent[names[0]] == 1
    assert [[dict(r) for r in rows] for rows in together[:3]] == \
        [[dict(r) for r in rows] for rows in alone[:3]]
    assert together[1][0]["document"] == {"spec": {"description": "é ✓", "n": [1, 2.5, None]}}
    assert type(together[1][0]["applied_at"]) is type(alone[1][0]["applied_at"])
    assert together[3][0]["now"] >= alone[3][0]["now"]

    with statements.counting() as again:  # the names are known now: nothing but the read
        await asyncio.gather(store.gathered.fetch("applied_objects_of", "octo/infra"),
                             store.gathered.fetchval("clock_now"))
    assert sum(again.values()) == 1


async def test_a_read_alone_is_sent_as_it_is(store: Store) -> None:
    await seed(store)
    with statements.counting() as sent:
        row = await store.gathered.fetchrow("applied_object_get", "octo/infra", "Agent", "a")
    assert dict(sent) == {"applied_object_get": 1}
    assert row is not None and row["revision"] == "abc123"


async def test_a_failure_reaches_every_read_of_its_statement(store: Store) -> None:
    with pytest.raises(Exception, match=r"invalid input|expected|str"):
        await asyncio.gather(store.gathered.fetch("applied_objects_of", "octo/infra"),
                             store.gathered.fetch("action_by_id", "not a number"))
    # and the next reads are unaffected
    assert await store.gathered.fetch("applied_objects_of", "octo/infra") == []


async def test_reads_of_two_blocks_are_not_mixed(store: Store) -> None:
    await seed(store)

    async def one_reconcile() -> tuple[int, list[object]]:
        with statements.counting() as sent:
            rows = await asyncio.gather(
                store.gathered.fetch("applied_objects_of", "octo/infra"),
                store.gathered.fetch("applied_object_get", "octo/infra", "Agent", "a"))
        return sum(n for name, n in sent.items() if name != "(describe)"), list(rows)

    (first, a), (second, b) = await asyncio.gather(one_reconcile(), one_reconcile())
    assert first == second == 1  # each its own statement
    assert a == b
