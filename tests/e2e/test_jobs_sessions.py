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
from tests.e2e.test_gitops import PRIVATE, GitOps
from tests.fakes.anthropic import FakeAnthropic
from tests.helpers import WRITE, WRITE_TOKEN, make_settings


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
