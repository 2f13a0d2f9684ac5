"""The operator's words over the API (the write token; `{"by": NAME}` says who, recorded):
approve a held action, replay a delivery, revive a dead key, set or lift a source's
killswitch; and the record of every such word, from any surface. Each calls
controller/engine/operator.py, as the CLI and the operator's page do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from controller.engine import operator
from controller.reconcile.authz import API, Verb, authorize
from controller.web.api import BEFORE, LIMIT, page
from controller.web.json import Text, answer, path_text, problem, query, read_at_most
from controller.web.keys import QUEUE, STORE

MAX_BODY = 4096


async def _by(request: web.Request) -> str | web.Response:
    """Who asks: `{"by": NAME}` (1 to 100 printable characters), else a 400."""
    body = await read_at_most(request, MAX_BODY) if request.can_read_body else b""
    if body is None:
        return problem(413, f"the body is at most {MAX_BODY} bytes")
    try:
        given = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        return problem(400, f"the body is not JSON: {exc}")
    who = given.get("by") if isinstance(given, dict) else None
    if not (isinstance(who, str) and 0 < len(who.strip()) and len(who) <= 100
            and who.isprintable()) or set(given) - {"by"}:
        return problem(400, 'the body is {"by": "<who asks, 1 to 100 printable characters>"}')
    return who


def _answer(done: operator.Done) -> web.Response:
    if not done.found:
        return problem(404, done.message)
    return answer({"message": done.message, "keys": list(done.keys), **done.detail},
                  status=202)


def _refused(verb: Verb) -> web.Response | None:
    allowed = authorize(API, verb, None)  # (the write token was checked)
    return None if allowed.allowed else problem(403, allowed.why)


Act = Callable[[web.Request, str], Awaitable[operator.Done]]


def _word(verb: Verb | Callable[[web.Request], Verb], act: Act
          ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A route for one operator's word: who asks (`{"by": NAME}`), may the API say it, then
    `act(request, who)`."""
    async def handler(request: web.Request) -> web.Response:
        who = await _by(request)
        if isinstance(who, web.Response):
            return who
        if (refused := _refused(verb(request) if callable(verb) else verb)) is not None:
            return refused
        return _answer(await act(request, who))

    return handler


approve = _word("approve", lambda request, who: operator.approve(
    request.app[STORE], request.app[QUEUE],
    path_text(request.match_info["idempotency_key"], "the action's idempotency key"),
    by=who, via="api"))
replay = _word("retry", lambda request, who: operator.replay(
    request.app[STORE], request.app[QUEUE],
    path_text(request.match_info["ref"], "the delivery's GUID or id"), by=who, via="api"))
revive = _word("retry", lambda request, who: operator.revive(
    request.app[STORE], request.app[QUEUE], path_text(request.match_info["key"], "the key"),
    by=who, via="api"))
killswitch = _word(lambda request: "stop" if request.method == "PUT" else "resume",
                   lambda request, who: operator.killswitch(
                       request.app[STORE], path_text(request.match_info["source"], "the source"),
                       request.method == "PUT", by=who, via="api"))


async def list_operator_actions(request: web.Request) -> web.Response:
    q = query(request, {"target": Text(), "before": BEFORE, "limit": LIMIT})
    rows = await request.app[STORE].fetch("operator_actions_list", q["before"], q["target"],
                                          q["limit"] + 1)
    return answer(page([dict(r) for r in rows], q["limit"], "id"))


def add_routes(app: web.Application) -> None:
    post, get = app.router.add_post, app.router.add_get
    post("/api/actions/{idempotency_key:.+}/approve", approve)
    post("/api/deliveries/{ref}/replay", replay)
    post("/api/queue/{key:.+}/revive", revive)
    app.router.add_put("/api/killswitches/{source:.+}", killswitch)
    app.router.add_delete("/api/killswitches/{source:.+}", killswitch)
    get("/api/operator-actions", list_operator_actions)
