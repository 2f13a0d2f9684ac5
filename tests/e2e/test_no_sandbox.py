"""Where the kernel cannot sandbox agents, they do not run unsandboxed silently.

A real kernel refusal, not a pretend one: the controller runs in a user namespace of its own
whose `user.max_user_namespaces` is 0 (as in containers that disable user namespaces), so the
launcher's `unshare` is refused. Runs are then refused with the reason unless the operator set
P38_AGENTS_UNSANDBOXED=true; the start log and /readyz say which.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers import env_for, terminate

WITHOUT_USER_NAMESPACES = ["unshare", "--user", "--map-root-user", "sh", "-c",
                           'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh"]

HARNESS = """
import asyncio, json
from controller.clients.harness import Limits, run_agent
from controller.clients.sandbox import Sandbox, probe
from controller.clients.warm_pool import WarmPool

async def main():
    limits = Limits(timeout=20, memory_bytes=256 * 1024 * 1024)
    code = "def run(task):\\n    return 42\\n"
    found = await probe()
    refused = await run_agent(code=code, tools=[], limits=limits)
    allowed = await run_agent(code=code, tools=[], limits=limits,
                              sandbox=Sandbox(required=False))
    async with WarmPool.open(1) as pool:
        await pool.wait_full()
        warm_refused = await run_agent(code=code, tools=[], limits=limits, pool=pool)
        pool_refused = pool.refused is not None and pool.idle == 0
    loose = Sandbox(required=False)
    async with WarmPool.open(1, sandbox=loose) as pool:
        await pool.wait_full()
        warm_allowed = await run_agent(code=code, tools=[], limits=limits, sandbox=loose,
                                       pool=pool)
    print(json.dumps({"found": found, "refused": [refused.outcome, refused.error],
                      "allowed": [allowed.outcome, allowed.output, allowed.isolation],
                      "warm refused": [warm_refused.outcome, warm_refused.error, pool_refused],
                      "warm allowed": [warm_allowed.outcome, warm_allowed.output,
                                       warm_allowed.isolation]}))

asyncio.run(main())
"""


def test_a_run_is_refused_unless_the_operator_allows_it() -> None:
    done = subprocess.run([*WITHOUT_USER_NAMESPACES, sys.executable, "-c", HARNESS],
                          capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(done.stdout)
    assert seen["found"]["sandbox"] == "incomplete" and seen["found"]["missing"] == "namespaces"
    assert seen["found"]["namespaces"].startswith("not applied: unshare(user, network, ipc, mount)")
    outcome, error = seen["refused"]
    assert outcome == "refused"
    assert "the kernel cannot sandbox it here (namespaces: not applied" in error
    assert "P38_AGENTS_UNSANDBOXED=true" in error
    outcome, output, isolation = seen["allowed"]
    assert (outcome, output) == ("succeeded", 42)
    assert isolation["sandbox"] == "incomplete" and isolation["missing"] == "namespaces"
    assert "ABI" in isolation["landlock"]  # what the kernel could give, it gave
    outcome, error, pool_refused = seen["warm refused"]  # a warm pool refuses the same way
    assert outcome == "refused" and pool_refused
    assert "the kernel cannot sandbox it here (namespaces: not applied" in error
    outcome, output, isolation = seen["warm allowed"]
    assert (outcome, output) == ("succeeded", 42)
    assert isolation["sandbox"] == "incomplete" and isolation["missing"] == "namespaces"
    assert isolation["memory"].endswith("(set by the bootstrap before the agent's code was read)")


AGENT = """apiVersion: p38/v1
kind: Agent
metadata: {name: hello}
spec:
  description: Says hello.
  code: agents/hello.py
"""


def _call(port: int, method: str, path: str, token: str | None = None) -> dict[str, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=b"{}" if method == "POST" else None,
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def _finished(port: int, url: str) -> dict[str, object]:
    for _ in range(400):
        run = _call(port, "GET", url)
        if run["state"] == "finished":
            return run
        time.sleep(0.05)  # polling the real server's API for an end it reports
    raise AssertionError(f"{url} did not finish")


def _ready(port: int) -> None:
    for _ in range(400):
        try:
            if _call(port, "GET", "/api/agents/hello").get("status") == "Ready":
                return
        except urllib.error.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("the agent did not become Ready")


def test_the_start_log_readyz_and_a_run_say_agents_are_refused(dsn: str,
                                                              tmp_path: Path) -> None:
    """Through the real server in that namespace: the start log and /readyz say agents are
    refused (or run without a complete sandbox, when the operator allows it), and a run of a
    hand-written agent ends failed with the reason (or succeeds, saying what it lacked)."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "agents").mkdir()
    (tmp_path / "manifests" / "hello.yaml").write_text(AGENT)
    (tmp_path / "agents" / "hello.py").write_text("def run(task):\n    return 'hello'\n")
    for unsandboxed, expected in (("false", "agents are refused: the kernel cannot sandbox "
                                            "them (namespaces)"),
                                  ("true", "agents run WITHOUT a complete sandbox "
                                           "(namespaces not applied)")):
        env = {**env_for(dsn), "P38_HOME": str(tmp_path / "home"),
               "P38_AGENTS_UNSANDBOXED": unsandboxed}
        process = subprocess.Popen([*WITHOUT_USER_NAMESPACES, sys.executable, "-m",
                                    "controller.cli", "serve", "--port", "0",
                                    "--manifests", str(tmp_path / "manifests")],
                                   env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            assert process.stderr is not None
            seen = [process.stderr.readline()]
            while '"serving"' not in seen[-1]:
                seen.append(process.stderr.readline())
            line, port = "".join(seen), int(json.loads(seen[-1])["url"].rsplit(":", 1)[1])
            ready = _call(port, "GET", "/readyz")
            token = (tmp_path / "home" / "api-token").read_text().strip()
            _ready(port)
            started = _call(port, "POST", "/api/agents/hello/runs", token)
            run = _finished(port, str(started["url"]))
            code, rest = terminate(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert code == 0
        assert ready["status"] == "ready"  # ingest and reconciles go on; agents are refused
        agents = ready["agents"]
        assert isinstance(agents, dict) and agents["verdict"].startswith(expected), agents
        assert agents["required"] is (unsandboxed == "false")
        sandbox_lines = [entry for entry in (line + rest).splitlines()
                         if '"agents_sandbox"' in entry]
        assert sandbox_lines and '"level":"warning"' in sandbox_lines[0]
        assert expected in sandbox_lines[0]
        if unsandboxed == "false":
            assert run["outcome"] == "failed"
            assert "the kernel cannot sandbox it here (namespaces" in str(run["error"])
        else:
            assert (run["outcome"], run["result"]) == ("succeeded", {"output": "hello"})
            isolation = run["isolation"]
            assert isinstance(isolation, dict) and isolation["missing"] == "namespaces"
