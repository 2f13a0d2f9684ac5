"""structlog configuration: JSON off a terminal, console on one (coloured only on a terminal),
secrets redacted.

The redaction processor replaces every configured secret value wherever it appears in an event
dict's string values, for structlog's loggers and for every standard-library logger (aiohttp's
parser and server errors among them), which are rendered by the same processors; a value
holding a percent-encoded secret (`?token=s3cret%2Drw`) is logged decoded, then redacted.
What a client did wrong (a body that ends early or cannot be read, a request the parser
refuses) is an info line without a traceback, never an error. It holds the values in memory
only. No I/O beyond writing log lines.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote_plus

import orjson
import structlog

REDACTED = "[redacted]"


class SecretRedactor:
    """A structlog processor that removes known secret values from every log line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._groups: dict[str, frozenset[str]] = {}
        self._secrets: tuple[str, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str], *, group: str = "settings") -> None:
        """Replace the secrets of one `group` (the settings' own, Secret Manager's), keeping
        the others: a refresh of one source never un-redacts another's."""
        self._groups[group] = frozenset(secrets)
        every = set().union(*self._groups.values())
        # Longest first, so a secret containing another is replaced whole; ignore tiny values
        # that would shred ordinary words.
        self._secrets = tuple(sorted({s for s in every if len(s) >= 6}, key=len, reverse=True))

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            if "%" in value or "+" in value:
                decoded = unquote_plus(value, errors="backslashreplace")
                if any(secret in decoded for secret in self._secrets):
                    value = decoded  # only then: other encoded text is logged as it came
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(v) for v in value)
        return value

    def __call__(self, _logger: Any, _name: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if not self._secrets:
            return event_dict
        for key, value in list(event_dict.items()):
            event_dict[key] = self._scrub(value)
        return event_dict


def _printable(value: Any) -> Any:
    """Strings with undecodable bytes (kept by HTTP parsers as surrogates) as \\udcXX text."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    return value


def _orjson_dumps(value: Any, **_kwargs: Any) -> bytes:
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:  # a hostile header's bytes: the line is still written
        return orjson.dumps(_printable(value), default=str)


def _orjson_text(value: Any, **_kwargs: Any) -> str:
    return _orjson_dumps(value).decode()


def configure_logging(*, fmt: str = "auto", level: str = "info",
                      redactor: SecretRedactor | None = None) -> SecretRedactor:
    """Configure structlog once per process; returns the redactor so secrets can be added."""
    redactor = redactor or SecretRedactor()
    on_terminal = sys.stderr.isatty()
    use_console = fmt == "console" or (fmt == "auto" and on_terminal)
    # Colour only on a terminal: P38_LOG_FORMAT=console into a file or a pipe (a log
    # collector, `2>p38.log`) gets plain text, not escape codes.
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=on_terminal) if use_console
                     else structlog.processors.JSONRenderer(serializer=_orjson_dumps))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)),
        # Resolve sys.stderr at each use, so a replaced stream (tests, daemons) is honoured.
        logger_factory=((lambda *_args: structlog.PrintLogger(sys.stderr)) if use_console
                        else (lambda *_args: structlog.BytesLogger(sys.stderr.buffer))),
        cache_logger_on_first_use=False,
    )
    # Every other logger (aiohttp's parser and server errors, asyncio's) goes through the same
    # redactor and renderer: no log path can carry a secret around it.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redactor,
                    structlog.dev.ConsoleRenderer(colors=False) if use_console
                    else structlog.processors.JSONRenderer(serializer=_orjson_text)])
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.addFilter(ClientFaults())
    handler.addFilter(AcceptErrors())
    handler.addFilter(PoolFloorRetries())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.getLevelNamesMapping().get(level.upper(), logging.INFO))
    # httpx says "HTTP Request: GET ..." at info for every call: the actions and their results
    # already record what was sent; at debug the lines come back.
    logging.getLogger("httpx").setLevel(logging.NOTSET if level.lower() == "debug"
                                        else logging.WARNING)
    return redactor


# Exceptions a client causes (by class name, anywhere in the exception's MRO): aiohttp logs them
# with a traceback when they surface after a handler answered (draining an undecodable body).
CLIENT_FAULTS = frozenset({"ConnectionError", "RequestPayloadError", "HttpProcessingError"})


class ClientFaults(logging.Filter):
    """Turns a library's error about something a client did into one info line naming the
    exception's class: no traceback, and no text from the request (it may hold a token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and CLIENT_FAULTS & {c.__name__ for c in type(exc).__mro__}:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = f"a client's request did not complete: {type(exc).__name__}"
            record.args = ()
            record.exc_info = record.exc_text = None
        return True


class AcceptErrors(logging.Filter):
    """asyncio logs every failed accept() (out of file descriptors) with a traceback, hundreds a
    second under a flood: one warning line every `every` seconds says how many instead."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every, self.count, self.logged_at = every, 0, float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "asyncio" or "socket.accept() out of system resource" \
                not in str(record.msg):
            return True
        self.count += 1
        if record.created - self.logged_at < self.every:
            return False
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = f"accept() failed {self.count} time(s): out of file descriptors"
        record.args, record.exc_info, record.exc_text = (), None, None
        self.count, self.logged_at = 0, record.created
        return True


class PoolFloorRetries(logging.Filter):
    """asyncpg's pool logs a warning with a traceback each time it fails to reconnect its
    minimum of connections: while the database is away, that repeats what the store's one
    `database_unreachable` line (and its reminder a minute) already says. Dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "asyncpg.pool"
                    and "Failed to restore the pool connection floor" in str(record.msg))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to whatever sys.stderr is at the time (tests replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)
