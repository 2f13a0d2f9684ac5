"""Ingest benchmark: signed ~8 KB GitHub push deliveries over N keep-alive connections.

Measures, in one run and with the same load generator:
  1. the ceiling: a bare aiohttp endpoint that only verifies the HMAC and answers 202;
  2. the durable peer: a Probot (Node) app that verifies the signature with Probot's webhooks
     and awaits one INSERT per delivery into the same PostgreSQL (bench/peer/; skipped, with
     the command that installs it, when node or bench/peer/node_modules is missing);
  3. the controller: the real app (`create_app`) served as `p38 serve` serves it (the guarded
     connections), durable ingest into PostgreSQL with group commit, its workers reconciling
     what arrives.
Each server runs in its own process on a socket this script binds (the OS picks the port).
Prints deliveries/s, p50 and p99 for each, the ratios controller/ceiling and controller/peer,
the targets, the CPU each process group used per delivery, how much of the machine stayed idle,
and each server process's resident memory (VmRSS) sampled during the measured window.

    python bench/ingest.py [--connections 50] [--duration 10] [--warmup 2] [--breakdown]
                           [--workers N] [--no-peer] [--profile] [--baseline CHECKOUT]

The peer is installed once with `npm ci --prefix bench/peer` (node 20.18+).

`--breakdown` adds a diagnostic third run: the same application with its ingest writer replaced
by one that answers at once and stores nothing. It is not the product; it shows how much of
the gap to the ceiling the request path costs before any database work.

Uses DATABASE_URL when set (a fresh database is created on that server and dropped after),
else the embedded PostgreSQL in a temporary P38_HOME.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.database import throwaway_database  # noqa: E402
from bench.loadgen import Result, run  # noqa: E402

SECRET = "bench-webhook-secret"
SAMPLE = ROOT / "tests" / "samples" / "push" / "default-branch" / "payload.json"
REPOS = 20  # deliveries spread over 20 repositories (20 keys) so workers have real work


def bodies() -> list[tuple[bytes, str]]:
    """The sample push, its commits moved from manifests/ to src/: the common push, which
    enqueues the repository only (a push touching manifests/ also enqueues the source)."""
    payload = json.loads(SAMPLE.read_text())
    for commit in [*payload["commits"], payload["head_commit"]]:
        for field in ("added", "modified", "removed"):
            commit[field] = [p.replace("manifests/", "src/") for p in commit[field]]
    out = []
    for n in range(REPOS):
        payload["repository"]["full_name"] = f"octo-org/service-{n}"
        payload["repository"]["name"] = f"service-{n}"
        body = json.dumps(payload, separators=(",", ":")).encode()
        out.append((body, "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()))
    return out


def request_factory(host: str, port: int):  # type: ignore[no-untyped-def]
    variants = bodies()
    prefix = [(f"POST /webhooks/github HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "User-Agent: GitHub-Hookshot/bench\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nX-GitHub-Event: push\r\n"
               f"X-GitHub-Hook-ID: 512345678\r\nX-Hub-Signature-256: {signature}\r\n"
               "X-GitHub-Delivery: ").encode() for body, signature in variants]
    run_id = uuid.uuid4().bytes

    def make(n: int) -> bytes:
        # A random-looking UUID per delivery, as GitHub sends: index inserts land anywhere.
        guid = uuid.UUID(bytes=hashlib.md5(run_id + n.to_bytes(8, "big")).digest())
        i = n % REPOS
        return b"".join((prefix[i], f"{guid}\r\n\r\n".encode(), variants[i][0]))

    return make


def bare_server(sock: socket.socket) -> None:
    """The ceiling: verify X-Hub-Signature-256, answer 202 JSON. Nothing else."""
    from aiohttp import web

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.digest(SECRET.encode(), body, hashlib.sha256).hex()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return web.json_response({"reason": "bad signature"}, status=401)
        return web.json_response({"status": "stored"}, status=202)

    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_post("/webhooks/github", receive)
    web.run_app(app, sock=sock, print=None, access_log=None)


STATEMENTS_PATH = "/bench/statements"  # the controller's statement counts, for the window
PEER = ROOT / "bench" / "peer"
PEER_INSTALL = "npm ci --prefix bench/peer"


def peer_missing() -> str | None:
    """Why the Probot peer cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (PEER / "node_modules" / "probot").is_dir():
        return "bench/peer/node_modules missing"
    return None


def peer_server(sock: socket.socket, dsn: str) -> None:
    """The durable peer: Probot verifying the signature and awaiting one INSERT per delivery
    (bench/peer/app.mjs), on the socket this script bound."""
    fd = sock.fileno()
    os.execvp("node", ["node", str(PEER / "app.mjs"), str(fd), dsn, SECRET])


def controller_server(sock: socket.socket, dsn: str, log_path: str,
                      workers: int | None, store: bool = True, tree: str | None = None) -> None:
    if tree is not None:  # --baseline: the application of another checkout, in this child
        for name in list(sys.modules):
            if name.split(".")[0] in ("controller", "handlers", "reconcilers"):
                del sys.modules[name]
        sys.path.insert(0, tree)
    from aiohttp import web

    from controller.app import create_app
    from controller.config import SecretsSettings, Settings, StoreSettings
    from controller.engine.ingest import Ingested, Outcome
    from controller.logs import configure_logging
    from controller.web.keys import INGEST

    sys.stderr = open(log_path, "a", buffering=1)  # the child's whole life
    configure_logging(fmt="json")
    settings = Settings(store=StoreSettings(DATABASE_URL=dsn),
                        secrets=SecretsSettings(GITHUB_WEBHOOK_SECRET=SECRET))
    if workers is not None:
        settings.queue.workers = workers
    app = create_app(settings)
    if not store:  # --breakdown diagnostic only: answer as if stored, store nothing
        class AnswerAtOnce:
            async def submit(self, _delivery: object) -> Ingested:
                return Ingested(Outcome.STORED, None)

            def enqueue(self, _delivery: object) -> asyncio.Future[Ingested]:
                future = asyncio.get_running_loop().create_future()
                future.set_result(Ingested(Outcome.STORED, None))
                return future

        async def replace_writer(app: web.Application) -> None:
            app[INGEST] = AnswerAtOnce()  # type: ignore[assignment]

        app.on_startup.append(replace_writer)
    try:  # the store's statement counter (a release before it has none)
        from controller.store import statements
    except ImportError:
        statements = None  # type: ignore[assignment]
    if statements is not None:
        async def counted(_request: web.Request) -> web.Response:
            return web.json_response(dict(statements.snapshot()))

        app.router.add_get(STATEMENTS_PATH, counted)
    asyncio.run(serve_guarded(app, sock, settings))


async def serve_guarded(app, sock: socket.socket, settings) -> None:  # type: ignore[no-untyped-def]
    """Serve `app` as `p38 serve` does (controller.serving): the guarded runner, its
    connection cap, head deadline and keep-alive limit, no access log."""
    from aiohttp import web

    from controller.serving import AFTER_DRAIN_SECONDS, _connection_cap
    from controller.web.connections import GuardedRunner

    server = settings.server
    runner = GuardedRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=AFTER_DRAIN_SECONDS,
                           max_connections=_connection_cap(server.max_connections),
                           head_seconds=server.header_timeout_seconds,
                           keepalive_seconds=server.keepalive_seconds)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    await asyncio.Event().wait()  # until terminated


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


async def wait_ready(port: int, path: str) -> None:
    for _ in range(600):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            if head[9:12] in (b"200", b"404", b"405"):
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("server did not become ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its reaped children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def database_pids(dsn: str) -> list[int]:
    """The PostgreSQL processes serving the bench's database now, and the server's own
    background processes (WAL writer, checkpointer...): not the backends of other databases,
    which other users of a shared server keep busy."""
    import asyncpg

    async def query() -> list[int]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = "
                                    "current_database() OR backend_type <> 'client backend'")
            return [row["pid"] for row in rows]
        finally:
            await conn.close()

    found: list[int] = []

    def look() -> None:
        try:
            found.extend(asyncio.run(query()))
        except Exception as exc:  # (too many clients on a busy server...): count them all
            print(f"(PostgreSQL CPU: every postgres process counted: {exc})", flush=True)
            found.extend(postgres_pids())

    thread = threading.Thread(target=look)
    thread.start()  # the caller runs in the load generator's event loop
    thread.join()
    return found


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def machine_ticks() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)


def statement_counts(port: int) -> dict[str, int] | None:
    """The SQL statements the controller on `port` has sent, by query (None: not counted)."""
    import urllib.error
    import urllib.request

    found: list[dict[str, int]] = []

    def look() -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{STATEMENTS_PATH}",
                                        timeout=10) as answer:
                if answer.status == 200:
                    found.append(json.loads(answer.read()))
        except (OSError, ValueError, urllib.error.URLError):
            pass

    thread = threading.Thread(target=look)
    thread.start()  # the caller runs in the load generator's event loop
    thread.join()
    return found[0] if found else None


def rss_mb(pid: int) -> float | None:
    """The resident memory of a process (VmRSS), MB, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@dataclass
class CpuWindow:
    """CPU used by the load generator, the server and PostgreSQL during the measured window,
    the share of the machine that stayed idle, and the server's resident memory sampled every
    100 ms during the window (a thread, so the load generator's loop is not involved)."""

    server_pid: int
    profile: bool = False
    dsn: str | None = None  # PostgreSQL's CPU: only what serves this database (else all)
    port: int | None = None  # a controller's: its statement counts are read at both marks

    def __post_init__(self) -> None:
        self.marks: dict[str, dict[str, float]] = {}
        self.ticks: dict[str, tuple[int, int]] = {}
        self.rss: list[float] = []
        self.before_load: float | None = None
        self.pg_pids: list[int] = []
        self.statements: dict[str, dict[str, int] | None] = {}
        self._sampling = threading.Event()

    def _sample(self) -> None:
        while not self._sampling.wait(0.1):
            if (mb := rss_mb(self.server_pid)) is not None:
                self.rss.append(mb)

    def __call__(self, mark: str) -> None:
        if mark == "start":
            self.pg_pids = database_pids(self.dsn) if self.dsn else postgres_pids()
        if self.port is not None:
            self.statements[mark] = statement_counts(self.port)
            threading.Thread(target=self._sample, daemon=True).start()
            if self.profile:
                threading.Thread(target=profile, args=(self.server_pid,), daemon=True).start()
        else:
            self._sampling.set()
        self.marks[mark] = {
            "load generator": cpu_seconds(os.getpid()),
            "server": cpu_seconds(self.server_pid),
            "postgres": sum(cpu_seconds(p) for p in self.pg_pids),
        }
        self.ticks[mark] = machine_ticks()

    def idle_share(self) -> float | None:
        if "start" not in self.ticks or "stop" not in self.ticks:
            return None
        (idle0, total0), (idle1, total1) = self.ticks["start"], self.ticks["stop"]
        return (idle1 - idle0) / (total1 - total0) if total1 > total0 else None

    def per_delivery_us(self, deliveries: int) -> dict[str, float]:
        if "start" not in self.marks or "stop" not in self.marks or not deliveries:
            return {}
        return {k: (self.marks["stop"][k] - self.marks["start"][k]) / deliveries * 1e6
                for k in self.marks["start"]}


def measure(target, args, name: str, ready_path: str,  # type: ignore[no-untyped-def]
            dsn: str | None = None) -> tuple[Result, CpuWindow]:
    sock = bound_socket()
    port = sock.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=target, args=(sock, *args), daemon=True)
    proc.start()
    assert proc.pid is not None
    window = CpuWindow(proc.pid, profile=ARGS.profile and name == "controller", dsn=dsn,
                       port=port if ready_path == "/readyz" else None)
    try:
        asyncio.run(wait_ready(port, ready_path))
        window.before_load = rss_mb(proc.pid)
        result = asyncio.run(run("127.0.0.1", port, request_factory("127.0.0.1", port),
                                 connections=ARGS.connections, warmup=ARGS.warmup,
                                 duration=ARGS.duration, on_window=window))
        return result, window
    finally:
        proc.terminate()
        proc.join(30)
        sock.close()


def profile(pid: int) -> None:
    """--profile: py-spy samples the controller during the measured window."""
    if shutil.which("py-spy") is None:
        print("profile: skipped (py-spy is not installed: pip install py-spy)", flush=True)
        return
    out = Path(tempfile.gettempdir()) / f"p38-ingest-profile-{pid}.txt"
    seconds = str(max(1, int(ARGS.duration) - 1))
    with out.open("w") as f:
        subprocess.run(["py-spy", "record", "--pid", str(pid), "--duration", seconds,
                        "--rate", "200", "--format",
                        "raw", "--output", str(out.with_suffix(".raw")), "--nonblocking"],
                       stdout=f, stderr=subprocess.STDOUT, check=False)
    print(f"profile: {out.with_suffix('.raw')}", flush=True)


def report(name: str, measured: tuple[Result, CpuWindow] | None, duration: float) -> float:
    if measured is None:
        return 0.0
    result, window = measured
    rate = len(result.latencies) / duration
    print(f"{name:<28} {rate:9.0f} deliveries/s   p50 {result.percentile(0.5) * 1000:6.2f} ms"
          f"   p99 {result.percentile(0.99) * 1000:6.2f} ms   answers {result.statuses}"
          f"{f'   errors {result.errors}' if result.errors else ''}")
    cpu = window.per_delivery_us(len(result.latencies))
    idle = window.idle_share()
    if cpu:
        print(" " * 29 + "CPU per delivery: " + ", ".join(
            f"{k} {v:.0f} us" for k, v in cpu.items()) + f" (total {sum(cpu.values()):.0f} us)"
            + (f"; machine idle {idle:.0%}" if idle is not None else ""))
    start, stop = window.statements.get("start"), window.statements.get("stop")
    if start is not None and stop is not None and result.latencies:
        delta = {k: v - start.get(k, 0) for k, v in stop.items() if v - start.get(k, 0)}
        top = sorted(delta.items(), key=lambda kv: -kv[1])[:4]
        print(" " * 29 + f"SQL statements per delivery: "
              f"{sum(delta.values()) / len(result.latencies):.2f} (most: " + ", ".join(
                  f"{k} {v / len(result.latencies):.2f}" for k, v in top) + ")")
    if window.rss:
        ordered = sorted(window.rss)
        print(" " * 29 + f"server RSS under load: median {ordered[len(ordered) // 2]:.0f} MB, "
              f"peak {ordered[-1]:.0f} MB (ready, before any load: "
              f"{window.before_load or 0:.0f} MB)")
    return rate


async def count_stored(dsn: str) -> tuple[int, int, int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM deliveries")
        pending = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status='pending'")
        reconciles = await conn.fetchval("SELECT count(*) FROM audit")
        return stored, pending, reconciles
    finally:
        await conn.close()


def main() -> None:
    with throwaway_database("ingest") as dsn:
        benchmark(dsn)


def benchmark(dsn: str) -> None:
    log_path = tempfile.mktemp(prefix="p38-bench-", suffix=".log")
    workers = "default" if ARGS.workers is None else ARGS.workers
    print(f"ingest benchmark: {ARGS.connections} connections, {ARGS.duration:.0f} s each "
          f"(after {ARGS.warmup:.0f} s warm-up), signed {len(bodies()[0][0])}-byte push payloads "
          f"over {REPOS} repositories, controller workers: {workers}, {os.cpu_count()} cores")
    ceiling = measure(bare_server, (), "ceiling", "/")
    missing = "--no-peer" if ARGS.no_peer else peer_missing()
    peer = None if missing else measure(peer_server, (dsn,), "peer", "/", dsn)
    controller = measure(controller_server, (dsn, log_path, ARGS.workers), "controller",
                         "/readyz", dsn)
    stored, pending, reconciles = asyncio.run(count_stored(dsn))
    baseline = baseline_unstored = None
    if ARGS.baseline:
        with throwaway_database("ingest_baseline") as other:
            baseline = measure(controller_server, (other, log_path, ARGS.workers, True,
                                                   ARGS.baseline), "baseline", "/readyz", other)
            if ARGS.breakdown:
                baseline_unstored = measure(controller_server, (other, log_path, 0, False,
                                                                ARGS.baseline),
                                            "baseline without storing", "/readyz", other)
    unstored = (measure(controller_server, (dsn, log_path, 0, False),
                        "controller without storing", "/readyz", dsn)
                if ARGS.breakdown else None)
    c_rate = report("ceiling (HMAC + 202 only)", ceiling, ARGS.duration)
    peer_rate = report("peer: Probot + INSERT", peer, ARGS.duration)
    if missing:
        print(f"peer: skipped ({missing}: run `{PEER_INSTALL}`)")
    p_rate = report("controller (durable ingest)", controller, ARGS.duration)
    if baseline is not None:
        b_rate = report("baseline (--baseline tree)", baseline, ARGS.duration)
        print(f"ratio controller/baseline    {p_rate / b_rate if b_rate else 0.0:9.2f}x  "
              f"(baseline: the application in {ARGS.baseline}, same load, same run)")
    if unstored is not None:
        u_rate = report("diagnostic: nothing stored", unstored, ARGS.duration)
        print(f"ratio without storing        {u_rate / c_rate if c_rate else 0.0:9.1%}   "
              "(the request path alone: parse, keys, log line, metrics, answer)")
        if baseline_unstored is not None:
            bu_rate = report("baseline: nothing stored", baseline_unstored, ARGS.duration)
            print(f"ratio, nothing stored, controller/baseline "
                  f"{u_rate / bu_rate if bu_rate else 0.0:5.2f}x")
    ratio = p_rate / c_rate if c_rate else 0.0
    p99 = controller[0].percentile(0.99) * 1000
    accepted = sum(n for s, n in controller[0].statuses.items() if s in (200, 202))
    rss = max(controller[1].rss, default=0.0)
    print(f"ratio controller/ceiling     {ratio:9.1%}   (issue 20: >= 30%; issue 2: >= 60%)")
    if peer is not None:
        print(f"ratio controller/peer        {p_rate / peer_rate if peer_rate else 0.0:9.2f}x  "
              "(issue 20: >= 1.5x the durable Probot)")
        peer_ok = sum(n for s, n in peer[0].statuses.items() if 200 <= s < 300)
        print(f"peer answers 2xx: {peer_ok} in the window")
    print(f"controller RSS peak          {rss:9.0f} MB (issue 20: <= 100 MB under load)")
    print(f"controller p99               {p99:9.2f} ms (target <= 25 ms at 50 connections)")
    print(f"stored rows {stored} (>= {accepted} answered 2xx in the window; warm-up included); "
          f"still pending reconcile when stopped: {pending}; reconciles run: {reconciles}")
    print(f"controller log: {log_path}")
    ok = ratio >= 0.60 and p99 <= 25.0 and stored >= accepted
    print("RESULT:", "meets the targets" if ok else "BELOW TARGET")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=None,
                        help="controller reconcile workers (default: P38_WORKERS or 4; 0 "
                             "measures ingest alone)")
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="also run the application of another checkout (e.g. a worktree "
                             "of the release before) in this run, for a same-sitting ratio")
    parser.add_argument("--no-peer", action="store_true",
                        help="leave out the Probot peer run")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record the controller for 5 s of its window (raw "
                             "stacks in the temporary directory)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also run the application with a writer that stores nothing "
                             "(a diagnostic of the request path's own cost)")
    ARGS = parser.parse_args()
    main()
