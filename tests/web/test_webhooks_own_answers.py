"""The webhook route runs outside the app's middleware, so it answers for itself: a bug while
handling a delivery is a JSON 500 with a reason and its log line, and once a stop began its
answers close their connection, as every other route's do."""

from __future__ import annotations

from structlog.testing import capture_logs

from controller.app import create_app
from controller.reconcile.reconciler import Event, Watch
from controller.store import Store
from controller.web.keys import IN_FLIGHT, SHUTDOWN
from reconcilers import default_registry
from tests.helpers import github_request, make_settings
from tests.probes import Probe


def _broken_watch(_event: Event) -> tuple[str, ...]:
    raise KeyError("a reconciler's watch declaration with a bug")


async def test_a_bug_while_handling_a_delivery_is_a_json_500(aiohttp_client, store: Store,
                                                            dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A watch declaration that raises: 500 JSON with a reason, one `delivery` log line with
    outcome `error` (and the trace), nothing stored, and the request no longer counted."""
    probe = Probe(watching=(Watch("github", frozenset({"push"}), _broken_watch),))
    app = create_app(make_settings(dsn), registry={"probe": probe, **default_registry()})
    client = await aiohttp_client(app)
    headers, body = github_request("push", "default-branch", guid="guid-bug-1")
    with capture_logs() as logs:
        response = await client.post("/webhooks/github", data=body, headers=headers)
    assert response.status == 500
    assert response.content_type == "application/json"
    assert (await response.json())["reason"] == ("the delivery could not be handled; it was "
                                                 "not stored")
    assert [e["event"] for e in logs] == ["delivery_failed", "delivery"]
    assert (logs[1]["status"], logs[1]["outcome"]) == (500, "error")
    rows = await (await client.get("/api/deliveries")).json()
    assert rows["items"] == []
    assert app[IN_FLIGHT].count == 0


async def test_once_the_stop_began_webhook_and_api_answers_close(aiohttp_client, store: Store,
                                                                dsn: str) -> None:  # type: ignore[no-untyped-def]
    """After the stop began, a delivery is still stored and answered, with
    `Connection: close` (a keep-alive sender goes elsewhere); so is an API answer."""
    app = create_app(make_settings(dsn))
    client = await aiohttp_client(app)
    headers, body = github_request("push", "default-branch", guid="guid-stop-1")
    before = await client.post("/webhooks/github", data=body, headers=headers)
    assert before.status == 202
    assert before.headers.get("Connection", "").lower() != "close"
    app[SHUTDOWN].begin(30.0)
    headers, body = github_request("push", "default-branch", guid="guid-stop-2")
    after = await client.post("/webhooks/github", data=body, headers=headers)
    assert after.status == 202
    assert after.headers["Connection"].lower() == "close"
    api = await client.get("/api/deliveries")
    assert api.status == 200
    assert api.headers["Connection"].lower() == "close"
    listed = await (await client.get("/api/deliveries")).json()
    assert sorted(d["guid"] for d in listed["items"]) == ["guid-stop-1", "guid-stop-2"]
