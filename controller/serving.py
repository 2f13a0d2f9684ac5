"""Running the app on a socket: `p38 up` and `p38 serve`, and `p38 worker` (job workers only,
on a socket only for its health routes, when asked).

Start-up opens everything first (database, migrations, providers, workers), then listens, then
says what runs: an unreachable database or a busy port is one line and exit 2, before any
banner. Port 0 prints the port actually bound. SIGTERM and SIGINT log a line and stop
listening; requests in flight (a body still arriving among them) get
`P38_SHUTDOWN_GRACE_SECONDS` to end, then reconciles get it too, and everything closes in
reverse order. No reconcile logic here.
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import signal
import socket
import stat
import sys
from collections.abc import Sequence
from typing import Any

import structlog
from aiohttp import web

from controller.app import create_app
from controller.clients.secrets import SecretSource
from controller.config import Settings
from controller.store import DatabaseUnavailable
from controller.web.connections import GuardedRunner
from controller.web.health import describe
from controller.web.keys import IN_FLIGHT, ROLE, SHUTDOWN

log = structlog.get_logger("p38.serve")

EXIT_OK, EXIT_CANNOT_START = 0, 2
AFTER_DRAIN_SECONDS = 0.5  # what aiohttp gives connections once the requests were waited for


def serve(settings: Settings, *, secrets: SecretSource | None, banner: bool,
          unix: str | None = None, write_token: str | None = None,
          worker: Sequence[str] | None = None, listen: bool = True) -> int:
    """Run until SIGTERM/SIGINT; the exit code. `write_token`: what API writes need when
    P38_API_TOKEN is not set. `worker`: the job kinds of a `p38 worker` (which listens, for
    its health routes, only when `listen`)."""
    return asyncio.run(_serve(settings, secrets=secrets, banner=banner, unix=unix,
                              write_token=write_token, worker=worker, listen=listen))


async def _serve(settings: Settings, *, secrets: SecretSource | None, banner: bool,
                 unix: str | None, write_token: str | None = None,
                 worker: Sequence[str] | None = None, listen: bool = True) -> int:
    host, port = settings.server.host, settings.server.port
    where = f"unix:{unix}" if unix else f"{host}:{port}"
    folder = settings.manifests.directory
    if folder is not None and not folder.is_dir():  # a typo would serve a Stalled source
        print(f"cannot start: the manifests folder {folder.absolute()} is not a directory "
              "(--manifests or P38_MANIFESTS_DIR)", file=sys.stderr)
        return EXIT_CANNOT_START
    if listen and unix and (problem := _unix_path_taken(unix)):
        print(problem, file=sys.stderr)
        return EXIT_CANNOT_START
    if listen and not unix and (problem := _port_taken(host, port)):
        print(problem, file=sys.stderr)  # before anything starts
        return EXIT_CANNOT_START
    app = create_app(settings, secrets=secrets, write_token=write_token, worker=worker)
    grace = settings.server.shutdown_grace_seconds
    runner = guarded_runner(app, settings)
    try:
        await runner.setup()
    except DatabaseUnavailable as exc:
        await app.cleanup()  # close what started before the database was tried
        print(f"cannot start: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    url = None
    if listen:
        try:
            site: web.BaseSite = web.UnixSite(runner, unix) if unix else \
                web.TCPSite(runner, host, port)
            await site.start()
        except OSError as exc:  # taken between the check and now, or a Unix socket path
            await runner.cleanup()
            print(_listen_problem(where, exc), file=sys.stderr)
            return EXIT_CANNOT_START
        url = f"unix:{unix}" if unix else f"http://{host}:{_bound_port(site, port)}"
    state = await describe(app)
    role = app[ROLE]
    if worker is not None:
        jobs = ", ".join(f"{kind} {n}" for kind, n in role.jobs.items())
        print(f"p38 worker: job workers {jobs}" + (f", health on {url}" if url else "")
              + f" (database: {_database(settings)})", file=sys.stderr)
    elif banner and url:
        for line in _banner(url, settings, state):
            print(line, file=sys.stderr)
    log.info("serving" if worker is None else "working", url=url, role=role.name,
             routes=state["routes"] if worker is None else None,
             providers=state["providers"], killswitch=state["killswitch"],
             workers=role.reconcile_workers, jobs=dict(role.jobs))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await stopping.wait()
    app[SHUTDOWN].begin(grace)  # the workers claim nothing more
    for running in runner.sites:
        await running.stop()  # no new connections; those open go on being read
    log.info("shutting_down", signal=received[0] if received else None, grace_seconds=grace,
             requests_in_flight=app[IN_FLIGHT].count,
             meaning="no new connections; requests and reconciles in flight share the grace "
                     "period, then unfinished leases are released")
    if not await app[IN_FLIGHT].drained(app[SHUTDOWN].remaining(grace)):
        log.warning("requests_cut_off", count=app[IN_FLIGHT].count, grace_seconds=grace)
    await runner.cleanup()
    log.info("stopped")
    return EXIT_OK


def guarded_runner(app: web.Application, settings: Settings) -> GuardedRunner:
    """The runner `p38 serve` serves `app` with: the connection guard (its cap, the head
    deadline, the keep-alive limit), no access log, signals left to the caller."""
    server = settings.server
    return GuardedRunner(app, access_log=None, handle_signals=False,
                         shutdown_timeout=AFTER_DRAIN_SECONDS,
                         max_connections=_connection_cap(server.max_connections),
                         head_seconds=server.header_timeout_seconds,
                         keepalive_seconds=server.keepalive_seconds)


def _connection_cap(configured: int) -> int:
    """P38_MAX_CONNECTIONS, lowered to what the process's file descriptors allow (leaving
    room for the database pool, files and the listening sockets)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or configured <= soft - FD_RESERVE:
        return configured
    allowed = max(1, soft - FD_RESERVE)
    log.warning("max_connections_lowered", configured=configured, allowed=allowed,
                open_files_limit=soft, meaning="raise `ulimit -n` to allow more")
    return allowed


FD_RESERVE = 384  # for the database pool, files, and a batch of accepts (asyncio takes up to
# 128 at once, and a connection closed at the cap frees its descriptor only a moment later)


def _port_taken(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None (checked as aiohttp will bind it)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot start: cannot listen on {host}:{port}: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return _listen_problem(f"{host}:{port}", exc)
    return None


def _unix_path_taken(path: str) -> str | None:
    """Why a Unix socket cannot be made at `path`, or None. A socket nobody listens on is
    what a process killed earlier left behind: removed."""
    if not os.path.lexists(path):
        return None
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        return (f"cannot start: {os.path.abspath(path)} already exists and is not a socket; "
                "choose another path")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
            return None
    return (f"cannot start: {os.path.abspath(path)} is in use (another p38?); choose another "
            "path with --unix")


def _listen_problem(where: str, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE and where.startswith("unix:"):
        return (f"cannot start: {os.path.abspath(where.removeprefix('unix:'))} already "
                "exists; remove it or "
                "choose another path with --unix")
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot start: {where} is already in use (another p38?); choose another "
                "port with --port or P38_PORT")
    return f"cannot start: cannot listen on {where}: {exc.strerror or exc}"


def _bound_port(site: web.BaseSite, configured: int) -> int:
    server: Any = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else configured


def _database(settings: Settings) -> str:
    return ("DATABASE_URL" if settings.store.database_url
            else f"embedded PostgreSQL in {settings.store.home.resolve() / 'pgdata'}")


def _banner(url: str, settings: Settings, state: dict[str, Any]) -> list[str]:
    lines = [f"project38 on {url}  (database: {_database(settings)})"]
    if settings.manifests.directory is not None:
        lines.append(f"reconciling {settings.manifests.directory.resolve()} as source `local` "
                     f"(see {url}/api/objects)")
    routes = state["routes"]
    enabled = [f"POST {r['path']}" for r in routes if r["enabled"]]
    disabled = [f"{r['path']} ({r['reason']})" for r in routes if not r["enabled"]]
    lines.append("webhooks: " + (", ".join(enabled) or "none enabled"))
    if disabled:
        lines.append("  disabled: " + "; ".join(disabled))
    for name, provider in state["providers"].items():
        lines.append(f"provider {name}: " + ("live" if provider["live"]
                                               else f"dry-run ({provider['reason']})"))
    if settings.queue.workers == 0:
        lines.append("workers: 0 (--workers 0): this process only ingests; another must "
                     "reconcile")
    elif not settings.queue.job_kinds():
        lines.append("jobs: none here (P38_JOBS=none): a `p38 worker` carries out runs, "
                     "generations and sessions")
    elif settings.queue.jobs != "all":
        lines.append(f"jobs here: {settings.queue.jobs.replace(',', ', ')} (P38_JOBS); a "
                     "`p38 worker` carries out the others")
    killswitch = state["killswitch"]
    lines.append("killswitch: " + ("on in " + ", ".join(killswitch["on"]) if killswitch["on"]
                                   else "off"))
    if url.startswith("http"):
        token = ("P38_API_TOKEN" if settings.server.api_token is not None
                 else f"the token in {settings.store.home.resolve() / 'api-token'}")
        lines.append(f"operator's page: {url}/  (to act there, sign in with {token})")
    return lines
