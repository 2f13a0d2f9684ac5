"""`p38 send-webhook SOURCE FILE`: sign a payload file with the secret the controller checks
and post it to `/webhooks/SOURCE`, printing the status and the answer (instead of openssl and
curl by hand).

github: the body is signed with GITHUB_WEBHOOK_SECRET as `X-Hub-Signature-256`, with
`X-GitHub-Event` (`--event`) and a fresh `X-GitHub-Delivery` (or `--delivery`). railway, n8n:
the secret (RAILWAY_WEBHOOK_SECRET, N8N_WEBHOOK_SECRET) goes as `Authorization: Bearer`, as
their routes check it; `--delivery` is sent as n8n's `X-P38-Delivery`. A file holding
`{"event": ..., "payload": ...}` (what the fake GitHub's `/_fake/...` routes answer) is sent as
its payload with its event. The secret is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson

from controller.cli.common import settings_from, shown
from controller.cli.remote import add_server_flag, quiet_http_log, server_of
from controller.cli.tables import emit_json
from controller.clients.controller_api import ControllerApi, Unreachable
from controller.config import Settings

SOURCES = {"github": "GITHUB_WEBHOOK_SECRET", "railway": "RAILWAY_WEBHOOK_SECRET",
           "n8n": "N8N_WEBHOOK_SECRET"}
MAX_FILE_BYTES = 25 * 1024 * 1024


def add_parser(sub: Any) -> None:
    send = sub.add_parser("send-webhook", help="sign a payload file with the configured "
                                               "secret and POST it to /webhooks/SOURCE")
    send.add_argument("source", choices=sorted(SOURCES))
    send.add_argument("file", help="the payload (JSON); - reads stdin")
    send.add_argument("--event", help="github: the X-GitHub-Event (push, issue_comment, ...); "
                                      "taken from the file when it is {event, payload}")
    send.add_argument("--delivery", help="the delivery's id (github: X-GitHub-Delivery, "
                                         "default a new UUID; n8n: X-P38-Delivery)")
    add_server_flag(send)
    send.set_defaults(func=cmd_send_webhook)


def cmd_send_webhook(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    body = _read(args.file)
    if body is None:
        return 2
    event = args.event
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and set(parsed) == {"event", "payload"}:
        event = event or parsed["event"]
        body = orjson.dumps(parsed["payload"])
    secret_value = getattr(settings.secrets, f"{args.source}_webhook_secret")
    if secret_value is None or not secret_value.get_secret_value():
        print(f"{SOURCES[args.source]} is not set: send-webhook signs with the secret the "
              "controller checks; set it to the controller's value", file=sys.stderr)
        return 2
    secret = secret_value.get_secret_value()
    headers = {"Content-Type": "application/json"}
    if args.source == "github":
        if not event or not isinstance(event, str):
            print("github needs the event: --event push (or a file {\"event\": ..., "
                  "\"payload\": ...}, as the fake GitHub's /_fake/ routes answer)",
                  file=sys.stderr)
            return 2
        headers |= {"X-GitHub-Event": event,
                    "X-GitHub-Delivery": args.delivery or str(uuid.uuid4()),
                    "X-Hub-Signature-256": "sha256=" + hmac.new(
                        secret.encode(), body, hashlib.sha256).hexdigest()}
    else:
        headers["Authorization"] = f"Bearer {secret}"
        if args.delivery and args.source == "n8n":
            headers["X-P38-Delivery"] = args.delivery
    server = server_of(args) or _local_server(settings)
    quiet_http_log()
    return asyncio.run(_post(server, args.source, body, headers))


def _read(name: str) -> bytes | None:
    try:
        if name == "-":
            return sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        path = Path(name)
        if not path.is_file():
            print(f"{shown(os.path.abspath(name))} is not a file", file=sys.stderr)
            return None
        if path.stat().st_size > MAX_FILE_BYTES:
            print(f"{shown(name)} is larger than {MAX_FILE_BYTES} bytes", file=sys.stderr)
            return None
        return path.read_bytes()
    except OSError as exc:
        print(f"cannot read {shown(name)}: {exc.strerror}", file=sys.stderr)
        return None


def _local_server(settings: Settings) -> str:
    """The controller this machine's settings describe (P38_HOST, P38_PORT)."""
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


async def _post(server: str, source: str, body: bytes, headers: dict[str, str]) -> int:
    async with ControllerApi(server) as api:
        try:
            status, answer = await api.post(f"/webhooks/{source}", body, headers)
        except Unreachable as exc:
            print(shown(exc), file=sys.stderr)
            return 3
    reason = answer.get("reason") if isinstance(answer, dict) else None
    print(f"{status}" + (f" {shown(reason)}" if reason else ""), flush=True)
    if isinstance(answer, dict | list):
        emit_json(answer)
    else:
        print(shown(answer))
    return 0 if 200 <= status < 300 else 1
