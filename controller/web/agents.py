"""The agents API: `GET /api/agents`, `/api/agents/{name}` (status, versions with tokens, USD and
rounds, recent runs, the schedules that start it and their ticks),
`/api/agents/{name}/versions/{n}` (code, test and validation report),
`POST /api/agents/{name}/runs` (a manual run), `POST /api/agents/{name}/rebuild` (a new version
after the newest, as `p38 agents rebuild`), `GET /api/runs` and `/api/runs/{id}`.

An agent is named by its manifest name; when two sources define the same name, `?source=`
says which. Behind P38_API_TOKEN like the rest of /api. Starting a run queues it and hints its
key in one statement; a run worker carries it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from controller.engine import operator
from controller.reconcile.authz import API, authorize
from controller.reconcile.payloads import json_problem
from controller.reconcile.reconciler import object_key
from controller.store import RejectedValue
from controller.web import views
from controller.web.json import (
    BadQuery,
    Int,
    Text,
    answer,
    expect_continue,
    path_text,
    problem,
    query,
    read_at_most,
)
from controller.web.keys import STORE

MAX_INPUT_BYTES = 64 * 1024


async def list_agents(request: web.Request) -> web.Response:
    store = request.app[STORE]
    q = query(request, {"source": Text()})
    applied = [r for r in await store.fetch("applied_of_kind", "Agent")
               if q["source"] in (None, r["source"])]
    keys = [object_key("Agent", r["source"], r["name"]) for r in applied]
    statuses = {r["key"]: r for r in await store.fetch("statuses_of", keys)}
    items = []
    for row, key in zip(applied, keys, strict=True):
        versions = await store.fetch("agent_versions_of", key, 1)
        current = await store.fetchrow("agent_version_current", key)
        items.append({**_summary(row, key, statuses.get(key)),
                      "latest_version": _version(versions[0]) if versions else None,
                      "running_version": current["number"] if current else None})
    return answer({"items": items})


async def show_agent(request: web.Request) -> web.Response:
    store = request.app[STORE]
    row, key = await _agent(request)
    status = await store.fetchrow("statuses_of", [key])
    versions = await store.fetch("agent_versions_of", key, 20)
    current = await store.fetchrow("agent_version_current", key)
    runs = await store.fetch("agent_runs_of", key, None, 20)
    state = await store.fetchval("agent_state_get", key)
    return answer({**_summary(row, key, status), "spec": (row["document"] or {}).get("spec"),
                   "running_version": current["number"] if current else None,
                   "versions": [_version(v) for v in versions],
                   "runs": [dict(r) for r in runs], "handed_state": state,
                   "spent_today_usd": await store.fetchval("agent_spend_today", key),
                   "schedules": await _schedules_of(request, row)})


async def _schedules_of(request: web.Request, agent: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The schedules of the agent's source that start it: status and their newest ticks."""
    store = request.app[STORE]
    found = []
    for row in await store.fetch("applied_objects_of", agent["source"]):
        spec = (row["document"] or {}).get("spec") or {}
        if row["kind"] != "Schedule" or spec.get("agent") != agent["name"]:
            continue
        key = object_key("Schedule", agent["source"], row["name"])
        status = await store.fetchrow("statuses_of", [key])
        ticks = await store.fetch("schedule_ticks_of", key, 10)
        found.append({"key": key, "name": row["name"], "cron": spec.get("cron"),
                      "timezone": spec.get("timezone", "UTC"),
                      "status": status["status"] if status else None,
                      "reason": status["reason"] if status else None,
                      "message": status["message"] if status else None,
                      "ticks": [dict(t) for t in ticks]})
    return found


async def show_version(request: web.Request) -> web.Response:
    _, key = await _agent(request)
    raw = request.match_info["number"]
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) < 10 and int(raw) > 0):
        raise BadQuery(f"version number must be a positive integer, not {raw[:20]!r}")
    row = await request.app[STORE].fetchrow("agent_version_get", key, int(raw))
    if row is None:
        return problem(404, f"{key} has no version {int(raw)}")
    return answer(dict(row))


async def start_run(request: web.Request) -> web.Response:
    _, key = await _agent(request)
    if request.content_type != "application/json":  # (a web page cannot send it unasked)
        return problem(415, 'send Content-Type: application/json, with {"input": <any JSON>} '
                            "or an empty body")
    body = await read_at_most(request, MAX_INPUT_BYTES)
    if body is None:
        return problem(413, f"a run's input is at most {MAX_INPUT_BYTES} bytes")
    try:
        given = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        return problem(400, f"the body is not JSON: {exc}")
    if not isinstance(given, dict) or set(given) - {"input"}:
        return problem(400, 'the body is {"input": <any JSON>} (or empty)')
    why = json_problem(given.get("input"))
    if why is not None:
        return problem(400, f"the input cannot be stored: {why}")
    allowed = authorize(API, "run", key.rpartition("/")[0])  # (the token was checked)
    if not allowed.allowed:
        return problem(403, allowed.why)
    try:
        done = await operator.run_agent(request.app[STORE], key, given.get("input"),
                                        by="api", via="api")
    except RejectedValue as exc:  # a NUL (\u0000) in a string: PostgreSQL's JSON refuses it
        return problem(400, f"the input cannot be stored: {exc}")
    run_id = done.detail["run"]
    return answer({"run": run_id, "agent": key, "state": "queued",
                   "url": f"/api/runs/{run_id}"}, status=202)


async def cancel(request: web.Request) -> web.Response:
    """Stop a run (the write token; `{"by": NAME}` names who asks, recorded with the run)."""
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) < 19):
        return problem(400, f"a run's id is a positive integer, not {raw[:20]!r}")
    body = await read_at_most(request, 4096) if request.can_read_body else b""
    if body is None:
        return problem(413, "the body is at most 4096 bytes")
    try:
        given = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        return problem(400, f"the body is not JSON: {exc}")
    who = given.get("by") if isinstance(given, dict) else None
    if who is not None and not (isinstance(who, str) and 0 < len(who) <= 100
                                and who.isprintable()):
        return problem(400, 'the body is {"by": "<who asks, 1 to 100 printable characters>"}')
    found = await views.cancel_run(request.app[STORE], int(raw), f"api ({who})" if who
                                   else "api")
    if found is None:
        return problem(404, f"no run {int(raw)}")
    if not found["asked"]:
        return problem(409, f"run {int(raw)} has ended ({found['outcome']})")
    return answer(found, status=202)


async def rebuild(request: web.Request) -> web.Response:
    """A new version after the newest (a FAILED one, or again); 409 while one is building."""
    _, key = await _agent(request)
    allowed = authorize(API, "run", key.rpartition("/")[0])  # (the token was checked)
    if not allowed.allowed:
        return problem(403, allowed.why)
    store = request.app[STORE]
    versions = await store.fetch("agent_versions_of", key, 1)
    newest = versions[0] if versions else None
    if newest is not None and newest["state"] not in ("READY", "FAILED"):
        return problem(409, f"v{newest['number']} of {key} is being built now "
                            f"({newest['state']}); ask again once it has ended")
    after = await store.fetchval("agent_rebuild_ask", key, "api")
    return answer({"agent": key, "after_version": after, "state": "asked",
                   "url": f"/api/agents/{key.rpartition('/')[2]}"}, status=202)


async def list_runs(request: web.Request) -> web.Response:
    q = query(request, {"agent": Text(), "before": Int(), "limit": Int(hi=500, default=50)})
    agent = q["agent"]
    if agent is not None and not agent.startswith("agent:"):
        agent = await _key_of(request, agent, None)
    rows = await request.app[STORE].fetch("agent_runs_of", agent, q["before"], q["limit"])
    items = [dict(r) for r in rows]
    return answer({"items": items,
                   "next": items[-1]["id"] if len(items) == q["limit"] else None})


async def show_run(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) < 19 and int(raw) > 0):
        raise BadQuery(f"a run id is a positive integer, not {raw[:20]!r}")
    row = await request.app[STORE].fetchrow("agent_run_get", int(raw))
    if row is None:
        return problem(404, f"no run {int(raw)}")
    return answer(dict(row))


async def _agent(request: web.Request) -> tuple[Mapping[str, Any], str]:
    name = path_text(request.match_info["name"], "name")
    source = query(request, {"source": Text()})["source"]
    key = await _key_of(request, name, source)
    rows = [r for r in await request.app[STORE].fetch("applied_of_kind", "Agent")
            if object_key("Agent", r["source"], r["name"]) == key]
    return rows[0], key


async def _key_of(request: web.Request, name: str, source: str | None) -> str:
    rows = [r for r in await request.app[STORE].fetch("applied_of_kind", "Agent")
            if r["name"] == name and source in (None, r["source"])]
    if not rows:
        raise web.HTTPNotFound(text=orjson.dumps(
            {"error": 404, "reason": f"no applied agent named {name!r}"
             + (f" in {source}" if source else "")}).decode(),
            content_type="application/json")
    if len(rows) > 1:
        raise BadQuery(f"agent {name!r} is defined by {', '.join(r['source'] for r in rows)}: "
                       "say which with ?source=")
    return object_key("Agent", rows[0]["source"], rows[0]["name"])


def _summary(row: Mapping[str, Any], key: str,
             status: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = (row["document"] or {}).get("spec") or {}
    return {"key": key, "name": row["name"], "source": row["source"],
            "origin": "code" if spec.get("code") else "generated",
            "description": spec.get("description"),
            "status": status["status"] if status else None,
            "reason": status["reason"] if status else None,
            "message": status["message"] if status else None}


def _version(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("number", "state", "origin", "model", "rounds",
                                "input_tokens", "output_tokens", "cache_read_tokens",
                                "cache_write_tokens", "usd", "duration_ms", "error",
                                "created_at", "finished_at")}


def add_routes(app: web.Application) -> None:
    get, post = app.router.add_get, app.router.add_post
    get("/api/agents", list_agents, expect_handler=expect_continue)
    get("/api/agents/{name}", show_agent, expect_handler=expect_continue)
    get("/api/agents/{name}/versions/{number}", show_version, expect_handler=expect_continue)
    post("/api/agents/{name}/runs", start_run, expect_handler=expect_continue)
    post("/api/agents/{name}/rebuild", rebuild, expect_handler=expect_continue)
    get("/api/runs", list_runs, expect_handler=expect_continue)
    get("/api/runs/{id}", show_run, expect_handler=expect_continue)
    post("/api/runs/{id}/cancel", cancel, expect_handler=expect_continue)
