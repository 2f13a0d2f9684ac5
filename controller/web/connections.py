"""The server's connections, guarded: what aiohttp's defaults leave to a hostile client.

- A new connection must send a complete request head within `first_request_seconds`; after an
  answer, an idle keep-alive connection is closed after `keepalive_seconds` (aiohttp's default
  is an hour, so connections that send nothing would pile up until the process runs out of
  file descriptors and cannot accept a real delivery).
- At most `max_connections` are open at once; beyond, a new one is closed as soon as it is
  accepted (a rate-limited warning says how many), so the descriptors a delivery needs are
  never all taken.
- What the HTTP parser refuses (a line too long, conflicting lengths) is answered as JSON with
  a reason and one info line, never quoting the request (it may carry a token).

No application logic here: `controller.serving` builds a `GuardedRunner` around the app.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from aiohttp import web, web_protocol, web_server
from aiohttp.web_request import BaseRequest

from controller.web.json import problem

log = structlog.get_logger("p38.connections")

# What a request aiohttp's parser refused is told: the kind of problem, never the bytes it sent.
_PARSER_REASONS = {
    "LineTooLong": "a request line or header is too long",
    "BadStatusLine": "the request line is malformed",
    "BadHttpMethod": "the request method is not valid",
    "InvalidHeader": "a header is malformed",
    "InvalidURLError": "the URL is malformed",
    "TransferEncodingError": "the Transfer-Encoding is malformed",
    "ContentLengthError": "the body does not match its Content-Length",
}
REFUSED_LOG_EVERY = 10.0  # seconds between two warnings about connections refused


class GuardedHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler with a deadline for the first request, a cap on open
    connections, and parser refusals answered as JSON."""

    def __init__(self, manager: GuardedServer, *, loop: asyncio.AbstractEventLoop,
                 first_request_seconds: float, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._first_request_seconds = first_request_seconds
        self._guard = manager

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._guard.admit():
            self.force_close()
            return
        # aiohttp arms its keep-alive timer for the connection's start too; make it the
        # (shorter) deadline of the first request's head. Its callback closes the connection
        # only while it still waits for a request, and re-arms itself when one was answered.
        deadline = self._loop.time() + self._first_request_seconds
        self._next_keepalive_close_time = deadline
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
        self._keepalive_handle = self._loop.call_at(deadline, self._process_keepalive)

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response was sent already")
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)  # through the redactor
            reason = "internal error; see the log"
        else:
            name = type(exc).__name__ if exc is not None else ""
            text = message or ""
            reason = _PARSER_REASONS.get(name, "the request is malformed HTTP")
            if "Content-Length" in text and "Transfer-Encoding" in text:
                reason = "Content-Length and Transfer-Encoding cannot both be sent"
            elif name == "BadHttpMessage" and "header" in text.lower():
                reason = "a header is malformed"
            # The client's mistake: one line, without the parser's text (it quotes the request)
            log.info("request_refused", status=status, reason=reason, problem=name or None)
        response = problem(status, reason)
        response.force_close()
        return response


class GuardedServer(web_server.Server):
    """aiohttp's server whose connections are `GuardedHandler`s, at most `max_connections`."""

    max_connections: int
    first_request_seconds: float
    _refused: int
    _refused_logged_at: float

    def __call__(self) -> web_protocol.RequestHandler:
        return GuardedHandler(self, loop=self._loop,
                              first_request_seconds=self.first_request_seconds, **self._kwargs)

    def admit(self) -> bool:
        """Whether the connection just registered may stay open."""
        if len(self._connections) <= self.max_connections:
            return True
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged_at >= REFUSED_LOG_EVERY:
            log.warning("connections_refused", count=self._refused,
                        max_connections=self.max_connections,
                        meaning="connections beyond P38_MAX_CONNECTIONS are closed at once")
            self._refused, self._refused_logged_at = 0, now
        return False


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server is a `GuardedServer`."""

    def __init__(self, app: web.Application, *, max_connections: int,
                 first_request_seconds: float, keepalive_seconds: float,
                 **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=keepalive_seconds, **kwargs)
        self._max_connections = max_connections
        self._first_request_seconds = first_request_seconds

    async def _make_server(self) -> web_server.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer
        assert isinstance(server, GuardedServer)
        server.max_connections = self._max_connections
        server.first_request_seconds = self._first_request_seconds
        server._refused, server._refused_logged_at = 0, float("-inf")
        return server
