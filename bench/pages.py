"""The operator's page on a big store (issue 19): each page's answer time with 100,000
deliveries and 10,000 objects (and their reconciles, actions, agents, runs, tasks), through
the real app over real HTTP on loopback, in process.

Seeds a throwaway database with SQL (`generate_series`), starts the app, asks each page
`--requests` times one after the other, and prints p50/p99 per page beside the ceiling it is
compared with in the same run: the same server answering a page of the same size already
rendered (HTTP, middlewares and the connection: what no page can beat). Goal: every page under
100 ms. A page that answers 404 is listed as absent (not built yet).

    python bench/pages.py [--deliveries 100000] [--objects 10000] [--requests 30]

Uses DATABASE_URL when set (a throwaway database on that server), else the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import throwaway_database  # noqa: E402

PAGES = ["/", "/objects", "/objects?status=Stalled", "/objects/agent%3Abench%2Fagent-7",
         "/deliveries", "/deliveries?source=github&event=push", "/deliveries/50000",
         "/agents", "/agents/agent%3Abench%2Fagent-7", "/runs/10", "/tasks", "/tasks/10",
         "/services", "/pulls", "/operator-log"]
GOAL_MS = 100.0

SEED = """
INSERT INTO deliveries (source, guid, event, action, received_at, status, processed_at)
SELECT 'github', 'guid-' || n,
       (ARRAY['push', 'pull_request', 'issue_comment', 'check_run', 'status'])[1 + n % 5],
       'created', now() - make_interval(secs => ($1 - n) * 0.05),
       (ARRAY['processed', 'processed', 'processed', 'ignored', 'failed'])[1 + n % 5], now()
FROM generate_series(1, $1) AS n;
INSERT INTO delivery_payloads (delivery_id, headers, payload)
SELECT id, '{"X-GitHub-Event": "push"}'::jsonb,
       '{"ref": "refs/heads/main", "repository": {"full_name": "octo-org/infra"}, '
       || '"installation": {"id": 1}, "token": "ghs_not_shown", "n": ' || id || '}'
FROM deliveries;
INSERT INTO delivery_keys (delivery_id, key, status)
SELECT id, 'issue:octo-org/infra#' || (id % $2), 'done' FROM deliveries;
INSERT INTO object_status (key, kind, status, reason, message, source, since, reconciled_at)
SELECT k.kind || ':bench/' || k.kind || '-' || n, k.kind,
       (ARRAY['Ready', 'Ready', 'Ready', 'Reconciling', 'Waiting', 'Stalled',
              'Blocked'])[1 + n % 7],
       'Bench', 'object ' || n || ' of the benchmark', 'bench',
       now() - make_interval(secs => n), now() - make_interval(secs => n)
FROM generate_series(1, $2 / 5) AS n,
     (VALUES ('agent'), ('schedule'), ('service'), ('pull'), ('task')) AS k(kind);
INSERT INTO applied_objects (source, kind, name, content_hash, document, revision)
SELECT 'bench', 'Agent', 'agent-' || n, md5(n::text),
       jsonb_build_object('apiVersion', 'p38/v1', 'kind', 'Agent',
                          'metadata', jsonb_build_object('name', 'agent-' || n),
                          'spec', jsonb_build_object('description', 'bench agent ' || n)), 'r1'
FROM generate_series(1, $2 / 5) AS n;
INSERT INTO audit (reconcile_id, key, kind, worker, deliveries, attempt, outcome, decision,
                   reason, started_at, duration_ms)
SELECT gen_random_uuid(), 'agent:bench/agent-' || (n % ($2 / 5) + 1), 'agent', 'bench',
       ARRAY[n]::bigint[], 1,
       (ARRAY['done', 'done', 'done', 'requeue', 'retry'])[1 + n % 5], 'Bench',
       'reconcile ' || n, now() - make_interval(secs => ($1 - n) * 0.036), 3.5
FROM generate_series(1, $1) AS n;
INSERT INTO actions (idempotency_key, kind, status, key, description, reason)
SELECT 'bench:' || n, 'github.comment',
       CASE WHEN n % 400 = 0 THEN 'held' ELSE 'succeeded' END,
       'agent:bench/agent-' || (n % ($2 / 5) + 1), 'bench action ' || n,
       CASE WHEN n % 400 = 0 THEN 'approval required' END
FROM generate_series(1, $1 / 5) AS n;
INSERT INTO agent_versions (agent, number, spec_hash, origin, model, spec, state, code)
SELECT 'agent:bench/agent-' || n, 1, md5(n::text), 'generated', 'claude-sonnet-5-5', '{}',
       'READY', 'def run(task):\n    return {"n": ' || n || '}\n'
FROM generate_series(1, $2 / 5) AS n;
INSERT INTO agent_runs (agent, version, trigger, state, outcome, tokens, usd, requested_at,
                        started_at, ended_at)
SELECT 'agent:bench/agent-' || (n % ($2 / 5) + 1), 1, 'schedule', 'finished', 'succeeded',
       100, 0.001, now() - make_interval(secs => n), now() - make_interval(secs => n),
       now() - make_interval(secs => n)
FROM generate_series(1, $1 / 5) AS n;
INSERT INTO claude_tasks (repo, issue, comment_id, installation_id, on_pull, requested_by,
                          command, state, reason, history)
SELECT 'octo-org/infra', n, n, 1, false, 'dana-ops', 'task ' || n, 'PR_OPENED', 'bench', '[]'
FROM generate_series(1, $2 / 5) AS n;
INSERT INTO operator_actions (by_whom, via, verb, target, outcome)
SELECT 'dana', 'page', 'approve', 'bench:' || n, 'done' FROM generate_series(1, 5000) AS n;
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def seed(dsn: str, deliveries: int, objects: int) -> float:
    import asyncpg

    from controller.store.migrations import migrate

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        started = time.perf_counter()
        # (two integers of ours, written into the statements: no parameter types to infer)
        await conn.execute(SEED.replace("$1", str(int(deliveries)))
                           .replace("$2", str(int(objects))))
        await conn.execute("ANALYZE")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def measure(dsn: str, requests: int) -> None:
    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from controller.app import create_app
    from controller.logs import configure_logging
    from tests.helpers import make_settings

    configure_logging(level="warning")
    app = create_app(make_settings(dsn, workers=0))
    rendered: dict[str, bytes] = {}

    async def ceiling(_request: web.Request) -> web.Response:
        return web.Response(body=rendered["/"], content_type="text/html")

    app.router.add_get("/_bench/ceiling", ceiling)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async def timed(path: str) -> tuple[int, float, int]:
                started = time.perf_counter()
                async with session.get(server.make_url(path), allow_redirects=False) as r:
                    body = await r.read()
                    if path == "/":
                        rendered["/"] = body
                    return r.status, (time.perf_counter() - started) * 1000, len(body)

            await timed("/")
            rows = []
            for path in ["/_bench/ceiling", *PAGES]:
                status, _, size = await timed(path)  # warm: templates compiled, plans cached
                if status == 404:
                    rows.append((path, None, None, 0, "absent"))
                    continue
                times = [(await timed(path))[1] for _ in range(requests)]
                rows.append((path, percentile(times, 0.5), percentile(times, 0.99), size,
                             str(status)))
    finally:
        await server.close()
    print(f"{'page':44} {'status':>6} {'bytes':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for path, p50, p99, size, status in rows:
        shown = "ceiling (pre-rendered overview)" if path == "/_bench/ceiling" else path
        if p50 is None:
            print(f"{shown:44} {status:>6}")
            continue
        print(f"{shown:44} {status:>6} {size:>8} {p50:>8.1f} {p99:>8.1f}"
              + ("" if path == "/_bench/ceiling" or p99 < GOAL_MS else "  over the goal"))
    print(f"goal: every page under {GOAL_MS:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    with throwaway_database("pages") as dsn:
        took = asyncio.run(seed(dsn, args.deliveries, args.objects))
        print(f"seeded {args.deliveries:,} deliveries (payloads, keys), {args.objects:,} "
              f"objects, {args.deliveries:,} reconciles, {args.deliveries // 5:,} actions and "
              f"runs in {took:.1f}s")
        asyncio.run(measure(dsn, args.requests))


if __name__ == "__main__":
    main()
