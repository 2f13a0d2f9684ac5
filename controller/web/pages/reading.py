"""What the pages of agents, runs, tasks, services and pull requests share: the query string
read as the API reads it (a bad value answers a 400 page, not JSON), a missing thing answers a
404 page, the link to the next page of a keyset-paged list, and payloads shown pretty-printed
with secrets redacted (values of keys that look like secrets, at any depth; tokens by their
look; the controller's own configured secrets wherever they appear). No store access; the
templates escape what this returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

from controller.web.json import BadQuery, Declared, query
from controller.web.keys import SETTINGS
from controller.web.pages.redact import redact, scrub_text
from controller.web.pages.render import reader, refused, render
from controller.web.pages.session import Viewer

MAX_SHOWN = 200_000  # characters of one payload shown; the rest is cut with a note
Page = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]


class Missing(Exception):
    """The thing the page is about does not exist (a 404 page saying what)."""


def page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page for readers (`render.reader`) whose bad query answers 400 and whose missing
    subject answers 404, each as a page saying why."""
    async def shown(request: web.Request, who: Viewer) -> web.StreamResponse:
        try:
            return await handler(request, who)
        except BadQuery as exc:
            return refused(request, who, _reason(exc), status=400)
        except Missing as exc:
            return render(request, who, "refused.html", {"title": "Not found",
                                                          "why": str(exc)}, status=404)

    return reader(shown)


def args(request: web.Request, declared: Declared) -> dict[str, Any]:
    """The declared query parameters (as the API reads them); BadQuery for anything else."""
    return query(request, declared)


def path_value(request: web.Request, name: str) -> str:
    """A path segment used as a value: text without NUL, at most 500 characters."""
    value = request.match_info[name]
    if "\x00" in value or not value or len(value) > 500:
        raise BadQuery(f"{name} must be text without NUL, 1 to 500 characters")
    return value


def path_number(request: web.Request, name: str, what: str, *, hi: int = 2**62) -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) < 19 and 0 < int(raw) <= hi):
        raise BadQuery(f"{what} is a positive integer (at most {hi}), not {raw[:20]!r}")
    return int(raw)


def next_url(request: web.Request, **changes: Any) -> str:
    """This page's address with `changes` to its query (the other filters kept)."""
    return str(request.rel_url.update_query({k: str(v) for k, v in changes.items()}))


def secrets_of(request: web.Request) -> list[str]:
    """The controller's configured secret values (long enough to find safely)."""
    return [s for s in request.app[SETTINGS].secret_values() if len(s) >= 6]


def redacted(value: Any) -> Any:
    """`value` with the values of secret-looking keys, and token-looking strings, replaced
    (the one rule of controller/web/pages/redact.py)."""
    return redact(value)


def scrub(text: str | None, secrets: Iterable[str]) -> str | None:
    """`text` without the controller's own secret values (an agent's stderr may print one)."""
    if text is None:
        return None
    text = scrub_text(text, secrets)
    return text if len(text) <= MAX_SHOWN else \
        text[:MAX_SHOWN] + f"\n… ({len(text) - MAX_SHOWN} more characters not shown)"


def pretty(value: Any, secrets: Iterable[str] = ()) -> str | None:
    """A payload as indented JSON, secrets redacted (None stays None)."""
    if value is None:
        return None
    text = orjson.dumps(redact(value, tuple(secrets)), default=str,
                        option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    return scrub(text, secrets)


def _reason(exc: BadQuery) -> str:
    try:
        return str(orjson.loads(exc.text or "{}").get("reason") or exc.reason)
    except orjson.JSONDecodeError:
        return exc.reason
