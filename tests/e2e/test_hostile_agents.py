"""Hostile agents through the real app, the real harness and this machine's kernel: what an
agent's code writes cannot forge its test verdict or its isolation, its `http` tool cannot
reach this machine in any spelling of loopback (a listener on 127.0.0.1 sees nothing), the
static check refuses modules reached through others, and /readyz and /api/runs say which
protections runs have."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from controller.store import Store
from tests.agents.test_agents_e2e import app_on, ready_then_run, write_agent
from tests.agents.test_sandbox import FORGE
from tests.helpers import wait_until

MANIFEST = """apiVersion: p38/v1
kind: Agent
metadata: {{name: {name}}}
spec:
  description: A hostile agent for the end-to-end test.
  code: agents/{name}.py
{test}  tools: [http]
  limits: {{timeout: 20s, memory: 256Mi}}
"""
FORGED_PASS_TEST = FORGE + '''

def test_forged():
    forge({"tests": {"passed": ["test_forged"], "failed": []}})
    raise AssertionError("this test fails")
'''
FORGED_ISOLATION = FORGE + '''

def run(task):
    forge({"isolation": {"sandbox": "none", "network": "full"}})
    return "done"
'''
LOOPBACK = '''from p38_agent import ToolError


def run(task):
    port = task.input["port"]
    answers = {}
    for host in task.input["hosts"]:
        try:
            answers[host] = task.tools.http.get(url="http://" + host + ":" + str(port) + "/")
        except ToolError as exc:
            answers[host] = str(exc)
    return answers
'''
HOSTS = ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "localhost", "[::1]",
         "[::ffff:127.0.0.1]"]


def write(root: Path, name: str, code: str, test: str | None = None) -> None:
    write_agent(root, name, code, test, manifest=MANIFEST)


async def test_hostile_agents_through_the_app(aiohttp_client: Any, store: Store, dsn: str,
                                              tmp_path: Path) -> None:
    write(tmp_path, "forger", "def run(task):\n    return 1\n", FORGED_PASS_TEST)
    write(tmp_path, "isolated", FORGED_ISOLATION)
    write(tmp_path, "prober", LOOPBACK)
    write(tmp_path, "through", "import contextlib\n\n\ndef run(task):\n"
                               "    return contextlib.os.environ\n")
    write(tmp_path, "ctypes", "import typing\n\n\ndef run(task):\n"
                              "    return typing.sys.modules['ctypes']\n")
    client = await app_on(aiohttp_client, dsn, tmp_path)

    ready = await (await client.get("/readyz")).json()
    assert ready["agents"]["sandbox"] == "complete", ready["agents"]
    assert ready["agents"]["required"] is True
    assert "ABI" in ready["agents"]["protections"]["landlock"]

    async def agent(name: str, status: str) -> dict[str, Any] | None:
        body = await (await client.get(f"/api/agents/{name}")).json()
        return body if body.get("status") == status else None

    forger = await wait_until(lambda: agent("forger", "Stalled"), what="forger FAILED",
                              store=store)
    assert "test_forged" in forger["versions"][0]["error"]
    for name, message in (("through", "contextlib.os reaches the module os"),
                          ("ctypes", "typing.sys reaches the module sys")):
        refused = await wait_until(lambda n=name: agent(n, "Stalled"), what=name, store=store)
        assert message in refused["versions"][0]["error"], refused

    isolated = await ready_then_run(client, "isolated", store)
    assert isolated["outcome"] == "succeeded", isolated
    assert isolated["isolation"]["sandbox"] == "complete"
    assert isolated["isolation"]["memory"] == (  # the app's warm pool gave its process
        f"RLIMIT_AS {256 * 1024 * 1024} bytes (set by the bootstrap before the agent's code "
        "was read)")
    assert "network" not in isolated["isolation"]
    assert "TCP bind and connect refused" in isolated["isolation"]["landlock"]

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        probed = await ready_then_run(client, "prober", store,
                                      {"port": listener.getsockname()[1], "hosts": HOSTS})
        try:
            listener.accept()
            raise AssertionError("an agent's http call reached this machine")
        except BlockingIOError:
            pass
    assert probed["outcome"] == "succeeded", probed
    answers = probed["result"]["output"]
    for host in HOSTS:
        assert "is not a public address" in answers[host], (host, answers[host])
    assert [c["status"] for c in probed["tool_calls"]] == ["refused"] * len(HOSTS)
