"""Recovery benchmark: a FAILED deployment's webhook -> the rollback mutation, through the real
app (webhook -> deployment:ID -> its Service -> Railway read -> mark bad, incident, rollback)
against the stateful fake Railway and fake GitHub in process, which answer at once: what is
measured is the controller's own time.

N Services (one repository, one Railway service each) are deployed at a first commit and made
healthy; a second commit is pushed and deployed to all of them. Then, one at a time, a
service's new deployment turns FAILED and Railway's `Deployment.failed` webhook is posted three
times (a retrying sender); the time from the first post to the `deploymentRollback` reaching the
fake is recorded, with the time spent inside the fakes meanwhile (the floor). Prints p50/p99 of
webhook -> rollback and of the controller's own time (goal p99 <= 250 ms), rollbacks per
failure (goal exactly 1: 0 duplicates), incident issues per failure, and the n8n
notifications a local receiver got (goal one `rolled_back` per failure: 0 duplicates).

    python bench/recovery.py [--services 200]

Uses DATABASE_URL when set (a throwaway database on that server), else the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import throwaway_database  # noqa: E402

REPO = "octo-org/infra"
INSTALLATION = 51234567
ENVIRONMENT = "env-prod"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def service(n: int) -> str:
    return (f"apiVersion: p38/v1\nkind: Service\nmetadata:\n  name: web-{n}\nspec:\n"
            f"  railway:\n    project: proj\n    environment: {ENVIRONMENT}\n"
            f"    service: svc-{n}\n  branch: main\n")


async def bench(dsn: str, services: int) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from controller.app import create_app
    from controller.config import ManifestSettings, ProviderSettings, QueueSettings
    from controller.logs import configure_logging
    from controller.providers import github, railway
    from controller.store import Store, statements
    from controller.store.migrations import migrate
    from tests.e2e.test_gitops import GitOps, Sleeps
    from tests.fakes.github import FakeGitHub, make_key_pair
    from tests.fakes.railway import FakeRailway
    from tests.helpers import RAILWAY_SECRET, make_settings

    inside = [0.0]
    rolled: dict[str, float] = {}
    private, public = make_key_pair()
    fake = FakeGitHub(public_key=public)
    fake.install(INSTALLATION, REPO)
    fake.commit(REPO, {"README.md": "infra\n"})
    rail = FakeRailway()
    github_handle, railway_handle = fake.handle, rail.handle

    def timed_github(request: Any) -> Any:
        started = time.perf_counter()
        try:
            return github_handle(request)
        finally:
            inside[0] += time.perf_counter() - started

    def timed_railway(request: Any) -> Any:
        started = time.perf_counter()
        before = len(rail.mutations)
        try:
            return railway_handle(request)
        finally:
            inside[0] += time.perf_counter() - started
            for kind, args in rail.mutations[before:]:
                if kind == "rollback":
                    rolled.setdefault(str(rail.by_id(args["id"])["serviceId"]), started)

    fake.handle = timed_github  # type: ignore[method-assign]
    rail.handle = timed_railway  # type: ignore[method-assign]
    settings = make_settings(dsn, workers=2).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=private,
                                      RAILWAY_TOKEN=rail.token),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=3600),
        "queue": QueueSettings(P38_WORKERS=2, P38_POLL_SECONDS=0.01)})
    configure_logging(level="warning")
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    store = await Store.connect(dsn, min_size=1, max_size=2)
    client = TestClient(TestServer(create_app(settings, providers=[
        github.bundle(transport=fake.transport()), railway.bundle(transport=rail.transport())])))
    await client.start_server()

    async def hook(deployment: dict[str, Any], kind: str, at: int) -> None:
        body = {"type": f"Deployment.{kind}", "details": {
                    "id": deployment["id"], "status": deployment["status"],
                    "commitHash": deployment["meta"]["commitHash"]},
                "resource": {"environment": {"id": ENVIRONMENT},
                             "service": {"id": deployment["serviceId"]},
                             "deployment": {"id": deployment["id"]}},
                "timestamp": f"2026-12-07T10:00:{at:02d}.000Z"}
        response = await client.post("/webhooks/railway", data=json.dumps(body), headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {RAILWAY_SECRET}"})
        assert response.status in (200, 202), await response.text()

    async def until(condition: Any, what: str, timeout: float = 120.0) -> None:
        deadline = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > deadline:
                stuck = [f"{r['key']} {r['status']} {r['reason']}: {r['message'][:200]}"
                         for r in await store.fetch("statuses_list", "service", None, None,
                                                    1000, None) if r["status"] != "Blocked"]
                raise SystemExit(f"timed out waiting for {what}; services not Blocked: "
                                 f"{stuck[:5]}")
            await asyncio.sleep(0.002)

    def deployed(commit: str) -> list[dict[str, Any]]:
        return [d for d in rail.deployments if d["meta"]["commitHash"] == commit]

    gitops = GitOps(client, fake, store, Sleeps(), {"README.md": "infra\n"})
    from aiohttp import web

    told: list[str] = []

    async def n8n(request: web.Request) -> web.Response:
        told.append((await request.json())["id"])
        return web.json_response({"ok": True})

    receiver = web.Application()
    receiver.router.add_post("/webhook/p38-ops", n8n)
    n8n_server = TestServer(receiver)
    await n8n_server.start_server()
    n8n_url = str(n8n_server.make_url("/webhook/p38-ops"))
    os.environ["P38_NOTIFY_OPS_URL"] = n8n_url
    os.environ["P38_NOTIFY_OPS_TOKEN"] = "bench-n8n-token-0123456789"
    policy = ("apiVersion: p38/v1\nkind: Policy\nmetadata:\n  name: default\nspec:\n"
              f"  notifications:\n    ops:\n      url: {n8n_url}\n")

    async def delivered() -> bool:
        return True

    to_rollback, own, per_failure = [], [], []
    try:
        files = {"README.md": "infra\n", "manifests/policy.yaml": policy,
                 **{f"manifests/web-{n}.yaml": service(n) for n in range(services)}}
        first = await gitops.push_until(files, delivered)
        await until(lambda: len(deployed(first)) >= services, "the first deploys")
        for d in deployed(first):
            rail.advance(d["id"], "SUCCESS")
        second = await gitops.push_until({**files, "README.md": "infra v2\n"}, delivered)
        await until(lambda: len(deployed(second)) >= services, "the second deploys")
        for d in deployed(second):
            rail.advance(d["id"], "SUCCESS")  # the first ones are superseded: REMOVED
        for d in sorted(deployed(second), key=lambda d: d["serviceId"]):
            rail.advance(d["id"], "FAILED")
            before = inside[0]
            sent_before = sum(statements.total.values())
            started = time.perf_counter()
            for at in range(3):  # a sender that retries: still one rollback
                await hook(d, "failed", at)
            await until(lambda d=d: d["serviceId"] in rolled,  # type: ignore[misc]
                        f"the rollback of {d['serviceId']}")
            took = rolled[d["serviceId"]] - started
            to_rollback.append(took)
            own.append(took - (inside[0] - before))
            per_failure.append(sum(statements.total.values()) - sent_before)
            back = next(x for x in rail.deployments if x["serviceId"] == d["serviceId"])
            rail.advance(back["id"], "SUCCESS")  # Railway brings the rolled-back one up
            await hook(back, "deployed", 9)
        await until(lambda: len([t for t in told if ":rolled_back:" in t]) >= services,
                    "every notification")
        await asyncio.sleep(1.0)  # let late reconciles show any duplicate
    finally:
        await client.close()
        await n8n_server.close()
        await store.close()

    rolled_back = [t for t in told if ":rolled_back:" in t]
    rollbacks = [args["id"] for kind, args in rail.mutations if kind == "rollback"]
    incidents = fake.issues.get(REPO, [])
    ms = 1000.0
    print(f"recovery benchmark: {services} Services, each failing once (its webhook posted 3 "
          f"times), one at a time")
    for label, values in (("webhook -> rollback mutation", to_rollback),
                          ("controller's own time", own)):
        print(f"  {label:30s} p50 {percentile(values, .5) * ms:7.1f} ms   "
              f"p99 {percentile(values, .99) * ms:7.1f} ms   "
              f"mean {statistics.fmean(values) * ms:7.1f} ms")
    print(f"  goal: controller's own time p99 <= 250 ms: "
          f"{'met' if percentile(own, .99) <= 0.25 else 'NOT met'}")
    print(f"  SQL statements per failure (first post to the rollback): p50 "
          f"{percentile(per_failure, .5):.0f}, max {max(per_failure):.0f}")
    print(f"  rollbacks {len(rollbacks)} for {services} failures (duplicates: "
          f"{len(rollbacks) - len(set(rollbacks))}); incident issues {len(incidents)} "
          f"(one per Service that failed)")
    print(f"  n8n notifications rolled_back {len(rolled_back)} for {services} failures "
          f"(duplicates: {len(rolled_back) - len(set(rolled_back))})")
    print(json.dumps({"p50_ms": round(percentile(to_rollback, .5) * ms, 1),
                      "p99_ms": round(percentile(to_rollback, .99) * ms, 1),
                      "own_p99_ms": round(percentile(own, .99) * ms, 1),
                      "duplicate_rollbacks": len(rollbacks) - len(set(rollbacks)),
                      "duplicate_notifications": len(rolled_back) - len(set(rolled_back))}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    args = parser.parse_args()
    with throwaway_database("recovery") as dsn:
        asyncio.run(bench(dsn, args.services))


if __name__ == "__main__":
    main()
