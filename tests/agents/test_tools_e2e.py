"""The outbound tools end to end: an agent's `http`, `notify` and `n8n` calls are checked,
performed by the controller (the outside faked over httpx with respx) with the Policy's URLs
and the tokens from the environment, recorded with the run, and answered to the agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import respx
from httpx import Response

from controller.store import Store
from tests.agents.test_agents_e2e import app_on, ready_then_run
from tests.helpers import wait_until

POLICY = """apiVersion: p38/v1
kind: Policy
metadata: {name: default}
spec:
  notifications:
    ops: {url: "https://hooks.example.com/ops"}
  workflows:
    report: {url: "https://n8n.example.com/webhook/report"}
"""
AGENT = """apiVersion: p38/v1
kind: Agent
metadata: {name: caller}
spec:
  description: Calls every outbound tool once.
  code: agents/caller.py
  tools: [http, notify, n8n]
  notify: [ops]
  workflows: [report]
"""
CODE = '''from p38_agent import ToolError


def run(task):
    page = task.tools.http.get(url="https://api.example.com/price", params={"s": "TSLA"})
    sent = task.tools.notify.send(text="price is " + str(page["json"]["price"]))
    started = task.tools.n8n.start(workflow="report", data={"price": page["json"]["price"]})
    try:
        task.tools.n8n.start(workflow="payroll")
        other = "started"
    except ToolError as exc:
        other = str(exc)
    return {"notify": sent["status"], "n8n": started["json"], "other": other}
'''


async def test_http_notify_and_n8n_reach_the_outside_as_the_policy_says(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P38_NOTIFY_OPS_TOKEN", "notify-token-0123456789")
    monkeypatch.setenv("P38_NOTIFY_OPS_URL", "https://hooks.example.com/ops")
    monkeypatch.setenv("P38_N8N_REPORT_TOKEN", "n8n-token-0123456789abc")
    monkeypatch.setenv("P38_N8N_REPORT_URL", "https://n8n.example.com/webhook/report")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "agents").mkdir()
    (tmp_path / "manifests" / "policy.yaml").write_text(POLICY)
    (tmp_path / "manifests" / "caller.yaml").write_text(AGENT)
    (tmp_path / "agents" / "caller.py").write_text(CODE)
    with respx.mock(assert_all_called=True) as outside:
        price = outside.get("https://api.example.com/price", params={"s": "TSLA"}).mock(
            return_value=Response(200, json={"price": 412.5}))
        ops = outside.post("https://hooks.example.com/ops").mock(return_value=Response(204))
        report = outside.post("https://n8n.example.com/webhook/report").mock(
            return_value=Response(200, json={"queued": True}))
        client = await app_on(aiohttp_client, dsn, tmp_path)

        async def ready() -> bool:
            body = await (await client.get("/api/agents/caller")).json()
            return body.get("status") == "Ready"

        await wait_until(ready, what="caller READY", store=store)
        url = (await (await client.post("/api/agents/caller/runs", json={})).json())["url"]

        async def finished() -> dict[str, Any] | None:
            run = await (await client.get(url)).json()
            return run if run["state"] == "finished" else None

        run = await wait_until(finished, what="the run", store=store)
    assert run["outcome"] == "succeeded", run
    output = run["result"]["output"]
    assert output["notify"] == 204 and output["n8n"] == {"queued": True}
    assert "workflow 'payroll' is not one this agent may start" in output["other"]
    assert [(c["tool"], c["status"]) for c in run["tool_calls"]] == [
        ("http", "succeeded"), ("notify", "succeeded"), ("n8n", "succeeded"),
        ("n8n", "refused")]
    assert price.call_count == 1
    sent = ops.calls.last.request
    assert sent.headers["Authorization"] == "Bearer notify-token-0123456789"
    assert json.loads(sent.content)["text"] == "price is 412.5"
    started = report.calls.last.request
    assert started.headers["Authorization"] == "Bearer n8n-token-0123456789abc"
    body = json.loads(started.content)
    assert (body["workflow"], body["data"], body["agent"]) == \
        ("report", {"price": 412.5}, "agent:local/caller")
    assert report.call_count == 1  # started once, never retried


NOTIFIER = """apiVersion: p38/v1
kind: Agent
metadata: {name: notifier}
spec:
  description: Notifies ops once.
  code: agents/notifier.py
  tools: [notify]
  notify: [ops]
"""
NOTIFIER_CODE = '''from p38_agent import ToolError


def run(task):
    try:
        return task.tools.notify.send(text="hello")["status"]
    except ToolError as exc:
        return str(exc)
'''


async def test_a_token_goes_only_to_the_url_it_was_made_for(
        aiohttp_client: Any, store: Store, dsn: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Policy (of any source) that points the target `ops` at its own URL does not collect
    the operator's P38_NOTIFY_OPS_TOKEN: the call is refused and nothing is sent there."""
    monkeypatch.setenv("P38_NOTIFY_OPS_TOKEN", "notify-token-0123456789")
    monkeypatch.setenv("P38_NOTIFY_OPS_URL", "https://hooks.example.com/ops")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "agents").mkdir()
    (tmp_path / "manifests" / "policy.yaml").write_text(
        POLICY.replace("https://hooks.example.com/ops", "https://collector.example.net/x"))
    (tmp_path / "manifests" / "notifier.yaml").write_text(NOTIFIER)
    (tmp_path / "agents" / "notifier.py").write_text(NOTIFIER_CODE)
    with respx.mock(assert_all_called=False) as outside:
        collector = outside.post("https://collector.example.net/x").mock(
            return_value=Response(204))
        client = await app_on(aiohttp_client, dsn, tmp_path)
        run = await ready_then_run(client, "notifier", store)
    assert "the Policy's 'ops' URL is not P38_NOTIFY_OPS_URL" in run["result"]["output"]
    assert collector.call_count == 0
