"""`POST /webhooks/{source}`: verify and parse (handlers), store and enqueue (ingest), answer.

202 stored, 200 duplicate or ping, 4xx with a reason, 503 when the source's secret is not
configured, the database is unavailable, or too many bodies are being read at once (with
`Retry-After`). A token-authenticated source has its token checked before any body is read,
and the bytes of bodies being read at once share one budget (P38_READING_BODIES_BYTES), so
senders nobody authenticated cannot fill the memory. Every request gets one log line. Nothing
outbound happens before the answer.

The app's middleware leaves this route alone (it is where a sender's load falls), so
`receive` does for itself what the middleware does for the others: it is counted while
handled, so a graceful stop waits for it, it closes its keep-alive connection once the stop
began, and every failure, a bug included, is answered as JSON with a reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping

import structlog
from aiohttp import web
from pydantic import SecretStr
from structlog.typing import FilteringBoundLogger

from controller.config import SecretsSettings
from controller.engine.ingest import Outcome, StoreUnavailable
from controller.web.budget import BodyBudget
from controller.web.json import answer, expect_continue, problem
from controller.web.keys import (
    BODIES,
    DELIVERY_LOG,
    IN_FLIGHT,
    INGEST,
    METRICS,
    ROUTER,
    SETTINGS,
    SHUTDOWN,
)
from handlers import github, n8n, railway
from handlers.base import Delivery, Rejection, Route, check_token

log = structlog.get_logger("p38.webhooks")

Parse = Callable[[Mapping[str, str], bytes, str, Mapping[str, str], Route], Delivery]
Precheck = Callable[[Mapping[str, str], Mapping[str, str], str], None] | None

SOURCES: dict[str, tuple[str, Parse, Precheck]] = {
    "github": ("GITHUB_WEBHOOK_SECRET",
               lambda h, b, s, _q, r: github.from_http(h, b, secret=s, route=r),
               None),  # the signature covers the body: it must be read first
    "railway": ("RAILWAY_WEBHOOK_SECRET",
                lambda h, b, s, q, r: railway.from_http(h, b, secret=s, query=q, route=r),
                check_token),
    "n8n": ("N8N_WEBHOOK_SECRET",
            lambda h, b, s, q, r: n8n.from_http(h, b, secret=s, query=q, route=r),
            check_token),
}


async def expect(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue`: "continue" only to a sender that may send its body (a token
    source with the right token, a length within the limit); otherwise no 100, and the handler
    answers 401 or 413 without reading the body."""
    source = request.match_info.get("source", "")
    settings = request.app[SETTINGS]
    if source in SOURCES and (secret := _secret(settings.secrets, source)) is not None:
        precheck = SOURCES[source][2]
        try:
            if precheck is not None:
                precheck(request.headers, request.query, secret)
        except Rejection:
            return None
        if (request.content_length or 0) > settings.server.max_body_bytes:
            return None
    return await expect_continue(request)


def _secret(secrets: SecretsSettings, source: str) -> str | None:
    value: SecretStr | None = getattr(secrets, f"{source}_webhook_secret")
    return value.get_secret_value() if value is not None and value.get_secret_value() else None


def delivery_log() -> FilteringBoundLogger:
    """The logger of the line each delivery gets, bound once per app (when it is made, after
    logging is configured) rather than at every line: a structlog proxy binds a new logger,
    and opens a new output, at each call."""
    bound: FilteringBoundLogger = log.bind()
    return bound


async def receive(request: web.Request) -> web.Response:
    started = time.perf_counter()
    app = request.app
    counter = app[IN_FLIGHT]
    counter.enter()  # a graceful stop waits for this request
    try:
        source = request.match_info["source"]
        try:
            response, event, outcome = await _receive(request, source)
        except Exception as exc:  # a bug: still one answer with a reason, and the log line
            log.exception("delivery_failed", error=f"{type(exc).__name__}: {exc}")
            response, event, outcome = (problem(500, "the delivery could not be handled; it "
                                                     "was not stored"), None, "error")
        elapsed = time.perf_counter() - started
        if source in SOURCES:  # no label values from unknown paths or unverified headers
            app[METRICS].count_delivery(source, event or "", outcome, elapsed)
        app[DELIVERY_LOG].info(
            "delivery", source=_short(source), webhook_event=event, status=response.status,
            outcome=outcome, guid=_short(request.headers.get("X-GitHub-Delivery")),
            reason=None if response.status < 300 else _reason(response),
            ms=round(elapsed * 1000, 2))
    finally:
        counter.leave()
    if app[SHUTDOWN].requested.is_set():  # the stop began: the sender goes elsewhere
        response.force_close()
    return response


async def _receive(request: web.Request,
                   source: str) -> tuple[web.Response, str | None, str]:
    """(response, verified event name or None, outcome label)."""
    if source not in SOURCES:
        return problem(404, f"unknown webhook source {_short(source, 40)!r}; "
                            f"expected one of {sorted(SOURCES)}"), None, "unknown_source"
    env_name, parse, precheck = SOURCES[source]
    settings = request.app[SETTINGS]
    secret = _secret(settings.secrets, source)
    if secret is None:
        return (problem(503, f"{env_name} is not configured; this route is disabled"), None,
                "not_configured")
    limit = settings.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return (problem(413, f"body is {request.content_length} bytes; the limit is {limit}"),
                None, "too_large")
    try:
        if precheck is not None:  # who sends it, before reading what they send
            precheck(request.headers, request.query, secret)
    except Rejection as rejection:
        return problem(rejection.status, rejection.reason), None, f"rejected_{rejection.status}"
    if any(value.strip().lower() not in ("identity", "")  # every one: the parser reads the last
           for value in request.headers.getall("Content-Encoding", [])):
        # GitHub, Railway and n8n send bodies as they are; a compressed one would cost the
        # budget its decoded size for a few bytes sent (and a bomb is a few bytes).
        return (problem(415, "a Content-Encoding is not accepted: send the body uncompressed"),
                None, "rejected_415")
    budget = request.app[BODIES]
    held = Held(budget)
    try:
        if request.content.is_eof():  # the whole body came with the head: nothing to wait for
            body = _read_arrived(request, held, limit)
        else:
            async with asyncio.timeout(settings.server.body_timeout_seconds):
                body = await _read(request, held, limit)
    except TooLarge:
        return problem(413, f"body is larger than the limit of {limit} bytes"), None, "too_large"
    except Busy:
        response = problem(503, "too many request bodies are being read at once; retry in a "
                                "moment")
        response.headers["Retry-After"] = "1"
        return response, None, "busy"
    except TimeoutError:
        return (problem(408, f"the body did not arrive within "
                             f"{settings.server.body_timeout_seconds:g}s"), None, "slow_body")
    except web.RequestPayloadError:  # a broken chunked encoding
        response = problem(400, "the body could not be read (a broken chunk)")
        response.force_close()  # what follows on this connection cannot be framed
        return response, None, "rejected_400"
    except ConnectionError:  # the sender went away mid-body: nobody reads the answer
        return problem(400, "the connection closed before the body ended"), None, "client_gone"
    finally:
        held.release()
    try:
        delivery = parse(request.headers, body, secret, request.query,
                         request.app[ROUTER].keys)
        stored = request.app[INGEST].enqueue(delivery)
        async with asyncio.timeout(settings.ingest.timeout_seconds):
            result = await asyncio.shield(stored)  # a timeout leaves the write to go on
    except TimeoutError:  # the write may still commit: a redelivery is then a duplicate
        log.error("store_too_slow", seconds=settings.ingest.timeout_seconds)
        return (problem(503, f"the delivery could not be stored within "
                             f"{settings.ingest.timeout_seconds:g}s; retry later"),
                delivery.event, "store_unavailable")
    except Rejection as rejection:
        return problem(rejection.status, rejection.reason), None, f"rejected_{rejection.status}"
    except StoreUnavailable as exc:
        log.error("store_unavailable", error=str(exc))
        return (problem(503, "the delivery could not be stored; retry later"), delivery.event,
                "store_unavailable")
    body_out = {"guid": delivery.guid, "event": delivery.event, "delivery_id": result.delivery_id,
                "keys": list(delivery.keys)}
    if delivery.event == "ping":
        response = answer({"status": "pong", "reason": "ping received", **body_out}, 200)
    elif result.outcome is Outcome.DUPLICATE:
        response = answer({"status": "duplicate", "reason": "this delivery is already stored "
                           "and pending or processed; not accepted again", **body_out}, 200)
    elif delivery.ignored:
        response = answer({"status": "ignored", "reason": f"stored; no reconciler acts on "
                           f"this {delivery.event!r} delivery (no object of a kind one watches "
                           f"is named in it)", **body_out}, 202)
    else:
        again = " again (its earlier processing failed)" \
            if result.outcome is Outcome.REDELIVERED else ""
        response = answer({"status": result.outcome.value, "reason": f"stored{again}; "
                           f"{len(delivery.keys)} key(s) enqueued", **body_out}, 202)
    return response, delivery.event, result.outcome.value


class TooLarge(Exception):
    pass


class Busy(Exception):
    pass


class Held:
    """The bytes one request holds of the shared budget, given back together."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.size = 0

    def take(self, size: int) -> None:
        if not self.budget.take(size):
            raise Busy
        self.size += size

    def release(self) -> None:
        self.budget.give(self.size)
        self.size = 0


async def _read(request: web.Request, held: Held, limit: int) -> bytes:
    """The body (decoded from its Content-Encoding), taking from the budget what arrives, as it
    arrives; at most `limit` bytes after decoding, so a small compressed bomb is cut early."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        held.take(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


def _read_arrived(request: web.Request, held: Held, limit: int) -> bytes:
    """The body when all of it has arrived already (the common case for a few kilobytes)."""
    body = request.content.read_nowait()
    if len(body) > limit:
        raise TooLarge
    held.take(len(body))
    return body


def _short(value: str | None, limit: int = 100) -> str | None:
    """A header for the log line: whoever sent it, a line stays a line."""
    return value if value is None or len(value) <= limit else value[:limit] + "…"


def _reason(response: web.Response) -> str | None:
    """The reason a refusal gave, for its log line."""
    try:
        return str(json.loads(response.body or b"{}").get("reason"))  # type: ignore[arg-type]
    except (ValueError, AttributeError, TypeError):
        return None
