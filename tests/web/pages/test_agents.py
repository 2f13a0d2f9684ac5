"""The agents' pages (issue 19): `/agents` lists every agent with its status, versions and
today's runs and spending, paged; `/agents/{key}` shows its versions, one version's code,
test and report (escaped), its runs (paged, each linking to `/runs/{id}`) and, for a signed-in
writer only, the Run form, whose post queues a run recorded with the signed-in name; `/runs/{id}`
shows one run with its payloads, secrets redacted."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from controller.app import create_app
from controller.providers import lifecycle
from controller.store import Store
from controller.web.pages.agents import AGENTS, RUNS, VERSIONS
from tests.helpers import GITHUB_SECRET, WRITE_TOKEN, make_settings
from tests.web.pages.scrape import read

KEY = "agent:local/echo"
PAGE = f"/agents/{quote(KEY, safe='')}"
HERE = "/agents/agent:local%2Fecho"  # the same address as the server writes it back
HOSTILE = "<script>alert('code')</script>"


async def _apply(store: Store, name: str, *, description: str = "echoes its input") -> None:
    document = {"apiVersion": "p38/v1", "kind": "Agent", "metadata": {"name": name},
                "spec": {"description": description, "model": "claude-sonnet-5-5",
                         "tools": ["http"]}}
    await store.execute("applied_object_upsert", "local", "Agent", name, f"hash-{name}",
                        document, "rev-1")


async def _version(store: Store, state: str, *, code: str, error: str | None = None) -> int:
    number: int = await store.fetchval("agent_version_create", KEY, "spec-hash", "generated",
                                       "claude-sonnet-5-5", {"description": "echo"})
    test = "def test_echo():\n    assert True\n"
    versions = lifecycle.VERSIONS
    assert await lifecycle.move(store, versions, (KEY, number), "VALIDATING", "its test runs",
                                code=code, test=test)
    assert await lifecycle.move(
        store, versions, (KEY, number), state, "validated", code=code, test=test, rounds=2,
        input_tokens=1200, output_tokens=300, cache_read_tokens=0, cache_write_tokens=0,
        usd=0.0125, report={"ok": state == "READY", "steps": {"ruff": "clean"}}, error=error,
        duration_ms=900)
    return number


async def _run(store: Store, n: int, *, finish: bool = True) -> int:
    row = await store.fetchrow("agent_run_create", KEY, "manual", "api", None, {"n": n})
    assert row is not None
    if finish:
        runs = lifecycle.RUNS
        assert await lifecycle.move(store, runs, (row["id"],), "running", "started", version=1)
        assert await lifecycle.move(
            store, runs, (row["id"],), "finished", "done", outcome="succeeded",
            result={"echo": n, "api_key": "k-123456"},
            stderr=f"printed {GITHUB_SECRET} by mistake",
            tool_calls=[{"tool": "http", "ok": True}], tokens=100, usd=0.5,
            isolation={"landlock": True})
    return int(row["id"])


async def _seed(store: Store) -> None:
    await _apply(store, "echo", description=f"echoes {HOSTILE}")
    await store.pool.execute(
        "INSERT INTO object_status (key, kind, status, reason, message, source) VALUES "
        "($1, 'agent', 'Ready', 'Built', 'v11 runs', 'local')", KEY)
    for n in range(1, VERSIONS + 2):  # v1 .. v11 READY, v12 FAILED: 12, one page and more
        await _version(store, "READY", code=f"# version {n}\nprint({HOSTILE!r})\n")
    await _version(store, "FAILED", code="broken(", error="ruff: SyntaxError <b>here</b>")
    for n in range(RUNS + 3):
        await _run(store, n)


async def test_the_agents_page_lists_each_agent_with_todays_runs_and_pages(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    await _seed(store)
    for n in range(AGENTS):  # with echo: one more than a page
        await _apply(store, f"zz-{n:03d}")
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    response = await client.get("/agents")
    assert response.status == 200
    html = await response.text()
    assert "<title>Agents · project38</title>" in html
    row = html.split(f'href="{PAGE}"', 1)[1].split("</tr>", 1)[0]
    assert ">Ready<" in row and "Built" in row
    assert f'href="{PAGE}?version=11">v11<' in row  # the version runs use (the newest READY)
    assert f'href="{PAGE}?version=12">v12<' in row and "FAILED" in row
    runs = RUNS + 3
    assert f"<td>{runs}</td><td>{runs * 100}</td><td>${runs * 0.5:,.4f}</td>" in row
    assert f'href="/objects/{quote(KEY, safe="")}"' in row  # the status links to its why
    assert HOSTILE not in html and "echoes &lt;script&gt;alert(&#39;code&#39;)" in html

    seen = read(html)
    [older] = [href for href, text in seen.links if text == "Older →"]
    assert older == "/agents?after=agent:local/zz-048"
    second = read(await (await client.get(older)).text())
    assert [t for h, t in second.links if h.startswith("/agents/")] == ["zz-049"]
    assert "Older →" not in [t for _, t in second.links]
    bad = await client.get("/agents?after=nonsense")
    assert bad.status == 400 and "agent:&lt;source&gt;/&lt;name&gt;" in await bad.text()


async def test_one_agent_shows_versions_code_runs_escaped_and_pages_both(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    await _seed(store)
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    response = await client.get(PAGE)
    assert response.status == 200, await response.text()
    html = await response.text()
    assert "<h1>Agent echo</h1>" in html
    assert "Version 11: READY" in html  # the version runs use, shown by default
    assert HOSTILE not in html
    assert "print(&#34;&lt;script&gt;alert(&#39;code&#39;)&lt;/script&gt;&#34;)" in html
    assert "def test_echo():" in html and "&#34;ruff&#34;: &#34;clean&#34;" in html
    assert "ruff: SyntaxError &lt;b&gt;here&lt;/b&gt;" in html  # v12's error, escaped
    seen = read(html)
    hrefs = seen.hrefs()
    assert f"/objects/{quote(KEY, safe='')}" in hrefs
    versions = [text for href, text in seen.links if re.fullmatch(r"\?version=\d+", href)]
    assert versions[:VERSIONS + 1] == ["v11"] + [f"v{n}" for n in range(12, 2, -1)]
    runs = [href for href in hrefs if href.startswith("/runs/")]
    newest = RUNS + 3
    assert runs == [f"/runs/{n}" for n in range(newest, newest - RUNS, -1)]
    assert seen.form("/run") is None  # an anonymous reader gets no Run form

    [older_versions] = [h for h, t in seen.links if t == "Older versions →"]
    assert older_versions == f"{HERE}?vbefore=3"
    shown = read(await (await client.get(older_versions)).text())
    assert [t for h, t in shown.links if re.fullmatch(r"\?version=\d+", h)][1:] == ["v2", "v1"]
    [older_runs] = [h for h, t in seen.links if t == "Older →"]
    assert older_runs == f"{HERE}?before={newest - RUNS + 1}"
    rest = read(await (await client.get(older_runs)).text()).hrefs()
    assert [h for h in rest if h.startswith("/runs/")] == ["/runs/3", "/runs/2", "/runs/1"]

    one = await (await client.get(f"{PAGE}?version=12")).text()
    assert "Version 12: FAILED" in one and "broken(" in one
    assert (await client.get(f"{PAGE}?version=40")).status == 404
    assert (await client.get("/agents/agent%3Alocal%2Fnobody")).status == 404
    assert (await client.get("/agents/echo")).status == 400
    assert (await client.get(f"{PAGE}?version=x")).status == 400


async def test_a_run_page_shows_its_payloads_with_secrets_redacted(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    await _apply(store, "echo")
    await _version(store, "READY", code="print('hi')\n")
    run_id = await _run(store, 7)
    await store.pool.execute("UPDATE agent_runs SET input = $2::jsonb WHERE id = $1", run_id,
                             {"n": 7, "password": "hunter2-horse", "note": "<script>x</script>"})
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    response = await client.get(f"/runs/{run_id}")
    assert response.status == 200
    html = await response.text()
    assert f"<h1>Run {run_id}</h1>" in html
    assert "&#34;n&#34;: 7" in html and "&#34;echo&#34;: 7" in html
    assert "hunter2-horse" not in html and "k-123456" not in html and GITHUB_SECRET not in html
    assert html.count("[redacted]") == 3  # the password, the api_key, the secret in stderr
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
    assert "&#34;tool&#34;: &#34;http&#34;" in html and "&#34;landlock&#34;: true" in html
    assert "printed [redacted] by mistake" in html
    hrefs = read(html).hrefs()
    assert PAGE in hrefs and f"{PAGE}?version=1" in hrefs
    assert f"/objects/{quote(f'run:local/echo#{run_id}', safe='')}" in hrefs
    assert (await client.get("/runs/999")).status == 404
    assert (await client.get("/runs/x1")).status == 400


async def test_the_run_form_is_for_signed_in_writers_and_queues_a_run_by_name(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    await _apply(store, "echo")
    await _version(store, "READY", code="print('hi')\n")
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    assert read(await (await client.get(PAGE)).text()).form("/run") is None
    signed = await client.post("/login", data={"name": "dana", "token": WRITE_TOKEN,
                                               "next": PAGE}, allow_redirects=False)
    assert signed.status == 303 and signed.headers["Location"] == HERE

    seen = read(await (await client.get(PAGE)).text())
    form = seen.form("/run")
    assert form is not None and form.method == "post"
    assert set(form.fields) == {"csrf", "back", "agent", "input"}
    assert form.fields["agent"] == KEY and form.fields["back"] == HERE and form.fields["csrf"]
    [textarea] = [i for i, name in form.ids.items() if name == "input"]
    assert seen.labels[textarea].startswith("Input (JSON")

    posted = await client.post("/run", data={**form.fields, "input": '{"n": 3}'},
                               allow_redirects=False)
    assert posted.status == 303 and posted.headers["Location"] == HERE
    [queued] = await store.fetch("agent_runs_of", KEY, None, 5)
    assert (queued["trigger"], queued["requested_by"], queued["state"]) == (
        "manual", "page (dana)", "queued")
    row = await store.fetchrow("agent_run_get", queued["id"])
    assert row is not None and row["input"] == {"n": 3}
    [said] = await store.fetch("operator_actions_list", None, KEY, 5)
    assert (said["by_whom"], said["via"], said["verb"], said["outcome"]) == (
        "dana", "page", "run", "done")
    after = await (await client.get(PAGE)).text()
    assert f"run {queued['id']} of {KEY} queued (by dana)" in after
    assert f'href="/runs/{queued["id"]}"' in after

    stale = await client.post("/run", data={**form.fields, "csrf": "forged"},
                              allow_redirects=False)
    assert stale.status == 403
    assert len(await store.fetch("agent_runs_of", KEY, None, 5)) == 1
