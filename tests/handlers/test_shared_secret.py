"""Railway and n8n deliveries authenticate with a shared secret and derive their keys."""

from __future__ import annotations

import pytest

from handlers import n8n, railway
from handlers.base import Rejection
from tests.helpers import N8N_SECRET, RAILWAY_SECRET, ROUTE, sample

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("headers", "query"),
    [({"Authorization": f"Bearer {RAILWAY_SECRET}"}, {}),
     ({"X-P38-Token": RAILWAY_SECRET}, {}),
     ({}, {"token": RAILWAY_SECRET}),
     ({"authorization": f"bearer {RAILWAY_SECRET}"}, {})],
    ids=["bearer", "header", "query", "lowercase-bearer"],
)
def test_railway_accepts_each_way_of_sending_the_secret(headers, query) -> None:  # type: ignore[no-untyped-def]
    """The secret may come as a bearer token, X-P38-Token or ?token=."""
    _, body = sample("railway", "deployment-failed")
    delivery = railway.from_http({**JSON, **headers}, body, secret=RAILWAY_SECRET, query=query,
                                 route=ROUTE)
    assert delivery.event == "Deployment.failed"
    assert delivery.action == "FAILED"
    assert delivery.keys == ("deployment:7a3c1e2b-5d4f-4a6b-9c8d-0e1f2a3b4c5d",)
    assert delivery.hook == "b2f1c7a4-3e9d-4c2a-8f6b-1d0e9c8b7a65"


@pytest.mark.parametrize(
    ("headers", "query", "reason"),
    [({}, {}, "missing token"),
     ({"Authorization": "Bearer nope"}, {}, "does not match"),
     ({"X-P38-Token": RAILWAY_SECRET[:-1]}, {}, "does not match"),
     ({"Authorization": f"Basic {RAILWAY_SECRET}"}, {}, "missing token")],
)
def test_railway_rejects_missing_or_wrong_secret(headers, query, reason) -> None:  # type: ignore[no-untyped-def]
    """No secret or a wrong one is a 401."""
    _, body = sample("railway", "deployment-failed")
    with pytest.raises(Rejection) as caught:
        railway.from_http({**JSON, **headers}, body, secret=RAILWAY_SECRET, query=query,
                          route=ROUTE)
    assert caught.value.status == 401
    assert reason in caught.value.reason


def test_railway_legacy_shape_and_stable_guid() -> None:
    """The older DEPLOY shape is understood; the same body always gets the same GUID."""
    _, body = sample("railway", "legacy-deploy")
    auth = {**JSON, "X-P38-Token": RAILWAY_SECRET}
    first = railway.from_http(auth, body, secret=RAILWAY_SECRET, query={}, route=ROUTE)
    again = railway.from_http(auth, body, secret=RAILWAY_SECRET, query={}, route=ROUTE)
    assert first.keys == ("deployment:1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b",)
    assert first.action == "SUCCESS"
    assert first.guid == again.guid


def test_railway_requires_type_and_json() -> None:
    """A body without `type`, or not JSON, is refused with a reason."""
    auth = {"X-P38-Token": RAILWAY_SECRET}
    with pytest.raises(Rejection) as caught:
        railway.from_http({**JSON, **auth}, b'{"x": 1}', secret=RAILWAY_SECRET, query={},
                          route=ROUTE)
    assert caught.value.status == 400
    with pytest.raises(Rejection) as caught:
        railway.from_http({"Content-Type": "text/xml", **auth}, b"<a/>", secret=RAILWAY_SECRET,
                          query={}, route=ROUTE)
    assert caught.value.status == 415


def test_n8n_callback_names_workflow_and_delivery() -> None:
    """An n8n execution callback is keyed by workflow and identified by its execution."""
    _, body = sample("n8n", "execution-finished")
    delivery = n8n.from_http({**JSON, "Authorization": f"Bearer {N8N_SECRET}"}, body,
                             secret=N8N_SECRET, query={}, route=ROUTE)
    assert delivery.keys == ("workflow:tsla-alerts",)
    assert delivery.guid == "tsla-alerts/48213/execution.finished"
    assert delivery.action == "error"
    explicit = n8n.from_http({**JSON, "X-P38-Token": N8N_SECRET, "X-P38-Delivery": "d-9"}, body,
                             secret=N8N_SECRET, query={}, route=ROUTE)
    assert explicit.guid == "d-9"
    with pytest.raises(Rejection) as caught:
        n8n.from_http(JSON, body, secret=N8N_SECRET, query={"token": "wrong"}, route=ROUTE)
    assert caught.value.status == 401
