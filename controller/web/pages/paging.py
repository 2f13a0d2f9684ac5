"""The query strings of the operator's list pages: filters and a keyset cursor checked as the
JSON API checks its own (controller/web/json.py: an unknown parameter or a value outside its
set is refused, never silently ignored), and the link to the next page, keeping the filters.
No store access, no rendering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from controller.web.json import BadQuery, Declared, query


def checked(request: web.Request, declared: Declared) -> dict[str, Any] | str:
    """The declared parameters' values, or why the query string is refused."""
    try:
        return query(request, declared)
    except BadQuery as exc:
        return str(orjson.loads(exc.text or "{}").get("reason", "a bad query string"))


def link(path: str, params: Mapping[str, Any], **cursor: Any) -> str:
    """`path` with the filters in `params` that are set, and `cursor` (the next page's)."""
    kept = {k: v for k, v in {**params, **cursor}.items() if v is not None and v != ""}
    return f"{path}?{urlencode(kept)}" if kept else path


def page_of(rows: list[Any], limit: int) -> tuple[list[Any], bool]:
    """The rows of a page fetched with `limit + 1`, and whether another page follows."""
    return rows[:limit], len(rows) > limit
