"""The GitHub App client against a stateful fake GitHub: JWTs, token reuse, real operations,
short retries, rate limits slept out when short and handed back as Waiting when long, and 4xx
refusals terminal with GitHub's message."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest

from controller.clients.github import GitHubApp, load_private_key
from controller.clients.github_errors import GitHubError, GitHubUnavailable
from controller.reconcile.errors import RateLimited, TerminalError, Waiting
from tests.fakes.github import FakeGitHub, make_key_pair

PRIVATE, PUBLIC = make_key_pair()
REPO = "octo-org/infra"
INSTALLATION = 51234567


@dataclass
class Clock:
    """Wall clock the test controls; `sleep` advances it and records each wait."""

    now: float = field(default_factory=time.time)
    waits: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeGitHub:
    github = FakeGitHub(public_key=PUBLIC, clock=clock)
    github.install(INSTALLATION, REPO)
    return github


@pytest.fixture
async def app(fake: FakeGitHub, clock: Clock) -> AsyncIterator[GitHubApp]:
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        yield GitHubApp(app_id=fake.app_id, private_key=PRIVATE, http=http, clock=clock,
                        sleep=clock.sleep)


def test_app_jwt_claims(clock: Clock) -> None:
    """RS256, issued 60 s in the past, expiring within GitHub's 10 minutes, issuer = app id."""
    app = GitHubApp(app_id="42", private_key=PRIVATE, http=httpx.AsyncClient(), clock=clock)
    claims = jwt.decode(app.app_jwt(), PUBLIC, algorithms=["RS256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == "42"
    assert claims["iat"] == int(clock.now) - 60
    assert 0 < claims["exp"] - int(clock.now) and claims["exp"] - claims["iat"] <= 600


def test_private_key_from_pem_escaped_or_path(tmp_path: Path) -> None:
    """The key may be the PEM, the PEM with escaped newlines (env vars), or a file path."""
    path = tmp_path / "app.pem"
    path.write_text(PRIVATE)
    escaped = PRIVATE.replace("\n", "\\n")
    assert load_private_key(PRIVATE) == load_private_key(escaped) == load_private_key(str(path))


async def test_installation_token_reused_until_five_minutes_before_expiry(
        app: GitHubApp, fake: FakeGitHub, clock: Clock) -> None:
    """One token for many calls; a new one once fewer than 5 minutes of it are left."""
    for _ in range(3):
        await app.repository(REPO, installation_id=INSTALLATION)
    assert fake.token_requests == [INSTALLATION]
    clock.now += 3600 - 301  # 5 min 1 s left: still good
    await app.repository(REPO, installation_id=INSTALLATION)
    assert fake.token_requests == [INSTALLATION]
    clock.now += 2  # under 5 minutes left: replaced before it can expire mid-reconcile
    await app.repository(REPO, installation_id=INSTALLATION)
    assert fake.token_requests == [INSTALLATION, INSTALLATION]


async def test_operations_are_real_rest_calls(app: GitHubApp, fake: FakeGitHub) -> None:
    """Tree, blob, branch, check runs and issues: the fake accepts only GitHub's shapes."""
    head = fake.commit(REPO, {"manifests/a.yaml": "kind: Agent\n", "README.md": "hi"})
    assert await app.branch_head(REPO, "main", installation_id=INSTALLATION) == head
    commit, root = await app.branch_revision(REPO, "main", installation_id=INSTALLATION)
    assert commit == head
    assert await app.commit_tree(REPO, head, installation_id=INSTALLATION) == root
    tree = await app.tree(REPO, head, installation_id=INSTALLATION)
    paths = {e["path"]: e["sha"] for e in tree["tree"] if e["type"] == "blob"}
    assert set(paths) == {"manifests/a.yaml", "README.md"}
    top = await app.tree(REPO, root, installation_id=INSTALLATION, recursive=False)
    assert {(e["path"], e["type"]) for e in top["tree"]} == {("manifests", "tree"),
                                                              ("README.md", "blob")}
    assert await app.blob(REPO, paths["manifests/a.yaml"],
                          installation_id=INSTALLATION) == b"kind: Agent\n"

    run = await app.create_check_run(REPO, installation_id=INSTALLATION, name="p38/reconcile",
                                     head_sha=head, status="in_progress")
    done = await app.update_check_run(REPO, run["id"], installation_id=INSTALLATION,
                                      status="completed", conclusion="success",
                                      output={"title": "Applied", "summary": "2 objects"})
    assert (done["conclusion"], fake.check_runs[0]["output"]["summary"]) == ("success",
                                                                             "2 objects")
    issue = await app.create_issue(REPO, installation_id=INSTALLATION, title="Invalid manifests",
                                   body="<!-- p38:invalid-manifests -->", labels=["p38"])
    assert [i["number"] for i in await app.open_issues(REPO, installation_id=INSTALLATION,
                                                       labels="p38")] == [issue["number"]]
    await app.update_issue(REPO, issue["number"], installation_id=INSTALLATION,
                           state="closed")
    assert await app.open_issues(REPO, installation_id=INSTALLATION, labels="p38") == []
    for request in fake.requests:
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2022-11-28"


async def test_missing_required_field_is_an_error_not_a_retry(app: GitHubApp,
                                                              fake: FakeGitHub) -> None:
    """A 422 (bad request) is raised at once with GitHub's message."""
    with pytest.raises(GitHubError) as caught:
        await app.call("POST", f"/repos/{REPO}/check-runs", installation_id=INSTALLATION,
                       json={"name": "p38/plan"})
    assert caught.value.status == 422 and "head_sha" in str(caught.value)
    assert len([r for r in fake.requests if r.url.path.endswith("/check-runs")]) == 1


async def test_retry_after_is_waited_out(app: GitHubApp, fake: FakeGitHub,
                                         clock: Clock) -> None:
    """429 with Retry-After: the client sleeps that long, then succeeds."""
    fake.fail_next("GET", rf"/repos/{REPO}", 429, headers={"Retry-After": "7"})
    assert (await app.repository(REPO, installation_id=INSTALLATION))["full_name"] == REPO
    assert clock.waits == [7.0]


async def test_primary_rate_limit_minutes_away_is_waiting_not_a_sleep(
        app: GitHubApp, fake: FakeGitHub, clock: Clock) -> None:
    """403 with x-ratelimit-remaining 0 and a reset two minutes away: no sleep; a Waiting
    (RateLimited) until the reset, so the worker is free and the key comes back then."""
    reset = int(clock.now) + 120
    fake.fail_next("GET", rf"/repos/{REPO}", 403, headers={
        "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        body={"message": "API rate limit exceeded"})
    with pytest.raises(RateLimited) as caught:
        await app.repository(REPO, installation_id=INSTALLATION)
    assert isinstance(caught.value, Waiting) and caught.value.firm and clock.waits == []
    assert 119 <= caught.value.requeue_after <= 122
    assert "rate limit" in caught.value.reason
    calls = len(fake.requests)
    clock.now += 60  # another key of the installation, before the reset: GitHub is not asked
    with pytest.raises(RateLimited) as again:
        await app.tree(REPO, "main", installation_id=INSTALLATION)
    assert len(fake.requests) == calls and 59 <= again.value.requeue_after <= 62
    clock.now = reset + 1  # after the reset, calls go through again
    assert (await app.repository(REPO, installation_id=INSTALLATION))["full_name"] == REPO


async def test_secondary_rate_limit_without_headers_waits_a_minute_as_a_requeue(
        app: GitHubApp, fake: FakeGitHub, clock: Clock) -> None:
    """GitHub's advice for a secondary limit with no hint is a minute: longer than a client
    sleeps, so it is a Waiting of 60 s."""
    fake.fail_next("GET", rf"/repos/{REPO}", 403,
                   body={"message": "You have exceeded a secondary rate limit."})
    with pytest.raises(RateLimited) as caught:
        await app.repository(REPO, installation_id=INSTALLATION)
    assert caught.value.requeue_after == 60.0 and clock.waits == []


async def test_refusals_are_terminal_with_githubs_message(app: GitHubApp,
                                                          fake: FakeGitHub) -> None:
    """A 404 or 422 cannot be fixed by retrying: terminal, with GitHub's own message."""
    fake.fail_next("GET", rf"/repos/{REPO}", 404, body={"message": "Not Found"})
    with pytest.raises(TerminalError) as caught:
        await app.repository(REPO, installation_id=INSTALLATION)
    assert f"GitHub GET /repos/{REPO}: 404 Not Found" in str(caught.value)


async def test_a_revoked_installation_token_is_renewed_once(app: GitHubApp, fake: FakeGitHub,
                                                            clock: Clock) -> None:
    """401 on a cached installation token (revoked early): a new token, the call again."""
    await app.repository(REPO, installation_id=INSTALLATION)
    fake.tokens.clear()  # GitHub forgot every token it issued
    assert (await app.repository(REPO, installation_id=INSTALLATION))["full_name"] == REPO
    assert fake.token_requests == [INSTALLATION, INSTALLATION]


async def test_server_errors_that_persist_are_handed_to_the_queue(app: GitHubApp,
                                                                 fake: FakeGitHub,
                                                                 clock: Clock) -> None:
    """A 503 that outlasts a few short retries (seconds, not minutes) is GitHubUnavailable:
    not terminal, the queue's backoff takes over."""
    fake.fail_next("GET", rf"/repos/{REPO}", 503, times=10)
    with pytest.raises(GitHubUnavailable):
        await app.repository(REPO, installation_id=INSTALLATION)
    assert len(clock.waits) == 3 and sum(clock.waits) < 10


async def test_server_errors_and_connection_errors_are_retried(app: GitHubApp,
                                                               fake: FakeGitHub,
                                                               clock: Clock) -> None:
    """502 twice then success: retried with growing backoff; a real 403 is not retried."""
    fake.fail_next("GET", rf"/repos/{REPO}", 502, times=2)
    await app.repository(REPO, installation_id=INSTALLATION)
    assert len(clock.waits) == 2 and clock.waits[1] > clock.waits[0]
    fake.fail_next("GET", rf"/repos/{REPO}", 403,
                   body={"message": "Resource not accessible by integration"})
    with pytest.raises(GitHubError) as caught:
        await app.repository(REPO, installation_id=INSTALLATION)
    assert caught.value.status == 403


async def test_connection_errors_are_retried(fake: FakeGitHub, clock: Clock) -> None:
    """A dropped connection is retried like a 5xx."""
    failures = iter([httpx.ConnectError("reset by peer")])

    def flaky(request: httpx.Request) -> httpx.Response:
        error = next(failures, None)
        if error is not None:
            raise error
        return fake.handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(flaky)) as http:
        app = GitHubApp(app_id=fake.app_id, private_key=PRIVATE, http=http, clock=clock,
                        sleep=clock.sleep)
        assert (await app.repository(REPO, installation_id=INSTALLATION))["full_name"] == REPO
    assert len(clock.waits) == 1


async def test_enterprise_server_base_url(clock: Clock) -> None:
    """GITHUB_API_URL points every call at a GitHub Enterprise Server."""
    fake = FakeGitHub(public_key=PUBLIC, clock=clock, host="https://ghe.example.com/api/v3")
    fake.install(INSTALLATION, REPO)
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        app = GitHubApp(app_id=fake.app_id, private_key=PRIVATE, http=http, clock=clock,
                        base_url="https://ghe.example.com/api/v3")
        await app.repository(REPO, installation_id=INSTALLATION)
    assert {str(r.url.host) for r in fake.requests} == {"ghe.example.com"}
    assert all(r.url.path.startswith("/api/v3/") for r in fake.requests)
