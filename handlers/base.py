"""What every handler returns (`Delivery`) or raises (`Rejection`), and shared checks.

Pure functions only: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

Route = Callable[[str, str, str | None, Mapping[str, Any]], tuple[str, ...]]
"""(source, event, action, payload) -> the keys the delivery is a hint about: the reconcilers'
watches combined (`controller.reconcile.reconciler.Router.keys`), passed in by the caller."""


class Rejection(Exception):
    """The request is refused; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified webhook delivery, ready to store and enqueue."""

    source: str
    hook: str
    guid: str
    event: str
    action: str | None
    headers: Mapping[str, str]
    payload_json: str  # the JSON document exactly as it will be stored
    keys: tuple[str, ...] = field(default=())

    @property
    def ignored(self) -> bool:
        """Nobody handles this event: it is stored, marked ignored, and enqueues nothing."""
        return not self.keys


# Longest identities, in UTF-8 bytes: far above what GitHub, Railway and n8n send (a GUID is
# 36, an event name under 40, a key like `pull:owner/repo#N` under 200), and far below what a
# PostgreSQL index entry can hold (about 2,700 bytes).
IDENTITY_BYTES = 256
KEY_BYTES = 512
# Objects one delivery may name: each is locked while the delivery is stored, in a lock table
# PostgreSQL shares between all its databases (20,000 exhausted it). The largest legitimate
# fan-out is an installation event, one key per repository it grants (docs/webhooks.md).
DELIVERY_KEYS = 2000


def storable(what: str, value: str, *, limit: int | None = None) -> str:
    """`value` as it may be stored and used as an identity or a key: valid UTF-8 (HTTP headers
    arrive with undecodable bytes kept as surrogates), no NUL (PostgreSQL text cannot hold
    one), and at most `limit` bytes. Otherwise the delivery is refused with 400 naming the
    field: GitHub never sends such values, so only a broken or hostile sender meets this."""
    if "\x00" in value:
        raise Rejection(400, f"{what} holds a NUL character")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise Rejection(400, f"{what} is not valid UTF-8") from None
    if limit is not None and size > limit:
        raise Rejection(400, f"{what} is {size} bytes long; at most {limit} are accepted")
    return value


def checked(delivery: Delivery) -> Delivery:
    """The delivery, once every field it stores or keys on is `storable`."""
    storable("the event name", delivery.event, limit=IDENTITY_BYTES)
    storable("the delivery id", delivery.guid, limit=IDENTITY_BYTES)
    storable("the hook id", delivery.hook, limit=IDENTITY_BYTES)
    if delivery.action is not None:
        storable("the payload's action", delivery.action, limit=IDENTITY_BYTES)
    for name, value in delivery.headers.items():
        storable(f"the {name} header", value)
    if len(delivery.keys) > DELIVERY_KEYS:
        raise Rejection(400, f"the delivery names {len(delivery.keys)} objects; at most "
                             f"{DELIVERY_KEYS} are accepted in one delivery")
    for key in delivery.keys:
        storable(f"the object the payload names ({key[:60]!r}…)" if len(key) > 60 else
                 f"the object the payload names ({key!r})", key, limit=KEY_BYTES)
    return delivery


def as_bytes(value: str) -> bytes:
    """A header value as the bytes that were sent (undecodable bytes included), to compare."""
    return value.encode("utf-8", "surrogateescape")


def header(headers: Mapping[str, str], name: str, *, once: bool = True) -> str | None:
    """Case-insensitive header lookup that works on plain dicts too. A header that identifies
    or authenticates a delivery (`once`) sent twice is a 400: which one counts would be a
    guess, and GitHub never sends one twice."""
    getall = getattr(headers, "getall", None)
    if once and getall is not None and len(sent := getall(name, [])) > 1:
        raise Rejection(400, f"the {name} header is sent {len(sent)} times; once is expected")
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def selected_headers(headers: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in names:
        value = header(headers, name, once=False)
        if value is not None:
            found[name] = value
    return found


def media_type(headers: Mapping[str, str]) -> str:
    return (header(headers, "Content-Type") or "").split(";", 1)[0].strip().lower()


def parse_json_object(body: bytes | str, *, what: str = "body") -> dict[str, Any]:
    """Parse a JSON object or raise a 400 naming what is wrong."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejection(400, f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Rejection(400, f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def json_body(headers: Mapping[str, str], body: bytes) -> tuple[dict[str, Any], str]:
    """Parse an application/json or form-encoded (`payload=`) body into (object, JSON text)."""
    kind = media_type(headers)
    if kind == "application/json":
        raw = body
    elif kind == "application/x-www-form-urlencoded":
        try:  # the form's escapes (%FF) too: never replaced by U+FFFD
            form = parse_qs(body.decode("utf-8"), strict_parsing=False, errors="strict")
        except UnicodeDecodeError:
            raise Rejection(400, "form body is not UTF-8") from None
        values = form.get("payload")
        if not values:
            raise Rejection(400, "form-encoded body has no 'payload' field")
        if len(values) > 1:
            raise Rejection(400, "form-encoded body has 'payload' more than once")
        raw = values[0].encode("utf-8")
    elif not kind:
        raise Rejection(415, "Content-Type is missing; send application/json")
    else:
        raise Rejection(415, f"unsupported Content-Type {kind!r}; send application/json "
                             "or application/x-www-form-urlencoded")
    payload = parse_json_object(raw, what="payload")
    return payload, raw.decode("utf-8")


def check_token(headers: Mapping[str, str], query: Mapping[str, str], secret: str) -> None:
    """Shared-secret check: `Authorization: Bearer`, `X-P38-Token` or `?token=` (constant time)."""
    offered: list[str] = []
    auth = header(headers, "Authorization")
    if auth and auth[:7].lower() == "bearer ":
        offered.append(auth[7:].strip())
    getall = getattr(query, "getall", None)
    if getall is not None and len(getall("token", [])) > 1:
        raise Rejection(400, "?token= is given more than once; give it once")
    for candidate in (header(headers, "X-P38-Token"), query.get("token")):
        if candidate:
            offered.append(candidate)
    if not offered:
        raise Rejection(401, "missing token: send Authorization: Bearer <token>, "
                             "X-P38-Token or ?token=")
    expected = secret.encode()
    # Compare every offered value so timing does not depend on which one matched.
    results = [hmac.compare_digest(as_bytes(value), expected) for value in offered]
    if not any(results):
        raise Rejection(401, "token does not match")


def shared_secret_json(headers: Mapping[str, str], body: bytes, *, secret: str,
                       query: Mapping[str, str], source: str) -> dict[str, Any]:
    """The common front of token-authenticated sources: secret, then JSON object body."""
    check_token(headers, query, secret)
    if media_type(headers) != "application/json":
        raise Rejection(415, f"{source} deliveries must be application/json")
    return parse_json_object(body)


def body_digest(body: bytes) -> str:
    """A stable delivery id for sources that send none: the SHA-256 of the body."""
    return hashlib.sha256(body).hexdigest()
