"""`agent_code_changed` is logged when a local agent's module really changed, not for every
local agent each time the controller starts."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from controller.store import Store
from tests.agents.test_agents_e2e import COUNTER, COUNTER_TEST, app_on, write_agent
from tests.helpers import wait_until


async def test_code_changed_is_logged_only_for_a_real_change(aiohttp_client, store: Store,  # type: ignore[no-untyped-def]
                                                             dsn: str, tmp_path: Path) -> None:
    """A start looks at the agent's files once, silently; editing its module logs one
    `agent_code_changed` naming it and builds a second version."""
    write_agent(tmp_path, "counter", COUNTER, COUNTER_TEST)
    with capture_logs() as logs:
        await app_on(aiohttp_client, dsn, tmp_path)

        async def versions(n: int) -> bool:
            rows = await store.fetch("agent_versions_of", "agent:local/counter", 10)
            return len(rows) == n and rows[0]["state"] == "READY"

        await wait_until(lambda: versions(1), what="v1 READY", store=store)

        async def first_look() -> bool:  # the watcher has seen the files once (quietly)
            return bool(await store.pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE source = 'p38'"
                " AND event = 'agent_code_first_look'"))

        await wait_until(first_look, what="the watcher's first look", store=store)
        (tmp_path / "agents" / "counter.py").write_text(COUNTER + "\n# counts by one\n")
        await wait_until(lambda: versions(2), what="v2 READY after the edit", store=store)

        def said() -> list[dict[str, object]]:
            return [e for e in logs if e["event"] == "agent_code_changed"]

        async def logged() -> list[dict[str, object]]:
            return said()

        await wait_until(logged, what="agent_code_changed logged")
    # Once, for the edit: the first look at start said nothing.
    assert [e["agents"] for e in said()] == [["agent:local/counter"]]
