"""`p38 send-webhook SOURCE FILE` against the real app on a real port: each source signed or
authenticated as its route checks it, stored; a wrong secret refused; the secret never
printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.store import Store
from tests.cli.reads_trial import run_p38, without_database
from tests.helpers import (
    GITHUB_SECRET,
    N8N_SECRET,
    RAILWAY_SECRET,
    SAMPLES,
    env_for,
    make_settings,
)


def _env(dsn: str, home: Path, url: str, **secrets: str) -> dict[str, str]:
    env = {**without_database(env_for(dsn), home), "P38_SERVER": url}
    for name in ("GITHUB_WEBHOOK_SECRET", "RAILWAY_WEBHOOK_SECRET", "N8N_WEBHOOK_SECRET"):
        env.pop(name, None)
    return {**env, **secrets}


async def test_send_webhook_signs_and_posts_each_source(aiohttp_server: Any, store: Store,
                                                        dsn: str, tmp_path: Path) -> None:
    """github (HMAC of the file's bytes, the event from --event or from an `{event, payload}`
    file), railway and n8n (the secret as Bearer) are stored: 202 and the answer printed."""
    server = await aiohttp_server(create_app(make_settings(dsn, workers=0)))
    url = str(server.make_url("")).rstrip("/")
    env = _env(dsn, tmp_path / "home", url, GITHUB_WEBHOOK_SECRET=GITHUB_SECRET,
               RAILWAY_WEBHOOK_SECRET=RAILWAY_SECRET, N8N_WEBHOOK_SECRET=N8N_SECRET)

    pull = SAMPLES / "pull_request" / "opened" / "payload.json"
    sent = await run_p38("send-webhook", "github", str(pull), "--event", "pull_request",
                         "--delivery", "trial-guid-1", env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.splitlines()[0] == "202 stored; 2 key(s) enqueued"
    answer = json.loads(sent.stdout.split("\n", 1)[1])
    assert (answer["guid"], answer["event"], answer["status"]) == \
        ("trial-guid-1", "pull_request", "stored")
    stored = await store.fetchrow("delivery_by_guid", "trial-guid-1")
    assert stored["event"] == "pull_request" and stored["action"] == "opened"

    # The delivery is what `describe` shows for the key it named, through the API too (a key
    # with `#` in the URL's path).
    described = await run_p38("describe", "pull:octo-org/infra#12", "-o", "json", env=env)
    assert described.returncode == 0, described.stderr
    found = json.loads(described.stdout)
    assert found["queue"]["state"] == "queued"  # no workers here: waiting for one
    assert [d["guid"] for d in found["deliveries"]] == ["trial-guid-1"]

    wrapped = tmp_path / "push.json"  # what the fake GitHub's /_fake/commit answers
    wrapped.write_text(json.dumps({"event": "push", "payload": json.loads(
        (SAMPLES / "push" / "default-branch" / "payload.json").read_text())}))
    pushed = await run_p38("send-webhook", "github", str(wrapped), env=env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert json.loads(pushed.stdout.split("\n", 1)[1])["event"] == "push"

    railway = await run_p38("send-webhook", "railway",
                            str(SAMPLES / "railway" / "deployment-failed" / "payload.json"),
                            env=env)
    assert railway.returncode == 0, railway.stdout + railway.stderr
    assert railway.stdout.startswith("202 ")
    n8n = await run_p38("send-webhook", "n8n",
                        str(SAMPLES / "n8n" / "execution-finished" / "payload.json"),
                        "--delivery", "n8n-trial-1", env=env)
    assert n8n.returncode == 0 and n8n.stdout.startswith("20"), n8n.stdout + n8n.stderr
    assert await store.fetchrow("delivery_by_guid", "n8n-trial-1") is not None
    for result in (sent, pushed, railway, n8n):
        for secret in (GITHUB_SECRET, RAILWAY_SECRET, N8N_SECRET):
            assert secret not in result.stdout + result.stderr


async def test_send_webhook_says_what_is_wrong(aiohttp_server: Any, store: Store, dsn: str,
                                               tmp_path: Path) -> None:
    """A secret that is not the controller's: the controller's 401 and exit 1; no secret,
    no event for github, a missing file: one line each, exit 2, nothing sent."""
    server = await aiohttp_server(create_app(make_settings(dsn, workers=0)))
    url = str(server.make_url("")).rstrip("/")
    pull = str(SAMPLES / "pull_request" / "opened" / "payload.json")
    wrong = _env(dsn, tmp_path / "home", url, GITHUB_WEBHOOK_SECRET="not-the-secret-0123456")
    refused = await run_p38("send-webhook", "github", pull, "--event", "pull_request",
                            env=wrong)
    assert refused.returncode == 1
    assert refused.stdout.splitlines()[0].startswith("401 ")
    assert "not-the-secret" not in refused.stdout + refused.stderr

    unset = _env(dsn, tmp_path / "home", url)
    no_secret = await run_p38("send-webhook", "railway", pull, env=unset)
    assert no_secret.returncode == 2
    assert no_secret.stderr.startswith("RAILWAY_WEBHOOK_SECRET is not set")
    signed = _env(dsn, tmp_path / "home", url, GITHUB_WEBHOOK_SECRET=GITHUB_SECRET)
    no_event = await run_p38("send-webhook", "github", pull, env=signed)
    assert no_event.returncode == 2 and no_event.stderr.startswith("github needs the event")
    no_file = await run_p38("send-webhook", "github", str(tmp_path / "absent.json"),
                            "--event", "push", env=signed)
    assert no_file.returncode == 2
    assert no_file.stderr.strip() == f"{tmp_path / 'absent.json'} is not a file"
    assert await store.fetch("deliveries_list", None, None, None, None, 10) == []
