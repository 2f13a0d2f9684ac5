"""The GitHub provider: the App client, the runners of the `github.*` actions, and the reads
`observe` uses (manifests at a revision, a pull request's files, a pull request); the runners
of `/claude` tasks are in `github_changes.py`.

Runners find before they create, so a crash between a call and its record never doubles a
side effect: a check run is created with `external_id` = its action's idempotency key and
looked up by it first; the invalid-manifests issue is found by its hidden marker. Reads walk
the tree to the manifests folder (small answers whatever the repository's size), and when the
folder's tree SHA is not the one the caller knows, list it and download only the blobs never
fetched before (content-addressed, cached in `manifest_blobs`). Writes to no branch but a
task's `claude/` branch (`github_changes.py`).
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from controller.clients.github import GitHubApp
from controller.clients.github_errors import GitHubError
from controller.clients.tools import MAX_ANSWER_BYTES as MAX_TOOL_ANSWER_BYTES
from controller.clients.tools import GitHubGet, repo_path
from controller.providers import Bundle, Env, Provider, github_changes, github_pulls
from controller.reconcile.errors import TerminalError
from controller.reconcile.plan import Action, ActionRunner, runner
from controller.reconcile.reads import (
    MAX_SOURCE_FILE_BYTES,
    ManifestFiles,
    SourceFile,
    Where,
    safe_relative,
)
from controller.store import Store
from reconcilers.claude.command_intake import CommentReaction, CommentReply
from reconcilers.github.redeliveries import Redeliver
from reconcilers.gitops.reporting import CheckRun, IssueClose, IssueUpsert

NAME = "github"
UNCONFIGURED = ("no GitHub App credentials (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY): the "
                "repository cannot be read")
MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_BLOB_BYTES = 1024 * 1024  # a manifest larger than 1 MiB is refused, not fetched


def bundle(*, transport: Any = None,
           sleep: Callable[[float], Awaitable[None]] | None = None) -> Bundle:
    """The GitHub provider, configured from GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (a
    rotated key in Secret Manager is used as soon as it is refreshed). `transport` (an httpx
    transport) and `sleep` replace the network and the client's short waits in tests."""

    @contextlib.asynccontextmanager
    async def open_github(env: Env) -> AsyncIterator[Provider]:
        providers = env.settings.providers
        if not (providers.github_app_id and providers.github_app_private_key):
            yield Provider(NAME, unavailable=UNCONFIGURED)
            return
        configured = providers.github_app_private_key.get_secret_value()
        held = env.secrets

        def private_key() -> str:
            return (held.get("GITHUB_APP_PRIVATE_KEY") if held else None) or configured

        async with GitHubApp.open(app_id=providers.github_app_id, private_key=private_key,
                                  base_url=providers.github_api_url, transport=transport,
                                  sleep=sleep) as client:
            yield Provider(NAME, runners={**runners(client, env.store),
                                          **github_changes.runners(client, env.store),
                                          **github_pulls.runners(client)},
                           reads=GitHubReads(client, env.store,
                                             folder=env.settings.manifests.repo_path))

    return open_github


# --- runners ------------------------------------------------------------------------------

def runners(github: GitHubApp, store: Store) -> dict[str, ActionRunner]:
    async def find_run(p: CheckRun, external_id: str) -> int | None:
        runs = await github.check_runs_for_ref(p.repo, p.head_sha, check_name=p.name,
                                               installation_id=p.installation_id)
        for run in runs:  # only this App's: another may copy the external id
            own = str((run.get("app") or {}).get("id")) == str(github.app_id)
            if own and run.get("external_id") == external_id:
                return int(run["id"])
        return None

    async def check_run(p: CheckRun, action: Action) -> Mapping[str, Any]:
        fields: dict[str, Any] = {"status": p.status, "output": p.output.model_dump()}
        if p.conclusion is not None:
            fields["conclusion"] = p.conclusion
        run_id: int | None = None
        if p.start_key is not None:  # complete the run the start action created
            started = await store.fetchval("action_result", p.start_key)
            run_id = started.get("check_run_id") if started else None
            if run_id is None:  # the start's record was lost after its call: find its run
                run_id = await find_run(p, p.start_key)
        if run_id is None:
            run_id = await find_run(p, action.idempotency_key)
        if run_id is not None:
            await github.update_check_run(p.repo, int(run_id),
                                          installation_id=p.installation_id, **fields)
            return {"check_run_id": int(run_id)}
        run = await github.create_check_run(p.repo, installation_id=p.installation_id,
                                            name=p.name, head_sha=p.head_sha,
                                            external_id=action.idempotency_key, **fields)
        return {"check_run_id": run["id"], "created": True}

    async def find_issue(repo: str, installation_id: int, marker: str) -> dict[str, Any] | None:
        for issue in await github.open_issues(repo, installation_id=installation_id):
            if "pull_request" not in issue and marker in (issue.get("body") or ""):
                return issue
        return None

    async def issue_upsert(p: IssueUpsert, _action: Action) -> Mapping[str, Any]:
        found = await find_issue(p.repo, p.installation_id, p.marker)
        if found is not None:
            await github.update_issue(p.repo, int(found["number"]),
                                      installation_id=p.installation_id, title=p.title,
                                      body=p.body)
            return {"issue": found["number"], "updated": True}
        issue = await github.create_issue(p.repo, installation_id=p.installation_id,
                                          title=p.title, body=p.body, labels=list(p.labels))
        return {"issue": issue["number"], "created": True}

    async def issue_close(p: IssueClose, _action: Action) -> Mapping[str, Any]:
        found = await find_issue(p.repo, p.installation_id, p.marker)
        if found is None:
            return {"issue": None}
        number = int(found["number"])
        await github.create_issue_comment(p.repo, number, installation_id=p.installation_id,
                                          body=p.comment)
        await github.update_issue(p.repo, number, installation_id=p.installation_id,
                                  state="closed", state_reason="completed")
        return {"issue": number, "closed": True}

    async def redeliver(p: Redeliver, _action: Action) -> Mapping[str, Any]:
        if await store.fetch("deliveries_stored", "github", [p.guid]):
            return {"guid": p.guid, "skipped": "it arrived meanwhile"}  # found: nothing to do
        await github.redeliver(p.delivery_id)
        return {"guid": p.guid, "requested": p.delivery_id}

    async def comment(p: CommentReply, _action: Action) -> Mapping[str, Any]:
        for found in await github.issue_comments(p.repo, p.issue,
                                                 installation_id=p.installation_id):
            if p.marker in str(found.get("body") or ""):  # a crash after the call: find it
                return {"comment": found.get("id"), "found": True}
        made = await github.create_issue_comment(p.repo, p.issue,
                                                 installation_id=p.installation_id, body=p.body)
        return {"comment": made.get("id")}

    async def react(p: CommentReaction, _action: Action) -> Mapping[str, Any]:
        made = await github.react_to_comment(p.repo, p.comment_id,
                                             installation_id=p.installation_id,
                                             content=p.content)
        return {"reaction": made.get("id"), "content": p.content}

    async def github_get(p: GitHubGet, _action: Action) -> Mapping[str, Any]:
        found = await github.call("GET", f"/repos/{p.repo}{repo_path(p.path)}",
                                  installation_id=p.installation_id, params=p.params or None)
        if len(orjson.dumps(found)) > MAX_TOOL_ANSWER_BYTES:
            raise ValueError(f"GET {p.path} answered more than {MAX_TOOL_ANSWER_BYTES} bytes: "
                             "ask for less (per_page, a narrower path)")
        return {"json": found}

    return {**runner(CheckRun, check_run), **runner(IssueUpsert, issue_upsert),
            **runner(GitHubGet, github_get), **runner(CommentReply, comment),
            **runner(CommentReaction, react),
            **runner(IssueClose, issue_close), **runner(Redeliver, redeliver)}


# --- reads --------------------------------------------------------------------------------

def is_manifest(path: str, folder: str) -> bool:
    return path.startswith(folder) and path.endswith(MANIFEST_SUFFIXES)


class GitHubReads(github_pulls.PullReadsMixin):
    """What `observe` may read from GitHub (`controller.reconcile.reads.GitHubReads`, and
    auto-merge's `reconcilers.automerge.facts.PullReads`)."""

    PERMISSION_TTL = 60.0  # seconds a collaborator's permission is remembered

    def __init__(self, github: GitHubApp, store: Store, *, folder: str) -> None:
        self._github = github
        self._store = store
        self.folder = folder  # "manifests/" (always ends with a slash)
        self._permissions: dict[tuple[str, str], tuple[float, str]] = {}

    @property
    def client(self) -> GitHubApp:
        return self._github

    async def pull_request(self, repo: str, number: int, *,
                           installation_id: int) -> Mapping[str, Any]:
        return await self._github.pull_request(repo, number, installation_id=installation_id)

    async def app_deliveries(self) -> list[Mapping[str, Any]]:
        return list(await self._github.app_hook_deliveries())

    async def permission(self, repo: str, login: str, *, installation_id: int) -> str:
        now = time.monotonic()
        known = self._permissions.get((repo, login))
        if known is not None and now - known[0] < self.PERMISSION_TTL:
            return known[1]
        try:
            found = await self._github.collaborator_permission(repo, login,
                                                               installation_id=installation_id)
        except GitHubError as exc:
            if exc.status != 404:  # 404: not a user (an App's bot), or none GitHub knows
                raise
            found = "none"
        if len(self._permissions) > 10_000:
            self._permissions.clear()
        self._permissions[(repo, login)] = (now, found)
        return found

    async def pull_touches(self, repo: str, number: int, *, installation_id: int) -> bool:
        files = await self._github.pull_files(repo, number, installation_id=installation_id)
        return any(is_manifest(str(f.get(key) or ""), self.folder)
                   for f in files for key in ("filename", "previous_filename"))

    async def manifest_files(self, where: Where, *, known_tree: str | None) -> ManifestFiles:
        repo, installation = where.source, where.installation_id
        if installation is None:
            raise TerminalError(f"{repo}: no GitHub App installation is known for this "
                                "repository (install the App on it)")
        if where.commit is not None:
            revision = where.commit
            root = await self._github.commit_tree(repo, revision, installation_id=installation)
        else:
            branch = where.branch
            if branch is None:
                info = await self._github.repository(repo, installation_id=installation)
                branch = str(info["default_branch"])
            revision, root = await self._github.branch_revision(repo, branch,
                                                                installation_id=installation)
        folder_tree = await self._folder_tree(repo, root, installation)
        if folder_tree is None:  # no manifests folder at this revision
            return ManifestFiles(revision=revision, tree="", files={})
        if folder_tree == known_tree:
            return ManifestFiles(revision=revision, tree=folder_tree, files=None)
        listing = await self._github.tree(repo, folder_tree, installation_id=installation)
        if listing.get("truncated"):
            raise TerminalError(f"{repo}: the {self.folder} tree is too large for one listing")
        entries = [e for e in listing["tree"] if e.get("type") == "blob"
                   and is_manifest(self.folder + e["path"], self.folder)]
        files, unreadable, fetched = await self._contents(repo, installation, entries)
        return ManifestFiles(revision=revision, tree=folder_tree, files=files,
                             unreadable=tuple(unreadable), blobs_fetched=fetched)

    async def source_file(self, where: Where, path: str) -> SourceFile:
        """GET /repos/{owner}/{repo}/contents/{path}?ref=<commit>: a file's text."""
        repo, installation = where.source, where.installation_id
        if installation is None:
            raise TerminalError(f"{repo}: no GitHub App installation is known for this "
                                "repository (install the App on it)")
        if not safe_relative(path):
            return SourceFile(path, None, "the path must stay inside the repository")
        params = {"ref": where.commit} if where.commit else None
        try:
            found = await self._github.call("GET", f"/repos/{repo}/contents/{quote(path)}",
                                            installation_id=installation, params=params)
        except GitHubError as exc:
            if exc.status == 404:
                return SourceFile(path, None, f"no file {path} in {repo} at "
                                              f"{(where.commit or 'the default branch')[:12]}")
            raise
        if not isinstance(found, dict) or found.get("type") != "file":
            return SourceFile(path, None, f"{path} in {repo} is not a file")
        if int(found.get("size") or 0) > MAX_SOURCE_FILE_BYTES:
            return SourceFile(path, None, f"larger than {MAX_SOURCE_FILE_BYTES} bytes")
        try:
            text = base64.b64decode(str(found.get("content") or "")).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            return SourceFile(path, None, f"cannot read {path}: {exc}")
        return SourceFile(path, text)

    async def _folder_tree(self, repo: str, root: str, installation: int) -> str | None:
        sha = root
        for part in self.folder.strip("/").split("/"):
            listing = await self._github.tree(repo, sha, installation_id=installation,
                                              recursive=False)
            found = [e for e in listing["tree"] if e.get("path") == part
                     and e.get("type") == "tree"]
            if not found:
                return None
            sha = str(found[0]["sha"])
        return sha

    async def _contents(self, repo: str, installation: int, entries: list[dict[str, Any]]
                        ) -> tuple[dict[str, str], list[str], int]:
        shas = sorted({str(e["sha"]) for e in entries})
        cached = {r["sha"]: r["content"] for r in await self._store.fetch("manifest_blobs_get",
                                                                          shas)}
        missing = [e for e in entries if e["sha"] not in cached]
        wanted = [e for e in missing if int(e.get("size") or 0) <= MAX_BLOB_BYTES]
        unreadable = [f"{self.folder}{e['path']}:1:1: larger than {MAX_BLOB_BYTES} bytes; "
                      "not read" for e in missing if e not in wanted]
        new: dict[str, str] = {}
        for sha in sorted({str(e["sha"]) for e in wanted}):
            data = await self._github.blob(repo, sha, installation_id=installation)
            try:
                new[sha] = data.decode("utf-8")
            except UnicodeDecodeError:
                unreadable.extend(f"{self.folder}{e['path']}:1:1: not UTF-8 text"
                                  for e in wanted if e["sha"] == sha)
        if new:
            await self._store.execute("manifest_blobs_put", list(new), list(new.values()))
        cached.update(new)
        files = {self.folder + str(e["path"]): cached[e["sha"]] for e in entries
                 if e["sha"] in cached}
        return files, unreadable, len(new)
