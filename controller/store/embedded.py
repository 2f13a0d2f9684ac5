"""The embedded PostgreSQL server (pgserver) used when DATABASE_URL is not set.

Data lives in `$P38_HOME/pgdata`. The server process outlives the controller (so a SIGKILL of
the controller loses nothing and the next start finds the same server and data). `p38 db-stop`
stops it. Synchronous: call it from a thread or before the event loop starts.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import warnings
from pathlib import Path

from controller.store import DatabaseUnavailable


class HomeUnusable(DatabaseUnavailable):
    """P38_HOME cannot be created or written (the message names it, absolute, and why)."""


def prepare_home(home: Path) -> Path:
    """`home` made (with its parents) if missing and checked writable; its absolute path.
    `HomeUnusable` says why not, in one line naming P38_HOME."""
    home = home.absolute()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeUnusable(f"P38_HOME: cannot create {home}: "
                           f"{exc.strerror or type(exc).__name__}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise HomeUnusable(f"P38_HOME: {home} is not writable by this user")
    return home


def start_embedded(home: Path) -> str:
    """Start (or find running) the embedded server; returns its DSN. `HomeUnusable` when
    P38_HOME cannot be made."""
    home = prepare_home(home)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(home.resolve() / "pgdata", cleanup_mode=None)
    return str(server.get_uri())


def resolve_dsn(database_url: str | None, home: Path) -> str:
    """DATABASE_URL when set, else the embedded server's DSN."""
    return database_url if database_url else start_embedded(home)


def embedded_state(home: Path) -> str:
    """`absent` (never created), `stopped` or `running`: the embedded server in `home`."""
    pgdata = home / "pgdata"
    if not (pgdata / "PG_VERSION").exists():
        return "absent"
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return "stopped"
    return "running"


def stop_embedded(home: Path, *, timeout: float = 30.0) -> bool:
    """Fast-shutdown the embedded server in `home` if it runs; True when one was stopped."""
    pid_file = home / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown: clean, no recovery needed
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    raise TimeoutError(f"embedded PostgreSQL (pid {pid}) did not stop within {timeout}s")
