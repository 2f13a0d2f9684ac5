"""Action runners: what each action kind does, registered with the executor by kind.

`manifest.create|update|delete` record what is applied from a source, `manifest.revision` the
revision acted on (the controller's own store). `github.*` report on GitHub through the App
client: check runs (a completing run PATCHes the one its start action created, found through
that action's recorded result) and the invalid-manifests issue, found by its hidden marker so
it is never opened twice. Runners are only called by the executor, which records each action
before it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.clients.github import GitHubApp
from controller.executor import ActionRunner
from controller.store import Store


def manifest_runners(store: Store) -> dict[str, ActionRunner]:
    async def apply(params: Mapping[str, Any]) -> Mapping[str, Any]:
        await store.execute("applied_object_upsert", params["source"], params["kind"],
                            params["name"], params["content_hash"], params["document"],
                            params.get("revision"))
        return {"applied": params["content_hash"]}

    async def delete(params: Mapping[str, Any]) -> Mapping[str, Any]:
        await store.execute("applied_object_delete", params["source"], params["kind"],
                            params["name"])
        return {"pruned": f"{params['kind']}/{params['name']}"}

    async def revision(params: Mapping[str, Any]) -> Mapping[str, Any]:
        await store.execute("manifest_revision_record", params["source"], params["revision"],
                            params.get("tree"), params["status"], params["objects"],
                            list(params.get("changes", [])), list(params.get("problems", [])))
        return {"recorded": params["revision"]}

    return {"manifest.create": apply, "manifest.update": apply, "manifest.delete": delete,
            "manifest.revision": revision}


def github_runners(github: GitHubApp, store: Store) -> dict[str, ActionRunner]:
    async def check_run(params: Mapping[str, Any]) -> Mapping[str, Any]:
        repo, installation = params["repo"], params["installation_id"]
        fields: dict[str, Any] = {"status": params["status"], "output": params["output"]}
        if "conclusion" in params:
            fields["conclusion"] = params["conclusion"]
        started = None
        if params.get("start_key"):
            started = await store.fetchval("action_result", params["start_key"])
        if started and started.get("check_run_id"):
            run = await github.update_check_run(repo, int(started["check_run_id"]),
                                                installation_id=installation, **fields)
        else:
            run = await github.create_check_run(repo, installation_id=installation,
                                                name=params["name"],
                                                head_sha=params["head_sha"], **fields)
        return {"check_run_id": run["id"]}

    async def find_issue(params: Mapping[str, Any]) -> dict[str, Any] | None:
        issues = await github.open_issues(params["repo"],
                                          installation_id=params["installation_id"])
        for issue in issues:
            if "pull_request" not in issue and params["marker"] in (issue.get("body") or ""):
                return issue
        return None

    async def issue_upsert(params: Mapping[str, Any]) -> Mapping[str, Any]:
        repo, installation = params["repo"], params["installation_id"]
        found = await find_issue(params)
        if found is not None:
            await github.update_issue(repo, int(found["number"]), installation_id=installation,
                                      title=params["title"], body=params["body"])
            return {"issue": found["number"], "updated": True}
        issue = await github.create_issue(repo, installation_id=installation,
                                          title=params["title"], body=params["body"],
                                          labels=list(params.get("labels", [])))
        return {"issue": issue["number"], "created": True}

    async def issue_close(params: Mapping[str, Any]) -> Mapping[str, Any]:
        repo, installation = params["repo"], params["installation_id"]
        found = await find_issue(params)
        if found is None:
            return {"issue": None}
        number = int(found["number"])
        await github.create_issue_comment(repo, number, installation_id=installation,
                                          body=params["comment"])
        await github.update_issue(repo, number, installation_id=installation, state="closed",
                                  state_reason="completed")
        return {"issue": number, "closed": True}

    return {"github.check_run": check_run, "github.issue_upsert": issue_upsert,
            "github.issue_close": issue_close}
