"""Push benchmark: a repository with 1,000 manifests in 100 files, pushed through the real app
(signed webhook -> queue -> worker -> GitHub reads -> apply -> check run) against the stateful
fake GitHub from tests/fakes (in process, no network).

Prints, for each push, the time from the webhook's 202 until the source's reconcile is settled
(applied) and until the reconciles of the objects it changed are too (settled), the GitHub calls
it made (reads, blob downloads, writes) and the actions it recorded:
  1. the first push: every object created;
  2. one file changed: one blob downloaded, its objects updated;
  3. a push that changes nothing in the manifests folder (forced, so the controller must
     look): the target from issue 3 is zero write calls (GitHub writes and actions).

    python bench/push.py [--files 100] [--per-file 10]

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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import throwaway_database  # noqa: E402
from bench.reconcile import write_tree  # noqa: E402

REPO = "octo-org/infra"
INSTALLATION = 51234567


def manifest_files(files: int, per_file: int) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp), files, per_file)
        return {f"manifests/{p.name}": p.read_text() for p in sorted(Path(tmp).iterdir())}


async def settled(store: Any) -> bool:
    """No key is due or running (a schedule stays queued for its next tick, an armed run for
    its instant: they wait, with a wait kind) and no delivery waits for a reconcile."""
    rows = await store.fetch("queue_list", None, None, 100000)
    return not (any(r["wait_kind"] not in ("requeue", "armed") or r["lease_holder"]
                    for r in rows)
                or await store.fetch("deliveries_list", None, None, "pending", None, 1))


async def bench(dsn: str, files: dict[str, str]) -> bool:
    from aiohttp.test_utils import TestClient, TestServer

    from controller.app import create_app
    from controller.config import ManifestSettings, ProviderSettings, QueueSettings
    from controller.providers import github
    from controller.store import Store, statements
    from controller.store.migrations import migrate
    from tests.fakes.github import FakeGitHub, make_key_pair
    from tests.helpers import SAMPLES, github_payload, make_settings, wait_until

    private, public = make_key_pair()
    fake = FakeGitHub(public_key=public)
    fake.install(INSTALLATION, REPO)
    settings = make_settings(dsn, workers=2).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=private),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=3600),
        "queue": QueueSettings(P38_WORKERS=2)})  # (polling as deployed: LISTEN wakes them)
    store = await Store.connect(dsn, min_size=1, max_size=2)
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    client = TestClient(TestServer(create_app(settings, providers=[
        github.bundle(transport=fake.transport())])))
    await client.start_server()
    template = json.loads((SAMPLES / "push" / "default-branch" / "payload.json").read_text())
    head = "0" * 40

    async def push(tree: dict[str, str], label: str, *, forced: bool = False) -> dict[str, Any]:
        nonlocal head
        before, requests = head, len(fake.requests)
        actions = await store.pool.fetchval("SELECT count(*) FROM actions")
        last_audit = await store.pool.fetchval("SELECT coalesce(max(id), 0) FROM audit")
        head = fake.commit(REPO, tree)
        commit = {**template["head_commit"], "id": head, "added": [], "removed": [],
                  "modified": [] if forced else ["manifests/m000.yaml"]}
        payload = {**template, "before": before, "after": head, "forced": forced,
                   "commits": [commit], "head_commit": commit}
        headers, body = github_payload("push", payload)
        sent = statements.snapshot()
        t0 = time.perf_counter()
        response = await client.post("/webhooks/github", data=body, headers=headers)
        assert response.status == 202, await response.text()

        async def source_done() -> bool:
            rows = await store.fetch("queue_list", None, None, 1000)
            return not any(r["key"] == f"manifests:{REPO}" for r in rows)

        await wait_until(source_done, timeout=120, what="the source reconciled")
        applied = time.perf_counter() - t0
        await wait_until(lambda: settled(store), timeout=120, what="the push reconciled")
        elapsed = time.perf_counter() - t0
        calls = fake.requests[requests:]
        writes = [q for q in calls if q.method != "GET" and "access_tokens" not in q.url.path]
        blobs = [q for q in calls if "/git/blobs/" in q.url.path]
        recorded = await store.pool.fetchval("SELECT count(*) FROM actions") - actions
        [audit] = await store.fetch("audit_list", f"manifests:{REPO}", None, None, 1)
        window = statements.snapshot() - sent
        objects, per_object = await store.pool.fetchrow(
            "SELECT count(*), percentile_disc(0.5) WITHIN GROUP"
            " (ORDER BY (phases->>'statements')::int) FROM audit WHERE id > $1"
            " AND kind IN ('agent', 'schedule', 'service', 'policy')", last_audit)
        print(f"{label:34s} applied {applied * 1000:7.1f} ms, settled {elapsed * 1000:7.1f} ms "
              f"({objects:4d} object reconciles)  GitHub: {len(calls) - len(writes):3d} "
              f"reads ({len(blobs):3d} blobs), {len(writes):2d} writes; actions recorded: "
              f"{recorded:4d}; {audit['decision']}: {audit['reason']}")
        print(f"{'':34s} SQL statements: {sum(window.values())} in all, "
              f"{per_object} per object reconcile (median; claim and settle included)")
        await print_kinds(store, last_audit)
        return {"writes": len(writes), "actions": recorded, "blobs": len(blobs)}

    async def look_again() -> None:
        """Every object hinted once more with nothing changed: no-op reconciles."""
        keys = [r["key"] for r in await store.fetch("statuses_list", None, None, None, 100000,
                                                    None)
                if r["kind"] in ("agent", "schedule", "service", "policy")]
        last_audit = await store.pool.fetchval("SELECT coalesce(max(id), 0) FROM audit")
        sent = statements.snapshot()
        t0 = time.perf_counter()
        await store.fetchval("queue_hint", keys, "bench-look-again", "bench", {"from": "bench"})

        async def looked() -> bool:
            done = await store.pool.fetchval(
                "SELECT count(DISTINCT key) FROM audit WHERE id > $1", last_audit)
            return bool(done >= len(keys)) and await settled(store)

        await wait_until(looked, timeout=120, what="every object looked at again")
        elapsed = time.perf_counter() - t0
        window = statements.snapshot() - sent
        print(f"{'4. every object looked at again':34s} settled {elapsed * 1000:7.1f} ms "
              f"({len(keys)} object reconciles, nothing changed); SQL statements: "
              f"{sum(window.values())} in all")
        await print_kinds(store, last_audit)

    try:
        await push(files, "1. first push (create all)")
        changed = dict(files)
        changed["manifests/m000.yaml"] = changed["manifests/m000.yaml"].replace(
            "tools: [http, notify]", "tools: [http]")
        await push(changed, "2. one file changed")
        noop = await push(changed, "3. push that changes nothing", forced=True)
        await look_again()
    finally:
        await client.close()
        await store.close()
    ok = noop["writes"] == 0 and noop["actions"] == 0 and noop["blobs"] == 0
    print(f"no-op push: {noop['writes']} write calls, {noop['actions']} actions, "
          f"{noop['blobs']} blob downloads (target: zero writes) -> "
          f"{'meets the target' if ok else 'BELOW TARGET'}")
    return ok


async def print_kinds(store: Any, after: int) -> None:
    """Statements per reconcile by kind and decision (median, claim and settle included)."""
    rows = await store.pool.fetch(
        "SELECT kind, decision, count(*) AS n, percentile_disc(0.5) WITHIN GROUP"
        " (ORDER BY (phases->>'statements')::int) AS median,"
        " percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) AS ms"
        " FROM audit WHERE id > $1"
        " GROUP BY 1, 2 ORDER BY 1, 2", after)
    print(f"{'':34s} per reconcile: " + "; ".join(
        f"{r['kind']} {r['decision']} {r['median']} (x{r['n']}, {r['ms']:.1f} ms)"
        for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--per-file", type=int, default=10)
    args = parser.parse_args()
    from controller.logs import configure_logging

    configure_logging(fmt="console", level="warning")
    files = manifest_files(args.files, args.per_file)
    print(f"push benchmark: {args.files * args.per_file} manifests in {len(files)} files, "
          "real app and database, fake GitHub in process")
    with throwaway_database("push") as dsn:
        ok = asyncio.run(bench(dsn, files))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
