"""`/claude` benchmark: a signed `issue_comment` delivery -> pull request opened, through the
real app (webhook -> command intake -> task -> Claude's session -> push -> pull request ->
reply), against the stateful fake GitHub (in process) and the fake Messages API (aiohttp on
127.0.0.1, reached by the `anthropic` SDK through ANTHROPIC_BASE_URL). The fakes answer at once:
no model or network latency, so what is measured is the controller's own time.

For each of N tasks (one at a time, each on its own issue, 3 model calls and 2 tool calls each:
read README.md, write it, finish) it records the time from posting the delivery to the pull
request's creation and to the reply with its link, and the time spent inside the two fakes.
Prints p50/p99 of each, and the controller's own time (total minus the fakes'). What it compares
against, measured in the same run: the time inside the fakes, the floor any controller making
the same calls would wait (the issue sets no ceiling for this figure).

    python bench/claude.py [--tasks 100]

Uses DATABASE_URL when set (a throwaway database on that server), else the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import throwaway_database  # noqa: E402

REPO = "octo-org/infra"
INSTALLATION = 51234567


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(dsn: str, tasks: int) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from controller.app import create_app
    from controller.config import ManifestSettings, ProviderSettings, QueueSettings
    from controller.logs import configure_logging
    from controller.providers import anthropic, github
    from controller.store import Store, statements
    from controller.store.migrations import migrate
    from tests.fakes.anthropic import FakeAnthropic
    from tests.fakes.github import FakeGitHub, make_key_pair
    from tests.helpers import SAMPLES, github_payload, make_settings

    inside = {"github": 0.0, "anthropic": 0.0}
    opened: dict[str, float] = {}

    claude = FakeAnthropic()
    answer = claude.messages

    async def timed_messages(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await answer(request)
        finally:
            inside["anthropic"] += time.perf_counter() - started

    claude.messages = timed_messages  # type: ignore[method-assign]
    model_server = TestServer(claude.app())
    await model_server.start_server()
    os.environ["ANTHROPIC_BASE_URL"] = str(model_server.make_url("")).rstrip("/")

    private, public = make_key_pair()
    fake = FakeGitHub(public_key=public)
    fake.install(INSTALLATION, REPO)
    fake.commit(REPO, {"README.md": "infra\n", "docs/ops.md": "ops\n"})
    handle = fake.handle

    def timed_handle(request: Any) -> Any:
        started = time.perf_counter()
        response = handle(request)
        inside["github"] += time.perf_counter() - started
        if request.method == "POST" and request.url.path.endswith("/pulls") \
                and response.status_code == 201:
            opened[json.loads(request.content)["head"]] = time.perf_counter()
        return response

    fake.handle = timed_handle  # type: ignore[method-assign]
    settings = make_settings(dsn, workers=2).model_copy(update={
        "providers": ProviderSettings(GITHUB_APP_ID=fake.app_id, GITHUB_APP_PRIVATE_KEY=private,
                                      ANTHROPIC_API_KEY=claude.api_key),
        "manifests": ManifestSettings(P38_RESYNC_SECONDS=3600),
        "queue": QueueSettings(P38_WORKERS=2, P38_POLL_SECONDS=0.01)})
    configure_logging(level="warning")
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    store = await Store.connect(dsn, min_size=1, max_size=2)
    client = TestClient(TestServer(create_app(settings, providers=[
        github.bundle(transport=fake.transport()), anthropic.bundle()])))
    await client.start_server()
    template = json.loads((SAMPLES / "issue_comment" / "claude-command" / "payload.json")
                          .read_text())
    to_pr, to_reply, fakes_time, per_task = [], [], [], []
    try:
        for n in range(tasks):
            issue = 1000 + n
            fake.open_issue(REPO, issue, title=f"Document topic {n}")
            fake.permissions[(REPO, "dana-ops")] = "write"
            payload = copy.deepcopy(template)
            payload["issue"]["number"] = issue
            payload["comment"].update(id=900_000 + n,
                                      body=f"/claude add a README section about topic {n}")
            headers, body = github_payload("issue_comment", payload)
            before = dict(inside)
            sent_before = sum(statements.total.values())
            started = time.perf_counter()
            response = await client.post("/webhooks/github", data=body, headers=headers)
            assert response.status == 202, await response.text()
            branch = f"claude/{issue}-add-a-readme-section-about-topic-{n}"
            deadline = started + 60
            while not fake.comments.get((REPO, issue)):
                if time.perf_counter() > deadline:
                    raise SystemExit(f"task {n}: no reply after 60 s")
                await asyncio.sleep(0.002)
            replied = time.perf_counter()
            if branch not in opened:
                raise SystemExit(f"task {n}: replied without a pull request: "
                                 f"{fake.comments[(REPO, issue)][0]['body'][:300]}")
            to_pr.append(opened[branch] - started)
            to_reply.append(replied - started)
            fakes_time.append(sum(inside.values()) - sum(before.values()))
            per_task.append(sum(statements.total.values()) - sent_before)
    finally:
        await client.close()
        await model_server.close()
        await store.close()

    rows = await _tasks(dsn)
    own = [r - f for r, f in zip(to_reply, fakes_time, strict=True)]
    ms = 1000.0
    print(f"/claude benchmark: {tasks} tasks, one at a time, each 3 model calls and 2 tool "
          f"calls; {rows} tasks PR_OPENED")
    for label, values in (("delivery -> pull request opened", to_pr),
                          ("delivery -> reply with the link", to_reply),
                          ("inside the fakes (the floor)", fakes_time),
                          ("controller's own time", own)):
        print(f"  {label:34s} p50 {percentile(values, .5) * ms:7.1f} ms   "
              f"p99 {percentile(values, .99) * ms:7.1f} ms   "
              f"mean {statistics.fmean(values) * ms:7.1f} ms")
    print(f"  GitHub calls {len(fake.requests)} ({len(fake.write_calls)} writes), "
          f"model calls {len(claude.requests)}")
    print(f"  SQL statements per task (delivery to reply): p50 {percentile(per_task, .5):.0f}, "
          f"max {max(per_task):.0f}")


async def _tasks(dsn: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM claude_tasks WHERE state = 'PR_OPENED'"))
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    with throwaway_database("claude") as dsn:
        asyncio.run(bench(dsn, args.tasks))


if __name__ == "__main__":
    main()
