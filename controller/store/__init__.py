"""The only module that talks to PostgreSQL: a pool, named queries, transactions, LISTEN.

Callers name a query from `queries.sql` (`await store.fetch("queue_claim", ...)`) and never see
asyncpg. Database errors that a retry can fix become `TransientStoreError`; a value PostgreSQL
refuses becomes `RejectedValue`. JSON columns come back as Python objects (orjson).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg
import orjson
import structlog

from controller.reconcile.errors import ConcurrentUpdate, LeaseLost, P38Error
from controller.store import migrations
from controller.store.gathered import Gathered
from controller.store.outage import Outage
from controller.store.queries import queries
from controller.store.statements import TRANSACTION, sent
from controller.tasks import running

log = structlog.get_logger("p38.store")

# asyncpg.Record behaves as a read-only mapping of column name to value.
Record = Mapping[str, Any]


class TransientStoreError(P38Error):
    """The database refused for a reason that goes away (deadlock, serialisation, connection)."""


class RejectedValue(P38Error):
    """PostgreSQL refused a value (for example a JSON string holding \\u0000)."""


class DatabaseUnavailable(P38Error):
    """The database cannot be reached or refuses the connection."""


def where(dsn: str) -> str:
    """`host:port/database` of a DSN, for messages (never its user or password, nor the text
    of a DSN that is not a URL: it may hold a password anywhere)."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        return "DATABASE_URL (not a postgresql:// URL)"
    try:
        port = parts.port or 5432
    except ValueError:
        return "DATABASE_URL (its port is not a number)"
    host = parts.hostname or dict(parse_qsl(parts.query)).get("host") or "localhost"
    return f"{host}:{port}{parts.path or ''}"


_TRANSIENT = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.PostgresConnectionError,  # class 08: the connection broke
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    # A new pool connection refused: "not currently accepting connections" (55000), a lock not
    # available (55P03), the database or role gone.
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InternalClientError,  # a pooled connection the server terminated
    ConnectionError,
    OSError,
)


# SQLSTATEs raised by the functions in migrations/0002_queue_functions.sql.
_RAISED = {"P3801": LeaseLost, "P3802": ConcurrentUpdate}


@contextlib.contextmanager
def _translated() -> Any:
    try:
        yield
    except asyncpg.exceptions.PostgresError as exc:
        raised = _RAISED.get(getattr(exc, "sqlstate", None) or "")
        if raised is not None:
            raise raised(str(exc)) from exc
        if isinstance(exc, asyncpg.exceptions.DataError
                      | asyncpg.exceptions.UntranslatableCharacterError):
            raise RejectedValue(str(exc)) from exc
        if isinstance(exc, _TRANSIENT):
            raise TransientStoreError(f"{type(exc).__name__}: {exc}") from exc
        raise
    except _TRANSIENT as exc:
        raise TransientStoreError(f"{type(exc).__name__}: {exc}") from exc


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary formats, so that JSON inside a row value (the gathered reads' arrays of rows)
    # decodes too: json is its text, jsonb a version byte (1) and its text.
    await conn.set_type_codec("json", schema="pg_catalog", format="binary",
                              encoder=orjson.dumps, decoder=orjson.loads)
    await conn.set_type_codec("jsonb", schema="pg_catalog", format="binary",
                              encoder=_jsonb, decoder=_from_jsonb)


def _jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _from_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pool reset hook. asyncpg already rolls back a stray transaction on release; pooled
    connections never change session state (no SET, LISTEN or session advisory locks: LISTEN
    and migrations use their own connections), so the default reset query's round trip on
    every release is skipped."""


def application_name(pid: int | None = None) -> str:
    """How the connections of this process (or process `pid` of this host) are named in
    pg_stat_activity (at most 63 bytes): `p38 db-stop` names the controllers still using the
    database by it."""
    return f"p38 pid {os.getpid() if pid is None else pid} on {socket.gethostname()}"[:63]


def _named() -> dict[str, str]:
    return {"application_name": application_name()}


class Queries:
    """Run named queries on a connection (a pool's or a transaction's)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._sql = queries()

    async def fetch(self, name: str, *args: Any) -> list[Record]:
        sent(name)
        with _translated():
            return list(await self._conn.fetch(self._sql[name], *args))

    async def fetchrow(self, name: str, *args: Any) -> Record | None:
        sent(name)
        with _translated():
            row: Record | None = await self._conn.fetchrow(self._sql[name], *args)
            return row

    async def fetchval(self, name: str, *args: Any) -> Any:
        sent(name)
        with _translated():
            return await self._conn.fetchval(self._sql[name], *args)

    async def execute(self, name: str, *args: Any) -> str:
        sent(name)
        with _translated():
            return str(await self._conn.execute(self._sql[name], *args))

    def sql(self, name: str) -> str:
        return self._sql[name]

    async def fetchrow_sql(self, label: str, sql: str, *args: Any) -> Record | None:
        """A statement composed from named queries (`label` says which, for the counts)."""
        sent(label)
        with _translated():
            row: Record | None = await self._conn.fetchrow(sql, *args)
            return row

    async def columns(self, name: str) -> tuple[str, ...]:
        """The column names of query `name` (described by the server, not run)."""
        sent("(describe)")
        with _translated():
            if isinstance(self._conn, asyncpg.Pool):
                async with self._conn.acquire() as conn:
                    statement = await conn.prepare(self._sql[name])
                    return tuple(a.name for a in statement.get_attributes())
            statement = await self._conn.prepare(self._sql[name])
            return tuple(a.name for a in statement.get_attributes())


class Store(Queries):
    """An asyncpg pool with named queries."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        super().__init__(pool)
        self.pool = pool
        self.dsn = dsn
        self.outage = Outage()  # the pollers report here: a lost database is said once
        self.gathered = Gathered(self)  # reads awaited together, sent as one statement

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 10,
                      timeout: float = 10.0) -> Store:
        """A pool of connections; `DatabaseUnavailable` (naming the host, port and cause)
        when the server cannot be reached within `timeout` seconds or refuses us."""
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                             init=_init_connection, reset=_keep_session,
                                             server_settings=_named(),
                                             command_timeout=60, timeout=timeout)
        except (OSError, TimeoutError, ValueError, asyncpg.PostgresError,
                asyncpg.exceptions.InterfaceError) as exc:  # ValueError: a DSN it cannot parse
            cause = (str(exc) or type(exc).__name__).replace(dsn, "DATABASE_URL")
            if isinstance(exc, ConnectionRefusedError):
                cause = "connection refused (is PostgreSQL running there?)"
            elif isinstance(exc, TimeoutError):
                cause = f"no answer within {timeout:g}s"
            raise DatabaseUnavailable(f"cannot reach the database at {where(dsn)}: "
                                      f"{cause}") from exc
        return cls(pool, dsn)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        sent(TRANSACTION, 2)
        with _translated():
            async with self.pool.acquire() as conn, conn.transaction():
                yield Queries(conn)

    async def migrate(self) -> list[int]:
        # Its own connection: the session advisory lock must never go back into the pool.
        conn = await asyncpg.connect(self.dsn, server_settings=_named())
        try:
            return await migrations.migrate(conn)
        finally:
            await conn.close()

    async def schema_version(self) -> int:
        async with self.pool.acquire() as conn:
            applied = await migrations.applied_versions(conn)
        return max(applied, default=0)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2):
                return bool(await self.pool.fetchval("SELECT 1") == 1)
        except (TimeoutError, asyncpg.PostgresError, OSError):
            return False

    @contextlib.asynccontextmanager
    async def listening(self, channel: str, on_notify: Callable[[], None], *,
                        retry_seconds: float = 1.0) -> AsyncIterator[None]:
        """LISTEN on its own connection, reconnecting while the block runs."""
        async with running(lambda: self._listen_forever(channel, on_notify, retry_seconds),
                           f"listen:{channel}"):
            yield

    async def _listen_forever(self, channel: str, on_notify: Callable[[], None],
                              retry_seconds: float) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn, server_settings=_named())
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(channel, lambda *_a: on_notify())
                self.outage.ok()
                on_notify()  # anything enqueued while we were not listening
                await lost.wait()
                log.warning("listen_connection_lost", channel=channel)
            except (OSError, asyncpg.PostgresError) as exc:
                if not self.outage.failed(exc, where=f"listen:{channel}"):
                    log.warning("listen_connect_failed", channel=channel, error=str(exc))
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(retry_seconds)
