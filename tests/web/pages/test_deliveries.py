"""The deliveries pages (issue 19): `/deliveries` lists webhook deliveries newest first,
filtered by source, event and outcome and keyset-paged by id; `/deliveries/{id}` shows one
with its safe headers, its payload pretty-printed with secrets redacted and hostile text
escaped, the keys it produced linking to their objects, and a Replay button."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import quote

from controller.app import create_app
from controller.engine.ingest import IngestWriter
from controller.store import Store
from handlers.base import Delivery
from tests.helpers import (
    GITHUB_SECRET,
    WRITE_TOKEN,
    github_payload,
    make_settings,
    sample,
    store_delivery,
)
from tests.web.pages.seed import form_of, reconcile, sign_in

HOSTILE = "<script>alert('owned')</script>"
TOKEN = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
HOOK_SECRET = "hook-secret-value-9d2f"
PULL_KEY = "pull:octo-org/infra#12"


async def _client(aiohttp_client: Any, dsn: str) -> Any:
    return await aiohttp_client(create_app(make_settings(dsn), write_token=WRITE_TOKEN))


async def _hostile_pull_request(client: Any) -> int:
    """A signed GitHub delivery whose title is a script and which carries secrets."""
    _, body = sample("pull_request", "opened")
    payload = json.loads(body)
    payload["pull_request"]["title"] = HOSTILE
    payload["token"] = TOKEN
    payload["hook"] = {"config": {"url": "https://example.test/hook", "secret": HOOK_SECRET}}
    payload["comment"] = {"body": f"my token is {TOKEN}, oops"}
    payload["sender"]["bio"] = f"echoes the webhook secret {GITHUB_SECRET}"
    headers, raw = github_payload("pull_request", payload)
    answer = await client.post("/webhooks/github", data=raw, headers=headers)
    assert answer.status == 202, await answer.text()
    found = await answer.json()
    assert PULL_KEY in found["keys"], found
    return int(found["delivery_id"])


async def test_one_delivery_is_shown_redacted_escaped_and_linked(aiohttp_client: Any,
                                                                 store: Store,
                                                                 dsn: str) -> None:
    client = await _client(aiohttp_client, dsn)
    delivery = await _hostile_pull_request(client)
    page = await client.get(f"/deliveries/{delivery}")
    assert page.status == 200, await page.text()
    text = await page.text()
    assert f"<title>Delivery {delivery} · project38</title>" in text
    assert "pull_request.opened" in text
    assert HOSTILE not in text
    assert '&#34;title&#34;: &#34;&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;&#34;' in text
    assert TOKEN not in text and HOOK_SECRET not in text and GITHUB_SECRET not in text
    assert "echoes the webhook secret [redacted]" in text
    assert "&#34;token&#34;: &#34;[redacted]&#34;" in text
    assert "&#34;secret&#34;: &#34;[redacted]&#34;" in text
    assert "my token is [redacted], oops" in text
    assert "&#34;full_name&#34;: &#34;octo-org/infra&#34;" in text  # the rest is shown
    assert '<code>X-GitHub-Event</code></td><td><code>pull_request</code>' in text
    assert "X-Hub-Signature-256" not in text  # never stored; never shown
    assert f'href="/objects/{quote(PULL_KEY, safe="")}"' in text
    assert 'action="/replay"' not in text  # not signed in

    await sign_in(client)
    signed = await (await client.get(f"/deliveries/{delivery}")).text()
    form = form_of(signed, "/replay")
    assert form["delivery"] == str(delivery) and form["back"] == f"/deliveries/{delivery}"
    done = await client.post("/replay", data=form, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == f"/deliveries/{delivery}"
    after = await (await client.get(f"/deliveries/{delivery}")).text()
    assert f"delivery {delivery} (pull_request) re-enqueued" in after
    [word] = await store.fetch("operator_actions_list", None, None, 10)
    assert (word["by_whom"], word["via"], word["verb"], word["target"]) == (
        "dana", "page", "replay", f"delivery:{delivery}")


async def test_headers_carrying_credentials_are_not_shown(aiohttp_client: Any, store: Store,
                                                          dsn: str) -> None:
    """Whatever headers a source kept, those whose names say they carry credentials stay
    off the page."""
    writer = IngestWriter(store, writers=1)
    await writer.start()
    try:
        stored = await writer.submit(Delivery(
            source="n8n", hook="", guid=str(uuid.uuid4()), event="alert", action=None,
            headers={"Authorization": "Bearer sk-ant-api03-secretsecret", "Cookie": "s=abc123",
                     "X-P38-Token": "n8n-shared-secret", "User-Agent": "n8n/1.0"},
            payload_json='{"password": "hunter2hunter2", "level": "warn"}',
            keys=("alert:n8n/1",)))
    finally:
        await writer.stop()
    client = await _client(aiohttp_client, dsn)
    text = await (await client.get(f"/deliveries/{stored.delivery_id}")).text()
    for secret in ("sk-ant-api03", "abc123", "n8n-shared-secret", "hunter2hunter2",
                   "Authorization", "Cookie", "X-P38-Token"):
        assert secret not in text, secret
    assert "<code>User-Agent</code></td><td><code>n8n/1.0</code>" in text
    assert "3 headers carrying credentials not shown" in text
    assert "&#34;level&#34;: &#34;warn&#34;" in text


async def test_deliveries_list_filters_and_pages(aiohttp_client: Any, store: Store,
                                                 dsn: str) -> None:
    client = await _client(aiohttp_client, dsn)
    pull = await _hostile_pull_request(client)
    probes = [await store_delivery(store, f"probe:{n}", event="probe") for n in range(3)]
    text = await (await client.get("/deliveries")).text()
    assert "<title>Deliveries · project38</title>" in text
    for delivery in (pull, *probes):
        assert f'<a href="/deliveries/{delivery}">{delivery}</a>' in text
    assert "pull_request.opened" in text and HOSTILE not in text

    github = await (await client.get("/deliveries?source=github")).text()
    assert f'href="/deliveries/{pull}"' in github
    assert f'href="/deliveries/{probes[0]}"' not in github
    probe_only = await (await client.get("/deliveries?event=probe")).text()
    assert f'href="/deliveries/{pull}"' not in probe_only
    assert f'href="/deliveries/{probes[2]}"' in probe_only
    done, _ = await reconcile(store, "settled:one", event="settle")  # its delivery is processed
    processed = await (await client.get("/deliveries?status=processed")).text()
    assert f'href="/deliveries/{done}"' in processed
    assert f'href="/deliveries/{probes[1]}"' not in processed
    pending = await (await client.get("/deliveries?status=pending")).text()
    assert f'href="/deliveries/{probes[1]}"' in pending
    assert f'href="/deliveries/{done}"' not in pending
    none = await (await client.get("/deliveries?status=failed")).text()
    assert "No deliveries match these filters." in none
    bad = await client.get("/deliveries?status=lost")
    assert bad.status == 400 and "status must be one of" in await bad.text()

    first = await (await client.get("/deliveries?event=probe&limit=2")).text()
    assert f'href="/deliveries/{probes[2]}"' in first
    assert f'href="/deliveries/{probes[1]}"' in first
    assert f'href="/deliveries/{probes[0]}"' not in first
    older = re.search(r'<a href="([^"]+)" rel="next">Older →</a>', first)
    assert older is not None
    assert older.group(1) == f"/deliveries?event=probe&amp;limit=2&amp;before={probes[1]}"
    second = await (await client.get(older.group(1).replace("&amp;", "&"))).text()
    assert f'href="/deliveries/{probes[0]}"' in second
    assert f'href="/deliveries/{probes[1]}"' not in second
    assert 'rel="next"' not in second


async def test_an_unknown_delivery_is_a_404_page(aiohttp_client: Any, dsn: str) -> None:
    client = await _client(aiohttp_client, dsn)
    for ref in ("999999", "abc", "%D9%A3"):
        missing = await client.get(f"/deliveries/{ref}")
        assert missing.status == 404, ref
        assert "no delivery with that id" in await missing.text()
