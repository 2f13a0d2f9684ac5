"""Test helpers: signing, sample loading, condition waits, settings for the real app."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from controller.config import (
    IngestSettings,
    PolicySettings,
    QueueSettings,
    SecretsSettings,
    ServerSettings,
    Settings,
    StoreSettings,
)
from controller.reconcile.reconciler import Router
from reconcilers import default_registry

SAMPLES = Path(__file__).parent / "samples"
ROUTE = Router.of(default_registry().values()).keys  # what the app passes the handlers
GITHUB_SECRET = "gh-webhook-secret-7f3a9c"
RAILWAY_SECRET = "railway-shared-secret-41bd"
N8N_SECRET = "n8n-shared-secret-a8e2"
WRITE_TOKEN = "api-write-token-5c1d9e7a"  # what the API's writes need (create_app's write_token)
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}

T = TypeVar("T")


def make_settings(dsn: str, *, workers: int = 0, lease: float = 30.0, max_attempts: int = 8,
                  backoff_base: float = 1.0, give_up: float = 3600.0, held_recheck: float = 60.0,
                  dry_run: bool = False, killswitch: bool = False,
                  api_token: str | None = None, max_body: int = 25 * 1024 * 1024,
                  github_secret: str | None = GITHUB_SECRET) -> Settings:
    return Settings(
        store=StoreSettings(DATABASE_URL=dsn, P38_MIGRATE_ON_START=False),
        policy=PolicySettings(P38_DRY_RUN=dry_run, P38_KILLSWITCH=killswitch),
        server=ServerSettings(P38_API_TOKEN=api_token, P38_MAX_BODY_BYTES=max_body,
                              P38_SHUTDOWN_GRACE_SECONDS=5),
        # workers=0 (ingest only) is what `--workers 0` sets; P38_WORKERS itself must be >= 1.
        queue=QueueSettings(P38_WORKERS=1, P38_LEASE_SECONDS=lease, P38_POLL_SECONDS=0.05,
                            P38_MAX_ATTEMPTS=max_attempts, P38_BACKOFF_BASE_SECONDS=backoff_base,
                            P38_BACKOFF_CAP_SECONDS=backoff_base * 4,
                            P38_GIVE_UP_SECONDS=give_up, P38_HELD_RECHECK_SECONDS=held_recheck,
                            ).model_copy(update={"workers": workers}),
        ingest=IngestSettings(),
        secrets=SecretsSettings(GITHUB_WEBHOOK_SECRET=github_secret,
                                RAILWAY_WEBHOOK_SECRET=RAILWAY_SECRET,
                                N8N_WEBHOOK_SECRET=N8N_SECRET),
    )


def sign(body: bytes, secret: str = GITHUB_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sample(event: str, case: str) -> tuple[dict[str, str], bytes]:
    """A stored webhook sample: (headers, body bytes exactly as GitHub would send them)."""
    folder = SAMPLES / event / case
    headers_file = folder / "headers.json"
    headers = json.loads(headers_file.read_text()) if headers_file.exists() else {
        "Content-Type": "application/json"}
    return headers, (folder / "payload.json").read_bytes().rstrip(b"\n")


def github_request(event: str, case: str, *, guid: str | None = None,
                   secret: str = GITHUB_SECRET, body: bytes | None = None,
                   ) -> tuple[dict[str, str], bytes]:
    """Headers and body of a signed GitHub delivery built from a sample."""
    headers, sample_body = sample(event, case)
    body = sample_body if body is None else body
    headers = {**headers, "X-GitHub-Delivery": guid or str(uuid.uuid4()),
               "X-Hub-Signature-256": sign(body, secret)}
    return headers, body


def github_payload(event: str, payload: dict[str, Any], *, guid: str | None = None,
                   ) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    return {"Content-Type": "application/json", "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(body)}, body


async def wait_until(condition: Callable[[], Awaitable[T]], *, timeout: float = 20.0,
                     what: str = "condition", store: Any = None) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds. With
    `store`, a timeout prints the work queue, the newest audit rows and statuses, so a test
    waiting on the queue says where it stood."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if loop.time() > deadline:
            if store is not None:
                print(await queue_report(store))
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def queue_report(store: Any) -> str:
    """The queue, the newest audit rows and every status, as text for a failing test."""
    lines = ["work queue:"]
    for r in await store.fetch("queue_list", None, None, 100):
        lines.append(f"  {r['key']} {r['state']} wait={r['wait_kind']} "
                     f"not_before={r['not_before']:%H:%M:%S.%f} attempts={r['attempts']} "
                     f"leased={r['lease_holder']} pending={r['pending_deliveries']} "
                     f"error={r['last_error']}")
    lines.append("audit (newest first):")
    for r in await store.fetch("audit_list", None, None, None, 30):
        lines.append(f"  {r['started_at']:%H:%M:%S.%f} {r['key']} {r['outcome']} "
                     f"{r['decision']}: {r['reason']} {r['error'] or ''}")
    lines.append("statuses:")
    for r in await store.fetch("statuses_list", None, None, None, 100, None):
        lines.append(f"  {r['key']} {r['status']} {r['reason']}: {r['message']}")
    return "\n".join(lines)


async def store_delivery(store: Any, *keys: str, event: str = "probe") -> int:
    """Store one delivery producing `keys` through the real ingest path; returns its id."""
    from controller.engine.ingest import IngestWriter
    from handlers.base import Delivery

    writer = IngestWriter(store, writers=1)
    await writer.start()
    try:
        result = await writer.submit(Delivery(
            source="test", hook="", guid=str(uuid.uuid4()), event=event, action=None,
            headers={}, payload_json='{"test": true}', keys=tuple(keys)))
    finally:
        await writer.stop()
    assert result.delivery_id is not None
    return result.delivery_id


def p38(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the `p38` command as a user would, in its own process."""
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@contextlib.contextmanager
def p38_running(*args: str, env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """`p38 ARGS` as a long-running process, its log on `stderr`; killed if left running."""
    process = subprocess.Popen([sys.executable, "-m", "controller.cli", *args], env=env,
                               stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def terminate(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, as Docker and Railway send it: the exit code and the rest of the log."""
    assert process.stderr is not None
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()
    return process.wait(timeout=30), rest


def env_for(dsn: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": dsn, "P38_LOG_FORMAT": "json"}


def worker_for(store: Any, probe: Any, *, name: str = "w", lease: float = 30.0,
               max_attempts: int = 3, backoff: float = 0.01, give_up: float = 3600.0,
               deadline: float = 120.0, policy: Any = None, runners: Any = None) -> Any:
    """A worker over the real store with the probe reconciler registered beside the real
    ones, no providers, and short backoff."""
    from controller.engine.context import StoreContext
    from controller.engine.executor import Executor
    from controller.engine.metrics import Metrics
    from controller.engine.ooda import Worker
    from controller.engine.policies import PolicySource
    from controller.engine.queue import WorkQueue
    from controller.reconcile.policy import Policy

    settings = QueueSettings(P38_LEASE_SECONDS=lease, P38_MAX_ATTEMPTS=max_attempts,
                             P38_BACKOFF_BASE_SECONDS=backoff, P38_BACKOFF_CAP_SECONDS=backoff,
                             P38_POLL_SECONDS=0.05, P38_GIVE_UP_SECONDS=give_up,
                             P38_RECONCILE_DEADLINE_SECONDS=deadline)
    return Worker(name, store=store, queue=WorkQueue(store, settings),
                  registry={"probe": probe, **default_registry()},
                  executor=Executor(store, runners or {}),
                  policies=PolicySource(store, policy or Policy()), metrics=Metrics(),
                  wake=asyncio.Event(), context=StoreContext(store, {}))
