"""GitHub webhooks: verify X-Hub-Signature-256, parse, and derive reconcile keys.

Sans-I/O. Event names stay strings (GitHub keeps adding events); payloads are read defensively
because old events lack new fields and new events carry fields we do not know. Which keys a
delivery is a hint about is not decided here: the caller passes `route`, the reconcilers'
watch declarations combined.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from controller.reconcile.payloads import dig, repo_full_name
from handlers.base import (
    Delivery,
    Rejection,
    Route,
    as_bytes,
    checked,
    header,
    json_body,
    selected_headers,
    storable,
)

SOURCE = "github"
FULL_NAME_BYTES = 140  # GitHub: an owner of at most 39 characters, a name of at most 100

KEPT_HEADERS = (
    "X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-ID", "X-GitHub-Hook-Installation-Target-Type",
    "User-Agent", "Content-Type",
)

def verify_signature(body: bytes, signature_256: str | None, secret: str) -> None:
    """Check `X-Hub-Signature-256: sha256=<hex>` in constant time; raise a 401 otherwise."""
    if not signature_256:
        raise Rejection(401, "missing X-Hub-Signature-256 header")
    scheme, _, offered = signature_256.partition("=")
    if scheme != "sha256" or not offered:
        raise Rejection(401, "X-Hub-Signature-256 must look like sha256=<hex digest>")
    expected = hmac.digest(secret.encode(), body, hashlib.sha256).hex()
    if not hmac.compare_digest(expected.encode(), as_bytes(offered.strip().lower())):
        raise Rejection(401, "signature does not match the body and the configured secret")


def from_http(headers: Mapping[str, str], body: bytes, *, secret: str,
              route: Route) -> Delivery:
    """Verify and parse one GitHub delivery, or raise `Rejection`."""
    signature = header(headers, "X-Hub-Signature-256")
    if signature is None and header(headers, "X-Hub-Signature") is not None:
        raise Rejection(401, "only the sha1 X-Hub-Signature was sent; X-Hub-Signature-256 is "
                             "required")
    verify_signature(body, signature, secret)
    event = header(headers, "X-GitHub-Event")
    guid = header(headers, "X-GitHub-Delivery")
    if not event:
        raise Rejection(400, "missing X-GitHub-Event header")
    if not guid:
        raise Rejection(400, "missing X-GitHub-Delivery header")
    payload, text = json_body(headers, body)
    action = payload.get("action")
    action = action if isinstance(action, str) else None
    _repository_named(payload)
    return checked(Delivery(
        source=SOURCE,
        hook=_hook(headers, payload),
        guid=guid,
        event=event,
        action=action,
        headers=selected_headers(headers, KEPT_HEADERS),
        payload_json=text,
        keys=route(SOURCE, event, action, payload),
    ))


def _repository_named(payload: Mapping[str, Any]) -> None:
    """A `repository.full_name` that GitHub could not have sent (a NUL, longer than any, `#`,
    `?`, `..`, more than one `/`) is refused with 400: it would become a key and an API path."""
    full_name = dig(payload, "repository", "full_name")
    if full_name is None:
        return
    if not isinstance(full_name, str):
        raise Rejection(400, "repository.full_name is not a string")
    storable("repository.full_name", full_name, limit=FULL_NAME_BYTES)
    if repo_full_name(payload) is None:
        raise Rejection(400, f"repository.full_name {full_name[:60]!r} is not owner/name as "
                             "GitHub names repositories")


def _hook(headers: Mapping[str, str], payload: Mapping[str, Any]) -> str:
    hook_id = header(headers, "X-GitHub-Hook-ID")
    if hook_id:
        return hook_id
    installation = payload.get("installation")
    if isinstance(installation, dict) and installation.get("id") is not None:
        return f"installation/{installation['id']}"
    return ""
