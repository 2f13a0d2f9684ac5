"""The agents' pages: `/agents` (every applied agent with its status, the version its runs use,
its newest version, and its runs since midnight UTC with their tokens and US dollars; paged by
key), `/agents/{key}` (one agent by its URL-quoted key `agent:<source>/<name>`: its versions,
one version's code, test and validation report, its runs, and the form that runs it) and
`/runs/{id}` (one run: input, result, error, stderr, tool calls, isolation).

The same reads as `GET /api/agents`, `/api/agents/{name}`, `/api/runs` and `/api/runs/{id}`,
a page at a time. Reads only: the Run form posts to `/run` (controller/web/pages/words.py).
Agent code, inputs and outputs are untrusted: the templates escape them, payloads are shown
with secrets redacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from controller.reconcile.reconciler import object_ref
from controller.web.json import BadQuery, Int, Text
from controller.web.keys import STORE
from controller.web.pages.reading import (
    Missing,
    args,
    next_url,
    page,
    path_number,
    path_value,
    pretty,
    scrub,
    secrets_of,
)
from controller.web.pages.render import render
from controller.web.pages.session import Viewer

AGENTS = 50  # agents on one page
VERSIONS = 10  # versions on one agent's page
RUNS = 20  # runs on one agent's page


@page
async def agents(request: web.Request, who: Viewer) -> web.Response:
    q = args(request, {"after": Text()})
    source = name = None
    if q["after"] is not None:
        _, source, name = object_ref(_agent_key(q["after"]))
    rows = await request.app[STORE].fetch("page_agents", source, name, AGENTS + 1)
    items = [{**dict(r), "description": _spec(r["document"]).get("description")}
             for r in rows[:AGENTS]]
    return render(request, who, "agents.html", {
        "title": "Agents", "agents": items,
        "next": next_url(request, after=items[-1]["key"]) if len(rows) > AGENTS else None})


@page
async def agent(request: web.Request, who: Viewer) -> web.Response:
    key = _agent_key(path_value(request, "key"))
    q = args(request, {"version": Int(hi=2**31 - 1), "before": Int(),
                       "vbefore": Int(hi=2**31 - 1)})
    store = request.app[STORE]
    _, source, name = object_ref(key)
    applied = await store.fetchrow("applied_object_get", source, "Agent", name)
    versions = await store.fetch("page_agent_versions", key, q["vbefore"], VERSIONS + 1)
    if applied is None and not versions and q["vbefore"] is None:
        raise Missing(f"no agent {key!r}: nothing applied and no versions "
                      "(the Agents page lists them)")
    current = await store.fetchrow("agent_version_current", key)
    chosen = q["version"] or (current["number"] if current else None) or (
        versions[0]["number"] if versions and q["vbefore"] is None else None)
    version = await store.fetchrow("agent_version_get", key, chosen) if chosen else None
    if q["version"] is not None and version is None:
        raise Missing(f"{key} has no version {q['version']}")
    runs = await store.fetch("agent_runs_of", key, q["before"], RUNS + 1)
    status = await store.fetchrow("statuses_of", [key])
    secrets = secrets_of(request)
    spec = _spec(applied["document"]) if applied else {}
    return render(request, who, "agent.html", {
        "title": f"Agent {name}", "key": key, "name": name, "source": source,
        "applied": applied, "spec": pretty(spec, secrets) if spec else None,
        "description": spec.get("description"), "origin": "code" if spec.get("code")
        else "generated", "now": status,
        "running_version": current["number"] if current else None,
        "spent_today": await store.fetchval("agent_spend_today", key),
        "versions": [dict(v) for v in versions[:VERSIONS]],
        "versions_next": next_url(request, vbefore=versions[VERSIONS - 1]["number"])
        if len(versions) > VERSIONS else None,
        "version": None if version is None else {
            **dict(version), "code": scrub(version["code"], secrets),
            "test": scrub(version["test"], secrets),
            "report": pretty(version["report"], secrets),
            "version_spec": pretty(version["spec"], secrets)},
        "runs": [{**dict(r), "seconds": _seconds(r["started_at"], r["ended_at"])}
                 for r in runs[:RUNS]],
        "runs_next": next_url(request, before=runs[RUNS - 1]["id"])
        if len(runs) > RUNS else None})


@page
async def run(request: web.Request, who: Viewer) -> web.Response:
    args(request, {})
    run_id = path_number(request, "id", "a run's id")
    row = await request.app[STORE].fetchrow("agent_run_get", run_id)
    if row is None:
        raise Missing(f"no run {run_id}")
    secrets = secrets_of(request)
    agent_key = str(row["agent"])
    return render(request, who, "run.html", {
        "title": f"Run {run_id}", "run": dict(row), "agent_key": agent_key,
        "agent_name": agent_key.rpartition("/")[2],
        "run_key": f"run:{agent_key.removeprefix('agent:')}#{run_id}",
        "input": pretty(row["input"], secrets), "result": pretty(row["result"], secrets),
        "error": scrub(row["error"], secrets), "stderr": scrub(row["stderr"], secrets),
        "tool_calls": [pretty(c, secrets) for c in (row["tool_calls"] or [])],
        "isolation": pretty(row["isolation"], secrets),
        "stop_requested": scrub(row["stop_requested"], secrets)})


def _agent_key(value: str) -> str:
    if not value.startswith("agent:") or "/" not in value:
        raise BadQuery(f"an agent is named by its key, agent:<source>/<name>, not {value[:100]!r}")
    return value


def _spec(document: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = (document or {}).get("spec")
    return dict(spec) if isinstance(spec, Mapping) else {}


def _seconds(started: datetime | None, ended: datetime | None) -> float | None:
    return None if started is None or ended is None else (ended - started).total_seconds()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/agents", agents)
    app.router.add_get("/agents/{key:.+}", agent)
    app.router.add_get("/runs/{id}", run)
