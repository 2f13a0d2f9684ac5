"""Auto-merge benchmark: a pull request's last required check turns green -> the merge call,
through the real app (webhook -> pull request reconcile: GitHub read, judgement, check run,
merge) against the stateful fake GitHub in process, which answers at once: what is measured is
the controller's own time.

N pull requests on `claude/` branches are opened first (each waits with its `p38/automerge`
check run saying `test` has not run). Then, one at a time, a green `test` check run is added
on the head and its `check_run` delivery posted; the time to the `PUT .../merge` call is
recorded, with the time spent inside the fake GitHub meanwhile (the floor any controller making
the same reads would wait) and the named SQL statements the controller ran. Every tenth pull
request has a new head pushed after its check went green and before the delivery: it must not
be merged until its new head has its own green check (the race the merge's `sha` closes).
Prints p50/p99 of delivery -> merge call and of the controller's own time (goal p99 <= 300 ms),
statements per merge, GitHub calls per merge, and merges of an unchecked head (goal 0).

    python bench/automerge.py [--pulls 200]

Uses DATABASE_URL when set (a throwaway database on that server), else the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
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
POLICY = ("apiVersion: p38/v1\nkind: Policy\nmetadata:\n  name: default\nspec:\n"
          "  autoMerge:\n    requiredChecks: [test]\n")
MERGE = re.compile(rf"/repos/{REPO}/pulls/(\d+)/merge")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Counted:
    """The statements this process sent to PostgreSQL so far (the store's own counter,
    `controller.store.statements`: a gathered read is one, a transaction two more)."""

    @property
    def n(self) -> int:
        from controller.store import statements

        return sum(statements.total.values())

    def install(self) -> None:
        """(Nothing to install: the store counts.)"""


async def bench(dsn: str, pulls: int) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from controller.app import create_app
    from controller.config import ManifestSettings, ProviderSettings, QueueSettings
    from controller.logs import configure_logging
    from controller.providers import github
    from controller.store import Store
    from controller.store.migrations import migrate
    from tests.e2e.test_gitops import GitOps, Sleeps
    from tests.fakes.github import FakeGitHub, make_key_pair
    from tests.fakes.github_events import check_run_event, pull_request_event
    from tests.helpers import github_payload, make_settings

    statements = Counted()
    statements.install()
    inside = [0.0]
    merge_calls: dict[int, float] = {}
    private, public = make_key_pair()
    fake = FakeGitHub(public_key=public)
    fake.install(INSTALLATION, REPO)
    fake.commit(REPO, {"README.md": "infra\n"})
    handle = fake.handle

    def timed_handle(request: Any) -> Any:
        started = time.perf_counter()
        if request.method == "PUT" and (m := MERGE.fullmatch(request.url.path)):
            merge_calls.setdefault(int(m[1]), started)
        response = handle(request)
        inside[0] += time.perf_counter() - started
        return response

    fake.handle = timed_handle  # type: ignore[method-assign]
    settings = make_settings(dsn, workers=2).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=private),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=3600),
        "queue": QueueSettings(P38_WORKERS=2, P38_POLL_SECONDS=0.01)})
    configure_logging(level="warning")
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    store = await Store.connect(dsn, min_size=1, max_size=2)
    client = TestClient(TestServer(create_app(settings, providers=[
        github.bundle(transport=fake.transport())])))
    await client.start_server()

    async def send(built: tuple[str, dict[str, Any]]) -> None:
        headers, body = github_payload(*built)
        response = await client.post("/webhooks/github", data=body, headers=headers)
        assert response.status == 202, await response.text()

    def head(number: int) -> str:
        return str(fake.pull_json(fake.repos[REPO], number)["head"]["sha"])

    async def until(condition: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            await asyncio.sleep(0.001)

    to_merge, own, per_merge, calls_per_merge = [], [], [], []
    try:
        files = {"README.md": "infra\n", "manifests/policy.yaml": POLICY}
        await GitOps(client, fake, store, Sleeps(), {"README.md": "infra\n"}).push(files)
        numbers = list(range(100, 100 + pulls))
        for n in numbers:
            fake.push_branch(REPO, f"claude/{n}-change", {**files, "README.md": f"{n}\n"})
            fake.open_pull(REPO, n, head=f"claude/{n}-change", title=f"Change {n}")
            await send(pull_request_event(fake, REPO, n, "opened", INSTALLATION))

        def shown() -> bool:
            return sum(1 for r in fake.check_runs if r["name"] == "p38/automerge") >= pulls

        await until(shown, "every pull request's p38/automerge check run", timeout=300)
        for i, n in enumerate(numbers):
            run = fake.add_check_run(REPO, head(n), "test")
            raced = i % 10 == 9
            if raced:  # a new head lands after the green check, before its delivery
                fake.push_branch(REPO, f"claude/{n}-change", {**files, "README.md": f"{n}b\n"})
            before_inside, before_sql, before_calls = inside[0], statements.n, len(fake.requests)
            started = time.perf_counter()
            await send(check_run_event(fake, REPO, run, INSTALLATION))
            if raced:
                await asyncio.sleep(0.3)  # it must not merge meanwhile (checked below)
                await send(pull_request_event(fake, REPO, n, "synchronize", INSTALLATION))
                run = fake.add_check_run(REPO, head(n), "test")
                before_inside, before_sql = inside[0], statements.n
                before_calls = len(fake.requests)
                started = time.perf_counter()
                await send(check_run_event(fake, REPO, run, INSTALLATION))
            await until(lambda n=n: n in merge_calls, f"the merge of #{n}")  # type: ignore[misc]
            took = merge_calls[n] - started
            to_merge.append(took)
            own.append(took - (inside[0] - before_inside))
            per_merge.append(statements.n - before_sql)
            calls_per_merge.append(len(fake.requests) - before_calls)
        await until(lambda: len(fake.merges) >= pulls, "every merge answered")
    finally:
        await client.close()
        await store.close()

    unchecked = 0
    for merge in fake.merges:
        green = [r for r in fake.check_runs if r["name"] == "test"
                 and r["head_sha"] == merge["sha"] and r.get("conclusion") == "success"]
        unchecked += not green
    ms = 1000.0
    print(f"auto-merge benchmark: {pulls} pull requests, each merged once its `test` check is "
          f"green (one at a time; every tenth's head moved after the check: "
          f"{pulls // 10} races)")
    for label, values in (("delivery -> merge call", to_merge),
                          ("controller's own time", own),
                          ("inside the fake GitHub (floor)",
                           [t - o for t, o in zip(to_merge, own, strict=True)])):
        print(f"  {label:32s} p50 {percentile(values, .5) * ms:7.1f} ms   "
              f"p99 {percentile(values, .99) * ms:7.1f} ms   "
              f"mean {statistics.fmean(values) * ms:7.1f} ms")
    print(f"  goal: controller's own time p99 <= 300 ms: "
          f"{'met' if percentile(own, .99) <= 0.3 else 'NOT met'}")
    print(f"  SQL statements per merge (delivery to merge call): p50 "
          f"{percentile(per_merge, .5):.0f}, max {max(per_merge)}; GitHub calls per merge: "
          f"p50 {percentile(calls_per_merge, .5):.0f}")
    print(f"  merges {len(fake.merges)} (one per pull request: "
          f"{len({m['number'] for m in fake.merges}) == len(fake.merges) == pulls}); "
          f"merges of an unchecked head: {unchecked} (goal 0)")
    print(json.dumps({"p50_ms": round(percentile(to_merge, .5) * ms, 1),
                      "p99_ms": round(percentile(to_merge, .99) * ms, 1),
                      "own_p99_ms": round(percentile(own, .99) * ms, 1),
                      "unchecked": unchecked}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulls", type=int, default=200)
    args = parser.parse_args()
    with throwaway_database("automerge") as dsn:
        asyncio.run(bench(dsn, args.pulls))


if __name__ == "__main__":
    main()
