"""Durable ingest with group commit: many deliveries, one transaction, then every answer.

`IngestWriter.submit(delivery)` returns only after the transaction holding the delivery (and
its enqueued keys) has committed. Writer tasks each take every delivery waiting at that moment
(up to `max_batch`), so under load commits are shared and at rest a lone delivery is written at
once: no timer, no answer before the commit. No network I/O; the database through the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass

import orjson
import structlog

from controller.store import Record, RejectedValue, Store, TransientStoreError
from handlers.base import Delivery, Rejection

log = structlog.get_logger("p38.ingest")

_DEADLOCK_RETRIES = 3


class Outcome(enum.Enum):
    STORED = "stored"            # new: 202
    REDELIVERED = "redelivered"  # a failed delivery accepted again: 202
    DUPLICATE = "duplicate"      # already stored and pending or done: 200


@dataclass(frozen=True, slots=True)
class Ingested:
    outcome: Outcome
    delivery_id: int | None


@dataclass(slots=True)
class _Pending:
    delivery: Delivery
    future: asyncio.Future[Ingested]


# Keys one transaction locks at most (with one delivery naming more, that one alone): every
# key takes an advisory lock, and PostgreSQL's lock table is shared by the whole server
# (max_locks_per_transaction x max_connections, 6,400 by default).
BATCH_KEYS = 2000


class StoreUnavailable(Exception):
    """The delivery could not be stored; the sender should retry."""


def _refused(exc: BaseException) -> Rejection:
    """A delivery that cannot be stored whatever the retries: 400, never a 503 that invites
    retries which can never succeed."""
    if isinstance(exc, RejectedValue):
        return Rejection(400, f"payload cannot be stored: {exc}")
    # The database's own words name tables and indexes: for the log, not for the sender.
    log.warning("delivery_refused_by_database", error=f"{type(exc).__name__}: {exc}")
    return Rejection(400, f"payload cannot be stored: the database refused one of its values "
                          f"({type(exc).__name__})")


class IngestWriter:
    """Group-commit writer of deliveries; start() once, submit() from request handlers."""

    def __init__(self, store: Store, *, writers: int = 3, max_batch: int = 128) -> None:
        self._store = store
        self._writers = max(1, writers)
        self._max_batch = max(1, max_batch)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"ingest-writer-{n}")
                       for n in range(self._writers)]

    async def stop(self) -> None:
        """Write what was submitted, then stop the writers."""
        await self._queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def submit(self, delivery: Delivery) -> Ingested:
        return await self.enqueue(delivery)

    def enqueue(self, delivery: Delivery) -> asyncio.Future[Ingested]:
        """The future of `delivery`'s write (what `submit` awaits): a request handler that
        bounds its wait shields this future, with no task around it."""
        future: asyncio.Future[Ingested] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(delivery, future))
        return future

    async def _run(self) -> None:
        carried: _Pending | None = None  # taken from the queue, but for the next batch
        while True:
            batch = [carried or await self._queue.get()]
            carried = None
            keys = len(batch[0].delivery.keys)
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if keys + len(item.delivery.keys) > BATCH_KEYS:
                    carried = item
                    break
                batch.append(item)
                keys += len(item.delivery.keys)
            try:
                await self._write(batch)
            except Exception as exc:  # keep the writer alive whatever happened
                log.error("ingest_batch_failed", error=str(exc), size=len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(StoreUnavailable(str(exc)))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Pending]) -> None:
        unique: dict[tuple[str, str, str], _Pending] = {}
        repeats: list[tuple[_Pending, _Pending]] = []  # (repeat, the first of its GUID)
        for item in batch:
            d = item.delivery
            ident = (d.source, d.hook, d.guid)
            if ident in unique:
                repeats.append((item, unique[ident]))
            else:
                unique[ident] = item
        items = list(unique.values())
        try:
            await self._write_unique(items)
        except TransientStoreError:
            raise  # the database is away: every delivery of the batch is answered 503
        except Exception as exc:  # one delivery PostgreSQL (or its encoding) refuses
            if len(items) == 1:
                items[0].future.set_exception(_refused(exc))
            else:
                for item in items:  # find the one that cannot be stored; store the others
                    try:
                        await self._write_unique([item])
                    except TransientStoreError:
                        raise
                    except Exception as alone:
                        log.warning("delivery_refused", guid=item.delivery.guid,
                                    error=f"{type(alone).__name__}: {alone}")
                        item.future.set_exception(_refused(alone))
        for item, first in repeats:  # answered as the first of the same GUID was
            refused = first.future.exception() if first.future.done() else None
            if isinstance(refused, Rejection):
                item.future.set_exception(refused)
            else:
                item.future.set_result(Ingested(Outcome.DUPLICATE, None))

    async def _write_unique(self, items: list[_Pending]) -> None:
        deliveries = [item.delivery for item in items]
        columns = (
            list(range(len(deliveries))),
            [d.source for d in deliveries],
            [d.hook for d in deliveries],
            [d.guid for d in deliveries],
            [d.event for d in deliveries],
            [d.action for d in deliveries],
            [orjson.dumps(dict(d.headers)).decode() for d in deliveries],
            [d.payload_json for d in deliveries],
            ["ignored" if d.ignored else "pending" for d in deliveries],
        )
        key_idx = [idx for idx, d in enumerate(deliveries) for _ in d.keys]
        key_names = [key for d in deliveries for key in d.keys]
        for attempt in range(1, _DEADLOCK_RETRIES + 1):
            try:
                rows = await self._store.fetch("ingest_batch", *columns, key_idx, key_names)
                break
            except TransientStoreError:
                if attempt == _DEADLOCK_RETRIES:
                    raise
        accepted: dict[int, Record] = {row["idx"]: row for row in rows}
        for idx, item in enumerate(items):
            row = accepted.get(idx)
            if row is None:
                result = Ingested(Outcome.DUPLICATE, None)
            elif row["redelivered"]:
                result = Ingested(Outcome.REDELIVERED, row["id"])
            else:
                result = Ingested(Outcome.STORED, row["id"])
            if not item.future.done():
                item.future.set_result(result)

