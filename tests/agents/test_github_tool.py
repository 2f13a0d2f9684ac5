"""The `github` tool: an agent from a repository reads that repository (a read-only GET through
the App's client, here the stateful fake GitHub), and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from controller.clients.tools import repo_path
from tests.e2e.test_gitops import REPO, GitOps, gitops  # noqa: F401 (the fixture)
from tests.helpers import wait_until

MANIFEST = """apiVersion: p38/v1
kind: Agent
metadata: {name: issues-count}
spec:
  description: Count the repository's open issues.
  code: agents/issues_count.py
  tools: [github]
"""
CODE = '''from p38_agent import ToolError


def run(task):
    found = task.tools.github.get(path="/issues", params={"state": "open"})
    try:
        task.tools.github.get(path="/../../orgs/octo-org/members")
        escaped = True
    except ToolError as exc:
        escaped = str(exc)
    return {"open": len(found["json"]), "escaped": escaped}
'''


async def test_an_agent_reads_its_own_repository(gitops: GitOps) -> None:  # noqa: F811
    gitops.fake.issues[REPO] = [{"number": 1, "state": "open", "title": "a", "body": "",
                                 "labels": []}]
    await gitops.push({"README.md": "infra\n", "manifests/issues.yaml": MANIFEST,
                       "agents/issues_count.py": CODE})
    client = gitops.client

    async def ready() -> bool:
        body = await (await client.get("/api/agents/issues-count")).json()
        return body.get("status") == "Ready"

    await wait_until(ready, what="the agent READY", store=gitops.store)
    url = (await (await client.post("/api/agents/issues-count/runs", json={})).json())["url"]

    async def finished() -> dict[str, Any] | None:
        run = await (await client.get(url)).json()
        return run if run["state"] == "finished" else None

    run = await wait_until(finished, what="the run", store=gitops.store)
    assert run["outcome"] == "succeeded", run
    output = run["result"]["output"]
    assert output["open"] == 1
    assert "is not a path below the repository" in output["escaped"]
    calls = run["tool_calls"]
    assert [(c["tool"], c["status"]) for c in calls] == [("github", "succeeded"),
                                                         ("github", "refused")]
    assert gitops.calls("GET", f"/repos/{REPO}/issues") >= 1
    assert gitops.calls("GET", "/orgs/") == 0


@pytest.mark.parametrize("path", ["/actions/secrets", "/actions/variables/TOKEN", "/hooks",
                                  "/hooks/1/config", "/keys", "/environments/prod/secrets",
                                  "/Actions/Variables", "/collaborators", "/dependabot/secrets"])
def test_the_github_tool_does_not_read_secrets_variables_hooks_or_keys(path: str) -> None:
    with pytest.raises(ValueError, match="does not read"):
        repo_path(path)
