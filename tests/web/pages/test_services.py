"""The services' pages (issue 19): `/services` lists every Service with its status, open
incident and bad commits, paged; `/services/{key}` shows one with its deployments (each with
the timeline of its states), its bad commits and its incidents, as GET /api/services/{name}
answers them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from controller.app import create_app
from controller.store import Store
from controller.web.pages.services import SERVICES
from tests.helpers import WRITE_TOKEN, make_settings
from tests.web.pages.scrape import read

KEY = "service:local/web"
PAGE = f"/services/{quote(KEY, safe='')}"
GOOD, BAD = "a" * 40, "b" * 40


async def _apply(store: Store, name: str, railway_service: str) -> None:
    document = {"apiVersion": "p38/v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"branch": "main", "railway": {"project": "proj-1",
                                                       "environment": "env-1",
                                                       "service": railway_service}}}
    await store.execute("applied_object_upsert", "local", "Service", name, f"h-{name}",
                        document, "c0ffee" * 6)


async def _seed(store: Store) -> None:
    await _apply(store, "web", "srv-web")
    await store.pool.execute(
        "INSERT INTO object_status (key, kind, status, reason, message, source) VALUES ($1,"
        " 'service', 'Blocked', 'BadCommit', $2, 'local')", KEY,
        f"{BAD[:7]} failed before <script>alert('svc')</script>")
    for name, state, commit in (("dep-1", "success", GOOD), ("dep-2", "failed", BAD)):
        await store.fetchval("resource_insert", "deployment", name, state,
                             {"service": "srv-web", "commit": commit})
    for name, steps in (("dep-1", [(None, "building"), ("building", "success")]),
                        ("dep-2", [(None, "building"), ("building", "deploying"),
                                   ("deploying", "failed")])):
        for n, (was, now) in enumerate(steps, 1):
            await store.pool.execute(
                "INSERT INTO transitions (kind, name, from_state, to_state, version, reason)"
                " VALUES ('deployment', $1, $2, $3, $4, 'railway said so')", name, was, now, n)
    await store.execute("service_bad_mark", KEY, BAD, "dep-2", "the deployment failed")
    await store.fetchval("service_incident_record", KEY, "dep-2", BAD, "FAILED", "dep-1", GOOD)
    await store.pool.execute(
        "INSERT INTO actions (idempotency_key, kind, key, status, result) VALUES ($1,"
        " 'github.issue_upsert', $2, 'succeeded', '{\"issue\": 42}'::jsonb)",
        f"incident:{KEY}:dep-2", KEY)


async def test_the_services_page_lists_each_service_and_pages(aiohttp_client: Any,
                                                              store: Store, dsn: str) -> None:
    await _seed(store)
    for n in range(SERVICES):
        await _apply(store, f"zz-{n:03d}", f"srv-{n}")
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    response = await client.get("/services")
    assert response.status == 200
    html = await response.text()
    assert "<title>Services · project38</title>" in html
    seen = read(html)
    listed = [t for h, t in seen.links if h.startswith("/services/")]
    assert listed == ["web"] + [f"zz-{n:03d}" for n in range(SERVICES - 1)]
    row = html.split(f'href="{PAGE}"', 1)[1].split("</tr>", 1)[0]
    assert ">Blocked<" in row and "BadCommit" in row
    assert f'href="/objects/{quote(KEY, safe="")}"' in row
    assert "<script>" not in html and "&lt;script&gt;alert(&#39;svc&#39;)" in row
    assert "dep-2" in row and "FAILED" in row and "issue #42" in row  # the open incident
    assert f"<code>{BAD[:11]}…</code>" in row  # a bad commit
    assert "project proj-1" in row and "service srv-web" in row
    [older] = [h for h, t in seen.links if t == "Older →"]
    assert older == f"/services?after=service:local/zz-{SERVICES - 2:03d}"
    second = read(await (await client.get(older)).text())
    assert [t for h, t in second.links if h.startswith("/services/")] == [
        f"zz-{SERVICES - 1:03d}"]
    assert (await client.get("/services?after=web")).status == 400
    assert (await client.get("/services?other=1")).status == 400


async def test_one_service_shows_deployments_with_timelines_bad_commits_and_incidents(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    await _seed(store)
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    response = await client.get(PAGE)
    assert response.status == 200
    html = await response.text()
    assert "<h1>Service web</h1>" in html and "<script>" not in html
    deployments = html.split('id="deployments"', 1)[1].split("</section>", 1)[0]
    dep2 = deployments.split("deployment:dep-2</a>", 1)[1].split("</tr>", 1)[0]
    assert [part.split("<small>")[0].strip() for part in dep2.split("<li>")[1:]] == [
        "new → building", "building → deploying", "deploying → failed"]
    dep1 = deployments.split("deployment:dep-1</a>", 1)[1].split("</tr>", 1)[0]
    assert "building → success" in dep1 and "failed" not in dep1
    bad = html.split('id="bad"', 1)[1].split("</section>", 1)[0]
    assert f"<code>{BAD}</code>" in bad and "the deployment failed" in bad
    incidents = html.split('id="incidents"', 1)[1].split("</section>", 1)[0]
    assert "FAILED" in incidents and "dep-1" in incidents and "#42" in incidents
    assert "<strong>open</strong>" in incidents
    hrefs = read(html).hrefs()
    for key in (KEY, "deployment:dep-1", "deployment:dep-2"):
        assert f"/objects/{quote(key, safe='')}" in hrefs, key
    assert (await client.get("/services/service%3Alocal%2Fnone")).status == 404
    assert (await client.get("/services/web")).status == 400
