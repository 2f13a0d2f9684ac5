"""A job record's state moves in one place: the move query of its kind, whose from-states come
from the machine, refuses anything else atomically and leaves the row as it was; no other query
in queries.sql sets the state of `claude_tasks`, `agent_versions` or `agent_runs`."""

from __future__ import annotations

import re

from structlog.testing import capture_logs

from controller.providers.lifecycle import RUNS, TASKS, VERSIONS, move
from controller.providers.tasks import open_task
from controller.store import Store
from controller.store.queries import queries
from reconcilers.claude.task_actions import OpenTask

JOB_TABLES = ("claude_tasks", "agent_versions", "agent_runs")
MOVES = {"claude_task_move", "agent_version_move", "agent_run_move"}
OPEN = OpenTask(repo="octo-org/infra", issue=11, comment_id=501, installation_id=42,
                on_pull=False, requested_by="dana-ops", command="add a README",
                state="AUTHORIZED", reason="dana-ops may write")


async def test_a_refused_task_move_leaves_the_task_as_it_was(store: Store) -> None:
    """A task opened once per comment (RECEIVED, then the intake's verdict, in its history);
    FAILED -> WORKING is refused by the UPDATE itself, logged, and changes nothing."""
    task = await open_task(store, OPEN)
    assert await open_task(store, OPEN.model_copy(update={"state": "REFUSED"})) == task
    assert (await move(store, TASKS, (task,), "FAILED", "limit reached")).moved
    before = await store.fetchrow("claude_task_get", task)
    assert before is not None and before["finished_at"] is not None
    assert [h["state"] for h in before["history"]] == ["RECEIVED", "AUTHORIZED", "FAILED"]
    with capture_logs() as logs:
        refused = await move(store, TASKS, (task,), "WORKING", "a late session")
    assert not refused and refused.was == "FAILED"
    assert await store.fetchrow("claude_task_get", task) == before
    [line] = [x for x in logs if x["event"] == "job_move_refused"]
    assert (line["kind"], line["task"], line["was"], line["to"], line["allowed_from"]) == \
        ("task", task, "FAILED", "WORKING", ["AUTHORIZED"])
    gone = await move(store, TASKS, (task + 1,), "CANCELLED", "no such task")
    assert not gone and gone.was is None


async def test_a_pull_request_is_recorded_with_its_move(store: Store) -> None:
    """PR_OPENED writes the pull request in the same statement, and only from WORKING."""
    task = await open_task(store, OPEN)
    assert not await move(store, TASKS, (task,), "PR_OPENED", "early", pull_number=3)
    assert await move(store, TASKS, (task,), "WORKING", "Claude is working")
    assert await move(store, TASKS, (task,), "PR_OPENED", "pushed", pull_number=12,
                      pull_url="https://github.com/o/r/pull/12", commit_sha="b" * 40)
    row = await store.fetchrow("claude_task_get", task)
    assert row is not None
    assert (row["state"], row["pull_number"], row["reason"]) == ("PR_OPENED", 12, "pushed")


async def test_a_finished_version_refuses_a_move_without_reaching_its_trigger(
        store: Store) -> None:
    """A READY version is not moved again: the UPDATE matches no row (the freezing trigger is
    not what stops it), and `required()` turns the refusal into a retryable error."""
    agent = "agent:local/echo"
    number = await store.fetchval("agent_version_create", agent, "h1", "code", None, {})
    assert not await move(store, VERSIONS, (agent, number), "READY", "not validated yet")
    assert await move(store, VERSIONS, (agent, number), "VALIDATING", "its test runs",
                      code="x = 1\n", report={})
    assert await move(store, VERSIONS, (agent, number), "READY", "passed", rounds=0,
                      duration_ms=12.5)
    before = await store.fetchrow("agent_version_get", agent, number)
    refused = await move(store, VERSIONS, (agent, number), "FAILED", "too late",
                         error="too late")
    assert not refused and refused.was == "READY"
    assert await store.fetchrow("agent_version_get", agent, number) == before
    assert before is not None and before["code"] == "x = 1\n" and before["error"] is None


async def test_a_run_moves_once_through_its_lifecycle(store: Store) -> None:
    """queued -> running -> queued once (an interruption) -> running -> finished; a second
    interruption's retry and any move of a finished run are refused, the row unchanged."""
    row = await store.fetchrow("agent_run_create", "agent:local/echo", "manual", "op", None,
                               None)
    assert row is not None
    run = row["id"]
    assert await move(store, RUNS, (run,), "running", "start", version=1)
    assert await move(store, RUNS, (run,), "queued", "interrupted", interrupted=True,
                      max_interruptions=1)
    assert await move(store, RUNS, (run,), "running", "start again", version=2)
    assert not await move(store, RUNS, (run,), "queued", "interrupted again",
                          interrupted=True, max_interruptions=1)
    assert await move(store, RUNS, (run,), "finished", "done", outcome="succeeded",
                      result={"output": 1}, tokens=5, usd=0.25, tool_calls=[])
    before = await store.fetchrow("agent_run_get", run)
    assert before is not None
    assert (before["state"], before["outcome"], before["version"], before["interruptions"],
            before["usd"]) == ("finished", "succeeded", 2, 1, 0.25)
    for target in ("queued", "running", "finished"):
        refused = await move(store, RUNS, (run,), target, "after the end",
                             outcome="cancelled")
        assert not refused and refused.was == "finished"
    assert await store.fetchrow("agent_run_get", run) == before


def _sets_state(sql: str, table: str) -> bool:
    """Whether a statement in `sql` writes the `state` column of `table`: an UPDATE whose SET
    names it, or an INSERT whose column list does."""
    for update in re.finditer(rf"\bUPDATE\s+{table}\b(.*?)(?:\bWHERE\b|\bRETURNING\b|;|$)",
                              sql, re.S | re.I):
        if re.search(r"(?:\bSET\b|,)\s*state\s*=", update.group(1), re.I):
            return True
    for insert in re.finditer(rf"\bINSERT\s+INTO\s+{table}\s*\(([^)]*)\)", sql, re.I):
        if re.search(r"\bstate\b", insert.group(1), re.I):
            return True
    return False


def test_no_query_but_the_moves_sets_a_job_state() -> None:
    """The one write of each job kind's state is its move query (controller/providers/
    lifecycle.py); any other query that sets it bypasses the state machine."""
    named = queries()
    assert MOVES <= set(named)
    offenders = sorted(f"{name} sets {table}.state" for name, sql in named.items()
                       if name not in MOVES for table in JOB_TABLES if _sets_state(sql, table))
    assert not offenders, (
        "only the move queries may set a job's state: route these through "
        f"controller.providers.lifecycle.move instead: {offenders}")
    for name in MOVES:  # the scan does see a write of the state (it would catch one)
        assert any(_sets_state(named[name], table) for table in JOB_TABLES), name
    assert _sets_state("UPDATE agent_runs SET usd = 1, state = 'x' WHERE id = 1", "agent_runs")
    assert _sets_state("INSERT INTO claude_tasks (repo, state) VALUES (1, 2)", "claude_tasks")
    assert not _sets_state("UPDATE agent_runs SET stop_requested = $2 WHERE state = 'x'",
                           "agent_runs")
