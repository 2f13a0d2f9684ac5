"""`p38 get`, `describe`, `runs`, `logs`, `tasks` against the database, with the real app
reconciling a manifests folder of the test's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.providers.tasks import open_task
from controller.store import Store
from reconcilers.claude.task_actions import OpenTask
from tests.cli.reads_trial import agent_ran, app_for, make_folder, run_p38
from tests.helpers import env_for, wait_until


async def test_get_describe_runs_and_logs_show_an_agent(aiohttp_client: Any, store: Store,
                                                        dsn: str, tmp_path: Path) -> None:
    """An agent applied from a folder and run once: `get` lists it with status, reason, age
    and message; `describe` shows its versions, runs, reconciles with their reasons, its
    actions and the deliveries that caused them; `runs` and `logs` show the run and its
    stderr; `-o json` gives the same as data."""
    env = env_for(dsn)
    await aiohttp_client(app_for(dsn, make_folder(tmp_path)))
    run_id = await agent_ran(store, env)

    got = await run_p38("get", "agents", env=env)
    assert got.returncode == 0, got.stderr
    header, *rows = got.stdout.splitlines()
    assert header.split() == ["KEY", "STATUS", "REASON", "AGE", "MESSAGE"]
    assert [r.split()[:3] for r in rows] == [["agent:local/echo", "Ready", "VersionReady"]]
    assert "v1 is READY" in rows[0]

    as_json = json.loads((await run_p38("get", "agent", "echo", "-o", "json", env=env)).stdout)
    [item] = as_json["items"]
    assert (item["key"], item["status"], item["manifest"]["applied"]) == \
        ("agent:local/echo", "Ready", "Applied")
    missing = await run_p38("get", "agent", "nobody", env=env)
    assert missing.returncode == 1 and "no agent named nobody" in missing.stderr
    unknown = await run_p38("get", "gizmos", env=env)
    assert unknown.returncode == 2 and "unknown kind 'gizmos'; the kinds are" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    typo = await run_p38("get", "agnets", env=env)
    assert typo.returncode == 2 and "unknown kind 'agnets'; did you mean agent?" in typo.stderr

    described = await run_p38("describe", "agent:local/echo", env=env)
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert "Status:      Ready (VersionReady)" in text
    assert "Applied:     Agent echo from local" in text
    versions = text.split("Versions (runs use: 1):")[1].split("Runs")[0]
    assert versions.split("\n")[2].split()[:3] == ["1", "READY", "code"]
    runs = text.split("Runs (p38 logs RUN shows one):")[1].split("Reconciles")[0]
    assert runs.split("\n")[2].split()[:5] == [str(run_id), "manual", "1", "finished",
                                               "succeeded"]
    reconciles = text.split("Reconciles (newest first):")[1].split("Actions")[0]
    assert "VersionReady" in reconciles and "v1 is READY" in reconciles
    actions = text.split("Actions (newest first):")[1].split("Deliveries")[0]
    assert "succeeded   agent.build" in actions
    deliveries = text.split("Deliveries (newest first):")[1]
    assert " p38 " in deliveries  # the controller's own hints that made it look
    # The reconciles name the deliveries they consumed, and those are listed.
    detail = json.loads((await run_p38("describe", "agent", "echo", "-o", "json",
                                       env=env)).stdout)
    consumed = {d for r in detail["reconciles"] for d in r["deliveries"]}
    assert consumed and consumed <= {d["id"] for d in detail["deliveries"]}
    assert [v["state"] for v in detail["versions"]] == ["READY"]
    assert detail["runs"][0]["id"] == run_id and detail["running_version"] == 1

    listed = await run_p38("runs", "echo", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:6] == [
        str(run_id), "local/echo", "1", "manual", "finished", "succeeded"]
    logs = await run_p38("logs", str(run_id), env=env)
    assert logs.returncode == 0, logs.stderr
    assert f"run {run_id} of agent:local/echo (version 1, manual by cli): finished " \
        "succeeded" in logs.stdout
    assert "echo says hello on stderr" in logs.stdout and "--- tool calls (0) ---" in logs.stdout
    logs_json = json.loads((await run_p38("logs", str(run_id), "-o", "json", env=env)).stdout)
    assert "echo says hello on stderr" in logs_json["stderr"] and logs_json["tool_calls"] == []
    gone = await run_p38("logs", "999999", env=env)
    assert gone.returncode == 1 and "no run 999999" in gone.stderr


async def test_describe_finds_by_name_and_says_what_is_missing(aiohttp_client: Any,
                                                               store: Store, dsn: str,
                                                               tmp_path: Path) -> None:
    """`describe NAME` finds the one object of that name; an unknown key is one line and
    exit 1, never a traceback."""
    env = env_for(dsn)
    await aiohttp_client(app_for(dsn, make_folder(tmp_path)))

    async def applied() -> bool:
        return bool(await store.fetch("statuses_of", ["agent:local/echo"]))

    await wait_until(applied, what="the echo agent's status", store=store)
    by_name = await run_p38("describe", "echo", env=env)
    assert by_name.returncode == 0 and "Key:         agent:local/echo" in by_name.stdout
    absent = await run_p38("describe", "agent:local/nobody", env=env)
    assert absent.returncode == 1
    assert absent.stderr.strip() == "no object with key 'agent:local/nobody' (`p38 get` " \
        "lists them)"


async def test_tasks_lists_and_shows_claude_tasks(store: Store, dsn: str) -> None:
    """`p38 tasks` lists /claude tasks newest first with where, state and who asked;
    `p38 tasks ID` shows one with its history; `--state` filters."""
    env = env_for(dsn)
    for comment, state, reason in ((501, "AUTHORIZED", "dana-ops may write"),
                                   (502, "REFUSED", "mallory cannot write")):
        await open_task(store, OpenTask(
            repo="octo-org/infra", issue=11, comment_id=comment, installation_id=51234567,
            on_pull=False, requested_by="dana-ops" if comment == 501 else "mallory",
            command=f"/claude task {comment}", state=state, reason=reason))
    listed = await run_p38("tasks", env=env)
    assert listed.returncode == 0, listed.stderr
    header, newest, oldest = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "WHERE", "STATE", "BY"]
    assert newest.split()[:4] == ["2", "octo-org/infra#11", "REFUSED", "mallory"]
    assert oldest.split()[:4] == ["1", "octo-org/infra#11", "AUTHORIZED", "dana-ops"]
    refused = json.loads((await run_p38("tasks", "--state", "refused", "-o", "json",
                                        env=env)).stdout)
    assert [t["id"] for t in refused["items"]] == [2]
    one = await run_p38("tasks", "1", env=env)
    assert one.returncode == 0, one.stderr
    assert "Command:     /claude task 501" in one.stdout
    assert "RECEIVED: comment 501 by @dana-ops" in one.stdout
    assert "AUTHORIZED: dana-ops may write" in one.stdout
    none = await run_p38("tasks", "77", env=env)
    assert none.returncode == 1 and "no task 77" in none.stderr
