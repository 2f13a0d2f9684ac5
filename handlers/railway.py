"""Railway project webhooks: shared-secret check, parse; keys from the caller's `route`.

Railway signs nothing, so the secret travels in a header or `?token=`. Two body shapes exist:
the current `{"type": "Deployment.failed", "details": {...}, "resource": {...}}` and the older
`{"type": "DEPLOY", "status": ..., "deployment": {"id": ...}}`; both are accepted. A Railway
webhook is a hint: reconcilers re-read the deployment through the API before acting.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.reconcile.payloads import dig
from handlers.base import (
    Delivery,
    Rejection,
    Route,
    body_digest,
    checked,
    header,
    selected_headers,
    shared_secret_json,
)

SOURCE = "railway"
KEPT_HEADERS = ("User-Agent", "Content-Type", "X-Request-Id")


def from_http(headers: Mapping[str, str], body: bytes, *, secret: str,
              query: Mapping[str, str], route: Route) -> Delivery:
    payload = shared_secret_json(headers, body, secret=secret, query=query, source="Railway")
    event = payload.get("type")
    if not isinstance(event, str) or not event:
        raise Rejection(400, "Railway webhook body has no 'type'")
    status = dig(payload, "details", "status") or payload.get("status")
    action = status if isinstance(status, str) else None
    return checked(Delivery(
        source=SOURCE,
        hook=str(dig(payload, "resource", "project", "id") or dig(payload, "project", "id")
                 or ""),
        guid=header(headers, "X-Request-Id") or body_digest(body),
        event=event,
        action=action,
        headers=selected_headers(headers, KEPT_HEADERS),
        payload_json=body.decode("utf-8"),
        keys=route(SOURCE, event, action, payload),
    ))
