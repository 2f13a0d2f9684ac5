"""`/claude` with no GitHub App credentials, through the real app: what docs/claude.md says a
user sees (each command `Blocked` with its reason, a work command's task a DRY_RUN), and
that nothing is posted anywhere."""

from __future__ import annotations

import copy
from typing import Any

from controller.app import create_app
from controller.store import Store
from tests.e2e.test_commands import SAMPLE
from tests.helpers import github_payload, make_settings, wait_until

REPO = SAMPLE["repository"]["full_name"]
ISSUE = SAMPLE["issue"]["number"]


async def test_commands_without_app_credentials_are_blocked_dry_run(  # type: ignore[no-untyped-def]
        aiohttp_client, store: Store, dsn: str) -> None:
    """A work command: `Blocked, DryRun` and a DRY_RUN task saying what it would have done;
    `/claude status`: `Blocked, CannotVerify` (the author's permission cannot be read)."""
    client = await aiohttp_client(create_app(make_settings(dsn, workers=1)))
    status = copy.deepcopy(SAMPLE)
    status["comment"].update(id=SAMPLE["comment"]["id"] + 1, body="/claude status")
    for payload in (SAMPLE, status):
        headers, body = github_payload("issue_comment", payload)
        response = await client.post("/webhooks/github", data=body, headers=headers)
        assert response.status == 202, await response.text()
    work_key = f"command:{REPO}#{ISSUE}@{SAMPLE['comment']['id']}"
    status_key = f"command:{REPO}#{ISSUE}@{status['comment']['id']}"

    async def blocked() -> dict[str, dict[str, Any]] | None:
        items = (await (await client.get("/api/objects")).json())["items"]
        found = {i["key"]: i for i in items if i["key"] in (work_key, status_key)}
        return found if len(found) == 2 and all(
            i["status"] == "Blocked" for i in found.values()) else None

    found = await wait_until(blocked, what="the commands blocked", store=store)
    assert (found[work_key]["reason"], found[status_key]["reason"]) == ("DryRun",
                                                                        "CannotVerify")
    assert "would have checked @" in found[work_key]["message"]
    assert "no GitHub App credentials" in found[status_key]["message"]
    [task] = (await (await client.get("/api/tasks")).json())["items"]
    assert task["state"] == "DRY_RUN" and "would have checked @" in task["reason"]
    kinds = {a["kind"] for a in await store.fetch("actions_list", None, None, 100, None)}
    assert "task.open" in kinds  # recorded; nothing for GitHub, not even tried
    assert not [k for k in kinds if k.startswith("github.")], kinds
