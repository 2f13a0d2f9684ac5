"""JSON answers (orjson: datetimes and UUIDs serialise natively) and query-string helpers."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web


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


def int_param(request: web.Request, name: str, *, default: int | None = None,
              lo: int = 1, hi: int = 1000) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=orjson.dumps({"error": 400, "reason": f"{name} must be an integer"}).decode(),
            content_type="application/json") from None
    return max(lo, min(hi, value))


def text_param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value or None
