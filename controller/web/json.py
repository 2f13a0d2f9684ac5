"""JSON answers (orjson: datetimes and UUIDs serialise natively) and the query-string check.

Every route declares the parameters it takes (`Query`); `query(request, declared)` returns their
values or raises a 400 naming what is wrong and what is valid: an unknown parameter (never a
silently ignored filter), a value outside its set, a NUL, an integer out of range. No I/O.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import HttpVersion11, web

MAX_TEXT = 500  # characters in a text parameter


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):  # asyncpg's UUID type is a subclass orjson does not know
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body, default=_default,
                                          option=orjson.OPT_NON_STR_KEYS),
                        status=status, content_type="application/json")


def problem(status: int, reason: str, **extra: Any) -> web.Response:
    """An error answer: always JSON, always with a reason."""
    return answer({"error": status, "reason": reason, **extra}, status=status)


class BadQuery(web.HTTPBadRequest):
    """A 400 raised from deep in a handler, rendered as JSON with its reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(text=orjson.dumps({"error": 400, "reason": reason}).decode(),
                         content_type="application/json")


@dataclass(frozen=True)
class Text:
    """A text parameter; `choices` (when set) is the whole set of valid values."""

    choices: Collection[str] | None = None


@dataclass(frozen=True)
class Int:
    lo: int = 1
    hi: int = 2**62
    default: int | None = None


Declared = Mapping[str, Text | Int]


def query(request: web.Request, declared: Declared) -> dict[str, Any]:
    """The declared parameters' values (None when absent); 400 for anything else."""
    unknown = sorted(set(request.query) - set(declared))
    if unknown:
        raise BadQuery(f"unknown parameter {unknown[0]!r}; this route takes "
                       f"{', '.join(sorted(declared)) or 'none'}")
    values: dict[str, Any] = {}
    for name, kind in declared.items():
        if len(request.query.getall(name, [])) > 1:
            raise BadQuery(f"{name} is given more than once; give it once")
        raw = request.query.get(name)
        if raw is None or raw == "":
            values[name] = kind.default if isinstance(kind, Int) else None
            continue
        values[name] = _int(name, raw, kind) if isinstance(kind, Int) else \
            _text(name, raw, kind)
    return values


def _text(name: str, raw: str, kind: Text) -> str:
    if "\x00" in raw or len(raw) > MAX_TEXT:
        raise BadQuery(f"{name} must be text without NUL, at most {MAX_TEXT} characters")
    if kind.choices is not None and raw not in kind.choices:
        raise BadQuery(f"{name} must be one of {', '.join(sorted(kind.choices))}")
    return raw


_INTEGER = re.compile(r"-?[0-9]+")


def _int(name: str, raw: str, kind: Int) -> int:
    if not _INTEGER.fullmatch(raw):  # int() would take "+5", "1_000", " 7", "٣"
        raise BadQuery(f"{name} must be an integer written in digits")
    value = int(raw)
    if not kind.lo <= value <= kind.hi:
        raise BadQuery(f"{name} must be between {kind.lo} and {kind.hi}")
    return value


def path_text(value: str, name: str) -> str:
    """A path segment used as a value: the same rules as a text parameter."""
    return _text(name, value, Text())


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` as aiohttp answers it; any other expectation is a JSON 417 that
    does not quote the header (aiohttp's own answer is text that echoes it). For every route:
    aiohttp calls it before any middleware."""
    if request.version != HttpVersion11:
        return None
    if request.headers.get("Expect", "").lower() != "100-continue":
        return problem(417, "the only expectation understood is Expect: 100-continue")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the response proper has not started
    return None


async def read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than `limit` (never read whole)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
