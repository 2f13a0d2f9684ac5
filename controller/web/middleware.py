"""The app's one middleware: requests counted for a graceful stop, every answer JSON with a
reason (and one log line per API request), and the API's bearer token. No routes, no store
access.

One middleware, not three: aiohttp runs every middleware around every request, and the
webhook route, the one a sender's load falls on, needs none of it (`webhooks.receive` counts
itself for the stop, answers every failure as JSON itself, and takes no API token). So the
middleware hands a webhook request straight to its handler, and does the three jobs in one
frame for every other route and for aiohttp's own 404/405.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from controller.store import DatabaseUnavailable, TransientStoreError
from controller.web.json import problem
from controller.web.keys import IN_FLIGHT, SETTINGS, SHUTDOWN, WRITE_TOKEN
from controller.web.webhooks import receive
from handlers.base import as_bytes

log = structlog.get_logger("p38.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


API_TIMEOUT = 10.0  # seconds an API answer may take (a hung database must not hold it)


@web.middleware
async def requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A webhook: its handler, as it is. Anything else: counted while handled, so a shutdown
    waits for it (`controller.web.inflight`), and once the stop began each answer closes its
    connection (a keep-alive client goes elsewhere); answered as JSON whatever happens
    (`_json_errors`), and an API request needs its token (`_api_auth`)."""
    if handler is receive:
        return await handler(request)
    app = request.app
    counter = app[IN_FLIGHT]
    counter.enter()
    try:
        response = await _json_errors(request, handler)
    finally:
        counter.leave()
    if app[SHUTDOWN].requested.is_set():
        response.force_close()
    return response


async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer is JSON with a reason: aiohttp's own 4xx (unknown route, wrong method), a
    database that is away or too slow for the API (503), and a bug (500, trace in the log).
    API requests get one log line each."""
    started = asyncio.get_running_loop().time()
    response: web.StreamResponse
    try:
        if request.path.startswith("/api/"):
            async with asyncio.timeout(API_TIMEOUT):
                response = await _api_auth(request, handler)
        else:
            response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.content_type == "application/json":  # a 400 of ours: its log line, then up
            _log_api(request, exc.status, started)
            raise
        shown = request.path if len(request.path) <= 100 else request.path[:100] + "…"
        response = problem(exc.status, f"{exc.reason}: {request.method} {shown}")
        if allow := exc.headers.get("Allow"):  # a 405 says what is allowed
            response.headers["Allow"] = allow
    except TimeoutError:
        response = problem(503, f"the database did not answer within {API_TIMEOUT:g}s")
    except (TransientStoreError, DatabaseUnavailable):
        # The cause (an exception's text: a socket path, a driver's class) is the log's and
        # /readyz's business; an API client gets what it can act on.
        response = problem(503, "the database is not available: the controller is waiting "
                                "for it; try again shortly (its log and /readyz say why)")
        response.headers["Retry-After"] = "5"
    except Exception as exc:
        log.exception("request_failed", method=request.method, path=request.path)
        response = problem(500, f"internal error ({type(exc).__name__}); see the log")
    _log_api(request, response.status, started)
    return response


def _log_api(request: web.Request, status: int, started: float) -> None:
    if request.path.startswith("/api/"):
        path = request.path if len(request.path) <= 200 else request.path[:200] + "…"
        log.info("api_request", method=request.method, path=path, status=status,
                 ms=round((asyncio.get_running_loop().time() - started) * 1000, 2))


READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _api_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`/api/*` (but `/api/health`): with P38_API_TOKEN, every request needs it; without,
    reads are open and writes need the write token ($P38_HOME/api-token), never nothing."""
    path = request.path
    if not path.startswith("/api/") or path == "/api/health" \
            or request.match_info.http_exception is not None:  # no such route: 404/405 say so
        return await handler(request)
    configured = request.app[SETTINGS].server.api_token
    if configured is not None:
        if not _bearer(request, configured.get_secret_value()):
            return problem(401, "this API needs Authorization: Bearer <P38_API_TOKEN>")
    elif request.method not in READS:
        write_token = request.app[WRITE_TOKEN]
        if write_token is None:
            return problem(401, "writes to this API need a token: set P38_API_TOKEN")
        if not _bearer(request, write_token):
            return problem(401, "writes to this API need Authorization: Bearer <token> (the "
                                "token in $P38_HOME/api-token, or P38_API_TOKEN)")
    return await handler(request)


def _bearer(request: web.Request, token: str) -> bool:
    scheme, _, offered = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(as_bytes(offered.strip()),
                                                              token.encode())
