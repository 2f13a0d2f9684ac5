"""Reads awaited together, sent together: named read queries started in the same turn of the
event loop (an `observe` that gathers its independent reads) go to PostgreSQL as one
statement, the way a DataLoader batches.

Each query becomes `ARRAY(SELECT t FROM (<query>) t)` in one SELECT, its placeholders
renumbered; its rows come back as dicts by column name (the names are learned once per query,
by describing it). A read waiting alone is sent as it is. Reads of different reconciles are
never mixed (they are grouped by the statement-counting block they run in), so a failure
reaches only the reads it concerns. For SELECT queries only; no writes here.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from controller.store import statements

if TYPE_CHECKING:
    from controller.store import Record, Store

_PLACEHOLDER = re.compile(r"\$(\d+)")


class _Read(NamedTuple):
    name: str
    args: tuple[Any, ...]
    answer: asyncio.Future[list[Any]]


class Gathered:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: dict[int, list[_Read]] = {}  # by counting block
        self._columns: dict[str, tuple[str, ...]] = {}
        self._sending: set[asyncio.Future[None]] = set()

    async def fetch(self, name: str, *args: Any) -> list[Record]:
        """The rows of read query `name`, sent with the other reads started in this turn."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Any]] = loop.create_future()
        block = id(statements.block())
        waiting = self._waiting.get(block)
        if waiting is None:
            waiting = self._waiting[block] = []
            # Two turns: reads that a gather nested in this one starts come a turn later.
            loop.call_soon(loop.call_soon, self._send_soon, block,
                           context=contextvars.copy_context())
        waiting.append(_Read(name, args, answer))
        rows: list[Record] = await answer
        return rows

    async def fetchrow(self, name: str, *args: Any) -> Record | None:
        rows = await self.fetch(name, *args)
        return rows[0] if rows else None

    async def fetchval(self, name: str, *args: Any) -> Any:
        row = await self.fetchrow(name, *args)
        return None if row is None else next(iter(row.values()))

    def _send_soon(self, block: int) -> None:
        reads = self._waiting.pop(block)
        task = asyncio.ensure_future(self._send(reads))
        self._sending.add(task)  # (held until done: the loop keeps only weak references)
        task.add_done_callback(self._sending.discard)

    async def _send(self, reads: Sequence[_Read]) -> None:
        try:
            if len(reads) == 1:
                [read] = reads
                answers = [list(await self._store.fetch(read.name, *read.args))]
            else:
                answers = await self._together(reads)
        except BaseException as exc:  # each waiting read gets the failure
            for read in reads:
                if not read.answer.done():
                    read.answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for read, rows in zip(reads, answers, strict=True):
            if not read.answer.done():
                read.answer.set_result(rows)

    async def _together(self, reads: Sequence[_Read]) -> list[list[Any]]:
        parts: list[str] = []
        args: list[Any] = []
        for n, read in enumerate(reads):
            offset = len(args)
            sql = self._store.sql(read.name).rstrip().rstrip(";")
            sql = _renumbered(sql, offset)
            parts.append(f"ARRAY(SELECT t FROM (\n{sql}\n) t) AS r{n}")
            args.extend(read.args)
        label = "+".join(read.name for read in reads)
        row = await self._store.fetchrow_sql(label, "SELECT " + ",\n".join(parts), *args)
        assert row is not None
        answers = []
        for n, read in enumerate(reads):
            columns = await self._columns_of(read.name)
            answers.append([dict(zip(columns, values, strict=True))
                            for values in row[f"r{n}"]])
        return answers

    async def _columns_of(self, name: str) -> tuple[str, ...]:
        columns = self._columns.get(name)
        if columns is None:
            columns = self._columns[name] = await self._store.columns(name)
        return columns


def _renumbered(sql: str, offset: int) -> str:
    """`sql` with its placeholders moved up by `offset` ($1 -> $(1 + offset))."""
    return _PLACEHOLDER.sub(lambda m: f"${int(m.group(1)) + offset}", sql)
