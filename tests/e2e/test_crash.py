"""kill -9 of the controller while deliveries flow: nothing acknowledged is lost, and every
acknowledged delivery's keys are processed exactly once after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg

from tests.e2e.server import ServerProcess
from tests.helpers import sign, wait_until

PULLS = 8


def delivery(n: int) -> tuple[dict[str, str], bytes]:
    payload = {"action": "labeled", "number": n % PULLS + 1,
               "pull_request": {"number": n % PULLS + 1, "state": "open",
                                "head": {"sha": f"{n:040x}", "ref": f"claude/{n % PULLS}"}},
               "repository": {"full_name": "octo-org/infra", "default_branch": "main"},
               "installation": {"id": 51234567}}
    body = json.dumps(payload).encode()
    return {"Content-Type": "application/json", "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sign(body)}, body


async def send_until_dead(server: ServerProcess, acked: list[str], *, senders: int,
                          kill_after: int) -> None:
    """Post deliveries from several connections; SIGKILL the server after `kill_after` acks."""
    counter = iter(range(10**6))
    killed = asyncio.Event()

    async def sender(session: aiohttp.ClientSession) -> None:
        while not killed.is_set():
            headers, body = delivery(next(counter))
            try:
                async with session.post("http://p38/webhooks/github", data=body,
                                        headers=headers) as response:
                    if response.status in (200, 202):
                        acked.append(headers["X-GitHub-Delivery"])
            except (aiohttp.ClientError, OSError):
                return  # the server is gone: an unanswered delivery is GitHub's to redeliver
            if len(acked) >= kill_after and not killed.is_set():
                killed.set()
                server.kill()

    async with server.session() as session:
        await asyncio.gather(*[sender(session) for _ in range(senders)])


async def test_kill_9_while_deliveries_flow(fresh_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """kill -9 while deliveries flow loses none that was acknowledged, and each is reconciled after
    the restart."""
    dsn = fresh_database("crash")
    env = {"DATABASE_URL": dsn, "P38_WORKERS": "2", "P38_LEASE_SECONDS": "1",
           "P38_POLL_SECONDS": "0.1"}
    server = ServerProcess(tmp_path, env)
    await server.start()
    acked: list[str] = []
    await send_until_dead(server, acked, senders=16, kill_after=200)
    assert len(acked) >= 200

    await server.start()  # same database; the dead process's leases expire and are reclaimed
    conn = await asyncpg.connect(dsn)
    try:
        async def settled() -> bool:
            pending = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE status = 'pending'")
            queued = await conn.fetchval("SELECT count(*) FROM work_queue")
            return pending == 0 and queued == 0

        await wait_until(settled, timeout=60, what="every delivery processed")
        rows = await conn.fetch("SELECT guid, id, status FROM deliveries WHERE guid = ANY($1)",
                                acked)
        assert sorted(r["guid"] for r in rows) == sorted(acked)  # nothing acknowledged lost
        assert {r["status"] for r in rows} == {"processed"}
        ids = {r["id"] for r in rows}
        keys = await conn.fetch("SELECT delivery_id, key, status FROM delivery_keys"
                                " WHERE delivery_id = ANY($1)", list(ids))
        assert len(keys) == len(ids) and {k["status"] for k in keys} == {"done"}
        # Exactly once: each acknowledged delivery is covered by exactly one completed
        # reconcile of its key (a reconcile cut off by the kill left no audit row).
        done = await conn.fetch("SELECT key, deliveries FROM audit WHERE outcome = 'done'")
        covered = Counter((d, row["key"]) for row in done for d in row["deliveries"])
        assert {covered[(k["delivery_id"], k["key"])] for k in keys} == {1}
        states = await conn.fetch("SELECT name, state FROM resource_state WHERE kind = 'pull'")
        assert len(states) == PULLS and {s["state"] for s in states} == {"open"}
    finally:
        await conn.close()
    assert server.terminate() == 0  # SIGTERM is a graceful shutdown


async def test_embedded_database_survives_sigkill(tmp_path: Path) -> None:
    """Without DATABASE_URL, `p38 up` keeps its data in P38_HOME across a SIGKILL."""
    home = tmp_path / "home"
    env = {"DATABASE_URL": "", "P38_HOME": str(home), "P38_WORKERS": "1"}
    server = ServerProcess(tmp_path, env, command="up")
    await server.start(timeout=120)
    try:
        headers, body = delivery(1)
        async with server.session() as session, session.post(
                "http://p38/webhooks/github", data=body, headers=headers) as response:
            assert response.status == 202
        server.kill()
        await server.start(timeout=120)
        guid = headers["X-GitHub-Delivery"]
        status, found = await server.get(f"/api/deliveries/{guid}")
        assert status == 200 and found["guid"] == guid
        assert (home / "pgdata" / "PG_VERSION").exists()
        assert server.terminate() == 0
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
        _stop_embedded(home / "pgdata")


def _stop_embedded(pgdata: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "controller.cli", "db-stop", "--force"],
                            env={**os.environ, "P38_HOME": str(pgdata.parent)},
                            capture_output=True, text=True, timeout=60, check=True)
    assert "stopped" in result.stdout
    assert not (pgdata / "postmaster.pid").exists()
