"""The GitHub runners of `/claude` tasks: the repository reads behind Claude's tools
(`github.repo_read`: the task's context, a file, a search by tree walk) and the push of its
change (`github.push_change`).

The push writes only to `claude/` branches, never to the default branch: blobs, one tree on
the tree of the commit Claude read, one commit whose parent is that commit, then a new branch
(or, for a follow-up on a `claude/` pull request, a fast-forward of its branch: a branch that
moved since is refused, never overwritten). It finds before it creates: a branch whose head
carries the task's marker was pushed by an earlier attempt, a pull request from the branch is
reused. GitHub's refusals (a 4xx) are answered as `refused`, so the task ends FAILED with
GitHub's message instead of retrying; a lost answer (5xx, a timeout) fails the action, which
is tried again from the top and finds what the lost call made. Reads are capped so an answer
stays small.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from controller.clients.github import GitHubApp
from controller.clients.github_errors import GitHubError
from controller.reconcile.errors import TerminalError
from controller.reconcile.plan import Action, ActionRunner, runner
from controller.store import Store
from reconcilers.claude.task_actions import BRANCH_PREFIX, PushChange, RepoRead, marker

MAX_READ_BYTES = 50_000  # a file Claude reads, at most (below the tool answer's cap)
MAX_TREE_ENTRIES = 5000  # the listing given with the context
MAX_THREAD_COMMENTS = 20
MAX_SEARCH_FILES = 200  # files a search reads (text, below MAX_SEARCH_FILE_BYTES)
MAX_SEARCH_FILE_BYTES = 128 * 1024
MAX_SEARCH_MATCHES = 50
UNTRUSTED_LABEL = "p38/untrusted-input"


def runners(github: GitHubApp, store: Store) -> dict[str, ActionRunner]:
    async def repo_read(p: RepoRead, _action: Action) -> Mapping[str, Any]:
        if p.op == "context":
            return await read_context(github, p)
        if p.op == "read":
            return await read_file(github, p)
        return await search(github, store, p)

    async def push(p: PushChange, _action: Action) -> Mapping[str, Any]:
        try:
            return await push_change(github, p)
        except GitHubError as exc:  # a refusal: the task ends FAILED with GitHub's message
            return {"refused": str(exc)[:1000]}
        # (GitHubUnavailable, an answer lost after a write: raised, so the action is tried
        # again from the top and finds the branch and the pull request it may have made; a
        # task whose key gives up ends FAILED at the resync.)

    return {**runner(RepoRead, repo_read), **runner(PushChange, push)}


async def read_context(github: GitHubApp, p: RepoRead) -> Mapping[str, Any]:
    """What a task starts from: the issue, its thread, the base to work on, its file list."""
    inst = p.installation_id
    default = str((await github.repository(p.repo, installation_id=inst))["default_branch"])
    base_branch, branch, pull = default, None, None
    if p.on_pull:
        pr = await github.pull_request(p.repo, p.issue, installation_id=inst)
        head = pr.get("head") or {}
        head_repo = (head.get("repo") or {}).get("full_name")
        if str(head.get("ref") or "").startswith(BRANCH_PREFIX) and head_repo == p.repo:
            branch, pull = str(head["ref"]), p.issue
            base_branch = str((pr.get("base") or {}).get("ref") or default)
    if branch is not None:
        head_sha = await github.branch_ref(p.repo, branch, installation_id=inst)
        if head_sha is None:
            raise TerminalError(f"{p.repo}: the branch {branch} of pull request #{p.issue} "
                                "is gone")
        sha = head_sha
        tree_sha = await github.commit_tree(p.repo, sha, installation_id=inst)
    else:
        sha, tree_sha = await github.branch_revision(p.repo, base_branch, installation_id=inst)
    issue = await github.issue(p.repo, p.issue, installation_id=inst)
    comments = await github.issue_comments(p.repo, p.issue, installation_id=inst, max_pages=3)
    listing = await github.tree(p.repo, tree_sha, installation_id=inst)
    entries = [{"path": e["path"], "type": e["type"], "size": e.get("size"),
                "mode": e.get("mode")} for e in listing.get("tree") or []
               if e.get("type") in ("blob", "tree")]
    return {
        "default_branch": default, "base_branch": base_branch, "base_sha": sha,
        "branch": branch, "pull": pull, "title": str(issue.get("title") or ""),
        "body": str(issue.get("body") or ""), "author": _login(issue),
        "association": str(issue.get("author_association") or "NONE"),
        "comments": [{"author": _login(c), "body": str(c.get("body") or "")[:4000],
                      "association": str(c.get("author_association") or "NONE")}
                     for c in comments[-MAX_THREAD_COMMENTS:]],
        "tree": entries[:MAX_TREE_ENTRIES],
        "truncated": bool(listing.get("truncated")) or len(entries) > MAX_TREE_ENTRIES}


def _labels(pr: Mapping[str, Any]) -> set[str]:
    return {str(label.get("name")) for label in pr.get("labels") or ()
            if isinstance(label, Mapping)}


def _login(item: Mapping[str, Any]) -> str:
    return str((item.get("user") or {}).get("login") or "someone")


async def read_file(github: GitHubApp, p: RepoRead) -> Mapping[str, Any]:
    """GET /repos/{owner}/{repo}/contents/{path}?ref=<commit>: one text file, capped."""
    try:
        found = await github.call("GET", f"/repos/{p.repo}/contents/{quote(p.path)}",
                                  installation_id=p.installation_id, params={"ref": p.ref})
    except GitHubError as exc:
        if exc.status == 404:
            return {"error": f"no file {p.path} at {p.ref[:12]}"}
        raise
    if not isinstance(found, dict) or found.get("type") != "file":
        return {"error": f"{p.path} is a folder, not a file: list it"}
    data = base64.b64decode(str(found.get("content") or ""))
    try:
        text = data[:MAX_READ_BYTES].decode("utf-8")
    except UnicodeDecodeError:
        return {"error": f"{p.path} is not UTF-8 text ({len(data)} bytes)"}
    return {"content": text, "size": len(data), "truncated": len(data) > MAX_READ_BYTES}


async def search(github: GitHubApp, store: Store, p: RepoRead) -> Mapping[str, Any]:
    """A tree walk: paths containing the query, then lines containing it in up to
    MAX_SEARCH_FILES text files below `path` (blobs are cached by SHA, so a second search
    fetches nothing new)."""
    needle = p.query.lower()
    tree_sha = await github.commit_tree(p.repo, p.ref, installation_id=p.installation_id)
    listing = await github.tree(p.repo, tree_sha, installation_id=p.installation_id)
    prefix = p.path.strip("/")
    blobs = [e for e in listing.get("tree") or [] if e.get("type") == "blob"
             and (not prefix or str(e["path"]).startswith(prefix + "/"))]
    matches = [f"{e['path']}: (the path matches)" for e in blobs
               if needle in str(e["path"]).lower()]
    readable = [e for e in blobs if int(e.get("size") or 0) <= MAX_SEARCH_FILE_BYTES]
    chosen = readable[:MAX_SEARCH_FILES]
    shas = sorted({str(e["sha"]) for e in chosen})
    cached = {r["sha"]: r["content"] for r in await store.fetch("manifest_blobs_get", shas)}
    fetched: dict[str, str] = {}
    for sha in shas:
        if sha in cached:
            continue
        data = await github.blob(p.repo, sha, installation_id=p.installation_id)
        try:
            fetched[sha] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary: no lines to match
    if fetched:
        await store.execute("manifest_blobs_put", list(fetched), list(fetched.values()))
    cached.update(fetched)
    for entry in chosen:
        text = cached.get(str(entry["sha"]))
        for n, line in enumerate((text or "").splitlines(), 1):
            if needle in line.lower():
                matches.append(f"{entry['path']}:{n}: {line.strip()[:200]}")
                if len(matches) >= MAX_SEARCH_MATCHES:
                    break
        if len(matches) >= MAX_SEARCH_MATCHES:
            break
    return {"matches": matches[:MAX_SEARCH_MATCHES], "searched": len(chosen),
            "not_searched": len(blobs) - len(chosen)}


async def push_change(github: GitHubApp, p: PushChange) -> Mapping[str, Any]:
    if not p.branch.startswith(BRANCH_PREFIX) or p.branch == p.base_branch:
        raise TerminalError(f"refusing to write to {p.branch!r}: only claude/ branches")
    inst, mark = p.installation_id, marker(p.task_id)
    branch, head, done = p.branch, None, None
    for _ in range(2):
        head = await github.branch_ref(p.repo, branch, installation_id=inst)
        if head is None:
            break
        message = str((await github.commit(p.repo, head, installation_id=inst)).get("message"))
        if message.rstrip().rpartition("\n")[2] == mark:  # its last line, whole
            done = head  # an earlier attempt pushed it
            break
        if p.pull is not None:
            if head != p.base_sha:
                return {"refused": f"{branch} moved since Claude read it ({p.base_sha[:12]} "
                                   f"-> {head[:12]}); nothing was written: /claude retry"}
            break
        branch = f"{p.branch}-{p.task_id}"  # a branch of that name exists: not ours
    else:
        return {"refused": f"{p.branch} and {branch} exist already and are not this task's"}
    if done is None:
        done = await _commit(github, p)
        if head is None:
            await github.create_branch(p.repo, branch, done, installation_id=inst)
        else:
            await github.move_branch(p.repo, branch, done, installation_id=inst)
    if p.pull is not None:
        pr = await github.pull_request(p.repo, p.pull, installation_id=inst)
        number, url = p.pull, str(pr.get("html_url") or "")
    else:
        found = await github.pulls_from(p.repo, branch, installation_id=inst)
        pr = found[0] if found else await github.create_pull(
            p.repo, head=branch, base=p.base_branch, title=p.title, body=p.body,
            installation_id=inst)
        number, url = int(pr["number"]), str(pr.get("html_url") or "")
    if p.untrusted and UNTRUSTED_LABEL not in _labels(pr):  # (adding it twice is harmless)
        await github.call("POST", f"/repos/{p.repo}/issues/{number}/labels",
                          installation_id=inst, json={"labels": [UNTRUSTED_LABEL]})
    return {"pull_number": number, "pull_url": url, "commit_sha": done, "branch": branch}


async def _commit(github: GitHubApp, p: PushChange) -> str:
    inst = p.installation_id
    entries: list[dict[str, Any]] = []
    for path, change in sorted(p.files.items()):
        content, mode = change.get("content"), str(change.get("mode") or "100644")
        sha = None if content is None else await github.create_blob(p.repo, str(content),
                                                                    installation_id=inst)
        entries.append({"path": path, "mode": mode, "type": "blob", "sha": sha})
    base_tree = await github.commit_tree(p.repo, p.base_sha, installation_id=inst)
    tree = await github.create_tree(p.repo, base_tree, entries, installation_id=inst)
    return await github.create_commit(p.repo, message=p.message, tree=tree,
                                      parents=[p.base_sha], installation_id=inst)
