"""The tasks provider: the controller's own records of `/claude` tasks (`claude_tasks`): the
runners that open a task, move it a step and record its pull request, and the reads the
command and task reconcilers use. Needs no credentials: always available.

Runners are idempotent by construction: a task is one row per comment (opening it twice
returns the first), and its state moves only through `controller.providers.lifecycle.move`,
from the states its machine allows (a finished task never changes; a refused move is returned
as `moved: false`). Claude's session (`claude.task`) belongs to the Anthropic provider, the push
(`github.push_change`) to the GitHub provider.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from controller.providers import Env, Provider
from controller.providers.lifecycle import TASKS, move
from controller.reconcile.plan import Action, ActionRunner, runner
from controller.store import Record, Store
from reconcilers.claude.task_actions import FinishTask, OpenTask, StepTask, TaskInfo

NAME = "tasks"


@contextlib.asynccontextmanager
async def bundle(env: Env) -> AsyncIterator[Provider]:
    yield Provider(NAME, runners=runners(env.store), reads=TaskStoreReads(env.store))


def runners(store: Store) -> dict[str, ActionRunner]:
    async def open_(p: OpenTask, _action: Action) -> Mapping[str, Any]:
        return {"task": await open_task(store, p), "state": p.state}

    async def step(p: StepTask, _action: Action) -> Mapping[str, Any]:
        moved = await move(store, TASKS, (p.task_id,), p.state, p.reason)
        return {"task": p.task_id, "state": p.state, "moved": moved.moved}

    async def opened(p: FinishTask, _action: Action) -> Mapping[str, Any]:
        moved = await move(store, TASKS, (p.task_id,), "PR_OPENED", p.reason,
                           pull_number=p.pull_number, pull_url=p.pull_url,
                           commit_sha=p.commit_sha)
        return {"task": p.task_id, "pull": p.pull_number, "moved": moved.moved}

    return {**runner(OpenTask, open_), **runner(StepTask, step),
            **runner(FinishTask, opened)}


async def open_task(store: Store, p: OpenTask) -> int:
    """The task of `p`'s comment (once per comment): RECEIVED, then `p.state` for `p.reason`,
    in one transaction. Returns its id (the first one's, when the comment has a task)."""
    async with store.transaction() as tx:
        row = await tx.fetchrow("claude_task_open", p.repo, p.issue, p.comment_id,
                                p.installation_id, p.on_pull, p.requested_by, p.command,
                                p.retry_of)
        assert row is not None
        if row["made"]:
            (await move(tx, TASKS, (row["id"],), p.state, p.reason)).required()
    return int(row["id"])


def task_info(row: Record) -> TaskInfo:
    tokens = (row["input_tokens"] + row["output_tokens"] + row["cache_read_tokens"]
              + row["cache_write_tokens"])
    return TaskInfo(
        id=row["id"], repo=row["repo"], issue=row["issue"], comment_id=row["comment_id"],
        installation_id=row["installation_id"], on_pull=row["on_pull"],
        requested_by=row["requested_by"], command=row["command"], state=row["state"],
        reason=row["reason"], model=row["model"], tokens=int(tokens), usd=float(row["usd"]),
        tool_calls=row["tool_calls"], base_branch=row["base_branch"],
        base_sha=row["base_sha"], branch=row["branch"], change=row["change"],
        title=row["title"], summary=row["summary"], pull_number=row["pull_number"],
        pull_url=row["pull_url"], commit_sha=row["commit_sha"], retry_of=row["retry_of"],
        history=tuple(row["history"] or ()),
        untrusted_input=tuple(row["untrusted_input"] or ()))


class TaskStoreReads:
    """`reconcilers.claude.task_actions.TaskReads` over the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def by_comment(self, repo: str, comment_id: int) -> TaskInfo | None:
        row = await self._store.fetchrow("claude_task_by_comment", repo, comment_id)
        return None if row is None else task_info(row)

    async def thread(self, repo: str, issue: int) -> list[TaskInfo]:
        return [task_info(r) for r in await self._store.fetch("claude_tasks_thread", repo,
                                                              issue, 20)]

    async def of_pull(self, repo: str, number: int) -> list[TaskInfo]:
        return [task_info(r) for r in await self._store.fetch("claude_tasks_of_pull", repo,
                                                              number)]
