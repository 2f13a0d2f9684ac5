"""The read commands against a controller's HTTP API (`--server` / `P38_SERVER`, with
`P38_API_TOKEN`), served on a real port, from a `p38` with no database credentials: the same
answers as from the database, and refused without the token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.providers.tasks import open_task
from controller.store import Store
from reconcilers.claude.task_actions import OpenTask
from tests.cli.reads_trial import (
    agent_ran,
    app_for,
    make_folder,
    run_p38,
    without_database,
)
from tests.helpers import env_for

TOKEN = "remote-read-token-3f9a1c7e5b"


async def test_reads_through_the_api_match_the_database(aiohttp_server: Any, store: Store,
                                                        dsn: str, tmp_path: Path) -> None:
    """get, describe, runs, logs and tasks with P38_SERVER and P38_API_TOKEN give what they
    give with the database (`-o json`, and the tables), so an operator needs no database
    password; a missing or wrong token is one line naming P38_API_TOKEN, exit 2."""
    server = await aiohttp_server(app_for(dsn, make_folder(tmp_path / "repo"), api_token=TOKEN))
    url = str(server.make_url("")).rstrip("/")
    local = env_for(dsn)
    run_id = await agent_ran(store, local)
    await open_task(store, OpenTask(
        repo="octo-org/infra", issue=11, comment_id=601, installation_id=51234567,
        on_pull=False, requested_by="dana-ops", command="/claude add a README",
        state="AUTHORIZED", reason="writer"))
    remote = {**without_database(local, tmp_path / "no-home"), "P38_SERVER": url,
              "P38_API_TOKEN": TOKEN}

    for command in (("get", "-o", "json"), ("get", "agent", "echo", "-o", "json"),
                    ("describe", "agent:local/echo", "-o", "json"),
                    ("describe", "echo", "-o", "json"),
                    ("runs", "-o", "json"), ("runs", "echo", "-o", "json"),
                    ("logs", str(run_id), "-o", "json"), ("tasks", "-o", "json"),
                    ("tasks", "1", "-o", "json"), ("services", "-o", "json")):
        there = await run_p38(*command, env=remote)
        here = await run_p38(*command, env=local)
        assert there.returncode == 0 and here.returncode == 0, there.stderr + here.stderr
        assert json.loads(there.stdout) == json.loads(here.stdout), command
    # `p38 status` too (the seconds since a beat or until a tick move between the two reads).
    there = await run_p38("status", "-o", "json", env=remote)
    here = await run_p38("status", "-o", "json", env=local)
    assert there.returncode == 0 and here.returncode == 0, there.stderr + here.stderr
    assert _timeless(json.loads(there.stdout)) == _timeless(json.loads(here.stdout))
    assert json.loads(there.stdout)["schema"]["version"] >= 18
    text = await run_p38("status", env=remote)
    assert "webhook deliveries:" in text.stdout and "Traceback" not in text.stderr
    # Text too (ages may differ by a second between the two: compare without them).
    table = await run_p38("describe", "agent:local/echo", env=remote)
    assert "Status:      Ready (VersionReady)" in table.stdout
    assert "succeeded   agent.build" in table.stdout
    logs = await run_p38("logs", str(run_id), env=remote)
    assert "echo says hello on stderr" in logs.stdout
    # --server says the same as P38_SERVER.
    flagged = await run_p38("get", "agents", "--server", url,
                            env={k: v for k, v in remote.items() if k != "P38_SERVER"})
    assert flagged.stdout.splitlines()[1].split()[:2] == ["agent:local/echo", "Ready"]

    absent = await run_p38("describe", "agent:local/nobody", env=remote)
    assert absent.returncode == 1 and "no object with key 'agent:local/nobody'" in absent.stderr

    no_token = {k: v for k, v in remote.items() if k != "P38_API_TOKEN"}
    refused = await run_p38("get", env=no_token)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"the controller at {url} refused: this API needs Authorization: Bearer "
        "<P38_API_TOKEN> (set P38_API_TOKEN)")
    wrong = await run_p38("runs", env={**remote, "P38_API_TOKEN": "not-the-token-at-all-x"})
    assert wrong.returncode == 2 and "refused" in wrong.stderr
    assert "not-the-token" not in wrong.stderr + wrong.stdout


async def test_an_unreachable_or_malformed_server_is_one_line(tmp_path: Path) -> None:
    """No controller at the URL: exit 3 and why; a URL that is not http(s): exit 2."""
    import socket

    env = without_database(env_for("postgresql://unused@127.0.0.1/none"), tmp_path)
    with socket.socket() as sock:  # bound, never listening: connections to it are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        gone = await run_p38("get", "--server", f"http://127.0.0.1:{port}", env=env)
    assert gone.returncode == 3, gone.stderr
    assert gone.stderr.startswith(f"cannot reach the controller at http://127.0.0.1:{port}")
    bad = await run_p38("runs", env={**env, "P38_SERVER": "127.0.0.1:8080"})
    assert bad.returncode == 2
    assert bad.stderr.strip() == "P38_SERVER must be an http:// or https:// URL with a " \
        "host, e.g. http://127.0.0.1:8080"
    for result in (gone, bad):
        assert "Traceback" not in result.stderr


def _timeless(found: Any) -> Any:
    """`p38 status -o json` without the values that move with the clock (a controller's
    heartbeat may land between the two reads)."""
    if isinstance(found, dict):
        return {k: _timeless(v) for k, v in found.items()
                if not k.endswith(("seconds", "seconds_ago", "_in_seconds"))
                and k != "last_seen"}  # (a heartbeat every few seconds)
    if isinstance(found, list):
        return [_timeless(v) for v in found]
    return found
