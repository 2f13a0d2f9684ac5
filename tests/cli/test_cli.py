"""The `p38` command: migrate, status, replay, approve against a real database."""

from __future__ import annotations

import os
import subprocess
import sys

from controller.app import create_app
from controller.store import Store
from controller.store.migrations import known_migrations
from tests.helpers import env_for, github_request, make_settings, p38, wait_until
from tests.manifest_samples import sample_manifests


def test_migrate_then_status(fresh_database) -> None:  # type: ignore[no-untyped-def]
    """`p38 migrate` applies, then has nothing to apply; `p38 status` reports an empty system."""
    env = env_for(fresh_database("cli"))
    before = p38("status", env=env)
    assert before.returncode == 1 and "migrations pending" in before.stdout
    first = p38("migrate", env=env)
    assert first.returncode == 0, first.stderr
    versions = [m.version for m in known_migrations()]
    assert f"applied {versions}" in first.stdout
    assert "nothing to apply" in p38("migrate", env=env).stdout
    status = p38("status", env=env)
    assert status.returncode == 0
    assert "deliveries: none" in status.stdout and "queue: empty" in status.stdout


async def test_replay_processes_a_delivery_again(aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """`p38 replay GUID` re-enqueues a processed delivery's keys; the worker reconciles again."""
    client = await aiohttp_client(create_app(make_settings(dsn, workers=1)))
    headers, body = github_request("pull_request", "opened", guid="guid-replay")
    assert (await client.post("/webhooks/github", data=body, headers=headers)).status == 202

    async def audits() -> int:
        return len(await store.fetch("audit_list", "pull:octo-org/infra#12", "done", None, 10))

    await wait_until(audits, what="first reconcile")
    result = p38("replay", "guid-replay", env=env_for(dsn))
    assert result.returncode == 0, result.stderr
    assert "re-enqueued: " in result.stdout and "pull:octo-org/infra#12" in result.stdout
    await wait_until(lambda: _at_least(audits, 2), what="replayed reconcile")
    row = await store.fetchrow("delivery_by_guid", "guid-replay")
    assert row["status"] == "processed"
    # `p38 status` shows every object's status, and each one that is not Ready with why.
    status = p38("status", env=env_for(dsn))
    assert status.returncode == 0, status.stderr
    # (Blocked only for want of GitHub App credentials: waiting for them, not failed.)
    assert "objects: Ready 1; 2 waiting for credentials" in status.stdout
    assert "killswitch: off" in status.stdout and "deliveries: processed 1" in status.stdout
    assert "waiting for credentials plan:octo-org/infra#12: Blocked: octo-org/infra#12: no " \
        "GitHub App credentials" in status.stdout
    missing = p38("replay", "no-such-delivery", env=env_for(dsn))
    assert missing.returncode == 1 and "no delivery" in missing.stderr


async def _at_least(count, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count() >= n


async def test_approve_releases_a_held_action_and_refuses_an_unknown_one(store: Store,
                                                                         dsn: str) -> None:
    """`p38 approve KEY --by NAME` stores the approval the gate looks for and ends the wait of
    the held action's key at once; an idempotency key no action has is refused."""
    unknown = p38("approve", "rollback:svc:42", "--by", "dana", env=env_for(dsn))
    assert unknown.returncode == 1 and "no action with idempotency key" in unknown.stderr
    assert await store.fetch("approvals_for", ["rollback:svc:42"]) == []

    await store.fetchrow("action_record", "rollback:svc:42", "railway.rollback", {}, "held",
                         "held: waiting for approval", "service:o/r/api", None, "roll back",
                         None)
    await store.pool.execute(  # the key looks again in a minute, as a held key does
        "INSERT INTO work_queue (key, kind, not_before, wait_kind)"
        " VALUES ('service:o/r/api', 'service', now() + interval '60 seconds', 'requeue')")
    result = p38("approve", "rollback:svc:42", "--by", "dana", env=env_for(dsn))
    assert result.returncode == 0, result.stderr
    rows = await store.fetch("approvals_for", ["rollback:svc:42"])
    assert [r["idempotency_key"] for r in rows] == ["rollback:svc:42"]
    assert await store.pool.fetchval(
        "SELECT not_before <= now() FROM work_queue WHERE key = 'service:o/r/api'")


def test_validate_schema_and_plan_exit_codes(fresh_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """validate: 0/1; schema: JSON Schema; plan: 0 nothing to do, 2 changes, 1 invalid."""
    import json

    folder = sample_manifests(tmp_path / "repository")
    env = env_for(fresh_database("plan"))
    assert p38("migrate", env=env).returncode == 0
    ok = p38("validate", str(folder), env=env)
    assert ok.returncode == 0 and ok.stderr.startswith("ok: 8 object(s) in 5 file(s)")
    cut = subprocess.run(f"{sys.executable} -m controller.cli schema | head -2", shell=True,
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert cut.stdout.count("\n") == 2 and cut.stderr == ""  # a closed pipe ends quietly

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.yaml").write_text("apiVersion: p38/v1\nkind: Agent\nmetadata: {name: A}\n")
    result = p38("validate", str(bad), env=env)
    assert result.returncode == 1
    assert f"{bad}/a.yaml:3:18: metadata.name: must be" in result.stdout
    assert f"{bad}/a.yaml:1:1: spec: required field is missing" in result.stdout
    assert p38("plan", str(bad), env=env).returncode == 1

    schema = json.loads(p38("schema", env=env).stdout)
    assert set(schema["discriminator"]["mapping"]) == {"Agent", "Schedule", "Service", "Policy"}

    plan = p38("plan", str(folder), env=env)
    assert plan.returncode == 2, plan.stderr
    assert "+ Agent/tesla-watch" in plan.stdout
    assert "Plan (local): 8 to create, 0 to update, 0 to delete." in plan.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    assert p38("plan", str(empty), env=env).returncode == 1  # nothing to plan is a problem


def test_manifest_reference_is_current() -> None:
    """docs/manifests.md is what `p38 schema --markdown` renders from the models."""
    from pathlib import Path

    from controller.manifests.reference import render

    root = Path(__file__).resolve().parents[2]
    assert (root / "docs" / "manifests.md").read_text() == render(), \
        "run: p38 schema --markdown > docs/manifests.md"


def test_a_bad_environment_variable_is_named_not_a_traceback() -> None:
    """A bad environment variable is named with its rule, exit 2, no traceback, no value."""
    days = p38("status", env={**os.environ, "P38_RETENTION_DAYS": "3"})
    assert days.returncode == 2
    assert "configuration error: P38_RETENTION_DAYS: " in days.stderr
    assert "at least 7 days" in days.stderr and "Traceback" not in days.stderr
    port = p38("status", env={**os.environ, "P38_PORT": "eighty"})
    assert port.returncode == 2 and "configuration error: P38_PORT: " in port.stderr
    assert "eighty" not in port.stderr  # values are never echoed: they may be secrets


async def test_run_queues_a_manual_run_and_waits_for_its_end(
        aiohttp_client, store: Store, dsn: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`p38 run AGENT --input JSON --wait` queues the run, the controller carries it out, the
    command prints the outcome and result and exits 0; an unknown agent or bad JSON is refused."""
    import asyncio

    from tests.agents.test_agents_e2e import COUNTER, app_on, write_agent

    write_agent(tmp_path, "counter", COUNTER)
    await app_on(aiohttp_client, dsn, tmp_path)

    async def ready() -> bool:
        return await store.fetchrow("agent_version_current", "agent:local/counter") is not None

    await wait_until(ready, what="counter READY", store=store)
    env = env_for(dsn)
    done = await asyncio.to_thread(p38, "run", "counter", "--input", '{"n": 7}', "--wait",
                                   env=env)
    assert done.returncode == 0, done.stderr
    assert "queued" in done.stdout and "succeeded" in done.stdout
    assert '"input": {\n      "n": 7\n    }' in done.stdout
    [run] = await store.fetch("agent_runs_of", "agent:local/counter", None, 5)
    assert (run["trigger"], run["outcome"]) == ("manual", "succeeded")
    unknown = p38("run", "nobody", env=env)
    assert unknown.returncode == 1 and "no applied agent named nobody" in unknown.stderr
    bad = p38("run", "counter", "--input", "{nope", env=env)
    assert bad.returncode == 2 and "--input is not JSON" in bad.stderr
