"""n8n callbacks: shared-secret check, parse; keys from the caller's `route`.

n8n posts whatever its HTTP Request node is given; project38 documents the shapes it expects
(docs/agents.md, docs/webhooks.md): `{"event": "execution.finished", "workflow": "name",
"execution": "id", "status": "success"}`, and `{"event": "agent.run", "agent":
"<source>/<name>", "input": ...}`, which starts a run of an agent (its name and the body's size
are checked here), and `{"event": "service.redeploy", "service": "<source>/<name>"}`, which
redeploys a Service (through its approval rules), and `{"event": "alert", "repo":
"owner/name", "key": ..., "title": ..., "message": ...}` (one incident issue per key). Extra
fields are kept; `X-P38-Delivery` (or
`execution`) names the delivery, else the body's SHA-256 does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from controller.reconcile.payloads import PLAIN_NAME, json_problem, plausible_repo
from handlers.base import (
    IDENTITY_BYTES,
    Delivery,
    Rejection,
    Route,
    body_digest,
    checked,
    header,
    selected_headers,
    shared_secret_json,
    storable,
)

SOURCE = "n8n"
AGENT_RUN = "agent.run"  # {"event": "agent.run", "agent": "<source>/<name>", "input": ...}
SERVICE_REDEPLOY = "service.redeploy"  # {"event": "service.redeploy", "service": "<src>/<n>"}
ALERT = "alert"  # {"event": "alert", "repo": "owner/repo", "key": "disk-full", "title", ...}

MAX_INPUT_BYTES = 64 * 1024  # a run's input, as the API and `p38 run` allow
MAX_AGENT_RUN_BYTES = MAX_INPUT_BYTES + 4 * 1024
KEPT_HEADERS = ("User-Agent", "Content-Type", "X-P38-Delivery")


def from_http(headers: Mapping[str, str], body: bytes, *, secret: str,
              query: Mapping[str, str], route: Route) -> Delivery:
    payload = shared_secret_json(headers, body, secret=secret, query=query, source="n8n")
    event = payload.get("event", "callback")
    if not isinstance(event, str) or not event:
        raise Rejection(400, "'event' must be a non-empty string")
    if event == AGENT_RUN:
        _check_agent_run(payload, body)
    if event == SERVICE_REDEPLOY:
        _check_named(payload, "service", SERVICE_REDEPLOY, "octo-org/infra/web")
    if event == ALERT:
        _check_alert(payload)
    workflow = payload.get("workflow")
    execution = payload.get("execution")
    status = payload.get("status")
    action = status if isinstance(status, str) else None
    guid = header(headers, "X-P38-Delivery")
    if not guid and isinstance(execution, str | int) and isinstance(workflow, str | int) \
            and workflow:
        guid = f"{workflow}/{execution}/{event}"
        if event == AGENT_RUN:  # one execution may start several agents
            guid += f"/{str(payload.get('agent')).removeprefix('agent:')}"
    return checked(Delivery(
        source=SOURCE,
        hook="",
        guid=guid or body_digest(body),
        event=event,
        action=action,
        headers=selected_headers(headers, KEPT_HEADERS),
        payload_json=body.decode("utf-8"),
        keys=route(SOURCE, event, action, payload),
    ))


def _check_alert(payload: Mapping[str, object]) -> None:
    repo, key = payload.get("repo"), payload.get("key")
    if not plausible_repo(repo):
        raise Rejection(400, "an alert needs 'repo': 'owner/name' (the repository whose issue "
                             "it opens)")
    if not isinstance(key, str) or not PLAIN_NAME.fullmatch(key):
        raise Rejection(400, "an alert needs 'key': letters, digits, '.', '_' or '-', at most "
                             "100 (alerts with one key are one issue)")


def _check_named(payload: Mapping[str, object], field: str, event: str, example: str) -> None:
    value = payload.get(field)
    name = value.removeprefix(f"{field}:") if isinstance(value, str) else ""
    source, _, short = name.rpartition("/")
    if not source or not short:
        raise Rejection(400, f"{event} needs '{field}': '<source>/<name>', e.g. '{example}'")
    storable(f"the {field}", name, limit=IDENTITY_BYTES)


def _check_agent_run(payload: Mapping[str, object], body: bytes) -> None:
    agent = payload.get("agent")
    name = agent.removeprefix("agent:") if isinstance(agent, str) else ""
    source, _, short = name.rpartition("/")
    if not source or not short:
        raise Rejection(400, "agent.run needs 'agent': '<source>/<name>', e.g. 'local/digest' "
                             "or 'octo-org/infra/digest'")
    if len(body) > MAX_AGENT_RUN_BYTES:
        raise Rejection(413, f"an agent.run's body is at most {MAX_AGENT_RUN_BYTES} bytes")
    problem = json_problem(payload.get("input"))  # (before dumping it: no deep recursion)
    if problem is not None:
        raise Rejection(400, f"the agent.run's input cannot be stored: {problem}")
    if len(json.dumps(payload.get("input"), ensure_ascii=False).encode()) > MAX_INPUT_BYTES:
        raise Rejection(413, f"an agent.run's input is at most {MAX_INPUT_BYTES} bytes")
    storable("the agent", name, limit=IDENTITY_BYTES)
    for field in ("workflow", "execution"):
        value = payload.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise Rejection(400, f"an agent.run's {field!r} is a string or a number")
        if isinstance(value, str):
            storable(f"the agent.run's {field!r}", value, limit=IDENTITY_BYTES)
