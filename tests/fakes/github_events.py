"""Webhook deliveries built from the fake GitHub's state, shaped after GitHub's webhooks (the real
samples in tests/samples/pull_request and tests/samples/check_suite, and GitHub's webhook
reference): each builder returns (event name, payload) with `installation: {"id"}`,
`repository` and `sender`, for a test to sign and post.

As GitHub sends them: a `pull_request` opened, reopened or synchronized carries `mergeable:
null` and `mergeable_state: "unknown"` (GitHub computes them after the event); a review's state
is lower case (`approved`), its `pull_request` the simple shape (no mergeability); a check run's
and a check suite's `pull_requests` are the open pull requests of the same repository whose head
is that commit (none for a fork's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.fakes.github_arrange import public, user_json
from tests.fakes.github_checks import pulls_at, run_json
from tests.fakes.github_git import simple_pull

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub, Repo

PULL_ACTIONS = ("opened", "synchronize", "labeled", "unlabeled", "ready_for_review",
                "converted_to_draft", "closed", "reopened", "edited")
NOT_YET_COMPUTED = ("opened", "reopened", "synchronize")
FAILING = ("action_required", "cancelled", "timed_out", "failure", "stale")


def _envelope(fake: FakeGitHub, repo: str, installation_id: int,
              sender: str) -> dict[str, Any]:
    return {"repository": fake.repo_json(repo), "sender": user_json(sender),
            "installation": {"id": installation_id}}


def _first_parent(r: Repo, sha: str) -> str | None:
    parents = r.parents.get(sha) or []
    return parents[0] if parents else None


def _branches_at(r: Repo, sha: str) -> list[str]:
    return sorted(name for name, head in r.branches.items() if head == sha)


def pull_request_event(fake: FakeGitHub, repo: str, number: int, action: str,
                       installation_id: int, *, sender: str | None = None,
                       before: str | None = None,
                       label: str | None = None) -> tuple[str, dict[str, Any]]:
    """`pull_request` with `action`; `synchronize` has `before` (default: the head's first
    parent) and `after`; `labeled`/`unlabeled` have `label` (default: the last label)."""
    if action not in PULL_ACTIONS:
        raise ValueError(f"pull_request action {action!r}")
    r = fake.repos[repo]
    pull = fake.pull_json(r, number)
    if action in NOT_YET_COMPUTED and not pull["merged"]:
        pull.update(mergeable=None, mergeable_state="unknown")
    payload: dict[str, Any] = {"action": action, "number": number, "pull_request": pull}
    if action == "synchronize":
        head = pull["head"]["sha"]
        payload["before"] = before or _first_parent(r, head)
        payload["after"] = head
    if action in ("labeled", "unlabeled"):
        names = [lab["name"] for lab in pull["labels"]]
        name = label or (names[-1] if names else None)
        if name is None:
            raise ValueError("a labeled/unlabeled event needs a label")
        payload["label"] = {"name": name}
    sender = sender or pull["user"]["login"]
    return "pull_request", {**payload, **_envelope(fake, repo, installation_id, sender)}


def review_event(fake: FakeGitHub, repo: str, number: int, review: dict[str, Any],
                 installation_id: int, action: str = "submitted") -> tuple[str, dict[str, Any]]:
    """`pull_request_review` (submitted, edited, dismissed) for a review `add_review` made."""
    if action not in ("submitted", "edited", "dismissed"):
        raise ValueError(f"pull_request_review action {action!r}")
    shown = {**public(review), "state": str(review["state"]).lower()}
    payload = {"action": action, "review": shown,
               "pull_request": simple_pull(fake.pull_json(fake.repos[repo], number))}
    sender = review["user"]["login"]
    return "pull_request_review", {**payload, **_envelope(fake, repo, installation_id, sender)}


def _suite(fake: FakeGitHub, r: Repo, sha: str, app: dict[str, Any],
           pulls: list[dict[str, Any]]) -> dict[str, Any]:
    runs = [run for run in fake.check_runs if run["_repo"] == r.full_name
            and run["head_sha"] == sha and run["app"]["slug"] == app["slug"]]
    latest: dict[str, dict[str, Any]] = {}
    for run in runs:
        latest[run["name"]] = run
    done = all(run["status"] == "completed" for run in latest.values())
    conclusions = [run["conclusion"] for run in latest.values()]
    conclusion = None
    if done and conclusions:
        worst = [c for c in FAILING if c in conclusions]
        conclusion = worst[0] if worst else "success" if "success" in conclusions \
            else conclusions[0]
    branches = _branches_at(r, sha)
    suite_id = fake.suite_id(r.full_name, sha, app["slug"])
    return {"id": suite_id, "node_id": f"CS_{suite_id}",
            "head_branch": branches[0] if branches else None, "head_sha": sha,
            "status": "completed" if done else "in_progress", "conclusion": conclusion,
            "url": f"{fake.host}/repos/{r.full_name}/check-suites/{suite_id}",
            "before": _first_parent(r, sha), "after": sha,
            "pull_requests": pulls, "app": app, "created_at": fake.now(),
            "updated_at": fake.now(), "latest_check_runs_count": len(latest),
            "check_runs_url": f"{fake.host}/repos/{r.full_name}/check-suites/{suite_id}"
                              "/check-runs"}


def check_run_event(fake: FakeGitHub, repo: str, run: dict[str, Any], installation_id: int,
                    action: str = "completed") -> tuple[str, dict[str, Any]]:
    """`check_run` (created, completed, rerequested, requested_action) for a stored run."""
    r = fake.repos[repo]
    shown = run_json(fake, r, run)
    shown["check_suite"] = _suite(fake, r, run["head_sha"], run["app"],
                                  shown["pull_requests"])
    sender = f"{run['app']['slug']}[bot]"
    return "check_run", {"action": action, "check_run": shown,
                         **_envelope(fake, repo, installation_id, sender)}


def check_suite_event(fake: FakeGitHub, repo: str, sha: str, installation_id: int, *,
                      app: str = "ci", action: str = "completed") -> tuple[str, dict[str, Any]]:
    """`check_suite` of `app`'s runs on `sha` (status and conclusion from its latest runs)."""
    r = fake.repos[repo]
    suite = _suite(fake, r, sha, fake.app_json(app), pulls_at(fake, r, sha))
    return "check_suite", {"action": action, "check_suite": suite,
                           **_envelope(fake, repo, installation_id, f"{app}[bot]")}


def status_event(fake: FakeGitHub, repo: str, sha: str, context: str, state: str,
                 installation_id: int) -> tuple[str, dict[str, Any]]:
    """`status` for the newest status `set_status` made with that context and state (ids and
    times from it; made up when there is none: call `set_status` first so the API agrees)."""
    r = fake.repos[repo]
    found = [s for s in fake.statuses if s["_repo"] == repo and s["_sha"] == sha
             and s["context"] == context and s["state"] == state]
    status: dict[str, Any] = found[-1] if found else {"id": next(fake._ids), "description": None,
                                      "target_url": None, "created_at": fake.now(),
                                      "updated_at": fake.now(),
                                      "creator": user_json("ci-bot")}
    commit_url = f"{fake.host}/repos/{repo}/commits/{sha}"
    payload = {
        "id": status["id"], "sha": sha, "name": repo, "target_url": status["target_url"],
        "context": context, "description": status["description"], "state": state,
        "commit": {"sha": sha, "url": commit_url,
                   "html_url": f"https://github.com/{repo}/commit/{sha}",
                   "commit": {"message": r.messages.get(sha, "a commit")}},
        "branches": [{"name": name, "commit": {"sha": sha, "url": commit_url},
                      "protected": False} for name in _branches_at(r, sha)],
        "created_at": status["created_at"], "updated_at": status["updated_at"]}
    sender = status["creator"]["login"]
    return "status", {**payload, **_envelope(fake, repo, installation_id, sender)}
