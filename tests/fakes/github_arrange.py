"""What a test arranges on the fake GitHub around pull requests, and the pull request as GitHub's
REST API shows it (api.github.com, 2022-11-28): mergeability computed from the commit graph
(`behind` when the base head is not in the head's history, `draft`, else `clean`) unless a test
overrides it, reviews, commit statuses, other apps' check runs, labels, pushes and merges.

Mixed into `FakeGitHub`; the endpoints that read and write this state are in
`github_pulls.py` and `github_checks.py`. A fork's pull request keeps its head branch in the
base repository's `branches` under its name (the fake has one object store per repository), but
that branch is not the base repository's: it cannot be deleted there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.fakes.github_git import _ancestor

if TYPE_CHECKING:
    from tests.fakes.github import Repo

REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED")
STATUS_STATES = ("pending", "success", "failure", "error")
MERGEABLE_STATES = ("clean", "behind", "dirty", "blocked", "unstable", "unknown", "draft",
                    "has_hooks")


def number_of(text: str) -> int:
    """A stable id for a name (GitHub's ids are numbers)."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def public(item: dict[str, Any]) -> dict[str, Any]:
    """A stored object without the fake's own bookkeeping (keys starting with `_`)."""
    return {k: v for k, v in item.items() if not k.startswith("_")}


def user_json(login: str) -> dict[str, Any]:
    return {"login": login, "id": number_of(login),
            "type": "Bot" if login.endswith("[bot]") else "User"}


class PullArranging:
    """Arranging helpers and the pull request's JSON (see the module's docstring)."""

    repos: dict[str, Repo]
    clock: Callable[[], float]
    host: str
    app_id: str
    app_slug: str
    check_runs: list[dict[str, Any]]
    _ids: Iterator[int]
    # Set by `_init_pulls`:
    statuses: list[dict[str, Any]]  # commit statuses, oldest first
    reviews: dict[tuple[str, int], list[dict[str, Any]]]  # (repo, number) -> oldest first
    merges: list[dict[str, Any]]  # merges through the API: repo, number, sha, method, commit
    deleted_refs: list[tuple[str, str]]  # (repo, branch) deleted through the API
    check_suites: dict[tuple[str, str, str], int]  # (repo, head sha, app slug) -> suite id

    if TYPE_CHECKING:
        def commit(self, repo: str, files: dict[str, str], *, branch: str = "main") -> str: ...

        def _tree(self, r: Repo, blobs: dict[str, str]) -> str: ...

    def _init_pulls(self) -> None:
        self.statuses = []
        self.reviews = {}
        self.merges = []
        self.deleted_refs = []
        self.check_suites = {}

    def now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _repo(self, repo: Repo | str) -> Repo:
        return self.repos[repo] if isinstance(repo, str) else repo

    # --- arranging ------------------------------------------------------------------------

    def open_pull(self, repo: str, number: int, *, head: str, base: str = "main",
                  draft: bool = False, fork: str | None = None, labels: Sequence[str] = (),
                  author: str = "someone", title: str | None = None, body: str = "") -> None:
        """A pull request from `head` (a branch of `repo`, or of the fork `fork`, whose commits
        the test makes with `commit`/`push_branch` on `repo`) into `base`."""
        r = self.repos[repo]
        r.pulls[number] = (head, base)
        r.pull_states[number] = {"state": "open", "merged": False, "merged_at": None}
        info = r.pull_info.setdefault(number, {})
        info.update({"title": title or info.get("title") or f"pull {number}",
                     "body": body or info.get("body", ""), "author": author,
                     "labels": list(dict.fromkeys(labels)), "draft": draft, "fork": fork,
                     "created_at": self.now()})

    def set_pull(self, repo: str, number: int, **fields: Any) -> None:
        """Override `mergeable`, `mergeable_state` (until the head moves: GitHub computes them
        again after a push), `draft` or `labels` (a list of names)."""
        r = self.repos[repo]
        info = r.pull_info.setdefault(number, {})
        unknown = set(fields) - {"mergeable", "mergeable_state", "draft", "labels"}
        if unknown:
            raise TypeError(f"set_pull cannot set {sorted(unknown)}")
        if "mergeable_state" in fields and fields["mergeable_state"] not in MERGEABLE_STATES:
            raise ValueError(f"mergeable_state {fields['mergeable_state']!r}")
        override = {k: fields[k] for k in ("mergeable", "mergeable_state") if k in fields}
        if override:
            before = info.get("override") or {}
            if before.get("_head") != self.pull_head(r, number):
                before = {}
            info["override"] = {**before, **override, "_head": self.pull_head(r, number)}
        if "draft" in fields:
            info["draft"] = bool(fields["draft"])
        if "labels" in fields:
            info["labels"] = list(dict.fromkeys(fields["labels"]))

    def computing_mergeable(self, repo: str, number: int, times: int = 1) -> None:
        """The next `times` GET /pulls/{number} answer `mergeable: null`, `mergeable_state:
        "unknown"` (GitHub still computing), then as before."""
        info = self.repos[repo].pull_info.setdefault(number, {})
        info["computing"] = info.get("computing", 0) + times

    def push_branch(self, repo: str, branch: str, files: dict[str, str]) -> str:
        """A new commit on `branch` (made from the default branch's head when missing) whose
        parent is the branch's head, with `files` its whole content; returns its SHA."""
        return self.commit(repo, files, branch=branch)

    def add_check_run(self, repo: str, sha: str, name: str, *, status: str = "completed",
                      conclusion: str | None = "success", app: str = "ci") -> dict[str, Any]:
        """A check run another app (CI) made on `sha`; listed with the controller's own."""
        done = status == "completed"
        run = {"id": next(self._ids), "_repo": repo, "name": name, "head_sha": sha,
               "external_id": "", "status": status,
               "conclusion": conclusion if done else None,
               "started_at": self.now(), "completed_at": self.now() if done else None,
               "output": {"title": None, "summary": None, "text": None,
                          "annotations_count": 0},
               "details_url": f"https://{app}.example/runs/{name}", "app": self.app_json(app),
               "check_suite": {"id": self.suite_id(repo, sha, app)}}
        self.check_runs.append(run)
        return run

    def app_json(self, slug: str) -> dict[str, Any]:
        own = slug == self.app_slug
        return {"id": int(self.app_id) if own else number_of(slug) % 1000000, "slug": slug,
                "name": slug, "owner": {"login": "octo-org" if own else slug}}

    def suite_id(self, repo: str, sha: str, app: str) -> int:
        return self.check_suites.setdefault((repo, sha, app), next(self._ids))

    def set_status(self, repo: str, sha: str, context: str, state: str, *,
                   description: str | None = None, target_url: str | None = None,
                   creator: str = "ci-bot") -> dict[str, Any]:
        """A commit status on `sha` (state pending, success, failure or error)."""
        if state not in STATUS_STATES:
            raise ValueError(f"status state {state!r}")
        status_id = next(self._ids)
        status = {"url": f"{self.host}/repos/{repo}/statuses/{sha}", "id": status_id,
                  "node_id": f"SC_{status_id}", "state": state, "description": description,
                  "target_url": target_url, "context": context, "created_at": self.now(),
                  "updated_at": self.now(), "creator": user_json(creator),
                  "_repo": repo, "_sha": sha}
        self.statuses.append(status)
        return status

    def add_review(self, repo: str, number: int, login: str, state: str, *,
                   commit_id: str | None = None, association: str = "MEMBER",
                   body: str = "") -> dict[str, Any]:
        """A review (APPROVED, CHANGES_REQUESTED, COMMENTED) on the pull request's head unless
        `commit_id`. DISMISSED dismisses `login`'s latest approval or change request, as
        GitHub does (that review's state becomes DISMISSED), and returns it."""
        if state not in REVIEW_STATES:
            raise ValueError(f"review state {state!r}")
        r = self.repos[repo]
        listed = self.reviews.setdefault((repo, number), [])
        if state == "DISMISSED":
            for given in reversed(listed):
                if given["user"]["login"] == login and given["state"] in (
                        "APPROVED", "CHANGES_REQUESTED"):
                    given["state"] = "DISMISSED"
                    dismissed: dict[str, Any] = given
                    return dismissed
        review_id = next(self._ids)
        review = {"id": review_id, "node_id": f"PRR_{review_id}", "user": user_json(login),
                  "body": body, "state": state,
                  "html_url": f"https://github.com/{repo}/pull/{number}"
                              f"#pullrequestreview-{review_id}",
                  "pull_request_url": f"{self.host}/repos/{repo}/pulls/{number}",
                  "author_association": association, "submitted_at": self.now(),
                  "commit_id": commit_id or self.pull_head(r, number)}
        listed.append(review)
        return review

    def add_label(self, repo: str, number: int, name: str) -> None:
        info = self.repos[repo].pull_info.setdefault(number, {})
        info["labels"] = list(dict.fromkeys([*info.get("labels", []), name]))

    def remove_label(self, repo: str, number: int, name: str) -> None:
        info = self.repos[repo].pull_info.setdefault(number, {})
        info["labels"] = [n for n in info.get("labels", []) if n != name]

    def merge_pull(self, repo: str, number: int, *, method: str = "merge") -> None:
        """Someone merged it on GitHub (not recorded in `merges`, which are the API's): the
        base branch moves when both branches exist, else it is only marked merged."""
        r = self.repos[repo]
        base_ref = r.pulls[number][1]
        if self.pull_head(r, number) and base_ref in r.branches:
            self.do_merge(r, number, method)
            return
        r.pull_states[number] = {"state": "closed", "merged": True,
                                 "merged_at": "2026-11-21T10:00:00Z"}

    # --- what GitHub computes ------------------------------------------------------------

    def pull_id(self, r: Repo, number: int) -> int:
        return number_of(f"{r.full_name}#{number}")

    def pull_head(self, r: Repo, number: int) -> str | None:
        """The head SHA: the head branch's, or the last one once merged or closed by the
        branch's deletion."""
        frozen = r.pull_info.get(number, {}).get("head_sha")
        return frozen or r.branches.get(r.pulls[number][0])

    def mergeability(self, r: Repo, number: int) -> tuple[bool | None, str]:
        state, info = r.pull_states[number], r.pull_info.get(number, {})
        if state.get("merged"):
            return None, "unknown"
        head, base = self.pull_head(r, number), r.branches.get(r.pulls[number][1])
        mergeable: bool | None = True
        if info.get("draft"):
            computed = "draft"
        elif r.up_to_date and head and base and not _ancestor(r, base, head):
            computed = "behind"
        else:
            computed = "clean"
        override = info.get("override") or {}
        if override.get("_head") == head:
            mergeable = override.get("mergeable", mergeable)
            computed = override.get("mergeable_state", computed)
        return mergeable, computed

    def merge_base(self, r: Repo, a: str, b: str) -> str | None:
        seen, todo = set(), [b]
        while todo:
            sha = todo.pop()
            if sha not in seen:
                seen.add(sha)
                todo.extend(r.parents.get(sha, []))
        queue = [a]
        while queue:
            sha = queue.pop(0)
            if sha in seen:
                return sha
            queue.extend(r.parents.get(sha, []))
        return None

    def merged_files(self, r: Repo, head: str, base: str) -> dict[str, str]:
        """The base's files with what the head changed since their merge base."""
        ours, theirs = r.files[head], r.files[base]
        since = self.merge_base(r, head, base)
        if since is None:
            return {**theirs, **ours}
        old = r.files[since]
        merged = dict(theirs)
        for path in set(old) | set(ours):
            if ours.get(path) != old.get(path):
                if path in ours:
                    merged[path] = ours[path]
                else:
                    merged.pop(path, None)
        return merged

    def make_commit(self, r: Repo, blobs: dict[str, str], parents: list[str],
                    message: str) -> str:
        tree = self._tree(r, blobs)
        sha = hashlib.sha1(f"{tree}{parents}{message}{len(r.commits)}".encode()).hexdigest()
        r.commits[sha], r.files[sha] = tree, dict(blobs)
        r.parents[sha], r.messages[sha] = list(parents), message
        return sha

    def do_merge(self, r: Repo, number: int, method: str, title: str | None = None,
                 message: str | None = None) -> str:
        """Merge it into its base: one commit (merge: parents base and head; squash and
        rebase: the base only); returns the new base head."""
        head_ref, base_ref = r.pulls[number]
        head, base = self.pull_head(r, number), r.branches[base_ref]
        assert head is not None
        info = r.pull_info.setdefault(number, {})
        pull_title = info.get("title", f"pull {number}")
        if method == "merge":
            owner = (info.get("fork") or r.full_name).partition("/")[0]
            first = title or f"Merge pull request #{number} from {owner}/{head_ref}"
            parents = [base, head]
        else:
            first = title or f"{pull_title} (#{number})"
            parents = [base]
        text = first + (f"\n\n{message}" if message else f"\n\n{pull_title}"
                        if method == "merge" else "")
        made = self.make_commit(r, self.merged_files(r, head, base), parents, text)
        r.branches[base_ref] = made
        info["head_sha"] = head
        r.pull_states[number] = {"state": "closed", "merged": True, "merged_at": self.now(),
                                 "closed_at": self.now(), "merge_commit_sha": made,
                                 "merged_by": user_json(f"{self.app_slug}[bot]")}
        return made

    def repo_json(self, full_name: str, *, fork: bool = False) -> dict[str, Any]:
        """A repository as a pull request's head/base and a webhook show it (the fields the
        fake knows)."""
        owner, _, name = full_name.partition("/")
        found = self.repos.get(full_name)
        return {"id": number_of(full_name), "node_id": f"R_{number_of(full_name)}",
                "name": name, "full_name": full_name, "owner": user_json(owner) | {
                    "type": "Organization" if owner == "octo-org" else "User"},
                "html_url": f"https://github.com/{full_name}",
                "url": f"{self.host}/repos/{full_name}", "fork": fork,
                "default_branch": found.default_branch if found else "main"}

    def pull_json(self, repo: Repo | str, number: int) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}/pulls/{number} as GitHub answers it."""
        r = self._repo(repo)
        head_ref, base_ref = r.pulls[number]
        info, state = r.pull_info.get(number, {}), r.pull_states[number]
        fork = info.get("fork")
        head_repo = fork or r.full_name
        mergeable, mergeable_state = self.mergeability(r, number)
        head_owner, base_owner = head_repo.partition("/")[0], r.full_name.partition("/")[0]
        created = info.get("created_at") or self.now()
        frozen_base = state.get("merge_commit_sha") and r.parents.get(
            state["merge_commit_sha"], [None])[0]
        return {
            "url": f"{self.host}/repos/{r.full_name}/pulls/{number}",
            "id": self.pull_id(r, number), "number": number,
            "html_url": f"https://github.com/{r.full_name}/pull/{number}",
            "issue_url": f"{self.host}/repos/{r.full_name}/issues/{number}",
            "state": state["state"], "locked": False,
            "title": info.get("title", f"pull {number}"), "body": info.get("body", ""),
            "user": user_json(info.get("author", "someone")),
            "labels": [{"name": n} for n in info.get("labels", [])],
            "draft": bool(info.get("draft")), "created_at": created,
            "updated_at": self.now(), "closed_at": state.get("closed_at"),
            "merged_at": state.get("merged_at"),
            "merge_commit_sha": state.get("merge_commit_sha"),
            "merged": bool(state.get("merged")), "mergeable": mergeable,
            "mergeable_state": mergeable_state, "merged_by": state.get("merged_by"),
            "requested_reviewers": [], "auto_merge": None,
            "head": {"label": f"{head_owner}:{head_ref}", "ref": head_ref,
                     "sha": self.pull_head(r, number), "user": user_json(head_owner),
                     "repo": self.repo_json(head_repo, fork=fork is not None)},
            "base": {"label": f"{base_owner}:{base_ref}", "ref": base_ref,
                     "sha": frozen_base or r.branches.get(base_ref),
                     "user": user_json(base_owner), "repo": self.repo_json(r.full_name)}}

    def read_pull(self, r: Repo, number: int) -> dict[str, Any]:
        """GET /pulls/{number}: as `pull_json`, unless GitHub is still computing."""
        pull = self.pull_json(r, number)
        info = r.pull_info.setdefault(number, {})
        if info.get("computing", 0) > 0 and not pull["merged"]:
            info["computing"] -= 1
            pull.update(mergeable=None, mergeable_state="unknown")
        return pull
