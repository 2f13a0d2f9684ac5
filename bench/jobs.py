"""Jobs benchmark (issue 24): webhook reconciles while slow Claude work runs, through the real
app with its real queue and workers, against a fake Messages API that takes `--claude-seconds`
to answer each call (a slow model), in process.

Three runs, each on a fresh database: 50 Railway webhooks posted 20 ms apart, each to its own
`deployment:ID` key, and the time from each post to its key's status being written (p50/p99):
1. nothing else running (the floor);
2. while 8 agent generations run as jobs on their own workers (`P38_JOB_WORKERS_GENERATION=8`);
3. the same 8 generations run inline, inside the agents' reconciles, as before issue 24 (the
   ceiling this replaces): they hold the 4 reconcile workers and the webhooks wait.

    python bench/jobs.py [--webhooks 50] [--generations 8] [--claude-seconds 5]

Uses DATABASE_URL when set (a throwaway database on that server), else the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import throwaway_database  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def agent(n: int) -> str:
    return (f"apiVersion: p38/v1\nkind: Agent\nmetadata: {{name: digest-{n}}}\nspec:\n"
            f"  description: Summarise what input {n} says.\n")


async def run(dsn: str, *, webhooks: int, generations: int, claude_seconds: float,
              inline: bool) -> list[float]:
    """Seconds from each webhook's post to its key's status, with `generations` generations
    in flight (run inline when `inline`)."""
    import os

    import asyncpg
    from aiohttp.test_utils import TestClient, TestServer

    from controller.app import create_app
    from controller.config import ManifestSettings, ProviderSettings, QueueSettings
    from controller.logs import configure_logging
    from controller.providers import anthropic
    from controller.store import Store
    from controller.store.migrations import migrate
    from reconcilers.agents.agent_actions import GenerateVersion
    from tests.fakes.anthropic import FakeAnthropic
    from tests.helpers import RAILWAY_SECRET, make_settings

    GenerateVersion.job = None if inline else "generation"  # (the old path, for the ceiling)
    folder = Path(tempfile.mkdtemp(prefix="p38-bench-jobs-"))
    for n in range(generations):
        (folder / f"digest-{n}.yaml").write_text(agent(n))
    claude = FakeAnthropic()
    in_flight = [0]

    async def slow(_index: int) -> None:
        in_flight[0] += 1
        try:
            await asyncio.sleep(claude_seconds)
        finally:
            in_flight[0] -= 1

    claude.before = slow
    claude_server = TestServer(claude.app())
    await claude_server.start_server()
    os.environ["ANTHROPIC_BASE_URL"] = str(claude_server.make_url("")).rstrip("/")
    settings = make_settings(dsn, workers=4).model_copy(update={
        "providers": ProviderSettings(ANTHROPIC_API_KEY=claude.api_key),
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=folder, P38_RESYNC_SECONDS=3600),
        "queue": QueueSettings(P38_WORKERS=4, P38_POLL_SECONDS=0.01,
                               P38_JOB_WORKERS_GENERATION=max(1, generations))})
    configure_logging(level="warning")
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    store = await Store.connect(dsn, min_size=1, max_size=2)
    client = TestClient(TestServer(create_app(settings, providers=[anthropic.bundle()])))
    await client.start_server()
    try:
        deadline = time.monotonic() + 60
        while generations and in_flight[0] < min(generations, 4 if inline else generations):
            if time.monotonic() > deadline:
                raise SystemExit(f"only {in_flight[0]} generations started")
            await asyncio.sleep(0.01)
        posted: dict[str, float] = {}
        for n in range(webhooks):
            body = {"type": "Deployment.deployed",
                    "details": {"id": f"dep-{n}", "status": "SUCCESS", "commitHash": "a" * 40},
                    "resource": {"environment": {"id": "env"}, "service": {"id": "svc"},
                                 "deployment": {"id": f"dep-{n}"}},
                    "timestamp": f"2026-12-07T10:00:{n % 60:02d}.000Z"}
            posted[f"deployment:dep-{n}"] = time.time()
            response = await client.post("/webhooks/railway", data=json.dumps(body), headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {RAILWAY_SECRET}"})
            assert response.status == 202, await response.text()
            await asyncio.sleep(0.02)
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while len(seen) < webhooks and time.monotonic() < deadline:
            for row in await store.fetch("statuses_of", sorted(set(posted) - set(seen))):
                seen[row["key"]] = row["reconciled_at"].timestamp() - posted[row["key"]]
            await asyncio.sleep(0.01)
        if len(seen) < webhooks:
            raise SystemExit(f"only {len(seen)} of {webhooks} webhooks reconciled in 120 s")
        return list(seen.values())
    finally:
        await client.close()
        await store.close()
        await claude_server.close()
        GenerateVersion.job = "generation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=50)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--claude-seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(f"jobs benchmark: {args.webhooks} Railway webhooks 20 ms apart; Claude answers in "
          f"{args.claude_seconds:g} s; 4 reconcile workers")
    figures = {}
    for label, generations, inline in (("nothing else running", 0, False),
                                       (f"{args.generations} generations as jobs",
                                        args.generations, False),
                                       (f"{args.generations} generations inline (before)",
                                        args.generations, True)):
        with throwaway_database("jobs") as dsn:
            took = asyncio.run(run(dsn, webhooks=args.webhooks, generations=generations,
                                   claude_seconds=args.claude_seconds, inline=inline))
        p50, p99 = percentile(took, .5) * 1000, percentile(took, .99) * 1000
        figures[label] = {"p50_ms": round(p50, 1), "p99_ms": round(p99, 1)}
        print(f"  {label:36s} webhook -> reconciled  p50 {p50:8.1f} ms   p99 {p99:8.1f} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
