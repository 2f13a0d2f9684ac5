"""The `p38` command: migrate, status, replay, approve against a real database."""

from __future__ import annotations

import os
import subprocess
import sys

from controller.app import create_app
from controller.store import Store
from controller.store.migrations import known_migrations
from tests.helpers import github_request, make_settings, wait_until


def p38(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def env_for(dsn: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": dsn, "P38_LOG_FORMAT": "json"}


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
    assert "re-enqueued: pull:octo-org/infra#12" in result.stdout
    await wait_until(lambda: _at_least(audits, 2), what="replayed reconcile")
    row = await store.fetchrow("delivery_by_guid", "guid-replay")
    assert row["status"] == "processed"
    missing = p38("replay", "no-such-delivery", env=env_for(dsn))
    assert missing.returncode == 1 and "no delivery" in missing.stderr


async def _at_least(count, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count() >= n


async def test_approve_records_an_approval(store: Store, dsn: str) -> None:
    """`p38 approve KEY --by NAME` stores the approval the policy gate looks for."""
    result = p38("approve", "rollback:svc:42", "--by", "dana", env=env_for(dsn))
    assert result.returncode == 0, result.stderr
    rows = await store.fetch("approvals_for", ["rollback:svc:42"])
    assert [r["idempotency_key"] for r in rows] == ["rollback:svc:42"]
