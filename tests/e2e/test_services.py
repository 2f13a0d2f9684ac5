"""Services end to end (issue 17): the real app, the real database, the stateful fake GitHub
and the stateful fake Railway. A push to the Service's branch is deployed; a failed deployment
(its webhook only a hint, read again through Railway's API) is rolled back once to the last
deployment Railway can roll back to and its commit is marked bad, so that neither a resync nor
a restart deploys it again; a newer commit is deployed; `requireApproval` holds a deploy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from controller.app import create_app
from controller.config import ManifestSettings, ProviderSettings
from controller.engine.queue import WorkQueue
from controller.providers import github, railway
from controller.store import Store
from tests.e2e.test_gitops import INSTALLATION, PRIVATE, PUBLIC, REPO, GitOps, Sleeps
from tests.fakes.github import FakeGitHub
from tests.fakes.railway import FakeRailway
from tests.helpers import (
    N8N_SECRET,
    RAILWAY_SECRET,
    WRITE,
    WRITE_TOKEN,
    env_for,
    make_settings,
    p38,
    wait_until,
)

SERVICE, ENVIRONMENT = "svc-web", "env-prod"
KEY = f"service:{REPO}/web"


def manifests(extra: str = "", readme: str = "infra\n") -> dict[str, str]:
    return {"README.md": readme, "manifests/web.yaml": (
        "apiVersion: p38/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
        f"  railway:\n    project: proj\n    environment: {ENVIRONMENT}\n"
        f"    service: {SERVICE}\n  branch: main\n{extra}")}


@dataclass
class Deploys:
    gitops: GitOps
    railway: FakeRailway
    serve: Any

    async def hook(self, deployment: dict[str, Any], kind: str, at: int = 0) -> None:
        """Railway's webhook for a deployment (a hint: the controller reads the API); `at`
        makes a resent one a delivery of its own (Railway's body, not a redelivery)."""
        body = {"type": f"Deployment.{kind}", "details": {
                    "id": deployment["id"], "status": deployment["status"],
                    "commitHash": deployment["meta"]["commitHash"], "branch": "main"},
                "resource": {"project": {"id": "proj"}, "environment": {"id": ENVIRONMENT},
                             "service": {"id": SERVICE}, "deployment": {"id": deployment["id"]}},
                "severity": "INFO", "timestamp": f"2026-12-07T10:00:{at:02d}.000Z"}
        response = await self.gitops.client.post(
            "/webhooks/railway", data=json.dumps(body),
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {RAILWAY_SECRET}"})
        assert response.status == 202, await response.text()

    async def push(self, files: dict[str, str]) -> str:
        """Commit `files` to main and deliver the push (the Service's key keeps polling while
        a deployment is in flight, so nothing waits for the queue to be idle)."""
        async def delivered() -> bool:
            return True

        return await self.gitops.push_until(files, delivered)

    def mutations(self, kind: str) -> list[dict[str, Any]]:
        return [args for k, args in self.railway.mutations if k == kind]

    async def deployed(self, commit: str, count: int = 1) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            made = [d for d in self.railway.deployments if d["meta"]["commitHash"] == commit]
            return made[0] if len(made) >= count else None

        return await wait_until(found, what=f"a deployment of {commit[:7]}",
                                store=self.gitops.store)

    async def status(self, reason: str) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            rows = await self.gitops.store.fetch("statuses_of", [KEY])
            return dict(rows[0]) if rows and rows[0]["reason"] == reason else None

        return await wait_until(found, what=f"{KEY} {reason}", store=self.gitops.store)


async def start(aiohttp_client: Any, store: Store, dsn: str, *, resync: float = 3600.0
                ) -> Deploys:
    fake = FakeGitHub(public_key=PUBLIC)
    fake.install(INSTALLATION, REPO)
    fake.commit(REPO, {"README.md": "infra\n"})
    rail = FakeRailway()
    settings = make_settings(dsn, workers=2, held_recheck=0.2).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=PRIVATE,
                                      RAILWAY_TOKEN=rail.token),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=resync)})

    async def serve() -> Any:
        app = create_app(settings, write_token=WRITE_TOKEN, providers=[
            github.bundle(transport=fake.transport(), sleep=Sleeps()),
            railway.bundle(transport=rail.transport())])
        return await aiohttp_client(app, headers=WRITE)

    gitops = GitOps(await serve(), fake, store, Sleeps(), {"README.md": "infra\n"})
    return Deploys(gitops, rail, serve)


@pytest.fixture
async def deploys(aiohttp_client: Any, store: Store, dsn: str) -> AsyncIterator[Deploys]:
    yield await start(aiohttp_client, store, dsn)


async def test_a_push_is_deployed_and_a_failure_rolled_back_once_and_not_deployed_again(
        deploys: Deploys, aiohttp_client: Any) -> None:
    first = await deploys.push(manifests())
    good = await deploys.deployed(first)
    deploys.railway.advance(good["id"], "SUCCESS")
    await deploys.hook(good, "deployed")
    await deploys.status("Deployed")

    second = await deploys.push(manifests(readme="infra v2\n"))
    bad = await deploys.deployed(second)
    deploys.railway.advance(bad["id"], "SUCCESS")  # the good one is superseded: REMOVED
    deploys.railway.advance(bad["id"], "FAILED")
    for n in range(5):  # the same failure seen five times is one rollback
        await deploys.hook(bad, "failed", at=n)
    back = await deploys.deployed(first, count=2)  # a new deployment of the first commit
    assert deploys.mutations("rollback") == [{"id": good["id"]}]
    deploys.railway.advance(back["id"], "SUCCESS")
    await deploys.hook(back, "deployed")
    blocked = await deploys.status("BadCommit")
    assert f"{second[:7]} failed before and is not deployed again" in blocked["message"]
    rows = await deploys.gitops.store.fetch("service_bad_list", KEY)
    assert [r["commit_sha"] for r in rows] == [second]
    shown = await (await deploys.gitops.client.get("/api/services/web")).json()
    assert shown["status"]["reason"] == "BadCommit" and shown["railway"]["service"] == SERVICE
    assert [b["commit"] for b in shown["bad_commits"]] == [second]
    assert {d["id"]: d["state"] for d in shown["deployments"]}[bad["id"]] == "failed"
    listed = await (await deploys.gitops.client.get("/api/services")).json()
    assert [s["key"] for s in listed["items"]] == [KEY]
    [incident] = deploys.gitops.fake.issues[REPO]  # one, for five sightings of the failure
    assert incident["state"] == "open" and f"`{second}` is failed" in incident["body"]
    assert (shown["incident"]["deployment"], shown["incident"]["commit"],
            shown["incident"]["rolled_back_to"]["deployment"], shown["incident"]["issue"]) == (
        bad["id"], second, good["id"], incident["number"])
    assert [i["deployment"] for i in shown["incidents"]] == [bad["id"]]
    timeline = {d["id"]: [t["to"] for t in d["timeline"]] for d in shown["deployments"]}
    assert timeline[bad["id"]][-1] == "failed", timeline
    assert f"rolled back to deployment {good['id']}" in incident["body"]

    # A restart (a new controller on the same database) looks again: nothing is deployed.
    await deploys.gitops.client.close()
    deploys.gitops.client = await deploys.serve()
    await deploys.status("BadCommit")
    assert [args["commitSha"] for args in deploys.mutations("deploy")] == [first, second]
    assert len(deploys.mutations("rollback")) == 1

    # Cleared by hand (the failure was Railway's, say): the commit is deployed again.
    listed = p38("services", env=env_for(deploys.gitops.store.dsn))
    assert f"bad commit {second}" in listed.stdout, listed.stdout
    cleared = p38("services", "clear-bad", "web", second, "--by", "dana",
                  env=env_for(deploys.gitops.store.dsn))
    assert cleared.returncode == 0, cleared.stderr
    again = await deploys.deployed(second, count=2)
    assert again["status"] == "QUEUED" and len(deploys.mutations("deploy")) == 3
    deploys.railway.advance(again["id"], "FAILED")
    await deploys.hook(again, "failed", at=7)
    back = await deploys.deployed(first, count=3)  # rolled back again, once
    deploys.railway.advance(back["id"], "SUCCESS")
    await deploys.hook(back, "deployed", at=8)
    await deploys.status("BadCommit")

    # A newer commit is deployed.
    third = await deploys.push(manifests(readme="infra v3\n"))
    fixed = await deploys.deployed(third)
    assert [args["commitSha"] for args in deploys.mutations("deploy")] == [
        first, second, second, third]
    deploys.railway.advance(fixed["id"], "SUCCESS")
    await deploys.hook(fixed, "deployed", at=9)
    await deploys.status("Deployed")

    async def closed() -> bool:
        return bool(incident["state"] == "closed")

    await wait_until(closed, what="the incident closed", store=deploys.gitops.store)
    assert f"runs {third[:7]} again" in incident["comments_list"][-1]
    shown = await (await deploys.gitops.client.get("/api/services/web")).json()
    assert shown["incident"] is None
    assert {i["closed_by"] for i in shown["incidents"]} == {fixed["id"]}  # both failures


async def test_a_webhook_the_api_contradicts_changes_nothing(deploys: Deploys) -> None:
    first = await deploys.push(manifests())
    good = await deploys.deployed(first)
    deploys.railway.advance(good["id"], "SUCCESS")
    await deploys.hook({**good, "status": "FAILED"}, "failed")  # Railway's API says SUCCESS
    await deploys.status("Deployed")
    assert deploys.mutations("rollback") == []
    assert await deploys.gitops.store.fetch("service_bad_list", KEY) == []


async def test_require_approval_holds_the_deploy_until_approved(deploys: Deploys) -> None:
    await deploys.gitops.push_until(manifests("  requireApproval: true\n"),
                                    lambda: _held(deploys))
    assert deploys.mutations("deploy") == []
    head = deploys.gitops.head
    await deploys.gitops.store.execute("approval_grant", f"railway.deploy:{KEY}@{head}",
                                       "dana")
    await deploys.deployed(head)
    assert len(deploys.mutations("deploy")) == 1


async def test_a_deploy_whose_answer_was_lost_is_made_once(deploys: Deploys) -> None:
    deploys.railway.lose_next()
    first = await deploys.push(manifests())
    await deploys.deployed(first)
    await deploys.status("Deploying")
    assert len(deploys.mutations("deploy")) == 1


async def _held(deploys: Deploys) -> bool:
    rows = await deploys.gitops.store.fetch("statuses_of", [KEY])
    return bool(rows and rows[0]["reason"] == "AwaitingApproval")


async def test_a_failure_is_told_to_n8n_once_with_the_rollback(
        deploys: Deploys, aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure and the rollback in one body, once, to each Policy notification target,
    with its bound token and an idempotency key, however often the failure is seen."""
    from aiohttp import web

    received: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.json()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/webhook/p38-ops", hook)
    server = await aiohttp_server(app)
    url = str(server.make_url("/webhook/p38-ops"))
    monkeypatch.setenv("P38_NOTIFY_OPS_URL", url)
    monkeypatch.setenv("P38_NOTIFY_OPS_TOKEN", "n8n-ops-token-0123456789")
    policy = ("apiVersion: p38/v1\nkind: Policy\nmetadata:\n  name: default\nspec:\n"
              f"  notifications:\n    ops:\n      url: {url}\n")
    first = await deploys.push({**manifests(), "manifests/policy.yaml": policy})
    good = await deploys.deployed(first)
    deploys.railway.advance(good["id"], "SUCCESS")
    second = await deploys.push({**manifests(readme="v2\n"), "manifests/policy.yaml": policy})
    bad = await deploys.deployed(second)
    deploys.railway.advance(bad["id"], "SUCCESS")
    deploys.railway.advance(bad["id"], "FAILED")
    for n in range(3):
        await deploys.hook(bad, "failed", at=n)
    await deploys.deployed(first, count=2)

    async def told() -> bool:
        return bool(received)

    await wait_until(told, what="the notification", store=deploys.gitops.store)
    await deploys.status("Deploying")  # the rolled-back deployment is in flight
    [(headers, body)] = received
    assert headers["Authorization"] == "Bearer n8n-ops-token-0123456789"
    assert headers["Idempotency-Key"] == body["id"]
    assert (body["event"], body["severity"], body["service"], body["commit"]) == (
        "rolled_back", "critical", "web", second)
    assert body["rolled_back_to"] == {"deployment": good["id"], "commit": first}
    assert body["deployment"] == {"id": bad["id"], "status": "FAILED"} and body["time"]


async def test_a_deployment_that_turns_up_unhealthy_is_rolled_back(
        deploys: Deploys, aiohttp_server: Any) -> None:
    """After SUCCESS, `healthCheck.url` must answer 2xx within `healthCheck.timeout`: a
    deployment that answers 503 is a failure like FAILED (rolled back, its commit marked)."""
    from aiohttp import web

    answers = {"status": 200}
    probes: list[str] = []

    async def health(request: web.Request) -> web.Response:
        probes.append(request.path)
        return web.Response(status=answers["status"])

    app = web.Application()
    app.router.add_get("/health", health)
    server = await aiohttp_server(app)
    check = f"  healthCheck:\n    url: {server.make_url('/health')}\n    timeout: 1s\n"
    first = await deploys.push(manifests(check))
    good = await deploys.deployed(first)
    deploys.railway.advance(good["id"], "SUCCESS")
    await deploys.hook(good, "deployed")
    await deploys.status("Deployed")
    assert probes == ["/health"]

    answers["status"] = 503
    second = await deploys.push(manifests(check, readme="v2\n"))
    bad = await deploys.deployed(second)
    deploys.railway.advance(bad["id"], "SUCCESS")
    await deploys.hook(bad, "deployed", at=1)
    await deploys.deployed(first, count=2)  # rolled back
    assert deploys.mutations("rollback") == [{"id": good["id"]}]
    rows = await deploys.gitops.store.fetch("service_bad_list", KEY)
    assert [r["commit_sha"] for r in rows] == [second]
    assert "unhealthy (503)" in rows[0]["reason"]


async def test_n8n_asks_for_a_redeploy_and_gets_one(deploys: Deploys) -> None:
    """`service.redeploy` from n8n redeploys the running deployment once, however often the
    request arrives before it is done."""
    first = await deploys.push(manifests())
    good = await deploys.deployed(first)
    deploys.railway.advance(good["id"], "SUCCESS")
    await deploys.hook(good, "deployed")
    await deploys.status("Deployed")
    for n in range(2):
        response = await deploys.gitops.client.post(
            "/webhooks/n8n", json={"event": "service.redeploy", "service": f"{REPO}/web",
                                   "workflow": "ops", "execution": f"e{n}"},
            headers={"Authorization": f"Bearer {N8N_SECRET}"})
        assert response.status == 202, await response.text()
    again = await deploys.deployed(first, count=2)
    assert deploys.mutations("redeploy") == [{"id": good["id"]}]
    deploys.railway.advance(again["id"], "SUCCESS")
    await deploys.hook(again, "deployed", at=3)
    await deploys.status("Deployed")
    assert deploys.mutations("redeploy") == [{"id": good["id"]}]
    bad = await deploys.gitops.client.post(
        "/webhooks/n8n", json={"event": "service.redeploy", "service": "web"},
        headers={"Authorization": f"Bearer {N8N_SECRET}"})
    assert bad.status == 400
    assert "service.redeploy needs 'service': '<source>/<name>'" in (await bad.json())["reason"]


async def test_an_alert_from_n8n_is_one_incident_issue_per_key(deploys: Deploys) -> None:
    await deploys.push(manifests())
    await deploys.deployed(deploys.gitops.head)

    async def alert(key: str, message: str, n: int) -> Any:
        return await deploys.gitops.client.post(
            "/webhooks/n8n", json={"event": "alert", "repo": REPO, "key": key,
                                   "title": "Disk almost full", "message": message,
                                   "severity": "warning", "workflow": "ops",
                                   "execution": f"a{n}"},
            headers={"Authorization": f"Bearer {N8N_SECRET}"})

    assert (await alert("disk-full", "91% used", 1)).status == 202

    async def issues(count: int) -> list[dict[str, Any]] | None:
        found = deploys.gitops.fake.issues.get(REPO, [])
        return found if len(found) >= count else None

    [issue] = await wait_until(lambda: issues(1), what="the alert's issue")
    assert issue["title"] == "project38 alert: Disk almost full"
    assert "91% used" in issue["body"] and "<!-- p38:alert:disk-full -->" in issue["body"]
    assert (await alert("disk-full", "97% used", 2)).status == 202

    async def updated() -> bool:
        return "97% used" in issue["body"]

    await wait_until(updated, what="the issue updated", store=deploys.gitops.store)
    assert len(deploys.gitops.fake.issues[REPO]) == 1
    for odd in ({"repo": "octo-org/../x", "key": "k"}, {"repo": REPO, "key": "a b#c"}):
        refused = await deploys.gitops.client.post(
            "/webhooks/n8n", json={"event": "alert", **odd},
            headers={"Authorization": f"Bearer {N8N_SECRET}"})
        assert refused.status == 400, odd


async def test_a_local_folders_service_records_its_incident_and_shows_it(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Any) -> None:
    """No repository to open an issue on: the failure is recorded, shown by the API and `p38
    services`, and closed once Railway runs another commit healthy (not by the rollback)."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "web.yaml").write_text(manifests()["manifests/web.yaml"])
    rail = FakeRailway()
    old = rail.add(SERVICE, ENVIRONMENT, "a" * 40, "SUCCESS")
    settings = make_settings(dsn, workers=2).model_copy(update={
        "providers": ProviderSettings(RAILWAY_TOKEN=rail.token),
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=folder, P38_RESYNC_SECONDS=3600)})
    client = await aiohttp_client(create_app(settings, write_token=WRITE_TOKEN, providers=[
        railway.bundle(transport=rail.transport())]), headers=WRITE)
    key = "service:local/web"

    async def reason(wanted: str) -> bool:
        rows = await store.fetch("statuses_of", [key])
        return bool(rows) and rows[0]["reason"] == wanted

    await wait_until(lambda: reason("NotFollowing"), what="the Service applied", store=store)
    broken = rail.add(SERVICE, ENVIRONMENT, "b" * 40, "FAILED")  # Railway's own deploy
    await WorkQueue(store, settings.queue).enqueue_now([key])
    await wait_until(lambda: reason("RollingBack"), what="the rollback", store=store)
    assert [args for kind, args in rail.mutations if kind == "rollback"] == [{"id": old["id"]}]
    back = rail.deployments[0]
    rail.advance(back["id"], "SUCCESS")
    await WorkQueue(store, settings.queue).enqueue_now([key])
    await wait_until(lambda: reason("NotFollowing"), what="running the rollback", store=store)
    shown = await (await client.get("/api/services/web")).json()
    assert (shown["incident"]["deployment"], shown["incident"]["commit"],
            shown["incident"]["rolled_back_to"], shown["incident"]["issue"]) == (
        broken["id"], "b" * 40, {"deployment": old["id"], "commit": "a" * 40}, None)
    listed = p38("services", env=env_for(store.dsn))
    assert f"open incident: deployment {broken['id']} of {'b' * 40} FAILED" in listed.stdout
    [as_json] = json.loads(p38("services", "-o", "json", env=env_for(store.dsn)).stdout)
    assert as_json["incident"] == shown["incident"]  # the API's own shape

    fix = rail.advance(rail.add(SERVICE, ENVIRONMENT, "c" * 40, "QUEUED")["id"], "SUCCESS")
    await WorkQueue(store, settings.queue).enqueue_now([key])

    async def closed() -> dict[str, Any] | None:
        item = await (await client.get("/api/services/web")).json()
        return item if item["incident"] is None else None

    item = await wait_until(closed, what="the incident closed", store=store)
    assert [(i["deployment"], i["closed_by"]) for i in item["incidents"]] == [
        (broken["id"], fix["id"])]
