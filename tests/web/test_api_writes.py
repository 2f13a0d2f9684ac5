"""Writes to the API need a token always; reads stay open unless P38_API_TOKEN is set.

Before, with P38_API_TOKEN unset, `POST /api/agents/{name}/runs` answered anyone who reached
the port (an agent's http call, a neighbour on a shared host). Now the server keeps a write
token in $P38_HOME/api-token (mode 0600) when none is configured."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from controller.app import create_app
from tests.helpers import WRITE, WRITE_TOKEN, env_for, make_settings, p38_running, terminate


async def test_writes_need_the_token_reads_do_not(aiohttp_client: Any, dsn: str) -> None:
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    assert (await client.get("/api/agents")).status == 200
    refused = await client.post("/api/agents/counter/runs", json={})
    assert refused.status == 401
    assert "Authorization: Bearer" in (await refused.json())["reason"]
    wrong = await client.post("/api/agents/counter/runs", json={},
                              headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status == 401
    allowed = await client.post("/api/agents/counter/runs", json={}, headers=WRITE)
    assert allowed.status == 404  # past the token: there is no such agent


async def test_without_any_token_the_api_takes_no_writes(aiohttp_client: Any, dsn: str) -> None:
    client = await aiohttp_client(create_app(make_settings(dsn)))
    refused = await client.post("/api/agents/counter/runs", json={}, headers=WRITE)
    assert refused.status == 401
    assert (await refused.json())["reason"] == ("writes to this API need a token: set "
                                                "P38_API_TOKEN")


def _post(port: int, token: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/agents/x/runs", data=b"{}",
                                     method="POST", headers={"Content-Type": "application/json"})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_server_keeps_a_write_token_in_its_home(dsn: str, tmp_path: Path) -> None:
    env = {**env_for(dsn), "P38_HOME": str(tmp_path / "home")}
    env.pop("P38_API_TOKEN", None)
    with p38_running("serve", "--port", "0", env=env, cwd=tmp_path) as process:
        assert process.stderr is not None
        seen = [process.stderr.readline()]
        while '"serving"' not in seen[-1]:
            seen.append(process.stderr.readline())
        port = int(json.loads(seen[-1])["url"].rsplit(":", 1)[1])
        token_file = tmp_path / "home" / "api-token"
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and len(token) >= 32
        assert _post(port, None) == 401 and _post(port, "guess") == 401
        assert _post(port, token) == 404  # accepted: no agent x
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/agents", timeout=10) as r:
            assert r.status == 200  # reads stay open
        code, rest = terminate(process)
    assert code == 0 and token not in "".join(seen) + rest
    with p38_running("serve", "--port", "0", env=env, cwd=tmp_path) as again:
        assert again.stderr is not None
        while '"serving"' not in again.stderr.readline():
            pass
        terminate(again)
    assert token_file.read_text().strip() == token  # kept across restarts
