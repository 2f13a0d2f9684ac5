"""A stateful fake of the GitHub REST API (the operations project38 uses), for httpx tests.

It behaves like GitHub where the controller depends on it: App JWTs are verified (RS256,
`iss`, at most 10 minutes), installation tokens are issued with an expiry and checked on every
call, `Accept` and `X-GitHub-Api-Version` are required, request bodies must carry the fields
GitHub's REST description marks required, unknown operations are 404. Failures and rate limits
can be scripted. Use `httpx.AsyncClient(transport=fake.transport())`.

Pull requests beyond creation (mergeability, merge, update-branch, reviews, branch deletion) are
in `github_pulls.py`, check runs and commit statuses in `github_checks.py`, what a test arranges
around them in `github_arrange.py`, and the webhooks built from this state in
`github_events.py`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.github_arrange import PullArranging
from tests.fakes.github_checks import route_checks
from tests.fakes.github_git import route_git
from tests.fakes.github_pulls import route_pulls

API_VERSION = "2022-11-28"


def make_key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@dataclass
class Repo:
    full_name: str
    default_branch: str = "main"
    branches: dict[str, str] = field(default_factory=dict)      # branch -> commit sha
    commits: dict[str, str] = field(default_factory=dict)       # commit sha -> tree sha
    trees: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # one level each
    blobs: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # commit -> path -> blob
    pulls: dict[int, tuple[str, str]] = field(default_factory=dict)  # number -> (head, base)
    pull_states: dict[int, dict[str, Any]] = field(default_factory=dict)  # state, merged
    pull_info: dict[int, dict[str, Any]] = field(default_factory=dict)  # title, body (POSTed)
    messages: dict[str, str] = field(default_factory=dict)  # commit sha -> message
    parents: dict[str, list[str]] = field(default_factory=dict)  # commit sha -> parents
    # Branch protection's "require branches to be up to date": only then does GitHub say
    # `behind` (and refuse the merge of a pull request that is).
    up_to_date: bool = False


@dataclass
class Scripted:
    """A canned answer for the next matching request(s)."""

    method: str
    path: re.Pattern[str]
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int = 1


class FakeGitHub(PullArranging):
    def __init__(self, *, app_id: str = "1034567", public_key: str,
                 clock: Callable[[], float] = time.time, host: str = "https://api.github.com",
                 app_slug: str = "project38"):
        self.app_id = app_id
        self.app_slug = app_slug
        self.public_key = public_key
        self.clock = clock
        self.host = host.rstrip("/")
        self.installations: dict[int, set[str]] = {}
        self.repos: dict[str, Repo] = {}
        self.tokens: dict[str, tuple[int, float]] = {}  # token -> (installation, expires)
        self.token_requests: list[int] = []
        self.check_runs: list[dict[str, Any]] = []
        self.issues: dict[str, list[dict[str, Any]]] = {}
        # Comments by (repo, issue or pull number), reactions by (repo, comment id), and each
        # login's permission by (repo, login) (`none` when unset, as GitHub answers).
        self.comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.reactions: dict[tuple[str, int], list[str]] = {}
        self.permissions: dict[tuple[str, str], str] = {}
        self.requests: list[httpx.Request] = []
        self.scripted: list[Scripted] = []
        self.lost: list[Scripted] = []  # carried out, then answered 5xx
        self._ids = itertools.count(1)
        # The App webhook's deliveries (hook-delivery-item plus what was sent), newest last,
        # and where a redelivery is sent: an async callable (headers, body) -> status code.
        self.hook_deliveries: list[dict[str, Any]] = []
        self.redeliver_to: Callable[[dict[str, str], bytes], Any] | None = None
        self.redelivered: list[str] = []  # GUIDs asked again, in order
        self._init_pulls()  # reviews, statuses, merges, deleted_refs (github_arrange.py)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # --- arranging ------------------------------------------------------------------------

    def install(self, installation_id: int, *repos: str) -> None:
        self.installations.setdefault(installation_id, set()).update(repos)
        for name in repos:
            self.repos.setdefault(name, Repo(name))

    def commit(self, repo: str, files: dict[str, str], *, branch: str = "main") -> str:
        """Make `files` the whole content of `branch` (git's nested trees, one per folder) in
        a commit whose parent is the branch's head (the default branch's for a new branch);
        returns the new commit SHA."""
        r = self.repos[repo]
        parent = r.branches.get(branch) or (r.branches.get(r.default_branch)
                                            if branch != r.default_branch else None)
        blobs: dict[str, str] = {}
        for path, text in files.items():
            data = text.encode()
            sha = _sha(b"blob %d\0" % len(data) + data)
            r.blobs[sha] = data
            blobs[path] = sha
        tree_sha = self._tree(r, blobs)
        commit_sha = _sha(f"{tree_sha}{len(r.commits)}".encode())
        r.commits[commit_sha] = tree_sha
        r.files[commit_sha] = blobs
        r.parents[commit_sha] = [parent] if parent else []
        r.branches[branch] = commit_sha
        return commit_sha

    def _tree(self, r: Repo, blobs: dict[str, str]) -> str:
        folders: dict[str, dict[str, str]] = {}
        entries: list[dict[str, Any]] = []
        for path, sha in sorted(blobs.items()):
            head, sep, rest = path.partition("/")
            if sep:
                folders.setdefault(head, {})[rest] = sha
            else:
                entries.append({"path": path, "mode": "100644", "type": "blob", "sha": sha,
                                "size": len(r.blobs[sha]),
                                "url": f"{self.host}/repos/{r.full_name}/git/blobs/{sha}"})
        for name, inner in sorted(folders.items()):
            sub = self._tree(r, inner)
            entries.append({"path": name, "mode": "040000", "type": "tree", "sha": sub,
                            "url": f"{self.host}/repos/{r.full_name}/git/trees/{sub}"})
        entries.sort(key=lambda e: e["path"])
        sha = _sha(repr(entries).encode())
        r.trees[sha] = entries
        return sha

    def _flatten(self, r: Repo, tree_sha: str, prefix: str = "") -> list[dict[str, Any]]:
        flat = []
        for entry in r.trees[tree_sha]:
            flat.append({**entry, "path": prefix + entry["path"]})
            if entry["type"] == "tree":
                flat.extend(self._flatten(r, entry["sha"], prefix + entry["path"] + "/"))
        return flat

    def open_issue(self, repo: str, number: int, *, title: str, body: str = "",
                   author: str = "dana-ops", association: str = "MEMBER") -> None:
        self.issues.setdefault(repo, []).append({
            "number": number, "state": "open", "title": title, "body": body, "labels": [],
            "user": {"login": author}, "author_association": association})

    def record_delivery(self, event: str, body: bytes, headers: dict[str, str], *,
                        status_code: int, delivered_at: str | None = None,
                        redelivery: bool = False) -> dict[str, Any]:
        """An attempt GitHub made to deliver a webhook to the App's URL, as it lists it."""
        import json as _json

        payload = _json.loads(body)
        attempt = {
            "id": next(self._ids), "guid": headers["X-GitHub-Delivery"],
            "delivered_at": delivered_at or datetime.fromtimestamp(
                self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "redelivery": redelivery, "duration": 0.2,
            "status": "OK" if 200 <= status_code < 300 else
            "Failed to connect to host" if status_code == 0
            else f"Invalid HTTP Response: {status_code}",
            "status_code": status_code, "event": event, "action": payload.get("action"),
            "installation_id": (payload.get("installation") or {}).get("id"),
            "repository_id": (payload.get("repository") or {}).get("id"),
            "throttled_at": None, "_headers": dict(headers), "_body": body}
        self.hook_deliveries.append(attempt)
        return attempt

    @property
    def write_calls(self) -> list[httpx.Request]:
        """Requests that change something on GitHub (token requests excluded)."""
        return [q for q in self.requests if q.method in ("POST", "PATCH", "PUT", "DELETE")
                and not q.url.path.endswith("/access_tokens")]

    def lose_answer_next(self, method: str, path_regex: str, *, times: int = 1,
                         status: int = 502) -> None:
        """The next matching request is carried out, then answered `status` instead of its
        answer: what GitHub's edge does now and then, and why a write must not be resent
        blind."""
        self.lost.append(Scripted(method, re.compile(path_regex), status, {},
                                  {"message": "Server Error"}, times))

    def fail_next(self, method: str, path_regex: str, status: int, *, times: int = 1,
                  headers: dict[str, str] | None = None, body: Any = None) -> None:
        self.scripted.append(Scripted(method, re.compile(path_regex), status, headers or {},
                                      body if body is not None else {"message": "scripted"},
                                      times))

    # --- serving --------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        response = self._handle(request)
        path = request.url.path.removeprefix(httpx.URL(self.host).path.rstrip("/"))
        for lost in self.lost:
            if lost.method == request.method and lost.path.fullmatch(path) \
                    and response.status_code < 400:
                lost.times -= 1
                if lost.times <= 0:
                    self.lost.remove(lost)
                return httpx.Response(lost.status, json=lost.body)
        return response

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        prefix = httpx.URL(self.host).path.rstrip("/")
        if prefix and path.startswith(prefix):
            path = path[len(prefix):]
        for script in self.scripted:
            if script.method == request.method and script.path.fullmatch(path):
                script.times -= 1
                if script.times <= 0:
                    self.scripted.remove(script)
                return httpx.Response(script.status, headers=script.headers, json=script.body)
        if request.headers.get("accept") != "application/vnd.github+json":
            return _error(415, "Accept must be application/vnd.github+json")
        if request.headers.get("x-github-api-version") != API_VERSION:
            return _error(400, "X-GitHub-Api-Version missing or unsupported")
        match = re.fullmatch(r"/app/installations/(\d+)/access_tokens", path)
        if match and request.method == "POST":
            return self._access_token(request, int(match[1]))
        if path.startswith("/app/hook/"):
            refused = self._app_jwt_refused(request)
            return refused if refused is not None else self._app_hook(request, path)
        installation = self._authorised(request)
        if installation is None:
            return _error(401, "Bad credentials")
        return self._route(request, path, installation)

    def _app_jwt_refused(self, request: httpx.Request) -> httpx.Response | None:
        """None when the request carries a valid App JWT, else GitHub's 401."""
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(auth[7:], self.public_key, algorithms=["RS256"],
                                options={"verify_exp": False, "verify_iat": False})
        except jwt.PyJWTError as exc:
            return _error(401, f"A JSON web token could not be decoded: {exc}")
        now = self.clock()
        if str(claims.get("iss")) != self.app_id:
            return _error(401, "'Issuer' claim ('iss') must be an Integer")
        if claims["exp"] - claims["iat"] > 600 or claims["exp"] <= now or claims["iat"] > now:
            return _error(401, "'Expiration time' claim ('exp') is too far in the future")
        return None

    def _app_hook(self, request: httpx.Request, path: str) -> httpx.Response:
        """GET /app/hook/deliveries (newest first, cursor pages), POST .../{id}/attempts."""
        if request.method == "GET" and path == "/app/hook/deliveries":
            size = min(100, int(request.url.params.get("per_page", "30")))
            cursor = request.url.params.get("cursor")
            items = sorted(self.hook_deliveries, key=lambda d: d["id"], reverse=True)
            if cursor is not None:
                items = [d for d in items if d["id"] <= int(cursor)]
            page, rest = items[:size], items[size:]
            headers = {}
            if rest:
                headers["Link"] = (f'<{self.host}/app/hook/deliveries?per_page={size}'
                                   f'&cursor={rest[0]["id"]}>; rel="next"')
            return httpx.Response(200, headers=headers, json=[
                {k: v for k, v in d.items() if not k.startswith("_")} for d in page])
        match = re.fullmatch(r"/app/hook/deliveries/(\d+)/attempts", path)
        if request.method == "POST" and match:
            found = [d for d in self.hook_deliveries if d["id"] == int(match[1])]
            if not found:
                return _error(404, "Not Found")
            self.redelivered.append(found[0]["guid"])
            if self.redeliver_to is not None:  # GitHub sends it again a moment later
                import asyncio

                asyncio.get_running_loop().create_task(self._resend(found[0]))
            return httpx.Response(202, json={})
        return _error(404, "Not Found")

    async def _resend(self, attempt: dict[str, Any]) -> None:
        assert self.redeliver_to is not None
        status = await self.redeliver_to(attempt["_headers"], attempt["_body"])
        self.record_delivery(attempt["event"], attempt["_body"], attempt["_headers"],
                             status_code=status, redelivery=True)

    def _access_token(self, request: httpx.Request, installation_id: int) -> httpx.Response:
        refused = self._app_jwt_refused(request)
        if refused is not None:
            return refused
        now = self.clock()
        if installation_id not in self.installations:
            return _error(404, "Not Found")
        self.token_requests.append(installation_id)
        token = f"ghs_{next(self._ids):06d}{installation_id}"
        expires = now + 3600
        self.tokens[token] = (installation_id, expires)
        return httpx.Response(201, json={
            "token": token, "repository_selection": "selected",
            "expires_at": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "permissions": {"checks": "write", "contents": "read", "issues": "write"}})

    def _authorised(self, request: httpx.Request) -> int | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("token "):
            return None
        found = self.tokens.get(auth[6:])
        if found is None or found[1] <= self.clock():
            return None
        return found[0]

    def _route(self, request: httpx.Request, path: str, installation: int) -> httpx.Response:
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        if not match or match[1] not in self.repos:
            return _error(404, "Not Found")
        repo, rest = self.repos[match[1]], match[2] or ""
        if match[1] not in self.installations.get(installation, set()):
            return _error(403, "Resource not accessible by integration")
        body = _json(request)
        method = request.method
        if method == "GET" and rest == "":
            return httpx.Response(200, json={"full_name": repo.full_name,
                                             "default_branch": repo.default_branch})
        if method == "GET" and (m := re.fullmatch(r"/branches/([^/]+)", rest)):
            if m[1] not in repo.branches:
                return _error(404, "Branch not found")
            head = repo.branches[m[1]]
            return httpx.Response(200, json={
                "name": m[1], "protected": False,
                "commit": {"sha": head, "commit": {"tree": {"sha": repo.commits[head]}}}})
        if method == "GET" and (m := re.fullmatch(r"/git/commits/([0-9a-f]{40})", rest)):
            if m[1] not in repo.commits:
                return _error(404, "Not Found")
            return httpx.Response(200, json={
                "sha": m[1], "tree": {"sha": repo.commits[m[1]]},
                "message": repo.messages.get(m[1], "a commit"),
                "parents": [{"sha": p} for p in repo.parents.get(m[1], [])]})
        if method == "GET" and (m := re.fullmatch(r"/git/trees/([0-9a-f]{40}|[^/]+)", rest)):
            tree_sha = repo.commits.get(m[1], m[1])
            if tree_sha not in repo.trees:
                return _error(404, "Not Found")
            recursive = request.url.params.get("recursive") not in (None, "", "0", "false")
            entries = self._flatten(repo, tree_sha) if recursive else repo.trees[tree_sha]
            return httpx.Response(200, json={"sha": tree_sha, "truncated": False,
                                             "tree": entries})
        if method == "GET" and (m := re.fullmatch(r"/contents/(.+)", rest)):
            # A file's content (a folder's listing is not modelled): at `ref` (a commit SHA
            # or a branch), else the default branch; base64 with line breaks, as GitHub sends it.
            ref = request.url.params.get("ref") or repo.default_branch
            commit = repo.branches.get(ref, ref)
            wanted = unquote(m[1])
            sha = repo.files.get(commit, {}).get(wanted)
            if sha is None:
                return _error(404, "Not Found")
            data = repo.blobs[sha]
            return httpx.Response(200, json={
                "type": "file", "encoding": "base64", "size": len(data),
                "name": wanted.rpartition("/")[2], "path": wanted, "sha": sha,
                "content": base64.encodebytes(data).decode()})
        if method == "GET" and (m := re.fullmatch(r"/pulls/(\d+)/files", rest)):
            if int(m[1]) not in repo.pulls:
                return _error(404, "Not Found")
            tip = self.pull_head(repo, int(m[1]))
            onto = repo.branches.get(repo.pulls[int(m[1])][1])
            since = self.merge_base(repo, tip, onto) if tip and onto else None
            new = repo.files.get(tip or "", {})
            old = repo.files.get(since or onto or "", {})
            changed = sorted(p for p in set(new) | set(old) if new.get(p) != old.get(p))
            return httpx.Response(200, json=_page(request, [
                {"filename": p, "status": "removed" if p not in new else
                 "added" if p not in old else "modified"} for p in changed]))
        if method == "GET" and (m := re.fullmatch(r"/git/blobs/([0-9a-f]{40})", rest)):
            if m[1] not in repo.blobs:
                return _error(404, "Not Found")
            data = repo.blobs[m[1]]
            return httpx.Response(200, json={"sha": m[1], "size": len(data),
                                             "encoding": "base64",
                                             "content": base64.encodebytes(data).decode()})
        issues = self.issues.setdefault(repo.full_name, [])
        if method == "GET" and rest == "/issues":
            state = request.url.params.get("state", "open")
            labels = set(filter(None, request.url.params.get("labels", "").split(",")))
            found = [i for i in issues if i["state"] == state
                     and labels <= {lab["name"] for lab in i["labels"]}]
            return httpx.Response(200, json=_page(request, found))
        if method == "POST" and rest == "/issues":
            if "title" not in body:
                return _error(422, "Invalid request: missing title")
            issue = {"number": len(issues) + 1, "state": "open", "title": body["title"],
                     "body": body.get("body", ""),
                     "labels": [{"name": n} for n in body.get("labels", [])]}
            issues.append(issue)
            return httpx.Response(201, json=issue)
        if method == "POST" and (m := re.fullmatch(r"/issues/(\d+)/comments", rest)):
            if "body" not in body:
                return _error(422, "Invalid request: missing body")
            number = int(m[1])
            found = [i for i in issues if i["number"] == number]
            if not found and number not in repo.pulls:
                return _error(404, "Not Found")
            for issue in found:
                issue.setdefault("comments_list", []).append(body["body"])
            comment = {"id": next(self._ids), "body": body["body"],
                       "user": {"login": f"{self.app_slug}[bot]", "type": "Bot"}}
            self.comments.setdefault((repo.full_name, number), []).append(comment)
            return httpx.Response(201, json=comment)
        if method == "POST" and (m := re.fullmatch(r"/issues/(\d+)/labels", rest)):
            names = body.get("labels")
            if not isinstance(names, list) or not names:
                return _error(422, "Invalid request: labels")
            number = int(m[1])
            targets = [i["labels"] for i in issues if i["number"] == number]
            if number in repo.pulls:
                info = repo.pull_info.setdefault(number, {})
                info["labels"] = sorted(set(info.get("labels", [])) | set(names))
                return httpx.Response(200, json=[{"name": n} for n in info["labels"]])
            if not targets:
                return _error(404, "Not Found")
            have = {lab["name"] for lab in targets[0]}
            targets[0].extend({"name": n} for n in names if n not in have)
            return httpx.Response(200, json=targets[0])
        if method == "GET" and (m := re.fullmatch(r"/issues/(\d+)/comments", rest)):
            listed = self.comments.get((repo.full_name, int(m[1])), [])
            return httpx.Response(200, json=_page(request, listed))
        if method == "POST" and (m := re.fullmatch(r"/issues/comments/(\d+)/reactions", rest)):
            content = body.get("content")
            if content not in ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket",
                               "eyes"):
                return _error(422, "Invalid request: content")
            given = self.reactions.setdefault((repo.full_name, int(m[1])), [])
            status = 200 if content in given else 201  # an existing reaction: 200
            if content not in given:
                given.append(content)
            return httpx.Response(status, json={"id": next(self._ids), "content": content})
        if method == "GET" and (m := re.fullmatch(r"/collaborators/([^/]+)/permission", rest)):
            role = self.permissions.get((repo.full_name, m[1]), "none")
            base = {"maintain": "write", "triage": "read"}.get(role, role)
            return httpx.Response(200, json={  # `permission` is the base of `role_name`
                "permission": base if base in ("admin", "write", "read") else "none",
                "role_name": role, "user": {"login": m[1]}})
        if method == "GET" and (m := re.fullmatch(r"/issues/(\d+)", rest)):
            for issue in issues:
                if issue["number"] == int(m[1]):
                    return httpx.Response(200, json={"user": {"login": "someone"}, **issue})
            if int(m[1]) in repo.pulls:
                pull = self.pull_json(repo, int(m[1]))
                return httpx.Response(200, json={**pull, "pull_request": {
                    "url": f"{self.host}/repos/{repo.full_name}/pulls/{m[1]}"}})
            return _error(404, "Not Found")
        for route in (route_git, route_pulls, route_checks):
            answer = route(self, repo, request, rest, body)
            if answer is not None:
                return answer
        if method == "PATCH" and (m := re.fullmatch(r"/issues/(\d+)", rest)):
            for issue in issues:
                if issue["number"] == int(m[1]):
                    issue.update({k: v for k, v in body.items() if k != "labels"})
                    return httpx.Response(200, json=issue)
            return _error(404, "Not Found")
        return _error(404, "Not Found")


def _page(request: httpx.Request, items: list[Any]) -> list[Any]:
    size = int(request.url.params.get("per_page", "30"))
    page = int(request.url.params.get("page", "1"))
    return items[(page - 1) * size: page * size]


def _json(request: httpx.Request) -> dict[str, Any]:
    if not request.content:
        return {}
    import json

    value = json.loads(request.content)
    return value if isinstance(value, dict) else {}


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message,
                                        "documentation_url": "https://docs.github.com/rest"})
