"""The typed parameters of the `/claude` task actions, shared by the reconcilers that plan them
(`reconcilers/claude/command_intake.py`, `reconcilers/claude/tasks.py`) and the runners that carry
them out (`controller/providers/tasks.py`, `anthropic.py`, `github_changes.py`); the task record as
the reconcilers see it, the reads they use (`TASKS`), and the path rules of the Policy's `claude`
section.

No I/O: parameters, a protocol, small frozen records and pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from controller.reconcile.context import ReadsKey
from controller.reconcile.globs import matches
from controller.reconcile.plan import Params
from reconcilers.claude.lifecycle import TASK_MACHINE

TERMINAL = TASK_MACHINE.terminal  # PR_OPENED, FAILED, REFUSED, CANCELLED, DRY_RUN
BRANCH_PREFIX = "claude/"


def task_key(repo: str, issue: int, comment_id: int) -> str:
    """`task:owner/repo#12@3456`: the task asked for by comment 3456 on issue or pull 12."""
    return f"task:{repo}#{issue}@{comment_id}"


def task_ref(key: str) -> tuple[str, int, int] | None:
    """(repo, issue, comment id) of a task key; None when the key is not one."""
    match = re.fullmatch(r"task:([^/#@\s]+/[^/#@\s]+)#(\d+)@(\d+)", key)
    return None if match is None else (match[1], int(match[2]), int(match[3]))


def marker(task_id: int) -> str:
    """Names the task in its commits and pull request, so a retried push finds them."""
    return f"p38-task: {task_id}"


def branch_name(issue: int, command: str) -> str:
    """`claude/12-add-a-readme-section`: the new branch of a task on issue 12."""
    slug = re.sub(r"[^a-z0-9]+", "-", command.lower()).strip("-")[:40].rstrip("-")
    return f"{BRANCH_PREFIX}{issue}-{slug or 'change'}"


class OpenTask(Params):
    """Record a work command's task (once per comment): AUTHORIZED, REFUSED, or DRY_RUN when
    nothing could act on it. Internal: the record is the controller's own."""

    action_kind: ClassVar[str] = "task.open"
    repo: str
    issue: int
    comment_id: int
    installation_id: int | None
    on_pull: bool
    requested_by: str
    command: str
    state: Literal["AUTHORIZED", "REFUSED", "DRY_RUN"]
    reason: str
    retry_of: int | None = None


class StepTask(Params):
    """Move a task to `state` for `reason`, from the states its machine allows that move from
    (`TASK_MACHINE`: a finished task never changes). Internal."""

    action_kind: ClassVar[str] = "task.step"
    task_id: int
    state: str
    reason: str


class TaskLimits(BaseModel):
    """The Policy's `claude` section when the work was planned."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    max_files: int
    max_bytes: int
    max_tokens: int
    max_usd: float
    max_tool_calls: int


class WorkTask(Params):
    """Claude works on the repository through the task's tools until it finishes, a limit is
    reached or the task is cancelled; the change is recorded on the task, not written."""

    action_kind: ClassVar[str] = "claude.task"
    needs: ClassVar[str | None] = "anthropic"
    job: ClassVar[str | None] = "session"  # up to half an hour: its own workers
    task_id: int
    key: str
    limits: TaskLimits


class RepoRead(Params):
    """One read of the repository for a task's tool (context, read, search), at a commit."""

    action_kind: ClassVar[str] = "github.repo_read"
    needs: ClassVar[str | None] = "github"
    repo: str
    installation_id: int
    op: Literal["context", "read", "search"]
    issue: int = 0
    on_pull: bool = False
    ref: str = ""
    path: str = ""
    query: str = ""


class PushChange(Params):
    """Write the change with the Git Data API (blobs, one tree, one commit whose parent is
    `base_sha`) to `branch` (always `claude/...`), then find or open its pull request (or,
    with `pull`, add the commit to that pull request's branch)."""

    action_kind: ClassVar[str] = "github.push_change"
    needs: ClassVar[str | None] = "github"
    task_id: int
    repo: str
    installation_id: int
    branch: str
    base_branch: str
    base_sha: str
    files: dict[str, dict[str, Any]]  # path -> {"content": text or None, "mode": "100644"}
    message: str
    title: str
    body: str
    pull: int | None = None
    untrusted: list[str] = []  # authors without write whose text the task read: labelled


class FinishTask(Params):
    """Record the pushed change's pull request: the task is PR_OPENED. Internal."""

    action_kind: ClassVar[str] = "task.opened"
    task_id: int
    pull_number: int
    pull_url: str
    commit_sha: str
    reason: str


@dataclass(frozen=True)
class TaskInfo:
    id: int
    repo: str
    issue: int
    comment_id: int
    installation_id: int | None
    on_pull: bool
    requested_by: str
    command: str
    state: str
    reason: str
    model: str | None = None
    tokens: int = 0
    usd: float = 0.0
    tool_calls: int = 0
    base_branch: str | None = None
    base_sha: str | None = None
    branch: str | None = None
    change: Mapping[str, Mapping[str, Any]] | None = None
    title: str | None = None
    summary: str | None = None
    pull_number: int | None = None
    pull_url: str | None = None
    commit_sha: str | None = None
    retry_of: int | None = None
    history: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    untrusted_input: tuple[str, ...] = ()  # authors without write whose text it read

    @property
    def key(self) -> str:
        return task_key(self.repo, self.issue, self.comment_id)

    @property
    def pull_done(self) -> str:
        """What the task did to its pull request, as a reply says it: a follow-up given on a
        claude/ pull request adds a commit to it ("updated"), any other task "opened" one."""
        return "updated" if self.on_pull and self.pull_number == self.issue else "opened"


class TaskReads(Protocol):
    """What the command and task reconcilers read about tasks (provider `tasks`)."""

    async def by_comment(self, repo: str, comment_id: int) -> TaskInfo | None:
        ...

    async def thread(self, repo: str, issue: int) -> list[TaskInfo]:
        """The tasks of one issue or pull request, newest first (at most 20)."""
        ...

    async def of_pull(self, repo: str, number: int) -> list[TaskInfo]:
        """The tasks that opened pull request `number` or worked on it, newest first."""
        ...


TASKS: ReadsKey[TaskReads] = ReadsKey("tasks")


# --- path rules ---------------------------------------------------------------------------

def path_refused(path: str, allow: Sequence[str], deny: Sequence[str]) -> str | None:
    """Why a task may not touch `path` under the Policy's `claude.allow`/`claude.deny`; None
    when it may. Paths are compared as written (no `..`, no leading slash, no `.git` folder,
    no control characters)."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or not path.isprintable() or any(
            p in ("", ".", "..", ".git") for p in parts):
        return f"{path!r} is not a plain path inside the repository"
    for pattern in deny:
        if matches(path, pattern):
            return f"{path} is denied by Policy claude.deny ({pattern})"
    if not any(matches(path, pattern) for pattern in allow):
        return f"{path} is outside Policy claude.allow ({', '.join(allow) or 'nothing'})"
    return None
