"""The `/claude` tasks' pages (issue 19): `/tasks` lists tasks newest first with state, where,
who, tokens, US dollars, tool calls and pull request, paged and filtered by state; `/tasks/{id}`
shows one with its command (escaped: commenters are untrusted), its history, its cost, its pull
request and its keys."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from controller.app import create_app
from controller.providers import lifecycle
from controller.providers.tasks import open_task
from controller.store import Store
from controller.web.pages.tasks import TASKS
from reconcilers.claude.task_actions import OpenTask
from tests.helpers import WRITE_TOKEN, make_settings
from tests.web.pages.scrape import read

REPO = "octo-org/infra"
HOSTILE = "/claude add <script>alert('task')</script> to the README"


async def _task(store: Store, comment: int, *, state: str = "AUTHORIZED",
                command: str = "/claude fix the docs", by: str = "dana-ops") -> int:
    return await open_task(store, OpenTask(
        repo=REPO, issue=11, comment_id=comment, installation_id=51234567, on_pull=False,
        requested_by=by, command=command, state=state,
        reason="may write" if state == "AUTHORIZED" else "cannot write"))


async def _opened(store: Store, comment: int, *, url: str) -> int:
    task_id = await _task(store, comment, command=HOSTILE)
    assert await lifecycle.move(store, lifecycle.TASKS, (task_id,), "WORKING", "Claude works on it")
    await store.execute("claude_task_figures", task_id, "claude-sonnet-5-5", 12000, 3400, 500,
                        60, 0.0875, 9)
    await store.execute("claude_task_change", task_id, "main", "a" * 40, "claude/11-readme",
                        {"README.md": {"content": "hi"}, "old.txt": {"content": None}},
                        "Add a README section", "Wrote <b>the section</b>", None, [])
    assert await lifecycle.move(store, lifecycle.TASKS, (task_id,), "PR_OPENED",
                                "pull request #7 opened", pull_number=7, pull_url=url,
                                commit_sha="b" * 40)
    return task_id


async def test_the_tasks_page_lists_pages_and_filters(aiohttp_client: Any, store: Store,
                                                      dsn: str) -> None:
    opened = await _opened(store, 100, url=f"https://github.com/{REPO}/pull/7")
    refused = await _task(store, 101, state="REFUSED", by="mallory")
    for n in range(TASKS):
        await _task(store, 200 + n)
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    response = await client.get("/tasks")
    assert response.status == 200
    html = await response.text()
    assert "<title>Tasks · project38</title>" in html and "<h1>Tasks</h1>" in html
    seen = read(html)
    listed = [h for h in seen.hrefs() if h.startswith("/tasks/")]
    newest = TASKS + 2
    assert listed == [f"/tasks/{n}" for n in range(newest, 2, -1)]  # 50 newest
    assert seen.labels["f-state"] == "State" and seen.form("/tasks") is not None
    [older] = [h for h, t in seen.links if t == "Older →"]
    assert older == "/tasks?before=3"
    second = read(await (await client.get(older)).text())
    assert [h for h in second.hrefs() if h.startswith("/tasks/")] == [
        f"/tasks/{refused}", f"/tasks/{opened}"]
    assert "Older →" not in [t for _, t in second.links]
    last = (await (await client.get(older)).text()).split(f'href="/tasks/{opened}"')[1]
    row = last.split("</tr>", 1)[0]
    assert "PR_OPENED" in row and f"{REPO}#11" in row and "dana-ops" in row
    assert "<td>15960</td><td>$0.0875</td><td>9</td>" in row  # tokens, USD, tool calls
    assert 'href="/pulls/octo-org/infra/7">#7<' in row
    assert f'href="https://github.com/{REPO}/pull/7"' in row
    assert "<script>" not in last and "&lt;script&gt;alert(&#39;task&#39;)" in row

    only = read(await (await client.get("/tasks?state=REFUSED")).text())
    assert [h for h in only.hrefs() if h.startswith("/tasks/")] == [f"/tasks/{refused}"]
    assert only.form("/tasks") is not None
    none = await (await client.get("/tasks?state=PR_OPENED&repo=else/where")).text()
    assert "No tasks match these filters." in none
    bad = await client.get("/tasks?state=bogus")
    assert bad.status == 400 and "state must be one of" in await bad.text()
    assert (await client.get("/tasks?before=x")).status == 400


async def test_one_task_shows_its_command_escaped_history_cost_and_pull(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    task_id = await _opened(store, 100, url=f"https://github.com/{REPO}/pull/7")
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    response = await client.get(f"/tasks/{task_id}")
    assert response.status == 200
    html = await response.text()
    assert f"<h1>Task {task_id}</h1>" in html
    assert "<script>" not in html
    assert ("<pre>/claude add &lt;script&gt;alert(&#39;task&#39;)"
            "&lt;/script&gt; to the README</pre>") in html
    assert "Wrote &lt;b&gt;the section&lt;/b&gt;" in html  # Claude's summary, escaped
    for step in ("comment 100 by @dana-ops", "may write", "Claude works on it",
                 "pull request #7 opened"):
        assert step in html, step
    history = html.split('id="history"', 1)[1].split("</section>", 1)[0]
    assert history.count(" UTC</td>") == 4 and "+00:00" not in history
    assert "15960 (12000 in, 3400 out, 500 cache read, 60 cache write)" in html
    assert "$0.0875" in html and "claude-sonnet-5-5" in html
    assert "<code>README.md</code></td><td>written" in html
    assert "<code>old.txt</code></td><td>deleted" in html
    hrefs = read(html).hrefs()
    assert "/pulls/octo-org/infra/7" in hrefs and f"https://github.com/{REPO}/pull/7" in hrefs
    for key in (f"task:{REPO}#11@100", f"command:{REPO}#11@100", f"task-work:{task_id}",
                f"task-push:{task_id}"):
        assert f"/objects/{quote(key, safe='')}" in hrefs, key
    assert (await client.get("/tasks/999")).status == 404
    assert (await client.get("/tasks/abc")).status == 400


async def test_a_pull_address_that_is_not_https_is_not_a_link(aiohttp_client: Any,
                                                               store: Store, dsn: str) -> None:
    task_id = await _opened(store, 100, url="javascript:alert(1)")
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    for path in ("/tasks", f"/tasks/{task_id}"):
        html = await (await client.get(path)).text()
        assert "javascript:" not in html, path
        assert "/pulls/octo-org/infra/7" in read(html).hrefs(), path
