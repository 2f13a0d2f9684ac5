"""The operator log (issue 19): every operator's word, from the CLI, the API or the page, with
who, through what, the target (linked when it is an object's key or a delivery), the outcome
and when; filter by target, keyset-paged by id; a hostile name comes out escaped."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

from controller.app import create_app
from controller.store import Store
from controller.web.pages.oplog import target_link
from tests.helpers import WRITE, WRITE_TOKEN, make_settings, store_delivery
from tests.web.pages.seed import form_of, reconcile, sign_in

HOSTILE = "<script>alert('owned')</script>"
KINDS = ("agent", "issue", "pull")


def test_targets_link_to_objects_and_deliveries() -> None:
    assert target_link("issue:o/r#1", KINDS) == "/objects/issue%3Ao%2Fr%231"
    assert target_link("delivery:42", KINDS) == "/deliveries/42"
    assert target_link("delivery:4x", KINDS) is None
    assert target_link("octo-org/infra", KINDS) is None  # a source's killswitch
    assert target_link("railway.rollback:svc:dep-2", KINDS) is None  # an idempotency key
    assert target_link("agent:", KINDS) is None


async def test_every_word_is_listed_linked_filtered_and_paged(aiohttp_client: Any,
                                                              store: Store, dsn: str) -> None:
    client = await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))
    await reconcile(store, "issue:o/r#1", outcome="dead", error="boom")
    delivery = await store_delivery(store, "probe:x")
    assert (await client.put("/api/killswitches/octo-org/infra", json={"by": "sam"},
                             headers=WRITE)).status == 202
    assert (await client.post(f"/api/deliveries/{delivery}/replay", json={"by": "sam"},
                              headers=WRITE)).status == 202
    await sign_in(client, HOSTILE)
    page = await (await client.get(f"/objects/{quote('issue:o/r#1', safe='')}")).text()
    revived = await client.post("/revive", data=form_of(page, "/revive"),
                                allow_redirects=False)
    assert revived.status == 303

    log = await client.get("/operator-log")
    assert log.status == 200
    text = await log.text()
    assert "<title>Operator log · project38</title>" in text
    rows = re.findall(r"<tr><td title=.*?</tr>", text, re.S)
    assert len(rows) == 3
    assert HOSTILE not in text
    assert ("<td>&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;</td><td>page</td>"
            "<td>revive</td>") in rows[0]
    assert '<a href="/objects/issue%3Ao%2Fr%231">issue:o/r#1</a>' in rows[0]
    assert "<td>done</td>" in rows[0] and "state_before" in rows[0]
    assert "<td>sam</td><td>api</td><td>replay</td>" in rows[1]
    assert f'<a href="/deliveries/{delivery}">delivery:{delivery}</a>' in rows[1]
    assert "<td>sam</td><td>api</td><td>killswitch_on</td>" in rows[2]
    assert "<code>octo-org/infra</code>" in rows[2]

    only = await (await client.get(f"/operator-log?target={quote('issue:o/r#1')}")).text()
    assert "revive" in only and "killswitch_on" not in only and "replay" not in only

    first = await (await client.get("/operator-log?limit=2")).text()
    assert "revive" in first and "replay" in first and "killswitch_on" not in first
    older = re.search(r'<a href="([^"]+)" rel="next">Older →</a>', first)
    assert older is not None and "limit=2" in older.group(1)
    second = await (await client.get(older.group(1).replace("&amp;", "&"))).text()
    assert "killswitch_on" in second and "revive" not in second
    assert 'rel="next"' not in second


async def test_these_pages_send_a_stranger_to_sign_in(aiohttp_client: Any, store: Store,
                                                       dsn: str) -> None:
    """With P38_API_TOKEN set, reading needs a sign-in: each page sends a stranger to it and
    back, and shows nothing of the store."""
    await reconcile(store, "issue:o/r#1", status=("Ready", "Quiet", "secret-ish message"))
    client = await aiohttp_client(create_app(make_settings(dsn, api_token=WRITE_TOKEN)))
    for url in ("/objects", f"/objects/{quote('issue:o/r#1', safe='')}", "/deliveries",
                "/deliveries/1", "/operator-log"):
        answer = await client.get(url, allow_redirects=False)
        assert answer.status == 303, url
        where, _, back = answer.headers["Location"].partition("?next=")
        assert where == "/login" and unquote(unquote(back)) == unquote(url), url
    await sign_in(client, "reader")
    shown = await client.get(f"/objects/{quote('issue:o/r#1', safe='')}")
    assert shown.status == 200 and "secret-ish message" in await shown.text()
