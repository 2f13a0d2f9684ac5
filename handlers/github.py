"""GitHub webhooks: verify X-Hub-Signature-256, parse, and derive reconcile keys.

Sans-I/O. Event names stay strings (GitHub keeps adding events); payloads are read defensively
because old events lack new fields and new events carry fields we do not know.
Keys: `repo:owner/name`, `pull:owner/name#N`, `issue:owner/name#N`, `installation:ID`, and
for GitOps `manifests:owner/name` (a push to the default branch that touches the manifests
folder; a repository added to an installation) and `plan:owner/name#N` (a pull request opened
or updated).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from handlers.base import Delivery, Rejection, header, json_body, selected_headers

SOURCE = "github"

KEPT_HEADERS = (
    "X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-ID", "X-GitHub-Hook-Installation-Target-Type",
    "User-Agent", "Content-Type",
)

PULL_EVENTS = frozenset({
    "pull_request", "pull_request_review", "pull_request_review_comment",
    "pull_request_review_thread",
})
CHECK_EVENTS = {"check_suite": "check_suite", "check_run": "check_run",
                "workflow_run": "workflow_run"}
REPO_EVENTS = frozenset({"push", "repository", "create", "delete"})
ISSUE_EVENTS = frozenset({"issues", "issue_comment"})
INSTALLATION_EVENTS = frozenset({"installation", "installation_repositories"})


def verify_signature(body: bytes, signature_256: str | None, secret: str) -> None:
    """Check `X-Hub-Signature-256: sha256=<hex>` in constant time; raise a 401 otherwise."""
    if not signature_256:
        raise Rejection(401, "missing X-Hub-Signature-256 header")
    scheme, _, offered = signature_256.partition("=")
    if scheme != "sha256" or not offered:
        raise Rejection(401, "X-Hub-Signature-256 must look like sha256=<hex digest>")
    expected = hmac.digest(secret.encode(), body, hashlib.sha256).hex()
    if not hmac.compare_digest(expected, offered.strip().lower()):
        raise Rejection(401, "signature does not match the body and the configured secret")


PLANNED_PULL_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review",
                                  "edited"})


def from_http(headers: Mapping[str, str], body: bytes, *, secret: str,
              manifests_path: str = "manifests/") -> Delivery:
    """Verify and parse one GitHub delivery, or raise `Rejection`."""
    signature = header(headers, "X-Hub-Signature-256")
    if signature is None and header(headers, "X-Hub-Signature") is not None:
        raise Rejection(401, "only the sha1 X-Hub-Signature was sent; X-Hub-Signature-256 is "
                             "required")
    verify_signature(body, signature, secret)
    event = header(headers, "X-GitHub-Event")
    guid = header(headers, "X-GitHub-Delivery")
    if not event:
        raise Rejection(400, "missing X-GitHub-Event header")
    if not guid:
        raise Rejection(400, "missing X-GitHub-Delivery header")
    payload, text = json_body(headers, body)
    action = payload.get("action")
    return Delivery(
        source=SOURCE,
        hook=_hook(headers, payload),
        guid=guid,
        event=event,
        action=action if isinstance(action, str) else None,
        headers=selected_headers(headers, KEPT_HEADERS),
        payload_json=text,
        keys=derive_keys(event, payload, manifests_path=manifests_path),
    )


def _hook(headers: Mapping[str, str], payload: Mapping[str, Any]) -> str:
    hook_id = header(headers, "X-GitHub-Hook-ID")
    if hook_id:
        return hook_id
    installation = payload.get("installation")
    if isinstance(installation, dict) and installation.get("id") is not None:
        return f"installation/{installation['id']}"
    return ""


def _repo(payload: Mapping[str, Any]) -> str | None:
    repository = payload.get("repository")
    if isinstance(repository, dict):
        full_name = repository.get("full_name")
        if isinstance(full_name, str) and "/" in full_name:
            return full_name
    return None


def _number(obj: Any) -> int | None:
    if isinstance(obj, dict):
        number = obj.get("number")
        if isinstance(number, int) and not isinstance(number, bool):
            return number
    return None


def touches_manifests(payload: Mapping[str, Any], folder: str) -> bool:
    """Whether a push to the default branch may have changed the manifests folder. When the
    payload cannot say (no commit list, a forced push), assume it did: a reconcile that finds
    the folder's tree unchanged costs two reads and writes nothing."""
    if payload.get("forced") or payload.get("created"):
        return True
    commits = payload.get("commits")
    if not isinstance(commits, list) or not commits:
        return payload.get("before") != payload.get("after")
    for commit in commits:
        if not isinstance(commit, dict):
            return True
        for field in ("added", "modified", "removed"):
            paths = commit.get(field)
            if not isinstance(paths, list):
                return True
            if any(isinstance(p, str) and p.startswith(folder) for p in paths):
                return True
    return False


def _pushed_to_default_branch(payload: Mapping[str, Any]) -> bool:
    repository = payload.get("repository")
    default = repository.get("default_branch") if isinstance(repository, dict) else None
    return (isinstance(default, str) and payload.get("ref") == f"refs/heads/{default}"
            and not payload.get("deleted"))


def _added_repositories(payload: Mapping[str, Any]) -> list[str]:
    if payload.get("action") not in ("created", "added", "new_permissions_accepted"):
        return []
    found = []
    for field in ("repositories", "repositories_added"):
        repos = payload.get(field)
        for repo in repos if isinstance(repos, list) else ():
            name = repo.get("full_name") if isinstance(repo, dict) else None
            if isinstance(name, str) and "/" in name:
                found.append(name)
    return found


def derive_keys(event: str, payload: Mapping[str, Any], *,
                manifests_path: str = "manifests/") -> tuple[str, ...]:
    """The objects this event is a hint about; empty means nobody handles it (ignored)."""
    repo = _repo(payload)
    keys: list[str] = []
    if event in INSTALLATION_EVENTS:
        installation = payload.get("installation")
        if isinstance(installation, dict) and installation.get("id") is not None:
            keys.append(f"installation:{installation['id']}")
        keys.extend(f"manifests:{name}" for name in _added_repositories(payload))
    elif repo is None:
        return ()
    elif event in REPO_EVENTS:
        keys.append(f"repo:{repo}")
        if event == "push" and _pushed_to_default_branch(payload) \
                and touches_manifests(payload, manifests_path):
            keys.append(f"manifests:{repo}")
    elif event in PULL_EVENTS:
        number = _number(payload.get("pull_request")) or _number(payload)
        if number is not None:
            keys.append(f"pull:{repo}#{number}")
            if event == "pull_request" and payload.get("action") in PLANNED_PULL_ACTIONS:
                keys.append(f"plan:{repo}#{number}")
    elif event in CHECK_EVENTS:
        container = payload.get(CHECK_EVENTS[event])
        pulls = container.get("pull_requests") if isinstance(container, dict) else None
        for pull in pulls if isinstance(pulls, list) else ():
            number = _number(pull)
            if number is not None:
                keys.append(f"pull:{repo}#{number}")
    elif event in ISSUE_EVENTS:
        issue = payload.get("issue")
        number = _number(issue)
        if number is not None:
            is_pull = isinstance(issue, dict) and issue.get("pull_request") is not None
            keys.append(f"{'pull' if is_pull else 'issue'}:{repo}#{number}")
    return tuple(dict.fromkeys(keys))
