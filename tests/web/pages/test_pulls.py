"""The pull requests' pages (issue 19): `/pulls` lists what auto-merge tracks with its status,
judgement and blockers, paged and filtered; `/pulls/{owner}/{repo}/{n}` shows one with its
blockers, its merge and the `/claude` tasks that made it, as GET /api/pulls/... answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from controller.app import create_app
from controller.store import Store
from controller.web.pages.pulls import PULLS
from tests.helpers import WRITE_TOKEN, make_settings
from tests.web.pages.scrape import read
from tests.web.pages.test_tasks import REPO, _opened

HOSTILE = "<script>alert('pull')</script>"


async def _pull(store: Store, name: str, state: str, automerge: dict[str, Any] | None,
                title: str = "Add a README section") -> None:
    data = {"title": title, "head_sha": "c" * 40, "head_ref": "claude/11-readme",
            "base_ref": "main", **({"automerge": automerge} if automerge else {})}
    await store.fetchval("resource_insert", "pull", name, state, data)


async def _seed(store: Store) -> None:
    await _pull(store, f"{REPO}#7", "open", {
        "in_scope": True, "head": "c" * 40,
        "blockers": ["check `ci/test` is failing", f"a review asks for changes {HOSTILE}"]},
        title=f"Fix {HOSTILE}")
    await _pull(store, f"{REPO}#8", "merged", {
        "in_scope": True, "blockers": [],
        "merge": {"sha": "d" * 40, "by": "project38", "method": "squash"}})
    await _pull(store, f"{REPO}#9", "closed", {
        "in_scope": False, "why": "`feature/x` matches none of autoMerge.branches"})
    await store.pool.execute(
        "INSERT INTO object_status (key, kind, status, reason, message, source) VALUES ($1,"
        " 'pull', 'Waiting', 'Blocked', '2 conditions unmet', NULL)", f"pull:{REPO}#7")


async def test_the_pulls_page_lists_blockers_pages_and_filters(aiohttp_client: Any,
                                                               store: Store, dsn: str) -> None:
    await _seed(store)
    for n in range(PULLS):
        await _pull(store, f"zz-org/r{n:03d}#1", "open", None)
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    response = await client.get("/pulls")
    assert response.status == 200
    html = await response.text()
    assert "<title>Pull requests · project38</title>" in html and "<script>" not in html
    seen = read(html)
    listed = [t for h, t in seen.links if h.startswith("/pulls/")]
    assert listed[:3] == [f"{REPO}#7", f"{REPO}#8", f"{REPO}#9"] and len(listed) == PULLS
    row = html.split(f'href="/pulls/{REPO}/7"', 1)[1].split("</tr>", 1)[0]
    assert "Fix &lt;script&gt;alert(&#39;pull&#39;)" in row and "in scope" in row
    assert "<li>check `ci/test` is failing</li>" in row
    assert "a review asks for changes &lt;script&gt;" in row
    assert f'href="/objects/{quote(f"pull:{REPO}#7", safe="")}"' in row and ">Waiting<" in row
    merged = html.split(f'href="/pulls/{REPO}/8"', 1)[1].split("</tr>", 1)[0]
    assert "merged by project38" in merged
    closed = html.split(f'href="/pulls/{REPO}/9"', 1)[1].split("</tr>", 1)[0]
    assert "not in scope" in closed and "matches none of autoMerge.branches" in closed
    [older] = [h for h, t in seen.links if t == "Older →"]
    second = read(await (await client.get(older)).text())
    assert [t for h, t in second.links if h.startswith("/pulls/")] == [
        f"zz-org/r{PULLS - 3:03d}#1", f"zz-org/r{PULLS - 2:03d}#1", f"zz-org/r{PULLS - 1:03d}#1"]
    assert "Older →" not in [t for _, t in second.links]

    merged_only = read(await (await client.get("/pulls?state=merged")).text())
    assert [t for h, t in merged_only.links if h.startswith("/pulls/")] == [f"{REPO}#8"]
    one_repo = read(await (await client.get(f"/pulls?repo={REPO}&state=open")).text())
    assert [t for h, t in one_repo.links if h.startswith("/pulls/")] == [f"{REPO}#7"]
    assert one_repo.labels["f-repo"].startswith("Repository")
    assert (await client.get("/pulls?state=draft")).status == 400


async def test_one_pull_shows_its_blockers_merge_and_tasks(aiohttp_client: Any, store: Store,
                                                           dsn: str) -> None:
    await _seed(store)
    task_id = await _opened(store, 100, url=f"https://github.com/{REPO}/pull/7")
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    response = await client.get(f"/pulls/{REPO}/7")
    assert response.status == 200
    html = await response.text()
    assert f"<h1>Pull request {REPO}#7</h1>" in html and "<script>" not in html
    assert "2 condition(s) unmet:" in html
    blockers = html.split("<caption>Blockers", 1)[1].split("</table>", 1)[0]
    assert "<td>check `ci/test` is failing</td>" in blockers
    assert "<td>a review asks for changes &lt;script&gt;alert(&#39;pull&#39;)&lt;/script&gt;" \
        "</td>" in blockers
    hrefs = read(html).hrefs()
    assert f"/tasks/{task_id}" in hrefs
    assert f"/objects/{quote(f'pull:{REPO}#7', safe='')}" in hrefs
    merged = await (await client.get(f"/pulls/{REPO}/8")).text()
    assert f"Merged at <code>{'d' * 40}</code> by project38 (squash)." in merged
    assert (await client.get(f"/pulls/{REPO}/70")).status == 404
    assert (await client.get(f"/pulls/{REPO}/x")).status == 400
    assert (await client.get(f"/pulls/{REPO}/99999999999")).status == 400
