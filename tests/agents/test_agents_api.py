"""Odd requests to the agents API get a 4xx with a reason, never a 500, and start nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.store import Store
from tests.agents.test_agents_e2e import COUNTER, app_on, write_agent
from tests.helpers import wait_until


async def test_odd_requests_get_a_reason(aiohttp_client: Any, store: Store, dsn: str,
                                         tmp_path: Path) -> None:
    write_agent(tmp_path, "counter", COUNTER)
    client = await app_on(aiohttp_client, dsn, tmp_path)
    cases = [
        ("GET", "/api/agents/nobody", None, 404, "no applied agent named 'nobody'"),
        ("GET", "/api/agents/a%00b", None, 400, None),
        ("GET", "/api/runs/12x", None, 400, "a run id is a positive integer"),
        ("GET", "/api/runs/999999", None, 404, "no run 999999"),
        ("GET", "/api/runs?limit=0", None, 400, None),
        ("POST", "/api/agents/nobody/runs", b"", 404, None),
    ]
    for method, path, body, status, reason in cases:
        response = await client.request(method, path, data=body)
        answer = await response.json()
        assert response.status == status, (path, answer)
        assert reason is None or answer["reason"].startswith(reason), (path, answer)

    async def wait_applied() -> bool:
        return (await client.get("/api/agents/counter")).status == 200

    await wait_until(wait_applied, what="counter applied", store=store)
    for body, status, reason in [
            (b"{not json", 400, "the body is not JSON"),
            (b'{"input": 1, "extra": 2}', 400, 'the body is {"input"'),
            (b"[1]", 400, 'the body is {"input"'),
            (b'{"input": "' + b"x" * 70_000 + b'"}', 413, "a run's input is at most"),
            (b'{"input": "\\u0000"}', 400, None),
            (b'{"input": ' + b"[" * 40 + b"]" * 40 + b"}", 400,
             "the input cannot be stored: nested deeper than 32 levels"),
            (b'{"input": ' + b"[" * 1000 + b"]" * 1000 + b"}", 400, None),
            (b'{"input": "' + b"x" * 30_000_000 + b'"}', 413, "a run's input is at most")]:
        response = await client.post("/api/agents/counter/runs", data=body,
                                     headers={"Content-Type": "application/json"})
        answer = await response.json()
        assert response.status == status, (body[:40], answer)
        assert reason is None or answer["reason"].startswith(reason), answer
    text = await client.post("/api/agents/counter/runs", data=b'{"input": 1}',
                             headers={"Content-Type": "text/plain"})
    assert text.status == 415 and "application/json" in (await text.json())["reason"]
    assert (await (await client.get("/api/runs")).json())["items"] == []
    response = await client.get("/api/agents/counter/versions/0")
    assert response.status == 400
