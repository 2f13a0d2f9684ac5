"""Schedules benchmark: 1,000 agents on one-minute schedules, 3 controller processes on one
database, for 3 minutes.

Each process is a real `p38 serve --manifests DIR` (reconcile and run workers included) on one
throwaway database. The agents' versions are seeded READY (what is measured is scheduling, not
1,000 validations), each agent a trivial hand-written one. After every schedule has been seen,
the window starts at the next minute; when it has passed (and the runs had time to end), the
database says, for the instants due in the window:
  ticks expected (agents x minutes), fired, skipped, missed (no tick row), duplicated (more
  than one run for one instant); tick lag (fired_at - due time) and run start lag
  (started_at - due time), p50/p99.
With armed ticks (docs/agents.md) a tick's `fired_at` is the moment the run worker claimed its
armed run and decided it; "armed ahead" counts the runs written before their instant. The
statements are the audit rows' `phases.statements` (claim + what the reconcile sent + settle)
of every schedule and run reconcile started in the window, per tick decided.
The goals from issue 20: 0 missed, 0 duplicated, tick lag p99 <= 1 s, <= 12 statements per
tick and its run; run start lag p99 <= 10 s at 1,000 runs, <= 1 s at 100.

    python bench/schedules.py [--agents 1000] [--processes 3] [--minutes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import throwaway_database  # noqa: E402
from controller.manifests.models import AgentSpec  # noqa: E402
from controller.reconcile.reads import SourceFile  # noqa: E402
from reconcilers.agents.agents import spec_hash  # noqa: E402

CODE = "def run(task):\n    return {'ok': True}\n"
DOCS = """apiVersion: p38/v1
kind: Agent
metadata: {{name: a{n}}}
spec:
  description: "benchmark tick {n}"
  code: agents/noop.py
  limits: {{timeout: 30s, memory: 128Mi}}
---
apiVersion: p38/v1
kind: Schedule
metadata: {{name: s{n}}}
spec: {{cron: "* * * * *", agent: a{n}, concurrency: allow}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(dsn: str, agents: int) -> None:
    import asyncpg

    spec = AgentSpec.model_validate({"description": "benchmark tick 0", "code": "agents/noop.py",
                                     "limits": {"timeout": "30s", "memory": "128Mi"}})
    conn = await asyncpg.connect(dsn)
    try:
        rows = []
        for n in range(agents):
            s = spec.model_copy(update={"description": f"benchmark tick {n}"})
            digest = spec_hash(s, SourceFile("agents/noop.py", CODE), None)
            rows.append((f"agent:local/a{n}", digest))
        await conn.executemany(
            "INSERT INTO agent_versions (agent, number, spec_hash, origin, model, spec, state,"
            " code, finished_at) VALUES ($1, 1, $2, 'code', 'none', '{}', 'READY', $3, now())",
            [(a, d, CODE) for a, d in rows])
    finally:
        await conn.close()


async def query(dsn: str, sql: str, *args: object) -> list[object]:
    import asyncpg

    for _ in range(30):  # (a shared server may be at max_connections for a moment)
        try:
            conn = await asyncpg.connect(dsn)
            break
        except asyncpg.TooManyConnectionsError:
            await asyncio.sleep(2)
    else:
        conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def value(dsn: str, sql: str, *args: object) -> object:
    rows = await query(dsn, sql, *args)
    return rows[0][0] if rows else None  # type: ignore[index]


def main(agents: int, processes: int, minutes: int, run_workers: int) -> None:
    with throwaway_database("schedules") as dsn:
        env = {**os.environ, "DATABASE_URL": dsn, "P38_WORKERS": "8",
               "P38_RUN_WORKERS": str(run_workers),
               "P38_LOG_LEVEL": "warning", "P38_RESYNC_SECONDS": "3600"}
        subprocess.run([sys.executable, "-m", "controller.cli", "migrate"], env=env,
                       check=True, capture_output=True)
        folder = Path(tempfile.mkdtemp(prefix="p38-bench-schedules-"))
        (folder / "agents").mkdir()
        (folder / "agents" / "noop.py").write_text(CODE)
        (folder / "manifests").mkdir()
        (folder / "manifests" / "all.yaml").write_text(
            "---\n".join(DOCS.format(n=n) for n in range(agents)))
        asyncio.run(seed(dsn, agents))
        servers = [subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "serve", "--manifests",
             str(folder / "manifests"), "--port", str(free_port())], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(processes)]
        try:
            started = time.monotonic()
            while asyncio.run(value(dsn, "SELECT count(*) FROM object_status WHERE kind = "
                                         "'schedule'")) != agents:
                if time.monotonic() - started > 900:
                    raise SystemExit("the schedules were not all seen within 15 minutes")
                time.sleep(1)
            setup = time.monotonic() - started
            window = asyncio.run(query(dsn, "SELECT date_trunc('minute', now()) + interval "
                                            "'1 minute' AS t0, now() AS now"))[0]
            t0 = window["t0"]  # type: ignore[index]
            t1_wait = (t0 - window["now"]).total_seconds() + 60 * minutes + 20  # type: ignore
            print(f"{agents} schedules seen by {processes} processes after {setup:.0f}s; "
                  f"window {t0:%H:%M} + {minutes} min; waiting {t1_wait:.0f}s", flush=True)
            time.sleep(t1_wait)
            report(dsn, agents, minutes, t0)
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
            for server in servers:
                server.wait(timeout=30)


def report(dsn: str, agents: int, minutes: int, t0: object) -> None:
    sql = """
    WITH w AS (SELECT * FROM schedule_ticks
               WHERE due_at >= $1 AND due_at < $1 + make_interval(mins => $2))
    SELECT (SELECT count(*) FROM w WHERE outcome = 'fired') AS fired,
           (SELECT count(*) FROM w WHERE outcome = 'skipped') AS skipped,
           (SELECT count(*) FROM w) AS rows,
           (SELECT count(*) FROM w WHERE outcome NOT IN ('fired', 'skipped')) AS undecided,
           (SELECT count(*) FROM (SELECT schedule, input->>'due_at' FROM agent_runs
                                  WHERE schedule IS NOT NULL
                                    AND (input->>'due_at')::timestamptz >= $1
                                    AND (input->>'due_at')::timestamptz
                                        < $1 + make_interval(mins => $2)
                                  GROUP BY 1, 2 HAVING count(*) > 1) d) AS duplicated,
           (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
                ORDER BY extract(epoch FROM fired_at - due_at)) FROM w) AS tick_lag,
           (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
                ORDER BY extract(epoch FROM r.started_at - w.due_at))
            FROM w JOIN agent_runs r ON r.id = w.run_id) AS start_lag,
           (SELECT count(*) FROM w JOIN agent_runs r ON r.id = w.run_id
            WHERE r.outcome = 'succeeded') AS succeeded,
           (SELECT count(*) FROM w JOIN agent_runs r ON r.id = w.run_id
            WHERE r.requested_at < w.due_at) AS armed,
           (SELECT coalesce(sum((a.phases->>'statements')::int), 0) FROM audit a
            WHERE a.kind IN ('schedule', 'run') AND a.started_at >= $1
              AND a.started_at < $1 + make_interval(mins => $2)) AS statements,
           (SELECT count(*) FROM audit a
            WHERE a.kind IN ('schedule', 'run') AND a.started_at >= $1
              AND a.started_at < $1 + make_interval(mins => $2)) AS reconciles"""
    row = asyncio.run(query(dsn, sql, t0, minutes))[0]
    expected = agents * minutes
    r = dict(row)  # type: ignore[call-overload]
    tick, start = r["tick_lag"] or [0, 0], r["start_lag"] or [0, 0]
    print(f"ticks expected {expected}: fired {r['fired']}, skipped {r['skipped']}, "
          f"missed {expected - r['rows'] + r['undecided']} (of which armed but never "
          f"decided {r['undecided']}), duplicated {r['duplicated']}; runs succeeded "
          f"{r['succeeded']}")
    print(f"runs written before their instant (armed ahead): {r['armed']} of {r['fired']}")
    print(f"tick lag (fired_at - due; fired_at is when the tick was decided and its run "
          f"queued or, armed, claimed): p50 {tick[0]:.3f}s, p99 {tick[1]:.3f}s")
    print(f"run start lag (started_at - due): p50 {start[0]:.3f}s, p99 {start[1]:.3f}s")
    per_tick = r["statements"] / max(1, r["fired"] + r["skipped"])
    print(f"statements (claim + sent + settle of every schedule and run reconcile started in "
          f"the window): {r['statements']} in {r['reconciles']} reconciles, "
          f"{per_tick:.1f} per tick and its run")
    kinds = asyncio.run(query(dsn, """
        SELECT kind, count(*) AS n, sum((phases->>'statements')::int) AS statements FROM audit
        WHERE kind IN ('schedule', 'run') AND started_at >= $1
          AND started_at < $1 + make_interval(mins => $2) GROUP BY kind ORDER BY kind""",
                          t0, minutes))
    print("  by kind: " + ", ".join(f"{k['kind']} {k['n']} reconciles, "  # type: ignore[index]
                                    f"{k['statements'] / k['n']:.1f} statements each"  # type: ignore[index]
                                    for k in kinds))
    print("goal (issue 20): missed 0, duplicated 0, tick lag p99 <= 1 s, <= 12 statements "
          "per tick and its run; run start lag p99 <= 10 s at 1,000 runs, <= 1 s at 100")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--run-workers", type=int, default=4,
                        help="P38_RUN_WORKERS of each process: its run workers and the size "
                             "of its warm pool of agent processes")
    args = parser.parse_args()
    main(args.agents, args.processes, args.minutes, args.run_workers)
