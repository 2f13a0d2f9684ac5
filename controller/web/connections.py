"""The server's connections, guarded: what aiohttp's defaults leave to a hostile client.

- A request head must be complete within `head_seconds` of the connection opening, or of its
  first byte on a keep-alive connection; an idle keep-alive connection is closed after
  `keepalive_seconds` (aiohttp's default is an hour, so connections that send nothing would
  pile up until the process runs out of file descriptors and cannot accept a real delivery).
- At most `max_connections` are open at once. Beyond, the oldest connection that is not in
  the middle of a request (idle, or still sending its head) is closed to make room; only when
  every one is handling a request is the new one closed. So holding the slots takes requests
  that are really being handled (bounded by the body timeout), not idle sockets. A
  rate-limited warning says how many were closed.
- What the HTTP parser refuses (a line too long, conflicting lengths) is answered as JSON with
  a reason and one info line, never quoting the request (it may carry a token).

No application logic here: `controller.serving` builds a `GuardedRunner` around the app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
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
CLOSED_LOG_EVERY = 10.0  # seconds between two warnings about connections closed at the cap


class GuardedHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler with a deadline for the first request, a cap on open
    connections, and parser refusals answered as JSON."""

    def __init__(self, manager: GuardedServer, *, loop: asyncio.AbstractEventLoop,
                 head_seconds: float, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._head_seconds = head_seconds
        self._guard = manager

    @property
    def busy(self) -> bool:
        """Handling a request (not idle, not still receiving a head)."""
        return bool(self._request_in_progress)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._guard.admit(self):
            self.force_close()
            return
        self._head_deadline()

    def data_received(self, data: bytes) -> None:
        if self._request_in_progress:  # the body of the request being handled (or pipelined)
            parsed = self._request_count
            super().data_received(data)
            if self._request_count > parsed and self._current_request is not None \
                    and self._messages and isinstance(self._messages[-1][0],
                                                      web_protocol._ErrInfo):
                # The parser refused what followed: a body that broke off (a bad chunk).
                # aiohttp would queue the refusal and leave the request waiting for the rest
                # until its body timeout; fail its body now, so it is answered 400 at once.
                self._current_request._cancel(
                    web.RequestPayloadError("the request body is malformed"))
            return
        super().data_received(data)  # idle: these bytes start a new head
        if self._waiter is not None and not self._waiter.done():
            self._head_deadline()  # the head is not complete yet

    def _head_deadline(self) -> None:
        """aiohttp's keep-alive timer closes a connection still waiting for a request when it
        fires (and re-arms itself after each answer): bring it forward to the head's deadline,
        never later than it already is."""
        deadline = self._loop.time() + self._head_seconds
        if self._keepalive_handle is not None and self._next_keepalive_close_time <= deadline:
            return
        self._next_keepalive_close_time = deadline
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
        self._keepalive_handle = self._loop.call_at(deadline, self._process_keepalive)

    def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                        start_time: float | None,
                        ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        # aiohttp answers an Expect it does not know on a path or method no route takes
        # (routes have their own handler) with text quoting the header: JSON instead.
        # (Not a coroutine of its own: aiohttp's, returned, is what is awaited.)
        if resp.status == 417 and resp.content_type != "application/json":
            resp = problem(417, "the only expectation understood is Expect: 100-continue")
        return super().finish_response(request, resp, start_time)

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
    head_seconds: float
    _closed: int
    _closed_logged_at: float

    def __call__(self) -> web_protocol.RequestHandler:
        return GuardedHandler(self, loop=self._loop, head_seconds=self.head_seconds,
                              **self._kwargs)

    def admit(self, newcomer: GuardedHandler) -> bool:
        """Whether the connection just registered may stay open, once the oldest that is not
        handling a request was closed to make room if needed. Connections already closed but
        still lingering in aiohttp's list (reading an unread body) do not count."""
        open_now = [c for c in self._connections if c.transport is not None and c is not newcomer]
        if len(open_now) < self.max_connections:
            return True
        evicted = next((c for c in open_now if isinstance(c, GuardedHandler) and not c.busy),
                       None)  # the list is in order of arrival: the oldest first
        if evicted is not None:
            evicted.force_close()
        self._count_closed()
        return evicted is not None

    def _count_closed(self) -> None:
        self._closed += 1
        now = time.monotonic()
        if now - self._closed_logged_at >= CLOSED_LOG_EVERY:
            log.warning("connections_closed_at_cap", count=self._closed,
                        max_connections=self.max_connections,
                        meaning="P38_MAX_CONNECTIONS were open: idle ones were closed to make "
                                "room, or new ones when every one was handling a request")
            self._closed, self._closed_logged_at = 0, now


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server is a `GuardedServer`."""

    def __init__(self, app: web.Application, *, max_connections: int, head_seconds: float,
                 keepalive_seconds: float, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=keepalive_seconds, **kwargs)
        self._max_connections = max_connections
        self._head_seconds = head_seconds

    async def _make_server(self) -> web_server.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer
        assert isinstance(server, GuardedServer)
        server.max_connections = self._max_connections
        server.head_seconds = self._head_seconds
        server._closed, server._closed_logged_at = 0, float("-inf")
        return server
