"""Webhook ingest through the real app and database: answers, storage, dedup, redelivery."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

from controller.app import create_app
from controller.config import QueueSettings
from controller.engine.queue import AuditEntry, WorkQueue
from controller.store import Store
from tests.helpers import (
    N8N_SECRET,
    RAILWAY_SECRET,
    github_request,
    make_settings,
    sample,
    sign,
)


async def test_signed_delivery_is_stored_and_listed(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """A signed delivery gets 202, is stored with its headers and keys, and is listed."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    headers, body = github_request("push", "default-branch", guid="guid-push-1")
    response = await client.post("/webhooks/github", data=body, headers=headers)
    assert response.status == 202
    answer = await response.json()
    assert answer["status"] == "stored"
    assert answer["reason"] == "stored; 2 key(s) enqueued"
    assert answer["keys"] == ["repo:octo-org/infra", "manifests:octo-org/infra"]

    listed = await (await client.get("/api/deliveries?source=github&event=push")).json()
    assert [d["guid"] for d in listed["items"]] == ["guid-push-1"]
    one = await (await client.get("/api/deliveries/guid-push-1")).json()
    assert one["status"] == "pending"
    assert one["action"] is None
    assert one["payload"] == json.loads(body)
    assert one["headers"]["X-GitHub-Event"] == "push"
    assert "X-Hub-Signature-256" not in one["headers"]
    assert sorted(k["key"] for k in one["keys"]) == ["manifests:octo-org/infra",
                                                     "repo:octo-org/infra"]
    assert {k["status"] for k in one["keys"]} == {"pending"}
    queue = await (await client.get("/api/queue")).json()
    assert [(q["key"], q["pending_deliveries"]) for q in queue["items"]] == [
        ("manifests:octo-org/infra", 1), ("repo:octo-org/infra", 1)]
    by_id = await client.get(f"/api/deliveries/{answer['delivery_id']}")
    assert (await by_id.json())["guid"] == "guid-push-1"
    assert (await client.get("/api/deliveries/no-such-guid")).status == 404


async def test_same_guid_again_is_a_duplicate(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """The same GUID answered 200 duplicate, stored once, its keys enqueued once."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    headers, body = github_request("pull_request", "opened", guid="guid-dup")
    first = await client.post("/webhooks/github", data=body, headers=headers)
    second = await client.post("/webhooks/github", data=body, headers=headers)
    assert (first.status, second.status) == (202, 200)
    assert (await second.json())["status"] == "duplicate"
    rows = await store.fetch("deliveries_list", None, None, None, None, 10)
    assert len(rows) == 1
    queue = await store.fetch("queue_list", None, None, 10)
    assert [q["pending_deliveries"] for q in queue] == [1, 1]  # plan: and pull: keys


async def test_concurrent_duplicates_store_one_row(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """Twenty simultaneous copies of one GUID: exactly one 202, the rest 200."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    headers, body = github_request("pull_request", "opened", guid="guid-race")
    responses = await asyncio.gather(*[client.post("/webhooks/github", data=body,
                                                   headers=headers) for _ in range(20)])
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 19 + [202]
    assert len(await store.fetch("deliveries_list", None, None, None, None, 50)) == 1


async def test_redelivery_after_failure_is_accepted(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """A GUID whose processing failed is accepted again (202) and re-enqueued."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    headers, body = github_request("pull_request", "opened", guid="guid-failed")
    assert (await client.post("/webhooks/github", data=body, headers=headers)).status == 202
    queue = WorkQueue(store, QueueSettings())  # its keys are dead-lettered
    while (lease := await queue.claim("w")) is not None:
        await queue.settle(lease, "dead", error="boom", audit=AuditEntry(
            reconcile_id=str(uuid.uuid4()), started=datetime.now(UTC), duration_ms=1.0))
    assert (await store.fetchrow("delivery_by_guid", "guid-failed"))["status"] == "failed"

    again = await client.post("/webhooks/github", data=body, headers=headers)
    assert again.status == 202
    assert (await again.json())["status"] == "redelivered"
    row = await store.fetchrow("delivery_by_guid", "guid-failed")
    assert (row["status"], row["accepted"], row["error"]) == ("pending", 2, None)
    keys = await store.fetch("delivery_keys_of", row["id"])
    assert sorted((k["key"], k["status"]) for k in keys) == [
        ("plan:octo-org/infra#12", "pending"), ("pull:octo-org/infra#12", "pending")]
    third = await client.post("/webhooks/github", data=body, headers=headers)
    assert third.status == 200


async def test_unhandled_event_is_stored_as_ignored(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """An event nobody handles is stored, marked ignored, and enqueues nothing."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    headers, body = github_request("star", "created", guid="guid-star")
    response = await client.post("/webhooks/github", data=body, headers=headers)
    assert response.status == 202
    assert (await response.json())["status"] == "ignored"
    assert (await store.fetchrow("delivery_by_guid", "guid-star"))["status"] == "ignored"
    assert await store.fetch("queue_list", None, None, 10) == []


async def test_ping_answers_200(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """GitHub's ping gets 200 and is kept (ignored) for the record."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    headers, body = github_request("ping", "app-hook", guid="guid-ping")
    response = await client.post("/webhooks/github", data=body, headers=headers)
    assert response.status == 200
    assert (await response.json())["status"] == "pong"
    again = await client.post("/webhooks/github", data=body, headers=headers)
    assert again.status == 200


async def test_form_encoded_delivery(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """A form-encoded delivery is stored with the JSON document from `payload=`."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    _, raw = sample("issue_comment", "claude-command")
    body = ("payload=" + quote(raw.decode())).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": "guid-form",
               "X-Hub-Signature-256": sign(body)}
    response = await client.post("/webhooks/github", data=body, headers=headers)
    assert response.status == 202
    row = await store.fetchrow("delivery_by_guid", "guid-form")
    assert row["payload"] == raw.decode()  # stored byte for byte
    assert row["action"] == "created"


async def test_rejections_are_json_and_store_nothing(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """401, 400, 415 and 404 answers are JSON with a reason and store nothing."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    headers, body = github_request("push", "default-branch")
    cases = [
        ({**headers, "X-Hub-Signature-256": sign(body, "other")}, body, 401),
        ({k: v for k, v in headers.items() if k != "X-GitHub-Delivery"}, body, 400),
        ({**headers, "Content-Type": "text/plain"}, body, 415),
    ]
    for case_headers, case_body, status in cases:
        forged = {**case_headers, "X-GitHub-Event": f"forged-{status}"}
        response = await client.post("/webhooks/github", data=case_body, headers=forged)
        assert response.status == status
        assert (await response.json())["reason"]
    metrics = await (await client.get("/metrics")).text()
    assert 'outcome="rejected_401"' in metrics
    assert "forged" not in metrics  # unverified header values never become label values
    unknown = await client.post("/webhooks/gitlab", data=b"{}", headers=headers)
    assert unknown.status == 404
    assert "unknown webhook source" in (await unknown.json())["reason"]
    assert await store.fetch("deliveries_list", None, None, None, None, 10) == []


async def test_body_over_the_limit_is_413(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """A body above the limit is refused with 413, by Content-Length or while reading."""
    client = await aiohttp_client(create_app(make_settings(dsn, max_body=1024)))
    headers, body = github_request("push", "default-branch")  # ~8 KB
    response = await client.post("/webhooks/github", data=body, headers=headers)
    assert response.status == 413
    assert "limit" in (await response.json())["reason"]

    async def chunks():  # type: ignore[no-untyped-def]
        yield body  # no Content-Length: chunked transfer encoding

    chunked = await client.post("/webhooks/github", data=chunks(), headers=headers)
    assert chunked.status == 413


async def test_default_limit_is_25_mib(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """With default settings a body just over 25 MiB is 413."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    body = b'{"pad": "' + b"x" * (25 * 1024 * 1024) + b'"}'
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
               "X-GitHub-Delivery": "big", "X-Hub-Signature-256": sign(body)}
    response = await client.post("/webhooks/github", data=body, headers=headers)
    assert response.status == 413


async def test_missing_secret_disables_only_that_route(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """Without GITHUB_WEBHOOK_SECRET the GitHub route answers 503; others still work."""
    client = await aiohttp_client(create_app(make_settings(dsn, github_secret=None)))
    headers, body = github_request("push", "default-branch")
    response = await client.post("/webhooks/github", data=body, headers=headers)
    assert response.status == 503
    assert "GITHUB_WEBHOOK_SECRET" in (await response.json())["reason"]
    _, railway_body = sample("railway", "deployment-failed")
    ok = await client.post("/webhooks/railway", data=railway_body,
                           headers={"Content-Type": "application/json",
                                    "Authorization": f"Bearer {RAILWAY_SECRET}"})
    assert ok.status == 202
    assert (await client.get("/healthz")).status == 200


async def test_railway_and_n8n_routes(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """Railway and n8n deliveries are stored with their keys; the same body is a duplicate."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    _, railway_body = sample("railway", "deployment-failed")
    url = f"/webhooks/railway?token={RAILWAY_SECRET}"
    first = await client.post(url, data=railway_body, headers={"Content-Type": "application/json"})
    again = await client.post(url, data=railway_body, headers={"Content-Type": "application/json"})
    assert (first.status, again.status) == (202, 200)
    _, n8n_body = sample("n8n", "execution-finished")
    n8n_response = await client.post("/webhooks/n8n", data=n8n_body, headers={
        "Content-Type": "application/json", "X-P38-Token": N8N_SECRET})
    assert n8n_response.status == 202
    assert (await n8n_response.json())["keys"] == ["workflow:tsla-alerts"]
    bad = await client.post("/webhooks/n8n", data=n8n_body, headers={
        "Content-Type": "application/json", "X-P38-Token": "nope"})
    assert bad.status == 401


async def test_many_distinct_deliveries_share_commits(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """Concurrent deliveries (group commit) are each stored once with the right keys."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    requests = []
    for n in range(60):
        payload = {"action": "labeled", "number": n % 7 + 1,
                   "pull_request": {"number": n % 7 + 1, "state": "open"},
                   "repository": {"full_name": "octo-org/infra"}}
        body = json.dumps(payload).encode()
        requests.append(({"Content-Type": "application/json", "X-GitHub-Event": "pull_request",
                          "X-GitHub-Delivery": str(uuid.uuid4()),
                          "X-Hub-Signature-256": sign(body)}, body))
    responses = await asyncio.gather(*[client.post("/webhooks/github", data=b, headers=h)
                                       for h, b in requests])
    assert [r.status for r in responses] == [202] * 60
    queue = await store.fetch("queue_list", None, None, 50)
    assert sorted(q["key"] for q in queue) == sorted(
        f"pull:octo-org/infra#{n}" for n in range(1, 8))
    assert sum(q["pending_deliveries"] for q in queue) == 60


async def test_escaped_nul_is_stored_verbatim(aiohttp_client, store: Store, dsn) -> None:  # type: ignore[no-untyped-def]
    """A \\u0000 escape in a payload is kept exactly as sent (the body stays verifiable)."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    body = b'{"action": "edited", "note": "nul \\u0000 here", "repository": {"full_name": "o/r"}}'
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "repository",
               "X-GitHub-Delivery": "guid-nul", "X-Hub-Signature-256": sign(body)}
    assert (await client.post("/webhooks/github", data=body, headers=headers)).status == 202
    row = await store.fetchrow("delivery_by_guid", "guid-nul")
    assert row["payload"].encode() == body
