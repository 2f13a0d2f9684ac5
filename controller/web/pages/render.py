"""Rendering one page of the operator's site: the viewer, a notice left by the last word, the
security headers every page carries (nothing from elsewhere: scripts, styles and images come
from this server only, and no site may frame it), and the sign-in wall. No store access.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from controller.web.pages.session import Viewer, viewer

NOTICE = "p38_notice"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
PageHandler = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]


def render(request: web.Request, who: Viewer | None, template: str,
           context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    notice = _notice(request)
    response = aiohttp_jinja2.render_template(
        template, request, {**context, "viewer": who, "notice": notice,
                            "here": request.path_qs}, status=status)
    response.headers.update(HEADERS)
    if notice is not None:
        response.del_cookie(NOTICE, path="/")
    return response


def leave_notice(response: web.StreamResponse, text: str) -> None:
    """A line the next page shows once (what the last word did)."""
    response.set_cookie(NOTICE, base64.urlsafe_b64encode(text[:500].encode()).decode(),
                        path="/", httponly=True, samesite="Strict", max_age=60)


def _notice(request: web.Request) -> str | None:
    raw = request.cookies.get(NOTICE)
    if not raw:
        return None
    try:
        return base64.urlsafe_b64decode(raw.encode()).decode()[:500]
    except (ValueError, UnicodeDecodeError):
        return None


def reader(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page anyone who may read sees; the others are sent to sign in, and come back."""
    async def page(request: web.Request) -> web.StreamResponse:
        who = viewer(request)
        if who is None:
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        return await handler(request, who)

    return page


def refused(request: web.Request, who: Viewer | None, why: str, status: int = 403
            ) -> web.Response:
    return render(request, who, "refused.html", {"title": "Refused", "why": why},
                  status=status)
