"""The embedded PostgreSQL server (pgserver) used when DATABASE_URL is not set.

Data lives in `$P38_HOME/pgdata`. The server process outlives the controller (so a SIGKILL of
the controller loses nothing and the next start finds the same server and data). Synchronous:
call it from a thread or before the event loop starts.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path


def start_embedded(home: Path) -> str:
    """Start (or find running) the embedded server; returns its DSN."""
    home.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(home.resolve() / "pgdata", cleanup_mode=None)
    return str(server.get_uri())


def resolve_dsn(database_url: str | None, home: Path) -> str:
    """DATABASE_URL when set, else the embedded server's DSN."""
    return database_url if database_url else start_embedded(home)
