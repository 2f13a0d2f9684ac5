"""The notify tool sends a notification once: again only when it certainly did not arrive (no
connection, a 429), never after a 5xx or a timeout, which may have delivered it."""

from __future__ import annotations

import httpx
import pytest
import respx

from controller.clients.tools import Notify, ToolClient

TARGET = Notify(target="ops", url="https://hooks.example.com/ops", agent="local/a", run_id=1,
                text="hi")


async def test_a_lost_answer_is_not_sent_again() -> None:
    with respx.mock() as outside:
        hook = outside.post(TARGET.url).mock(return_value=httpx.Response(502))
        async with ToolClient.open() as tools:
            with pytest.raises(RuntimeError, match="not sent again"):
                await tools.notify(TARGET)
    assert hook.call_count == 1


async def test_what_did_not_arrive_is_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.clients.tools.asyncio.sleep", _no_wait)
    with respx.mock() as outside:
        hook = outside.post(TARGET.url).mock(side_effect=[
            httpx.ConnectError("refused"), httpx.Response(429), httpx.Response(204)])
        async with ToolClient.open() as tools:
            answer = await tools.notify(TARGET)
    assert answer == {"status": 204, "target": "ops"} and hook.call_count == 3


async def _no_wait(_seconds: float) -> None:
    return None
