"""GitOps end to end through the real app, the real database and a stateful fake GitHub:
signed push -> tree and blobs fetched -> objects applied -> check run; delete -> prune;
invalid -> failure check run and one issue however many bad pushes; pull request -> plan
check run; installation token reused; 429 with Retry-After waited out; a push that changes
nothing writes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.app import create_app
from controller.config import ManifestSettings, ProviderSettings
from controller.providers import github
from controller.store import Store
from controller.web.keys import QUEUE
from tests.fakes.github import FakeGitHub, make_key_pair
from tests.helpers import SAMPLES, WRITE, WRITE_TOKEN, github_payload, make_settings, wait_until
from tests.manifest_samples import MANIFESTS as SAMPLE_MANIFESTS

REPO = "octo-org/infra"
INSTALLATION = 51234567
PRIVATE, PUBLIC = make_key_pair()
OWN = SAMPLE_MANIFESTS  # a copy of the shipped manifests; never the working tree's
MANIFESTS = {f"manifests/{p.relative_to(OWN)}": p.read_text()
             for p in sorted(OWN.rglob("*.yaml"))}


def waiting_for_a_tick(row: Any) -> bool:
    """A schedule's key waits for its next instant, an armed run for its instant, a pull request
    for its next delivery (a requeue wait minutes away): none is ever off the queue."""
    if row["wait_kind"] == "armed" and row["lease_holder"] is None:
        return True
    if row["wait_kind"] != "requeue" or row["lease_holder"] is not None:
        return False
    if row["kind"] == "schedule":
        return True
    return bool(row["not_before"] - datetime.now(UTC) > timedelta(seconds=60))


@dataclass
class Sleeps:
    waited: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


@dataclass
class GitOps:
    client: Any
    fake: FakeGitHub
    store: Store
    sleeps: Sleeps
    files: dict[str, str]
    head: str = "0" * 40

    async def push(self, files: dict[str, str], *, touched: list[str] | None = None,
                   forced: bool = False) -> str:
        """Commit `files` as the whole tree of main and deliver the push webhook."""
        before, old = self.head, self.files
        self.head = self.fake.commit(REPO, files)
        self.files = dict(files)
        changed = touched if touched is not None else sorted(
            p for p in set(old) | set(files) if old.get(p) != files.get(p))
        payload = json.loads((SAMPLES / "push" / "default-branch" / "payload.json").read_text())
        commit = {**payload["head_commit"], "id": self.head,
                  "added": [p for p in changed if p not in old],
                  "removed": [p for p in changed if p not in files],
                  "modified": [p for p in changed if p in old and p in files]}
        payload.update(before=before, after=self.head, forced=forced, commits=[commit],
                       head_commit=commit)
        headers, body = github_payload("push", payload)
        response = await self.client.post("/webhooks/github", data=body, headers=headers)
        assert response.status == 202, await response.text()
        await self.settled()
        return self.head

    async def settled(self) -> None:
        async def idle() -> bool:
            queue = [r for r in await self.store.fetch("queue_list", None, None, 100)
                     if not waiting_for_a_tick(r)]
            pending = await self.store.fetch("deliveries_list", None, None, "pending", None, 1)
            return not queue and not pending

        await wait_until(idle, what="every key reconciled", store=self.store)

    async def push_until(self, files: dict[str, str],
                         condition: Any) -> str:
        """Commit and deliver a push whose reconcile does not settle (its actions are held);
        wait for `condition` instead."""
        before, old = self.head, self.files
        self.head = self.fake.commit(REPO, files)
        self.files = dict(files)
        changed = sorted(p for p in set(old) | set(files) if old.get(p) != files.get(p))
        payload = json.loads((SAMPLES / "push" / "default-branch" / "payload.json").read_text())
        commit = {**payload["head_commit"], "id": self.head, "added": [], "removed": [],
                  "modified": changed}
        payload.update(before=before, after=self.head, commits=[commit], head_commit=commit)
        headers, body = github_payload("push", payload)
        response = await self.client.post("/webhooks/github", data=body, headers=headers)
        assert response.status == 202, await response.text()
        await wait_until(condition, what="the push reconciled", store=self.store)
        return self.head

    async def status(self, wanted: str) -> dict[str, Any] | None:
        found = await self.store.fetch("statuses_of", [f"manifests:{REPO}"])
        return dict(found[0]) if found and found[0]["status"] == wanted else None

    async def applied(self) -> dict[str, str]:
        rows = await self.store.fetch("applied_objects_of", REPO)
        return {f"{r['kind']}/{r['name']}": r["revision"] for r in rows}

    def runs(self, name: str, head: str) -> list[dict[str, Any]]:
        return [r for r in self.fake.check_runs if r["name"] == name and r["head_sha"] == head]

    def calls(self, method: str, fragment: str) -> int:
        return sum(1 for q in self.fake.requests
                   if q.method == method and fragment in q.url.path)


@pytest.fixture
async def gitops(aiohttp_client, store: Store, dsn: str) -> AsyncIterator[GitOps]:  # type: ignore[no-untyped-def]
    fake = FakeGitHub(public_key=PUBLIC)
    fake.install(INSTALLATION, REPO)
    fake.commit(REPO, {"README.md": "infra\n"})
    settings = make_settings(dsn, workers=2)
    settings = settings.model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=PRIVATE),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=3600)})
    sleeps = Sleeps()
    app = create_app(settings, write_token=WRITE_TOKEN, providers=[
        github.bundle(transport=fake.transport(), sleep=sleeps)])
    client = await aiohttp_client(app, headers=WRITE)
    yield GitOps(client, fake, store, sleeps, {"README.md": "infra\n"})


async def test_push_applies_and_reports_then_delete_prunes(gitops: GitOps) -> None:
    """A signed push is applied from the tree at its head and reported in a check run; deleting a
    file prunes its object."""
    head = await gitops.push({"README.md": "infra\n", **MANIFESTS})
    applied = await gitops.applied()
    assert set(applied) == {"Agent/pr-digest", "Agent/tesla-watch", "Policy/default",
                            "Schedule/pr-digest-weekdays", "Schedule/tesla-watch-market-hours",
                            "Service/controller", "Agent/heartbeat",
                            "Schedule/heartbeat-every-minute"}
    assert set(applied.values()) == {head}
    [run] = gitops.runs("p38/reconcile", head)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert "+ Agent/tesla-watch" in run["output"]["summary"]
    posted = [json.loads(q.content) for q in gitops.fake.requests
              if q.method == "POST" and q.url.path.endswith("/check-runs")]
    assert posted[0]["status"] == "in_progress"  # in progress first, then completed (PATCH)
    assert gitops.calls("PATCH", f"/check-runs/{run['id']}") == 1
    assert gitops.calls("GET", "/git/blobs/") == 5  # five manifest files, README never read

    objects = await (await gitops.client.get("/api/objects", params={"source": REPO})).json()
    found = {o["key"]: o for o in objects["items"]}
    manifest = [o for o in found.values() if "manifest" in o]
    assert {o["manifest"]["applied"] for o in manifest} == {"Applied"}
    assert {o["manifest"]["applied_revision"] for o in manifest} == {head}
    assert len(manifest) == 8 and f"agent:{REPO}/tesla-watch" in found
    source = found[f"manifests:{REPO}"]
    assert (source["status"], source["reason"], source["revision"]) == ("Ready", "Applied",
                                                                          head)
    [revision] = (await (await gitops.client.get(f"/api/revisions?source={REPO}")).json()
                  )["items"]
    assert (revision["revision"], revision["status"], revision["objects"]) == (
        head, "applied", 8)
    assert "+ Agent/tesla-watch" in revision["changes"]

    # Delete the Service: pruned; no blob is fetched (the others are known by SHA).
    files = {k: v for k, v in gitops.files.items() if "services/" not in k}
    second = await gitops.push(files)
    assert "Service/controller" not in await gitops.applied()
    [run] = gitops.runs("p38/reconcile", second)
    assert "- Service/controller" in run["output"]["summary"]
    assert run["conclusion"] == "success"
    assert gitops.calls("GET", "/git/blobs/") == 5
    # One installation token served every call.
    assert gitops.fake.token_requests == [INSTALLATION]


async def test_invalid_pushes_fail_the_check_and_keep_one_issue(gitops: GitOps) -> None:
    """Invalid pushes fail the check run and update one issue, applying nothing; a fix closes the
    issue."""
    good = await gitops.push({"README.md": "infra\n", **MANIFESTS})
    before = await gitops.applied()
    broken = dict(gitops.files)
    broken["manifests/agents/tesla-watch.yaml"] = broken[
        "manifests/agents/tesla-watch.yaml"].replace("model: claude-sonnet-5-5",
                                                     "model: claude-sonnet-5-5\n  colour: red")
    bad = await gitops.push(broken)
    [run] = gitops.runs("p38/reconcile", bad)
    assert run["conclusion"] == "failure"
    assert "manifests/agents/tesla-watch.yaml:9:3: spec.colour: unknown field" \
        in run["output"]["summary"]
    assert await gitops.applied() == before  # the last good revision stays applied
    [issue] = gitops.fake.issues[REPO]
    assert issue["state"] == "open" and bad in issue["body"]
    revisions = (await (await gitops.client.get("/api/revisions")).json())["items"]
    assert [(r["revision"], r["status"]) for r in revisions] == [(bad, "invalid"),
                                                                (good, "applied")]

    worse = dict(broken)
    worse["manifests/policy.yaml"] = "apiVersion: p38/v1\nkind: Policy\n  bad: [indent\n"
    second = await gitops.push(worse)
    assert gitops.runs("p38/reconcile", second)[0]["conclusion"] == "failure"
    [issue] = gitops.fake.issues[REPO]  # updated, never duplicated
    assert second in issue["body"] and "manifests/policy.yaml:3" in issue["body"]

    fixed = await gitops.push({"README.md": "infra\n", **MANIFESTS})
    assert gitops.runs("p38/reconcile", fixed)[0]["conclusion"] == "success"
    [issue] = gitops.fake.issues[REPO]
    assert issue["state"] == "closed" and fixed in issue["comments_list"][0]
    assert good != fixed


async def test_push_that_changes_nothing_writes_nothing(gitops: GitOps) -> None:
    """A push that changes nothing in the manifests folder makes no GitHub write and records no
    action."""
    await gitops.push({"README.md": "infra\n", **MANIFESTS})
    writes, blobs = len(gitops.fake.write_calls), gitops.calls("GET", "/git/blobs/")
    actions = len(await gitops.store.fetch("actions_list", None, None, 1000, None))
    # README only: the handler does not even enqueue the source.
    await gitops.push({**gitops.files, "README.md": "infra, again\n"})
    # A forced push (the payload cannot say what changed) with the same manifests folder:
    # reconciled, two reads, nothing written.
    await gitops.push(dict(gitops.files), touched=[], forced=True)
    assert len(gitops.fake.write_calls) == writes
    assert gitops.calls("GET", "/git/blobs/") == blobs
    assert len(await gitops.store.fetch("actions_list", None, None, 1000, None)) == actions
    audit = await gitops.store.fetch("audit_list", f"manifests:{REPO}", None, None, 10)
    assert audit[0]["decision"] == "UpToDate"


async def test_rate_limit_is_waited_out(gitops: GitOps) -> None:
    """A 429 with a Retry-After of 7 s is slept out by the client and the push is applied."""
    gitops.fake.fail_next("GET", rf"/repos/{REPO}/branches/main", 429,
                          headers={"Retry-After": "7"})
    head = await gitops.push({"README.md": "infra\n", **MANIFESTS})
    assert 7.0 in gitops.sleeps.waited
    assert gitops.runs("p38/reconcile", head)[0]["conclusion"] == "success"


async def test_pull_request_gets_a_plan_check_run(gitops: GitOps) -> None:
    """A pull request that changes the manifests gets a p38/plan check run with the plan and applies
    nothing."""
    await gitops.push({"README.md": "infra\n", **MANIFESTS})
    main = gitops.fake.repos[REPO].branches["main"]
    changed = dict(gitops.files)
    changed["manifests/agents/tesla-watch.yaml"] = changed[
        "manifests/agents/tesla-watch.yaml"].replace("usdPerDay: 1", "usdPerDay: 2")
    head = gitops.fake.commit(REPO, changed, branch="claude/cheaper")
    gitops.fake.repos[REPO].branches["main"] = main
    gitops.fake.open_pull(REPO, 12, head="claude/cheaper")
    payload = json.loads((SAMPLES / "pull_request" / "opened" / "payload.json").read_text())
    payload["pull_request"]["head"]["sha"] = head
    payload["pull_request"]["base"]["ref"] = "main"
    headers, body = github_payload("pull_request", payload)
    assert (await gitops.client.post("/webhooks/github", data=body,
                                     headers=headers)).status == 202
    await gitops.settled()
    [run] = gitops.runs("p38/plan", head)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert "~ Agent/tesla-watch (spec.limits.usdPerDay)" in run["output"]["summary"]
    assert "1 to update" in run["output"]["title"]
    # Nothing was applied from the pull request.
    rows = await gitops.store.fetch("applied_objects_of", REPO)
    assert {r["revision"] for r in rows} == {main}


async def test_pull_request_without_manifest_changes_gets_no_plan(gitops: GitOps) -> None:
    """A pull request that changes no manifest gets no check run."""
    await gitops.push({"README.md": "infra\n", **MANIFESTS})
    main = gitops.fake.repos[REPO].branches["main"]
    head = gitops.fake.commit(REPO, {**gitops.files, "README.md": "docs\n"}, branch="docs")
    gitops.fake.repos[REPO].branches["main"] = main
    gitops.fake.open_pull(REPO, 12, head="docs")
    payload = json.loads((SAMPLES / "pull_request" / "opened" / "payload.json").read_text())
    payload["pull_request"]["head"]["sha"] = head
    headers, body = github_payload("pull_request", payload)
    await gitops.client.post("/webhooks/github", data=body, headers=headers)
    await gitops.settled()
    assert gitops.runs("p38/plan", head) == []


async def test_a_runner_that_died_after_its_call_does_not_call_twice(gitops: GitOps,
                                                                     dsn: str) -> None:
    """The check run is created on GitHub, then the process dies before the action's success
    is recorded (the database refuses that update once). The retry finds the run by its
    external_id instead of creating a second one."""
    import asyncpg

    admin = await asyncpg.connect(dsn)
    await admin.execute("""
        CREATE SEQUENCE deaths;
        CREATE FUNCTION die_after_the_call() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status = 'succeeded' AND NEW.kind = 'github.check_run'
               AND nextval('deaths') = 1 THEN
                RAISE EXCEPTION 'the process died between the call and its record';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER die_after_the_call BEFORE UPDATE ON actions
            FOR EACH ROW EXECUTE FUNCTION die_after_the_call();""")
    try:
        head = await gitops.push({"README.md": "infra\n", **MANIFESTS})
    finally:
        await admin.execute("DROP TRIGGER die_after_the_call ON actions;"
                            " DROP FUNCTION die_after_the_call(); DROP SEQUENCE deaths;")
        await admin.close()
    [run] = gitops.runs("p38/reconcile", head)  # one run, not two
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert run["external_id"] == f"github:{REPO}:{head}:check:p38/reconcile:start"
    created = [q for q in gitops.fake.requests
               if q.method == "POST" and q.url.path.endswith("/check-runs")]
    assert len(created) == 1
    looked_up = [q for q in gitops.fake.requests if q.url.path.endswith(f"{head}/check-runs")]
    assert looked_up and looked_up[0].url.params["filter"] == "all"
    audit = await gitops.store.fetch("audit_list", f"manifests:{REPO}", None, None, 10)
    assert [r["outcome"] for r in reversed(audit)][:2] == ["retry", "done"]


async def test_a_long_rate_limit_waits_without_a_worker_or_more_calls(gitops: GitOps) -> None:
    """GitHub says retry in 20 minutes: the source is Waiting (RateLimited) until then, no
    worker sleeps, and a push meanwhile neither ends the wait nor makes GitHub calls."""
    gitops.fake.fail_next("GET", rf"/repos/{REPO}/branches/main", 429,
                          headers={"Retry-After": "1200"})
    files = {"README.md": "infra\n", **MANIFESTS}

    async def waiting() -> dict[str, Any] | None:
        found = await gitops.store.fetch("statuses_of", [f"manifests:{REPO}"])
        return dict(found[0]) if found and found[0]["status"] == "Waiting" else None

    async def source_row() -> dict[str, Any]:
        [row] = [dict(r) for r in await gitops.store.fetch("queue_list", None, None, 10)
                 if r["key"] == f"manifests:{REPO}"]
        return row

    for n in range(2):
        gitops.head = gitops.fake.commit(REPO, files if n == 0 else {**files, "x.md": "x"})
        payload = json.loads((SAMPLES / "push" / "default-branch" / "payload.json"
                              ).read_text())
        commit = {**payload["head_commit"], "id": gitops.head,
                  "added": sorted(MANIFESTS) if n == 0 else [], "removed": [], "modified": []}
        payload.update(after=gitops.head, forced=n == 1, commits=[commit], head_commit=commit)
        headers, body = github_payload("push", payload)
        assert (await gitops.client.post("/webhooks/github", data=body,
                                         headers=headers)).status == 202
        if n == 0:
            status = await wait_until(waiting, what="the source waiting", store=gitops.store)
            assert status["reason"] == "RateLimited" and "1200s" in status["message"]
            row = await source_row()
            assert row["wait_kind"] == "backoff" and row["lease_holder"] is None
            calls = len(gitops.fake.requests)

    async def hint_stored() -> bool:
        return (await source_row())["pending_deliveries"] == 1

    await wait_until(hint_stored, what="the second push stored", store=gitops.store)
    assert (await source_row())["not_before"] == row["not_before"]  # the wait stands
    assert len(gitops.fake.requests) == calls  # and GitHub was not asked again
    assert 1200.0 not in gitops.sleeps.waited  # nobody slept it out


async def test_a_stale_pull_request_delivery_is_re_read_from_github(gitops: GitOps) -> None:
    """A merged pull request reported open by a late delivery: GitHub is asked, says merged,
    and the recorded state stays merged, the key done (not dead)."""
    gitops.fake.commit(REPO, {"README.md": "x\n"}, branch="claude/x")
    gitops.fake.open_pull(REPO, 12, head="claude/x")
    gitops.fake.merge_pull(REPO, 12)
    merged = json.loads((SAMPLES / "pull_request" / "merged" / "payload.json").read_text())
    late = json.loads((SAMPLES / "pull_request" / "opened" / "payload.json").read_text())
    for payload in (merged, late):
        headers, body = github_payload("pull_request", payload)
        assert (await gitops.client.post("/webhooks/github", data=body,
                                         headers=headers)).status == 202
        await gitops.settled()
    audit = await gitops.store.fetch("audit_list", f"pull:{REPO}#12", None, None, 10)
    assert [r["outcome"] for r in audit] == ["done", "done"]
    assert audit[0]["reason"].startswith("merged -> merged: re-read from the provider")
    assert [q.url.path for q in gitops.fake.requests
            if q.url.path.endswith("/pulls/12")] == [f"/repos/{REPO}/pulls/12"]
    state = await gitops.store.fetchrow("resource_get", "pull", f"{REPO}#12")
    assert state["state"] == "merged"


async def test_held_reporting_runs_once_approved(gitops: GitOps, dsn: str) -> None:
    """The repository's Policy requires approval for check runs: a push is applied but its
    check runs are held (the source Blocked, AwaitingApproval); `p38 approve` releases them
    and they run: a held plan is decided again, never recorded as done."""
    from tests.helpers import env_for, p38

    policy = MANIFESTS["manifests/policy.yaml"].replace(
        "approvalRequired: [railway.rollback]", "approvalRequired: [github.check_run]")
    files = {"README.md": "infra\n", **MANIFESTS, "manifests/policy.yaml": policy}
    await gitops.push(files)  # the Policy is applied by this push; it governs the next one
    changed = {**files, "manifests/agents/tesla-watch.yaml": MANIFESTS[
        "manifests/agents/tesla-watch.yaml"].replace("usdPerDay: 1", "usdPerDay: 4")}
    head = await gitops.push_until(changed, lambda: gitops.status("Blocked"))
    assert gitops.runs("p38/reconcile", head) == []
    assert (await gitops.applied())["Agent/tesla-watch"] == head  # applying went on
    status = await gitops.status("Blocked")
    assert status is not None and status["reason"] == "AwaitingApproval"
    held = [r for r in await gitops.store.fetch("actions_list", f"manifests:{REPO}", None,
                                                50, None) if r["status"] == "held"]
    assert {r["kind"] for r in held} == {"github.check_run"} and len(held) == 2
    for action in held:
        result = p38("approve", action["idempotency_key"], "--by", "dana", env=env_for(dsn))
        assert result.returncode == 0, result.stderr
    await wait_until(lambda: gitops.status("Ready"), what="released", store=gitops.store)
    [run] = gitops.runs("p38/reconcile", head)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert "~ Agent/tesla-watch" in run["output"]["summary"]  # what the commit changed
    assert run["output"]["title"] == "applied: 0 to create, 1 to update, 0 to delete"


async def test_a_delivery_that_failed_while_down_arrives_after_the_restart(
        aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """GitHub could not hand a push over while the controller was down (it does not retry):
    at start the controller lists the App's deliveries, asks GitHub to redeliver the failed
    one, and it arrives and is applied; it is asked once, and shown as recovered."""
    import asyncio

    fake = FakeGitHub(public_key=PUBLIC)
    fake.install(INSTALLATION, REPO)
    head = fake.commit(REPO, {"README.md": "infra\n", **MANIFESTS})
    payload = json.loads((SAMPLES / "push" / "default-branch" / "payload.json").read_text())
    commit = {**payload["head_commit"], "id": head, "added": sorted(MANIFESTS)}
    payload.update(after=head, commits=[commit], head_commit=commit)
    headers, body = github_payload("push", payload, guid="lost-while-down")
    five_minutes_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    fake.record_delivery("push", body, headers, status_code=0, delivered_at=five_minutes_ago)
    ok_headers, ok_body = github_payload("ping", {"zen": "Keep it logically awesome."})
    fake.record_delivery("ping", ok_body, ok_headers, status_code=200,
                         delivered_at=five_minutes_ago)  # handed over: nothing to do
    ready = asyncio.Event()
    holder: dict[str, Any] = {}

    async def send(again_headers: dict[str, str], again_body: bytes) -> int:
        await ready.wait()
        response = await holder["client"].post("/webhooks/github", data=again_body,
                                               headers=again_headers)
        return int(response.status)

    fake.redeliver_to = send
    settings = make_settings(dsn, workers=2).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=PRIVATE),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=3600)})
    client = await aiohttp_client(create_app(settings, providers=[github.bundle(
        transport=fake.transport())]))
    holder["client"] = client
    ready.set()

    async def applied() -> bool:
        row = await store.fetchrow("delivery_by_guid", "lost-while-down")
        return row is not None and row["status"] == "processed" \
            and len(await store.fetch("applied_objects_of", REPO)) == 8

    await wait_until(applied, what="the lost push redelivered and applied", store=store)
    assert fake.redelivered == ["lost-while-down"]
    delivery = await (await client.get("/api/deliveries/lost-while-down")).json()
    assert (delivery["status"], delivery["recovered"]) == ("processed", True)
    [status] = await store.fetch("statuses_of", ["webhooks:github"])
    assert (status["status"], status["reason"]) == ("Ready", "Redelivering")

    await client.app[QUEUE].hint(["webhooks:github"], event="test")  # look again: nothing
    await wait_until(lambda: _reason(store, "webhooks:github", "NothingLost"),
                     what="nothing lost any more", store=store)
    assert fake.redelivered == ["lost-while-down"]  # asked once
    listed = (await (await client.get("/api/deliveries")).json())["items"]
    assert [d["recovered"] for d in listed if d["guid"] == "lost-while-down"] == [True]
    from tests.helpers import env_for, p38

    status = p38("status", env=env_for(dsn))
    assert "recovered from GitHub: 1 failed delivery(ies) asked again, 1 arrived" \
        in status.stdout


async def _reason(store: Store, key: str, reason: str) -> bool:
    found = await store.fetch("statuses_of", [key])
    return bool(found) and found[0]["reason"] == reason
