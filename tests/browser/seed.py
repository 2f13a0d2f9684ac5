"""A running controller with the data an operator's day leaves, for the browser tests: the
real app on a real loopback socket and the real store, this repository's sample manifests
applied by real workers (the hand-written heartbeat agent READY with two runs, the others
blocked for credentials), signed webhooks of every source posted through the app, and a few
`probe` objects, one in each status the others do not reach here: a deploy the Policy holds
for approval, one waiting on something outside, one retried after errors, one that gave up.
Writes only through the product (webhooks, the API, the queue's hints); no assertions about
the page here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from controller.app import create_app, default_providers
from controller.config import ManifestSettings
from controller.providers import Env, Provider
from controller.reconcile.errors import TerminalError
from controller.reconcile.ids import key_name
from controller.reconcile.plan import Action, Plan
from controller.reconcile.policy import Policy
from controller.store import Store
from controller.web.keys import QUEUE
from reconcilers import default_registry
from tests.helpers import (
    N8N_SECRET,
    RAILWAY_SECRET,
    WRITE,
    WRITE_TOKEN,
    github_request,
    make_settings,
    sample,
    wait_until,
)
from tests.manifest_samples import sample_manifests
from tests.probes import Probe, ProbeSnapshot

DEPLOY = Action("probe.deploy", {"service": "web", "commit": "4f1c2b7"},
                "probe.deploy:local/deploy-web:4f1c2b7", needs="probe",
                description="deploy web at 4f1c2b7")
HELD_KEY = "probe:local/deploy-web"
PROBES = {HELD_KEY: "Blocked", "probe:local/waits-for-railway": "Waiting",
          "probe:local/flaky-upstream": "Reconciling", "probe:local/gave-up": "Stalled"}
GITHUB = (("push", "default-branch"), ("pull_request", "opened"),
          ("issue_comment", "claude-command"), ("check_suite", "completed"),
          ("star", "created"), ("ping", "app-hook"))
WEBHOOKS = len(GITHUB) + 2  # and one from Railway, one from n8n
AGENT = "agent:local/heartbeat"
RUNS = 2


@dataclass
class Scripted(Probe):
    """The probe, by name: `deploy-web` plans a deploy (held by the Policy until approved),
    `waits-*` waits on something outside, `flaky-*` fails and is retried, `gave-up` cannot
    proceed."""

    async def observe(self, ctx: Any, key: str) -> ProbeSnapshot:
        name = key_name(key)
        if name.startswith("local/flaky"):
            raise ConnectionError("the upstream answered 503 Service Unavailable")
        if name == "local/gave-up":
            raise TerminalError("service 'ghost' is not in this Railway project")
        return await super().observe(ctx, key)

    def decide(self, snapshot: ProbeSnapshot, policy: Policy) -> Plan:
        plan = super().decide(snapshot, policy)
        if snapshot.key == HELD_KEY:
            return replace(plan, actions=(DEPLOY,), decision="Deploying",
                           reason="web is behind main: deploy 4f1c2b7")
        if key_name(snapshot.key).startswith("local/waits"):
            return replace(plan, requeue_after=3600.0, decision="DeployInProgress",
                           reason="Railway is still building deployment dep-7")
        return plan


def deployer(deployed: list[Mapping[str, Any]]) -> Any:
    """The probe's provider: runs the deploy once it is approved, and remembers it."""
    async def deploy(action: Action) -> Mapping[str, Any]:
        deployed.append(dict(action.params))
        return {"deployment": "dep-8"}

    @contextlib.asynccontextmanager
    async def bundle(_env: Env) -> AsyncIterator[Provider]:
        yield Provider("probe", runners={"probe.deploy": deploy})

    return bundle


@dataclass
class Site:
    """The running controller: its address, its store, and what the probe deployed."""

    url: str
    store: Store
    client: Any  # an aiohttp test client on the same server (the API, webhooks)
    deployed: list[Mapping[str, Any]]

    def at(self, path: str) -> str:
        return self.url.rstrip("/") + path


async def start(aiohttp_server: Any, aiohttp_client: Any, store: Store, dsn: str,
                root: Path) -> Site:
    folder = sample_manifests(root)
    policy = folder / "policy.yaml"
    shipped = policy.read_text()
    assert "approvalRequired: [railway.rollback]" in shipped, "the sample Policy changed"
    policy.write_text(shipped.replace("approvalRequired: [railway.rollback]",
                                      "approvalRequired: [railway.rollback, probe.deploy]"))
    settings = make_settings(dsn, workers=2, max_attempts=1000).model_copy(update={
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=folder,
                                      P38_MANIFESTS_POLL_SECONDS=0.05)})
    deployed: list[Mapping[str, Any]] = []
    app = create_app(settings, registry={**default_registry(), "probe": Scripted()},
                     providers=[*default_providers(), deployer(deployed)],
                     write_token=WRITE_TOKEN)
    server = await aiohttp_server(app)
    client = await aiohttp_client(server)
    site = Site(str(server.make_url("/")), store, client, deployed)
    await _webhooks(client)
    await app[QUEUE].hint(list(PROBES), event="seed")
    await _settled(site)
    return site


async def _webhooks(client: Any) -> None:
    for event, case in GITHUB:
        headers, body = github_request(event, case)
        posted = await client.post("/webhooks/github", data=body, headers=headers)
        assert posted.status in (200, 202), await posted.text()  # (a ping: 200 pong)
    for path, (_, body), headers in (
            (f"/webhooks/railway?token={RAILWAY_SECRET}", sample("railway", "deployment-failed"),
             {"Content-Type": "application/json"}),
            ("/webhooks/n8n", sample("n8n", "execution-finished"),
             {"Content-Type": "application/json", "X-P38-Token": N8N_SECRET})):
        posted = await client.post(path, data=body, headers=headers)
        assert posted.status == 202, await posted.text()


async def _settled(site: Site) -> None:
    store = site.store

    async def statuses() -> bool:
        found = {r["key"]: r["status"] for r in await store.fetch(
            "statuses_of", [*PROBES, AGENT])}
        return found == {**PROBES, AGENT: "Ready"}

    await wait_until(statuses, what="every probe in its status, the agent READY",
                     store=store)
    for n in range(RUNS):
        started = await site.client.post("/api/agents/heartbeat/runs", headers=WRITE,
                                         json={"input": {"note": f"seeded run {n + 1}"}})
        assert started.status == 202, await started.text()

    async def runs_done() -> bool:
        rows = await store.fetch("agent_runs_of", AGENT, None, 10)
        done = [r for r in rows if r["state"] == "finished" and r["outcome"] == "succeeded"]
        return len(done) >= RUNS

    await wait_until(runs_done, what="the heartbeat's runs finished", store=store)
    await wait_until(lambda: store.fetch("actions_held", 5), what="the deploy held",
                     store=store)
