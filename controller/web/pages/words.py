"""The operator's words from the page: sign in and out, approve a held action, set or lift a
source's killswitch, replay a delivery, revive a dead key, run an agent. Each is a form post
that needs a sign-in with the write token and the form's CSRF token, calls
controller/engine/operator.py (as the CLI and the API do; recorded with the signed-in name,
via `page`), leaves a notice and goes back to the page it came from (303).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from controller.engine import operator
from controller.reconcile.payloads import json_problem
from controller.store import RejectedValue
from controller.web.keys import QUEUE, STORE
from controller.web.pages.render import leave_notice, refused, render
from controller.web.pages.session import (
    COOKIE,
    MAX_NAME,
    forged,
    reads_open,
    safe_next,
    set_cookie,
    sign_in,
    viewer,
)

MAX_FORM = 70_000  # a run's input (64 KiB) and the rest
Word = Callable[[web.Request, dict[str, str], str], Awaitable[operator.Done]]


async def _form(request: web.Request) -> dict[str, str] | None:
    if request.content_length is None or request.content_length > MAX_FORM:
        return None
    posted = await request.post()
    return {k: v for k, v in posted.items() if isinstance(v, str)}


async def login_page(request: web.Request) -> web.Response:
    return render(request, viewer(request), "login.html", {
        "title": "Sign in", "next": safe_next(request.query.get("next")),
        "reads_open": reads_open(request.app)})


async def login(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    if form is None:
        return refused(request, None, "the form is too large", status=413)
    target = safe_next(form.get("next"))
    name = form.get("name", "").strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return render(request, None, "login.html", {
            "title": "Sign in", "next": target, "error": "give your name (1 to 100 "
            "characters): it is recorded with what you do", "reads_open":
            reads_open(request.app)}, status=400)
    cookie = sign_in(request.app, form.get("token", "").strip(), name)
    if cookie is None:
        return render(request, None, "login.html", {
            "title": "Sign in", "next": target, "error": "that token is not this "
            "controller's write token nor its P38_DASHBOARD_TOKEN",
            "reads_open": reads_open(request.app)}, status=401)
    response = web.HTTPSeeOther(target)
    set_cookie(request, response, cookie)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """Signing out only forgets the cookie: harmless, so it needs no CSRF token."""
    response = web.HTTPSeeOther("/")
    response.del_cookie(COOKIE, path="/")
    raise response


def _word(act: Word) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        who = viewer(request)
        form = await _form(request)
        if form is None:
            return refused(request, who, "the form is too large", status=413)
        if who is None or who.name is None:
            return refused(request, who, "this needs a sign-in with the write token",
                           status=401)
        why = forged(request, who, form.get("csrf", ""))
        if why is not None:
            return refused(request, who, why)
        try:
            done = await act(request, form, who.name)
        except ValueError as exc:
            return refused(request, who, str(exc), status=400)
        response = web.HTTPSeeOther(safe_next(form.get("back")))
        leave_notice(response, done.message)
        raise response

    return handler


def _field(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value or len(value) > 1000 or not value.isprintable():
        raise ValueError(f"the form needs {name} (1 to 1000 printable characters)")
    return value


async def _approve(request: web.Request, form: dict[str, str], by: str) -> operator.Done:
    return await operator.approve(request.app[STORE], request.app[QUEUE],
                                  _field(form, "idempotency_key"), by=by, via="page")


async def _killswitch(request: web.Request, form: dict[str, str], by: str) -> operator.Done:
    state = _field(form, "state")
    if state not in ("on", "off"):
        raise ValueError("state is on or off")
    return await operator.killswitch(request.app[STORE], _field(form, "source"), state == "on",
                                     by=by, via="page")


async def _replay(request: web.Request, form: dict[str, str], by: str) -> operator.Done:
    return await operator.replay(request.app[STORE], request.app[QUEUE],
                                 _field(form, "delivery"), by=by, via="page")


async def _revive(request: web.Request, form: dict[str, str], by: str) -> operator.Done:
    return await operator.revive(request.app[STORE], request.app[QUEUE], _field(form, "key"),
                                 by=by, via="page")


async def _run(request: web.Request, form: dict[str, str], by: str) -> operator.Done:
    key = _field(form, "agent")
    source, _, name = key.removeprefix("agent:").rpartition("/")
    if not key.startswith("agent:") or await request.app[STORE].fetchrow(
            "applied_object_get", source, "Agent", name) is None:
        raise ValueError(f"no agent {key!r}")
    raw = form.get("input", "").strip()
    try:
        given = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the input is not JSON: {exc}") from None
    why = json_problem(given)
    if why is not None:
        raise ValueError(f"the input cannot be stored: {why}")
    try:
        return await operator.run_agent(request.app[STORE], key, given, by=by, via="page")
    except RejectedValue as exc:
        raise ValueError(f"the input cannot be stored: {exc}") from None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    for path, act in (("/approve", _approve), ("/killswitch", _killswitch),
                      ("/replay", _replay), ("/revive", _revive), ("/run", _run)):
        app.router.add_post(path, _word(act))
