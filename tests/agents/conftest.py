"""The agent process tests run twice: on the cold path (`run_agent` starts the run's process)
and on the warm path (the run takes a process of a `WarmPool`, fenced in before it had any
code); a warm run is checked to have been one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from controller.clients.harness import Finished, run_agent
from controller.clients.warm_pool import WarmPool

RunAgent = Callable[..., Awaitable[Finished]]
SECRET = "sk-ant-secret-value-for-the-test"  # in the controller's environment: no agent sees it
WARM = "(set by the bootstrap before the agent's code was read)"  # a pooled run's limits


@pytest.fixture(params=["cold", "warm"])
async def run(request: pytest.FixtureRequest,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunAgent]:
    """`run_agent`, cold or through a warm pool of two processes, with a secret in the
    controller's environment from before any agent process starts."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    if request.param == "cold":
        yield run_agent
        return
    async with WarmPool.open(2) as pool:
        async def warm(**kwargs: Any) -> Finished:
            await pool.wait_full()  # (a run that found none would start one: still warm)
            before = pool.pids()
            done = await run_agent(pool=pool, **kwargs)
            if done.outcome != "refused":
                assert done.isolation["memory"].endswith(WARM), done.isolation
                assert before, "the pool had no process ready"
            return done

        yield warm
