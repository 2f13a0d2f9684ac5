"""The JSON API: filters, keyset paging, newest first, optional bearer token; health routes."""

from __future__ import annotations

from controller.app import create_app
from controller.store import Store
from tests.helpers import github_request, make_settings


async def _post(client, event: str, case: str, guid: str) -> None:  # type: ignore[no-untyped-def]
    headers, body = github_request(event, case, guid=guid)
    assert (await client.post("/webhooks/github", data=body, headers=headers)).status in (200, 202)


async def test_deliveries_page_newest_first_with_filters(aiohttp_client, store: Store,
                                                         dsn: str) -> None:  # type: ignore[no-untyped-def]
    """Pages follow `next`; filters by source, event and status combine."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    for n in range(5):
        await _post(client, "pull_request", "opened", f"pr-{n}")
    await _post(client, "star", "created", "star-1")

    first = await (await client.get("/api/deliveries?limit=2")).json()
    assert [d["guid"] for d in first["items"]] == ["star-1", "pr-4"]
    second = await (await client.get(f"/api/deliveries?limit=2&before={first['next']}")).json()
    assert [d["guid"] for d in second["items"]] == ["pr-3", "pr-2"]
    last = await (await client.get(f"/api/deliveries?limit=5&before={second['next']}")).json()
    assert [d["guid"] for d in last["items"]] == ["pr-1", "pr-0"] and last["next"] is None

    ignored = await (await client.get("/api/deliveries?status=ignored")).json()
    assert [d["guid"] for d in ignored["items"]] == ["star-1"]
    prs = await (await client.get("/api/deliveries?source=github&event=pull_request")).json()
    assert len(prs["items"]) == 5
    none = await (await client.get("/api/deliveries?source=railway")).json()
    assert none["items"] == []
    bad = await client.get("/api/deliveries?limit=abc")
    assert bad.status == 400 and "limit" in (await bad.json())["reason"]


async def test_queue_audit_actions_resources_routes(aiohttp_client, store: Store,
                                                    dsn: str) -> None:  # type: ignore[no-untyped-def]
    """Every listing route answers JSON with items (empty is fine)."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    await _post(client, "push", "default-branch", "p-1")
    queue = await (await client.get("/api/queue")).json()
    assert [q["key"] for q in queue["items"]] == ["manifests:octo-org/infra",
                                                  "repo:octo-org/infra"]
    for route in ("/api/audit", "/api/actions", "/api/resources"):
        response = await client.get(route)
        assert response.status == 200
        assert (await response.json())["items"] == []


async def test_api_token_guards_the_api_but_not_health(aiohttp_client, store: Store,
                                                       dsn: str) -> None:  # type: ignore[no-untyped-def]
    """With P38_API_TOKEN set, /api/* needs the bearer token; health and webhooks do not."""
    client = await aiohttp_client(create_app(make_settings(dsn, api_token="api-token-123456")))
    assert (await client.get("/api/deliveries")).status == 401
    wrong = await client.get("/api/deliveries", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    ok = await client.get("/api/deliveries",
                          headers={"Authorization": "Bearer api-token-123456"})
    assert ok.status == 200
    assert (await client.get("/api/health")).status == 200
    assert (await client.get("/readyz")).status == 200
    await _post(client, "ping", "app-hook", "ping-1")


async def test_health_routes(aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """healthz is always ok; readyz and /api/health report the schema and the policy."""
    client = await aiohttp_client(create_app(make_settings(dsn, dry_run=True)))
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await (await client.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["dry_run"] is True
    assert await (await client.get("/api/health")).json() == ready
    metrics = await client.get("/metrics")
    assert metrics.status == 200
    text = await metrics.text()
    assert 'p38_queue_depth{state="queued"} 0.0' in text


async def test_readyz_is_503_before_migrations(aiohttp_client, fresh_database) -> None:  # type: ignore[no-untyped-def]
    """An unmigrated database is reachable but not ready."""
    client = await aiohttp_client(create_app(make_settings(fresh_database("unmigrated"))))
    response = await client.get("/readyz")
    assert response.status == 503
    assert "migrations not applied" in (await response.json())["reason"]


async def test_unknown_routes_and_methods_answer_json(aiohttp_client, store: Store,
                                                     dsn: str) -> None:  # type: ignore[no-untyped-def]
    """404 and 405 from the router are JSON with a reason, like every other answer."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    missing = await client.get("/nope")
    assert missing.status == 404
    assert "Not Found" in (await missing.json())["reason"]
    wrong = await client.get("/webhooks/github")
    assert wrong.status == 405
    assert "GET /webhooks/github" in (await wrong.json())["reason"]
