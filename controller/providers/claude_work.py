"""Claude's session on a `/claude` task (`claude.task`): the Messages API with tool use, the
tools executed by the controller, and the Policy's limits enforced here, not by the model.

Tools: `list_files`, `read_file`, `search` read the repository at the commit the task started
from (each read is a `github.repo_read` action through the desk: gated, audited, and found
again by its key when a session is retried); `write_file` and `delete_file` only record the
change on the task (nothing is written to GitHub here: the push is the task's next action);
`finish` ends the session with a pull request title and summary. The issue, its thread and the
repository's files are untrusted text: they are given inside `<untrusted>` tags, and whatever
they say, a write outside `claude.allow`, inside `claude.deny`, past `maxFiles`/`maxBytes`,
past `maxToolCalls`, or a call past `maxTokens`/`maxUsd` ends the session with the limit's
name, and nothing is written. A cancelled task stops before its next model call. After every
turn the session is saved on the task (`claude_tasks.session`: messages, tool results, the
change so far), so a session stopped by a deploy resumes at its last turn on whichever
controller takes its job up, and no turn is asked, or paid for, twice.

The session writes no state: the task reconciler moves the task to WORKING before it hands
the session over (a task still AUTHORIZED is not worked on), and reads how the session ended
from its result (`{"ended": "FAILED", "reason": ...}`) to move the task on
(reconcilers/claude/lifecycle.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from controller.clients.claude import Claude, ClaudeRefused, Usage, cached_up_to_here
from controller.providers.claude_brief import (
    SYSTEM,
    TOOLS,
    brief,
    escape_untrusted,
    printable,
    untrusted_authors,
)
from controller.reconcile.desk import Desk
from controller.reconcile.errors import ProviderError
from controller.store import Store
from reconcilers.claude.lifecycle import ACTIVE
from reconcilers.claude.task_actions import (
    RepoRead,
    WorkTask,
    branch_name,
    path_refused,
)

MAX_REPLY_TOKENS = 8192
MIN_REPLY_TOKENS = 256
MAX_TOOL_ANSWER = 60_000  # characters of one tool result given back to Claude

class LimitReached(Exception):
    """A Policy limit ends the task (its message names the limit)."""


class ToolError(Exception):
    """A tool call Claude can recover from: answered as an error, the session goes on."""


class ReadFailed(Exception):
    """The repository could not be read (GitHub refused, or retries ran out): the session
    ends with why (the task FAILED), and `/claude retry` starts it again."""


class Session:
    """One task's session: its figures (written after every call), the context it started
    from and the change so far."""

    def __init__(self, store: Store, claude: Claude, desk: Desk, p: WorkTask,
                 row: Mapping[str, Any]) -> None:
        self.store, self.claude, self.desk, self.p, self.row = store, claude, desk, p, row
        self.limits = p.limits
        self.usage = Usage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
                           row["cache_write_tokens"])
        self.usd = float(row["usd"])
        self.tool_calls = int(row["tool_calls"])
        self.change: dict[str, dict[str, Any]] = {}
        self.partial: set[str] = set()  # files read only in part: never rewritten whole
        self.context: dict[str, Any] = {}
        self.entries: dict[str, Mapping[str, Any]] = {}

    async def save_figures(self) -> None:
        u = self.usage
        await self.store.execute("claude_task_figures", self.p.task_id, self.limits.model,
                                 u.input, u.output, u.cache_read, u.cache_write, self.usd,
                                 self.tool_calls)

    async def fail(self, reason: str) -> Mapping[str, Any]:
        """The session's end without a change: its figures saved, the task's next state and
        why returned (the task reconciler moves it there)."""
        await self.save_figures()
        return {"task": self.p.task_id, "ended": "FAILED", "reason": printable(reason)[:2000]}

    async def read(self, op: str, **fields: Any) -> Mapping[str, Any]:
        row = self.row
        params = RepoRead(repo=row["repo"], installation_id=row["installation_id"], op=op,
                          issue=row["issue"], on_pull=row["on_pull"], **fields)
        digest = hashlib.sha256(repr(sorted(params.model_dump().items())).encode()).hexdigest()
        action = params.action(f"task-read:{self.p.task_id}:{op}:{digest[:20]}",
                               description=f"task {self.p.task_id}: {op} "
                                           f"{fields.get('path') or fields.get('query') or ''}")
        done = await self.desk.perform(action, key=self.p.key, source=row["repo"])
        if done.status == "succeeded" and done.result is not None:
            return done.result
        if done.status == "already_succeeded":  # read by an earlier try of this session
            found = await self.store.fetchval("action_result", action.idempotency_key)
            if found is not None:
                return dict(found)
        if done.status == "held":  # the killswitch came on: the session is tried again
            raise ProviderError(f"a repository read for task {self.p.task_id} was held: "
                                f"{done.reason}")
        raise ReadFailed(f"reading {op} {fields.get('path') or ''} failed: {done.reason}")

    # --- tools --------------------------------------------------------------------------

    async def tool(self, name: str, given: Mapping[str, Any]) -> tuple[str, bool]:
        """(answer, is_error) for one tool call; raises LimitReached."""
        raw = given.get("path", "")
        if not isinstance(raw, str):
            return "path must be a string", True
        path = raw.strip()
        if name in ("read_file", "search") and path:
            refused = path_refused(path, ("**",), ())
            if refused is not None:
                return refused, True
        if name == "list_files":
            return self.list_files(path.strip("/")), False
        if name == "read_file":
            if path in self.change:
                content = self.change[path]["content"]
                return (content, False) if content is not None else (
                    f"{path} is deleted in this task", True)
            found = await self.read("read", ref=self.context["base_sha"], path=path)
            if "error" in found:
                return str(found["error"]), True
            note = ""
            if found.get("truncated"):
                self.partial.add(path)
                note = (f"\n[truncated: the file has {found.get('size')} bytes; it cannot be "
                        "written whole in this task]")
            return f"<untrusted source=\"{path}\">\n{escape_untrusted(found['content'])}{note}\n" \
                   "</untrusted>", False
        if name == "search":
            query = str(given.get("query") or "")
            if len(query.strip()) < 2:
                return "the query needs at least 2 characters", True
            found = await self.read("search", ref=self.context["base_sha"], path=path,
                                    query=query)
            lines = [escape_untrusted(m) for m in found.get("matches") or []]
            tail = (f"\n({found.get('not_searched')} large or further files not searched)"
                    if found.get("not_searched") else "")
            return ("\n".join(lines) or "no match") + tail, False
        if name in ("write_file", "delete_file"):
            try:
                return self.record(name, path, given), False
            except ToolError as exc:
                return str(exc), True
        return f"no tool named {name!r}", True

    def list_files(self, folder: str) -> str:
        names: dict[str, str] = {}
        for path, entry in self.entries.items():
            parent, _, leaf = path.rpartition("/")
            if parent == folder:
                names[leaf] = (f"{leaf}/" if entry.get("type") == "tree"
                               else f"{leaf} ({entry.get('size') or 0} bytes)")
        for path, change in self.change.items():
            parent, _, leaf = path.rpartition("/")
            if parent == folder:
                names[leaf] = f"{leaf} ({'deleted' if change['content'] is None else 'written'}"\
                              " in this task)"
        if not names:
            return f"no folder {folder!r}" if folder else "the repository is empty"
        note = "\n(the listing of this repository is truncated)" \
            if self.context.get("truncated") else ""
        return "\n".join(names[n] for n in sorted(names)) + note

    def record(self, name: str, path: str, given: Mapping[str, Any]) -> str:
        limits = self.limits
        refused = path_refused(path, limits.allow, limits.deny)
        if refused is not None:
            raise LimitReached(f"{name} {path!r}: {refused}")
        entry = self.entries.get(path)
        if entry is not None and entry.get("type") == "tree":
            raise LimitReached(f"{name} {path!r}: it is a folder")
        if entry is not None and entry.get("mode") not in (None, "100644", "100755"):
            raise LimitReached(f"{name} {path!r}: it is a symbolic link or submodule "
                               f"(mode {entry.get('mode')})")
        if name == "write_file" and path in self.partial:
            raise ToolError(f"{path} was read only in part (it is larger than what one read "
                            "returns): writing it whole would drop the rest")
        if name == "delete_file":
            if entry is None and path not in self.change:
                return f"there is no file {path} to delete"
            if entry is None:
                del self.change[path]  # written in this task only
                return f"{path}: no longer created"
            content = None
        else:
            content = given.get("content")
            if not isinstance(content, str) or "\x00" in content:
                raise LimitReached(f"write_file {path!r}: content must be text (no NUL)")
        mode = str((entry or {}).get("mode") or "100644")
        self.change[path] = {"content": content, "mode": mode}
        if len(self.change) > limits.max_files:
            raise LimitReached(f"too many files: {len(self.change)} changed, Policy "
                               f"claude.maxFiles is {limits.max_files}")
        written = sum(len((c["content"] or "").encode()) for c in self.change.values())
        if written > limits.max_bytes:
            raise LimitReached(f"too many bytes: {written} written, Policy claude.maxBytes is "
                               f"{limits.max_bytes}")
        return f"{path}: {'deleted' if content is None else 'written'} (in this task)"


async def work_task(store: Store, claude: Claude, desk: Desk | None,
                    p: WorkTask) -> Mapping[str, Any]:
    row = await store.fetchrow("claude_task_get", p.task_id)
    if row is None:
        return {"task": p.task_id, "gone": True}
    if row["state"] not in ACTIVE or row["change"] is not None:
        return {"task": p.task_id, "state": row["state"]}
    if row["state"] != "WORKING":  # its WORKING step did not run (a plan of an older release)
        raise ProviderError(f"task {p.task_id} is {row['state']}, not WORKING: the task "
                            "moves to WORKING before its session runs")
    if desk is None:
        raise ProviderError("the controller is still starting (no desk)")
    s = Session(store, claude, desk, p, dict(row))
    try:
        return await _converse(s)
    except LimitReached as exc:
        return await s.fail(f"limit reached: {exc}")
    except ClaudeRefused as exc:
        return await s.fail(f"the Anthropic API refused the request: {exc}")
    except ReadFailed as exc:
        return await s.fail(str(exc))


async def _converse(s: Session) -> Mapping[str, Any]:
    s.context = dict(await s.read("context"))
    s.entries = {str(e["path"]): e for e in s.context.get("tree") or []}
    limits, row = s.limits, s.row
    system = [{"type": "text", "cache_control": {"type": "ephemeral"}, "text": SYSTEM.format(
        allow=", ".join(limits.allow) or "nothing", deny=", ".join(limits.deny) or "none",
        max_files=limits.max_files, max_bytes=limits.max_bytes,
        max_tool_calls=limits.max_tool_calls)}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": brief(row, s.context)}]
    nudged = False
    saved = row.get("session")
    if isinstance(saved, dict) and saved.get("messages"):  # stopped mid-way: resume there
        messages = list(saved["messages"])
        s.change = dict(saved.get("change") or {})
        s.partial = set(saved.get("partial") or ())
        nudged = bool(saved.get("nudged"))

    async def checkpoint() -> None:  # after every turn: what a resume starts from
        await s.store.execute("claude_task_session_save", s.p.task_id, {
            "messages": messages, "change": s.change, "partial": sorted(s.partial),
            "nudged": nudged})

    finished: Mapping[str, Any] | None = None
    while finished is None:
        state = await s.store.fetchval("claude_task_state", s.p.task_id)
        if state not in ACTIVE:
            await s.save_figures()
            return {"task": s.p.task_id, "state": state, "stopped": True}
        billed = s.usage.billed_tokens(limits.model)  # cache reads at their price
        left = limits.max_tokens - billed
        if s.usd >= limits.max_usd:
            raise LimitReached(f"budget: ${s.usd:.4f} spent, Policy claude.maxUsd is "
                               f"${limits.max_usd:g}")
        if left < MIN_REPLY_TOKENS:
            raise LimitReached(f"budget: {billed} billed tokens used (prompt-cache reads at "
                               f"their price), Policy claude.maxTokens is {limits.max_tokens}")
        reply = await s.claude.message(model=limits.model, system=system,
                                       messages=cached_up_to_here(messages),
                                       max_tokens=min(MAX_REPLY_TOKENS, left), tools=TOOLS)
        s.usage, s.usd = s.usage + reply.usage, s.usd + reply.usd
        await s.save_figures()
        if reply.stop_reason == "refusal":
            return await s.fail("Claude declined the task (stop_reason refusal)")
        # Only what a request takes back: an empty text block (the API sends some before a
        # tool_use) is refused when sent back.
        content = [_block(b) for b in reply.content if b.get("type") == "tool_use"
                   or (b.get("type") == "text" and str(b.get("text") or "").strip())]
        uses = [b for b in content if b["type"] == "tool_use"]
        messages.append({"role": "assistant", "content": content or "(nothing)"})
        if not uses:
            if not s.change or nudged:
                return await s.fail("Claude stopped without finishing: "
                                    f"{reply.text.strip()[:300] or '(no text)'}")
            nudged = True
            messages.append({"role": "user", "content": "Call `finish` with a title and a "
                                                        "summary, or keep working."})
            await checkpoint()
            continue
        results = []
        for use in uses:
            given: Mapping[str, Any] = use["input"] if isinstance(use.get("input"), dict) else {}
            if reply.stop_reason == "max_tokens":  # its input may be cut off: never run it
                results.append({"type": "tool_result", "tool_use_id": use["id"],
                                "is_error": True, "content": "your reply was cut off at "
                                "max_tokens, so this call was not run: make it again with "
                                "less (a smaller file, fewer calls)"})
                continue
            if finished is not None:
                answer, error = "not run: it came after `finish`", True
            elif use["name"] == "finish":
                finished = given
                answer, error = "finished", False
            else:
                s.tool_calls += 1
                if s.tool_calls > limits.max_tool_calls:
                    raise LimitReached(f"too many tool calls: Policy claude.maxToolCalls is "
                                       f"{limits.max_tool_calls}")
                answer, error = await s.tool(str(use["name"]), given)
            results.append({"type": "tool_result", "tool_use_id": use["id"],
                            "content": answer[:MAX_TOOL_ANSWER] or "(empty)",
                            **({"is_error": True} if error else {})})
        await s.save_figures()
        messages.append({"role": "user", "content": results})
        if finished is None:
            await checkpoint()
    title = printable(str(finished.get("title") or "")).strip()[:200] or row["command"][:72]
    summary = printable(str(finished.get("summary") or "")).strip()[:4000]
    if not s.change:
        return await s.fail(f"Claude finished without changing a file: "
                            f"{summary[:300] or title}")
    branch = s.context.get("branch") or branch_name(row["issue"], row["command"])
    await s.store.execute("claude_task_change", s.p.task_id, s.context["base_branch"],
                          s.context["base_sha"], branch, s.change, title, summary,
                          s.context.get("pull"), untrusted_authors(s.context,
                                                                   row["requested_by"]))
    return {"task": s.p.task_id, "files": sorted(s.change), "branch": branch,
            "tokens": s.usage.tokens, "usd": round(s.usd, 6), "tool_calls": s.tool_calls}


def _block(block: Mapping[str, Any]) -> dict[str, Any]:
    """A content block as it goes back to the API (only the fields a request takes)."""
    if block["type"] == "text":
        return {"type": "text", "text": block.get("text") or ""}
    return {"type": "tool_use", "id": block["id"], "name": block["name"],
            "input": block.get("input") or {}}
