"""Who is looking at the operator's page, and what they may do there.

Reading follows the API's rule: open while neither P38_API_TOKEN nor P38_DASHBOARD_TOKEN is
set, else a sign-in is needed. The operator's words (approve, killswitch, replay, revive, run)
always need a sign-in with the write token (P38_API_TOKEN, or the one `p38 up` keeps in
$P38_HOME/api-token); P38_DASHBOARD_TOKEN signs in for reading only. A sign-in is a cookie
(`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS) holding the role, the name the operator
gave (recorded with every word) and an expiry, signed with a key derived from the token: any
replica with the same token accepts it, and changing the token signs everyone out. Every form
that changes something carries a CSRF token derived from the cookie, and a request whose
Origin is another site is refused. No store access here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from aiohttp import web

from controller.web.keys import SETTINGS, WRITE_TOKEN

COOKIE = "p38_session"
LIFETIME_SECONDS = 12 * 3600
MAX_NAME = 100


@dataclass(frozen=True)
class Viewer:
    """`name`: who signed in (None: nobody, reads being open); `csrf`: what this viewer's
    forms must carry."""

    name: str | None
    can_write: bool
    csrf: str | None = None


def write_token(app: web.Application) -> str | None:
    configured = app[SETTINGS].server.api_token
    return configured.get_secret_value() if configured is not None else app[WRITE_TOKEN]


def read_token(app: web.Application) -> str | None:
    configured = app[SETTINGS].server.dashboard_token
    return configured.get_secret_value() if configured is not None else None


def reads_open(app: web.Application) -> bool:
    server = app[SETTINGS].server
    return server.api_token is None and server.dashboard_token is None


def _key(token: str) -> bytes:
    return hashlib.sha256(b"p38-page-session\0" + token.encode()).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(token: str, payload: str) -> str:
    return _b64(hmac.new(_key(token), payload.encode(), hashlib.sha256).digest())


def sign_in(app: web.Application, offered: str, name: str) -> str | None:
    """The cookie for whoever offers this token (None: it is neither token)."""
    for role, token in (("write", write_token(app)), ("read", read_token(app))):
        if token and hmac.compare_digest(offered.encode(), token.encode()):
            payload = f"{role}.{_b64(name.encode())}.{int(time.time()) + LIFETIME_SECONDS}"
            return f"{payload}.{_mac(token, payload)}"
    return None


def viewer(request: web.Request) -> Viewer | None:
    """Who looks (a valid cookie), an anonymous reader when reads are open, else None."""
    app = request.app
    found = _signed_in(app, request.cookies.get(COOKIE, ""))
    if found is not None:
        return found
    return Viewer(None, False) if reads_open(app) else None


def _signed_in(app: web.Application, cookie: str) -> Viewer | None:
    parts = cookie.split(".")
    if len(parts) != 4 or parts[0] not in ("write", "read"):
        return None
    role, name, expires, mac = parts
    token = write_token(app) if role == "write" else read_token(app)
    if not token or not hmac.compare_digest(mac, _mac(token, f"{role}.{name}.{expires}")):
        return None
    if not expires.isdigit() or int(expires) < time.time():
        return None
    try:
        who = _unb64(name).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return Viewer(who, role == "write", _mac(token, f"csrf:{mac}"))


def set_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    response.set_cookie(COOKIE, value, max_age=LIFETIME_SECONDS, path="/", httponly=True,
                        samesite="Strict", secure=request.secure)


def forged(request: web.Request, who: Viewer, form_csrf: str) -> str | None:
    """Why a form post must be refused (None: it is this viewer's own)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null" and origin.split("://", 1)[-1] != request.host:
        return f"a form posted from another site ({origin[:100]}) is refused"
    if not who.can_write or who.csrf is None:
        return "this needs a sign-in with the write token"
    if not hmac.compare_digest(form_csrf.encode(), who.csrf.encode()):
        return "the form is stale or not this page's (sign in again, then retry)"
    return None


def safe_next(target: str | None) -> str:
    """Where to go after a sign-in or a word: a path on this site, never elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target[:2000]
