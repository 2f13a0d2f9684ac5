"""The local source: a folder reconciled with no GitHub at all, re-read when its files change;
every object it applies gets its own key and status, listed by /api/objects."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from controller.app import create_app
from controller.config import ManifestSettings
from controller.store import Store
from controller.web.keys import QUEUE
from tests.helpers import make_settings, wait_until
from tests.manifest_samples import MANIFESTS as SAMPLE_MANIFESTS

OWN = SAMPLE_MANIFESTS  # a copy of the shipped manifests; never the working tree's
OWN_AGENTS = OWN.parent / "agents"
OBJECT_KEYS = {"agent:local/pr-digest", "agent:local/tesla-watch", "policy:local/default",
               "schedule:local/pr-digest-weekdays", "schedule:local/tesla-watch-market-hours",
               "service:local/controller", "agent:local/heartbeat",
               "schedule:local/heartbeat-every-minute"}


async def objects(client: Any, **query: str) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/objects", params=query)
    assert response.status == 200, await response.text()
    return {item["key"]: item for item in (await response.json())["items"]}


async def test_local_folder_is_applied_and_followed(aiohttp_client, store: Store, dsn: str,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path) -> None:
    """The folder is applied, each object reconciled with its status, a removed file pruned, a
    broken one reported."""
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    shutil.copytree(OWN_AGENTS, tmp_path / "agents")
    settings = make_settings(dsn, workers=1).model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=folder, P38_MANIFESTS_POLL_SECONDS=0.05)})
    client = await aiohttp_client(create_app(settings))

    async def applied(keys: set[str]) -> dict[str, dict[str, Any]] | None:
        found = await objects(client)
        manifest = {k: v for k, v in found.items() if "manifest" in v}
        done = set(manifest) == keys and all(
            v["manifest"]["applied"] == "Applied" for v in manifest.values())
        return found if done and found["manifests:local"]["status"] == "Ready" else None

    found = await wait_until(lambda: applied(OBJECT_KEYS), what="six objects applied",
                             store=store)
    source = found["manifests:local"]
    assert (source["reason"], source["objects"], source["problems"]) == ("Applied", 8, [])
    async def agent_blocked() -> dict[str, Any] | None:
        agent = (await objects(client)).get("agent:local/tesla-watch") or {}
        return agent if agent.get("status") == "Blocked" else None

    # No ANTHROPIC_API_KEY: the generation is recorded as dry-run and the agent says why.
    agent = await wait_until(agent_blocked, what="the agent blocked", store=store)
    assert (agent["reason"], agent["source"]) == ("NoCredentials", "local")
    assert "ANTHROPIC_API_KEY" in agent["message"] or "anthropic" in agent["message"]

    async def heartbeat_ready() -> dict[str, Any] | None:
        agent = (await objects(client)).get("agent:local/heartbeat") or {}
        return agent if agent.get("status") == "Ready" else None

    # The hand-written agent needs no credentials: validated (its test run in the harness).
    heartbeat = await wait_until(heartbeat_ready, what="the heartbeat agent ready", store=store)
    assert heartbeat["reason"] == "VersionReady" and "v1 is READY (code" in heartbeat["message"]

    async def schedule_ready() -> dict[str, Any] | None:
        schedule = (await objects(client)).get("schedule:local/heartbeat-every-minute") or {}
        return schedule if schedule.get("status") == "Ready" else None

    # Its schedule is told at once that the agent can run now.
    schedule = await wait_until(schedule_ready, what="the heartbeat schedule", store=store)
    assert schedule["reason"] in ("Scheduled", "Fired")
    assert "next tick" in schedule["message"] and "(* * * * * in UTC)" in schedule["message"]
    assert agent["manifest"]["kind"] == "Agent" and agent["revision"]
    policy = found["policy:local/default"]
    assert (policy["status"], policy["reason"]) == ("Ready", "Active")
    assert "approval required for railway.rollback" in policy["message"]
    blocked = await objects(client, status="Blocked")
    assert set(blocked) == OBJECT_KEYS - {"policy:local/default", "agent:local/heartbeat",
                                          "schedule:local/heartbeat-every-minute"} | {
        "webhooks:github"}
    assert blocked["schedule:local/tesla-watch-market-hours"]["reason"] == "AgentNotReady"
    assert blocked["webhooks:github"]["reason"] == "NoCredentials"  # waits for them
    assert blocked["webhooks:github"]["message"].startswith("no GitHub App credentials")
    assert "deliveries GitHub could not hand over are not recovered" in \
        blocked["webhooks:github"]["message"]

    # Remove the Service file: the watcher notices, the object is pruned and forgotten.
    (folder / "services" / "controller.yaml").unlink()
    await wait_until(lambda: applied(OBJECT_KEYS - {"service:local/controller"}),
                     what="the service pruned", store=store)
    # Break a file: nothing is pruned or changed, the source is Stalled and says why.
    agent_file = folder / "agents" / "tesla-watch.yaml"
    agent_file.write_text(agent_file.read_text().replace("catchUp: latest",
                                                         "catchUp: latest\n  crontab: x"))

    async def invalid() -> dict[str, Any] | None:
        source = (await objects(client))["manifests:local"]
        return source if source["status"] == "Stalled" else None

    good = (await objects(client))["manifests:local"]["revision"]
    with capture_logs() as logs:
        source = await wait_until(invalid, what="the source invalid", store=store)
    assert source["reason"] == "Invalid"
    # The message names the problem and the good revision that stays applied; the console
    # says it too.
    assert f"{good[:7]} stays applied" in source["message"]
    assert "spec.crontab: unknown field" in source["message"]
    [stalled] = [e for e in logs if e["event"] == "stalled"]
    assert stalled["reason"] == "Invalid" and "spec.crontab" in stalled["message"]
    assert any("tesla-watch.yaml" in p and "spec.crontab: unknown field" in p
               for p in source["problems"])
    assert await applied(OBJECT_KEYS - {"service:local/controller"}) is None  # still Stalled
    assert len(await store.fetch("applied_objects_of", "local")) == 7


async def test_dry_run_records_what_would_be_applied(aiohttp_client, store: Store, dsn: str,  # type: ignore[no-untyped-def]
                                                     tmp_path: Path) -> None:
    """P38_DRY_RUN: every action recorded as dry-run with what it would do; nothing applied;
    the objects are desired and say they are not applied, the source that it is dry-run."""
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    settings = make_settings(dsn, workers=1, dry_run=True).model_copy(update={
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=folder)})
    client = await aiohttp_client(create_app(settings))

    async def pending() -> dict[str, dict[str, Any]] | None:
        found = await objects(client)
        return found if OBJECT_KEYS <= set(found) else None

    found = await wait_until(pending, what="objects listed", store=store)
    assert {found[k]["manifest"]["applied"] for k in OBJECT_KEYS} == {"Pending"}
    assert {(found[k]["status"], found[k]["reason"]) for k in OBJECT_KEYS} == {
        ("Blocked", "NotApplied")}
    assert (found["manifests:local"]["status"], found["manifests:local"]["reason"]) == (
        "Blocked", "DryRun")
    actions = await (await client.get("/api/actions")).json()
    assert {a["status"] for a in actions["items"]} == {"dry_run"}
    assert "+ Agent/tesla-watch" in {a["description"] for a in actions["items"]}
    assert await store.fetch("applied_objects_of", "local") == []


async def test_the_apply_enqueues_each_object_in_its_own_transaction(
        aiohttp_client, store: Store, dsn: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Through the real app: the source's reconcile that applies the folder writes its audit
    row and the hint of the six object keys in one transaction (one transaction id)."""
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    settings = make_settings(dsn, workers=1).model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=folder)})
    client = await aiohttp_client(create_app(settings))

    async def all_listed() -> dict[str, dict[str, Any]] | None:
        found = await objects(client)
        return found if OBJECT_KEYS <= set(found) else None

    await wait_until(all_listed, what="the objects reconciled", store=store)
    rows = await store.pool.fetch(  # payload rows are never updated: their xmin is the insert's
        "SELECT a.decision, a.xmin::text = p.xmin::text AS same_tx,"
        "       array_agg(k.key ORDER BY k.key) AS keys"
        " FROM audit a JOIN deliveries d ON d.guid = a.reconcile_id::text AND d.source = 'p38'"
        " JOIN delivery_payloads p ON p.delivery_id = d.id"
        " JOIN delivery_keys k ON k.delivery_id = d.id"
        " WHERE a.key = 'manifests:local' GROUP BY 1, 2")
    assert [(r["decision"], r["same_tx"], set(r["keys"])) for r in rows] == [
        ("Applied", True, OBJECT_KEYS)]


async def test_objects_without_a_status_are_reconciled_at_the_next_look(
        aiohttp_client, store: Store, dsn: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A database from the release before object keys (applied objects, no statuses): the
    source's next reconcile, with nothing changed, enqueues every object that has none."""
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    settings = make_settings(dsn, workers=1).model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=folder)})
    client = await aiohttp_client(create_app(settings))

    async def listed(keys: set[str]) -> bool:
        return keys <= set(await objects(client))

    await wait_until(lambda: listed(OBJECT_KEYS), what="objects reconciled", store=store)
    await store.pool.execute("DELETE FROM object_status WHERE kind <> 'manifests'")
    assert set(await objects(client)) == {"manifests:local"}
    await client.app[QUEUE].hint(["manifests:local"], event="test")
    await wait_until(lambda: listed(OBJECT_KEYS), what="statuses back", store=store)
    [last] = await store.fetch("audit_list", "manifests:local", None, None, 1)
    assert last["decision"] == "UpToDate"  # nothing changed; the objects were enqueued
