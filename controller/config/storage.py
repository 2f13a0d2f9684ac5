"""Settings of state: where manifests come from, logging, the database and P38_HOME, how long
records are kept, and the policy gate's global switches. Validation only."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    field_validator,
)

from controller.config.base import _ENV, _Group


class ManifestSettings(_Group):
    """Where desired state comes from, and how often it is re-read."""

    model_config = _ENV
    directory: Path | None = Field(
        None, validation_alias="P38_MANIFESTS_DIR",
        description="A local directory reconciled as the source `local` (`p38 up` uses "
                    "./manifests when it exists); unset: GitHub repositories only.")
    repo_path: str = Field(
        "manifests/", validation_alias="P38_MANIFESTS_PATH",
        description="The folder holding manifests in each installed repository.")
    poll_seconds: float = Field(
        1.0, validation_alias="P38_MANIFESTS_POLL_SECONDS", gt=0,
        description="How often the local directory is checked for changed files (a stat per "
                    "file; cheap).")
    resync_seconds: float = Field(
        300.0, validation_alias="P38_RESYNC_SECONDS", gt=0,
        description="Every object with something to re-read where no webhook tells (manifest "
                    "sources) is reconciled at least this often, and one that gave up is "
                    "revived (GitHub does not redeliver failed deliveries).")

    @field_validator("repo_path")
    @classmethod
    def _folder(cls, value: str) -> str:
        value = value.strip().strip("/")
        if not value or ".." in value.split("/"):
            raise ValueError("must be a folder inside the repository, like manifests/")
        return value + "/"


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class LogSettings(_Group):
    """structlog output."""

    model_config = _ENV
    format: Literal["auto", "json", "console"] = Field(
        "auto", validation_alias="P38_LOG_FORMAT",
        description="auto: console on a terminal, JSON otherwise.")
    level: str = Field("info", validation_alias="P38_LOG_LEVEL",
                       description="debug, info, warning, error or critical.")

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().lower()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level


class StoreSettings(_Group):
    """Where the state lives."""

    model_config = _ENV
    database_url: str | None = Field(
        None, validation_alias="DATABASE_URL",
        description="PostgreSQL 14+ DSN; unset means the embedded server in P38_HOME/pgdata.")
    home: Path = Field(Path(".p38"), validation_alias="P38_HOME", validate_default=True,
                       description="State directory for the embedded database and the API's "
                                   "write token; a relative path is taken from the folder "
                                   "`p38` starts in, and every message shows it absolute.")
    migrate_on_start: bool = Field(True, validation_alias="P38_MIGRATE_ON_START")

    @field_validator("home")
    @classmethod
    def _a_usable_folder(cls, home: Path) -> Path:
        # Absolute from here on: a relative P38_HOME run from another folder is another
        # (empty) database, and a message naming `.p38/pgdata` would hide it.
        home = home.expanduser().absolute()
        if home.exists() and not home.is_dir():
            raise ValueError(f"{home} exists and is not a directory")
        existing = next(p for p in (home, *home.parents) if p.exists())
        if not existing.is_dir():
            raise ValueError(f"{home} cannot be created: {existing} is not a directory")
        # Whether it can be created or written is found when it is needed (`p38 up`, `serve`
        # and `migrate` create it): a `p38 serve` with DATABASE_URL and P38_API_TOKEN set
        # never uses it, and may run where the working folder is read-only.
        return home

    @field_validator("database_url")
    @classmethod
    def _a_postgresql_url(cls, dsn: str | None) -> str | None:
        # The message never quotes the value: it may hold a password.
        if dsn is None:
            return None
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError("must be a URL postgresql://user:password@host:port/database "
                             "(the key=value form is not read)")
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise ValueError("its port is not a number from 0 to 65535") from None
        return dsn


class RetentionSettings(_Group):
    """How long settled deliveries and audit rows are kept."""

    model_config = _ENV
    days: int = Field(
        90, validation_alias="P38_RETENTION_DAYS", le=36500,
        description="Settled deliveries (with payloads) and audit rows older than this are "
                    "deleted; 0 keeps everything. At least 7: GitHub redelivers for 3 days, "
                    "and a redelivered GUID must still be found to be answered as a duplicate.")
    every_seconds: float = Field(3600.0, validation_alias="P38_PRUNE_SECONDS", gt=0,
                                 description="Seconds between two prunes.")

    @field_validator("days")
    @classmethod
    def _long_enough(cls, value: int) -> int:
        if value != 0 and value < 7:
            raise ValueError("must be 0 (keep everything) or at least 7 days: GitHub "
                             "redelivers for 3 days and a redelivery must be recognised")
        return value


class PolicySettings(_Group):
    """Global switches of the policy gate."""

    model_config = _ENV
    dry_run: bool | None = Field(
        None, validation_alias="P38_DRY_RUN",
        description="true: record every action without executing it. Unset: actions of a "
                    "provider without credentials are recorded as dry-run, the rest run.")
    killswitch: bool = Field(False, validation_alias="P38_KILLSWITCH",
                             description="Skip every action (the big red button).")
    agents_unsandboxed: bool = Field(
        False, validation_alias="P38_AGENTS_UNSANDBOXED",
        description="true: run agents even where the kernel cannot sandbox them (no Landlock, "
                    "seccomp or user namespaces), with what it gives. Unset: such agents are "
                    "refused, and the start log and /readyz say why.")
