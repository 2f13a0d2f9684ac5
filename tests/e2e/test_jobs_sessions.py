"""A `/claude` session as a job (issue 24), end to end: the controller is stopped (a deploy)
between Claude's turns; the next controller takes the session's job up and resumes it at its
last turn, from the session saved on the task: the turns already answered are not asked (or
paid for) again, and exactly one pull request opens, with the spend of every turn counted
once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller.app import create_app
from controller.config import ManifestSettings, ProviderSettings
from controller.providers import anthropic, github
from controller.store import Store
from tests.agents.test_generation_e2e import open_both
from tests.e2e.test_claude_tasks import arrange, ended, pulls
from tests.e2e.test_commands import comment, send
from tests.e2e.test_gitops import PRIVATE, REPO, GitOps
from tests.fakes.anthropic import FakeAnthropic
from tests.helpers import WRITE, WRITE_TOKEN, make_settings, wait_until


async def test_a_session_stopped_between_turns_resumes_at_its_last_turn(
        aiohttp_client: Any, aiohttp_server: Any, store: Store, dsn: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    gitops, first = await open_both(aiohttp_client, aiohttp_server, store, dsn, monkeypatch)
    arrange(gitops)
    asked = asyncio.Event()

    async def stop_before_the_last_turn(index: int) -> None:
        if index == 2:  # read, write answered; this is the call that would `finish`
            asked.set()
            await asyncio.Event().wait()  # never answered: the controller stops meanwhile

    first.before = stop_before_the_last_turn
    await send(gitops, comment("/claude add a README section about X", comment_id=991))
    await asyncio.wait_for(asked.wait(), timeout=60)
    await gitops.client.close()  # SIGTERM between turns
    [stopped] = await store.fetch("claude_tasks_list", None, None, None, 10)
    assert len(stopped["session"]["messages"]) == 5  # saved at its last turn
    assert stopped["state"] == "WORKING" and not pulls(gitops)

    second = FakeAnthropic()
    server = await aiohttp_server(second.app())
    monkeypatch.setenv("ANTHROPIC_BASE_URL", str(server.make_url("")).rstrip("/"))
    settings = make_settings(dsn, workers=2).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=gitops.fake.app_id,
                                      GITHUB_APP_PRIVATE_KEY=PRIVATE,
                                      ANTHROPIC_API_KEY=second.api_key),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=3600)})
    app = create_app(settings, write_token=WRITE_TOKEN, providers=[
        github.bundle(transport=gitops.fake.transport(), sleep=gitops.sleeps),
        anthropic.bundle()])
    again = GitOps(await aiohttp_client(app, headers=WRITE), gitops.fake, store, gitops.sleeps,
                   gitops.files)
    [task] = await ended(again)
    assert task["state"] == "PR_OPENED", task
    assert len(pulls(again)) == 1
    # Resumed at its last turn: one call, carrying the two turns answered before the stop.
    [resumed] = second.requests
    roles = [m["role"] for m in resumed["body"]["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"], roles
    assert len(first.requests) == 3  # two answered, the third never
    # Every answered turn is counted once: the first controller's two and the second's one.
    answered = first.answered[:2] + second.answered
    assert task["tokens"] == sum(sum(u.values()) for u in answered), (task, answered)


async def test_claude_cancel_stops_a_running_session_at_its_next_turn(
        aiohttp_client: Any, aiohttp_server: Any, store: Store, dsn: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`/claude cancel` lands while the session's job is waiting for Claude's second answer:
    the session asks nothing more, nothing is written to the repository, and the task ends
    CANCELLED, answered on the issue."""
    gitops, claude = await open_both(aiohttp_client, aiohttp_server, store, dsn, monkeypatch)
    arrange(gitops)
    asked, release = asyncio.Event(), asyncio.Event()

    async def hold_the_second_answer(index: int) -> None:
        if index == 1:
            asked.set()
            await release.wait()

    claude.before = hold_the_second_answer
    await send(gitops, comment("/claude add a README section about X", comment_id=995))
    await asyncio.wait_for(asked.wait(), timeout=60)
    await send(gitops, comment("/claude cancel", comment_id=996))

    async def cancelled() -> bool:
        rows = await store.fetch("claude_tasks_list", None, None, None, 10)
        return bool(rows) and rows[0]["state"] == "CANCELLED"

    await wait_until(cancelled, what="the task cancelled while Claude answers", store=store)
    release.set()
    [task] = await ended(gitops)
    assert task["state"] == "CANCELLED" and not pulls(gitops)
    assert len(claude.requests) == 2  # the answer in flight was the last: nothing more asked
    assert set(gitops.fake.repos[REPO].branches) == {"main"}
