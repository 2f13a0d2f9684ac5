"""The operator's words over the API and the CLI (issue 19): approve a held action, replay a
delivery, revive a dead key, set and lift a source's killswitch. Each needs the write token,
says who asked, goes through controller/engine/operator.py, and is recorded with who asked and
through what (`GET /api/operator-actions`)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from controller.app import create_app
from controller.store import Store
from tests.helpers import WRITE, WRITE_TOKEN, env_for, make_settings, p38


async def _held_action(store: Store) -> None:
    await store.pool.execute(
        "INSERT INTO actions (idempotency_key, kind, key, status, params, description)"
        " VALUES ('railway.rollback:svc:dep-2', 'railway.rollback', 'service:local/web',"
        " 'held', '{}'::jsonb, 'roll back web')")


async def test_each_word_needs_the_token_and_is_recorded(aiohttp_client: Any, store: Store,
                                                        dsn: str) -> None:
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    await _held_action(store)
    approve = "/api/actions/railway.rollback:svc:dep-2/approve"
    assert (await client.post(approve, json={"by": "dana"})).status == 401  # no token
    bad = await client.post(approve, json={"who": "dana"}, headers=WRITE)
    assert bad.status == 400 and '{"by"' in (await bad.json())["reason"]
    done = await client.post(approve, json={"by": "dana"}, headers=WRITE)
    assert done.status == 202, await done.text()
    assert (await done.json())["keys"] == ["service:local/web"]
    granted = await store.pool.fetchrow(
        "SELECT approved_by FROM approvals WHERE idempotency_key = $1",
        "railway.rollback:svc:dep-2")
    assert granted["approved_by"] == "dana"
    queued = await store.fetchrow("queue_of_key", "service:local/web")
    assert queued is not None and queued["state"] == "queued"

    missing = await client.post("/api/actions/nope/approve", json={"by": "dana"}, headers=WRITE)
    assert missing.status == 404

    on = await client.put("/api/killswitches/octo-org/infra", json={"by": "sam"}, headers=WRITE)
    assert on.status == 202
    [switch] = await store.fetch("killswitches_all")
    assert switch["by_whom"] == "sam"
    off = await client.delete("/api/killswitches/octo-org/infra", json={"by": "sam"},
                              headers=WRITE)
    assert off.status == 202 and "it was set by sam" in (await off.json())["message"]
    assert await store.fetch("killswitches_all") == []

    await store.pool.execute("INSERT INTO work_queue (key, kind, state, last_error) VALUES "
                             "('issue:o/r#1', 'issue', 'dead', 'boom')")
    revived = await client.post(f"/api/queue/{quote('issue:o/r#1', safe='')}/revive",
                                json={"by": "sam"}, headers=WRITE)
    assert revived.status == 202, await revived.text()
    row = await store.fetchrow("queue_of_key", "issue:o/r#1")
    assert row is not None and row["state"] == "queued"

    record = await (await client.get("/api/operator-actions")).json()
    assert [(i["by_whom"], i["via"], i["verb"], i["target"], i["outcome"])
            for i in record["items"]] == [
        ("sam", "api", "revive", "issue:o/r#1", "done"),
        ("sam", "api", "killswitch_off", "octo-org/infra", "done"),
        ("sam", "api", "killswitch_on", "octo-org/infra", "done"),
        ("dana", "api", "approve", "nope", "not_found"),
        ("dana", "api", "approve", "railway.rollback:svc:dep-2", "done")]


async def test_the_cli_says_the_same_words_and_they_are_recorded(store: Store,
                                                                 dsn: str) -> None:
    env = env_for(dsn)
    on = await asyncio.to_thread(p38, "killswitch", "on", "local", "--by", "dana", env=env)
    assert on.returncode == 0, on.stderr
    assert "killswitch on for local (by dana)" in on.stdout
    gone = await asyncio.to_thread(p38, "revive", "issue:o/r#9", "--by", "dana", env=env)
    assert gone.returncode == 1 and "no key 'issue:o/r#9' in the queue" in gone.stderr
    rows = await store.fetch("operator_actions_list", None, None, 10)
    assert [(r["via"], r["verb"], r["outcome"]) for r in rows] == [
        ("cli", "revive", "not_found"), ("cli", "killswitch_on", "done")]
