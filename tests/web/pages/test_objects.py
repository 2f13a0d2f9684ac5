"""The objects pages (issue 19): `/objects` lists every object with its status, reason and
message, filtered and keyset-paged; `/objects/{key}` shows one object's status, the
reconciles that decided it with the deliveries that caused them, its actions, the deliveries
that named it, its queue row and the operator's words on it, with Approve and Revive."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

from controller.app import create_app
from controller.store import Store
from tests.helpers import WRITE_TOKEN, make_settings
from tests.web.pages.seed import action, form_of, reconcile, sign_in

HOSTILE = "<script>alert('owned')</script>"


def href(key: str) -> str:
    return f'href="/objects/{quote(key, safe="")}"'


async def _client(aiohttp_client: Any, dsn: str) -> Any:
    return await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))


async def _objects(store: Store) -> None:
    await reconcile(store, "agent:local/alpha", status=("Ready", "VersionReady", "v1 is READY"))
    await reconcile(store, "agent:local/beta",
                    status=("Stalled", "VersionFailed", f"v2 FAILED: {HOSTILE}"))
    await reconcile(store, "pull:octo/app#7",
                    status=("Blocked", "AwaitingApproval", "the merge is held"))
    await reconcile(store, "command:octo/app#7@c42", status=("Ready", "Answered", "replied"))
    await reconcile(store, "schedule:local/nightly",
                    status=("Waiting", "NextTick", "due at 02:00"))


async def test_objects_list_shows_each_status_filters_and_pages(aiohttp_client: Any,
                                                                store: Store, dsn: str) -> None:
    """Every object with its status, reason and message (escaped); kind and status filter;
    `after` pages by key and keeps the filters."""
    await _objects(store)
    client = await _client(aiohttp_client, dsn)
    page = await client.get("/objects")
    assert page.status == 200
    text = await page.text()
    assert "<title>Objects · project38</title>" in text
    for key in ("agent:local/alpha", "agent:local/beta", "pull:octo/app#7",
                "command:octo/app#7@c42", "schedule:local/nightly"):
        assert href(key) in text, key
    assert "VersionFailed" in text and "AwaitingApproval" in text and "due at 02:00" in text
    assert HOSTILE not in text
    assert "v2 FAILED: &lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in text

    stalled = await (await client.get("/objects?status=Stalled")).text()
    assert href("agent:local/beta") in stalled and href("agent:local/alpha") not in stalled
    pulls = await (await client.get("/objects?kind=pull")).text()
    assert href("pull:octo/app#7") in pulls and href("agent:local/beta") not in pulls
    assert '<option value="pull" selected>' in pulls
    bad = await client.get("/objects?kind=<b>nope</b>")
    assert bad.status == 400 and "kind must be one of" in await bad.text()
    assert "<b>nope" not in await bad.text()

    first = await (await client.get("/objects?limit=2")).text()
    assert href("agent:local/alpha") in first and href("agent:local/beta") in first
    assert href("command:octo/app#7@c42") not in first
    older = re.search(r'<a href="([^"]+)" rel="next">Older →</a>', first)
    assert older is not None
    assert older.group(1) == "/objects?limit=2&amp;after=agent%3Alocal%2Fbeta"
    second = await (await client.get(older.group(1).replace("&amp;", "&"))).text()
    assert href("command:octo/app#7@c42") in second and href("pull:octo/app#7") in second
    assert href("agent:local/alpha") not in second
    agents = await (await client.get("/objects?kind=agent&limit=1")).text()
    assert "kind=agent" in re.search(r'href="([^"]+)" rel="next"', agents).group(1)  # type: ignore[union-attr]


async def test_one_object_links_its_status_to_the_decisions_and_deliveries(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    """Status, each reconcile's decision, reason and error with the deliveries that caused it,
    actions (held with Approve, failed, dry-run), the deliveries that named it; both long
    lists paged; approving from the page comes back to it."""
    key = "pull:octo/app#7"
    d1, _ = await reconcile(store, key, decision="look", reason="first sight",
                            status=("Reconciling", "Observed", "reading checks"))
    d2, r2 = await reconcile(store, key, decision="merge", reason="every check is green",
                             status=("Blocked", "AwaitingApproval", f"held: {HOSTILE}"),
                             actions=[{"id": 1, "kind": "github.merge", "key": "m",
                                       "status": "held", "reason": "approval"}])
    d3, _ = await reconcile(store, key, outcome="retry", decision="merge", reason="retrying",
                            error="GitHub answered 502")
    await action(store, key, "github.merge:octo/app#7:abc", status="held",
                 reason="the Policy wants an approval", description="merge #7 at abc",
                 reconcile_id=r2)
    await action(store, key, "github.comment:octo/app#7", status="failed",
                 description=f"comment {HOSTILE}", error="422 Unprocessable")
    await action(store, key, "github.label:octo/app#7", status="dry_run",
                 reason="dry-run: recorded only", description="label automerge")
    client = await _client(aiohttp_client, dsn)
    url = f"/objects/{quote(key, safe='')}"
    page = await client.get(url)
    assert page.status == 200, await page.text()
    text = await page.text()
    assert f"<h1>{key}</h1>" in text
    assert "AwaitingApproval" in text and HOSTILE not in text
    assert "held: &lt;script&gt;" in text and "comment &lt;script&gt;" in text
    for decision in ("first sight", "every check is green", "retrying", "GitHub answered 502"):
        assert decision in text
    for delivery in (d1, d2, d3):
        assert f'<a href="/deliveries/{delivery}">delivery {delivery}</a>' in text
        assert f'<a href="/deliveries/{delivery}">{delivery}</a>' in text  # named it
    for status in ("held", "failed", "dry_run"):
        assert f'class="status status-{status}"' in text
    assert "422 Unprocessable" in text and "the Policy wants an approval" in text
    assert "retrying" in text and "State: <span class=\"status status-queued\">" in text
    assert 'action="/approve"' not in text  # not signed in: no buttons

    first = await (await client.get(f"{url}?limit=2")).text()
    assert "retrying" in first and "every check is green" in first
    assert "first sight" not in first
    older = re.search(r'<a href="([^"]+)" rel="next">Older reconciles →</a>', first)
    assert older is not None and "limit=2" in older.group(1)
    second = await (await client.get(older.group(1).replace("&amp;", "&"))).text()
    assert "first sight" in second and "every check is green" not in second
    assert "dry-run: recorded only" in first and "422 Unprocessable" in first
    older_actions = re.search(r'<a href="([^"]+)" rel="next">Older actions →</a>', first)
    assert older_actions is not None
    rest = await (await client.get(older_actions.group(1).replace("&amp;", "&"))).text()
    assert "the Policy wants an approval" in rest and "422 Unprocessable" not in rest

    await sign_in(client)
    signed = await (await client.get(url)).text()
    form = form_of(signed, "/approve")
    assert form["idempotency_key"] == "github.merge:octo/app#7:abc"
    assert form["back"] == "/objects/pull:octo%2Fapp%237"  # `#` and `/` kept encoded
    done = await client.post("/approve", data=form, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == form["back"]
    after = await (await client.get(url)).text()
    assert "approved github.merge:octo/app#7:abc (by dana)" in after
    [word] = await store.fetch("operator_actions_list", None, None, 10)
    assert (word["by_whom"], word["via"], word["verb"]) == ("dana", "page", "approve")


async def test_a_dead_object_is_revived_from_its_page(aiohttp_client: Any, store: Store,
                                                       dsn: str) -> None:
    """A key that gave up shows its last error and a Revive button; reviving queues it and
    the word shows on the object, linked from the operator log."""
    key = "agent:local/gamma"
    await reconcile(store, key, outcome="dead", decision="generate", reason="gave up",
                    error="generation failed 8 times")
    client = await _client(aiohttp_client, dsn)
    await sign_in(client, "sam")
    url = f"/objects/{quote(key, safe='')}"
    text = await (await client.get(url)).text()
    assert 'class="status status-dead"' in text and "generation failed 8 times" in text
    form = form_of(text, "/revive")
    assert form["key"] == key and unquote(form["back"]) == f"/objects/{key}"
    done = await client.post("/revive", data=form, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == form["back"]
    row = await store.fetchrow("queue_of_key", key)
    assert row is not None and row["state"] == "queued"
    after = await (await client.get(url)).text()
    assert "is queued again now (by sam" in after
    words = after.split('id="words"')[1]
    assert "<td>sam</td><td>page</td><td>revive</td><td>done</td>" in words
    assert 'action="/revive"' not in after  # no longer dead


async def test_an_unknown_object_is_a_404_page(aiohttp_client: Any, dsn: str) -> None:
    client = await _client(aiohttp_client, dsn)
    missing = await client.get(f"/objects/{quote('agent:local/<i>none</i>', safe='')}")
    assert missing.status == 404
    text = await missing.text()
    assert "no object with key" in text and "<i>none" not in text
