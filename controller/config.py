"""Settings: one pydantic-settings object, read from the environment, passed down explicitly.

`Settings` is a plain model of groups; each group reads its own variables. A field is read
only from its documented variable (the alias), never from its Python name, so unrelated
variables such as HOME or PORT cannot leak in (PORT is read on purpose, for Railway).
Construct groups with the variable names: `StoreSettings(DATABASE_URL=...)`.
Nothing here reads the environment after start-up; nothing imports a global settings object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

_ENV = SettingsConfigDict(extra="ignore", env_ignore_empty=True, allow_inf_nan=False)
LONGEST_SECONDS = 7 * 24 * 3600  # no duration setting means more than a week


SHORTEST_SECRET = 16


def _strong(secret: SecretStr | None) -> SecretStr | None:
    """A shared secret long enough not to be guessed (a short one is also too short for the
    log redactor to find safely). The message never quotes it."""
    if secret is not None and 0 < len(secret.get_secret_value()) < SHORTEST_SECRET:
        raise ValueError(f"must be at least {SHORTEST_SECRET} characters (generate one with "
                         "`openssl rand -hex 32`)")
    return secret


class _Group(BaseSettings):
    """A group of settings. Durations are finite and at most a week: `inf` or 1e300 would
    turn a deadline off, or overflow PostgreSQL's interval (every claim then fails)."""

    @field_validator("*")
    @classmethod
    def _a_week_at_most(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name and info.field_name.endswith("_seconds") \
                and isinstance(value, float) and value > LONGEST_SECONDS:
            raise ValueError(f"at most {LONGEST_SECONDS} seconds (a week)")
        return value


class ServerSettings(_Group):
    """Where the HTTP server listens and what it accepts."""

    model_config = _ENV
    host: str = Field("127.0.0.1", validation_alias="P38_HOST",
                      description="Bind address; loopback by default so a laptop run is private.")
    port: int = Field(8080, validation_alias=AliasChoices("P38_PORT", "PORT"), ge=0, le=65535,
                      description="TCP port; Railway injects PORT.")
    max_body_bytes: int = Field(25 * 1024 * 1024, validation_alias="P38_MAX_BODY_BYTES", ge=1024,
                                description="Bytes; GitHub caps webhook payloads at 25 MiB.")
    reading_bodies_bytes: int = Field(
        100 * 1024 * 1024, validation_alias="P38_READING_BODIES_BYTES", ge=1024,
        description="Bytes of webhook bodies read at once (bodies nobody has authenticated "
                    "yet); beyond it a request gets 503 with Retry-After. At least the body "
                    "limit, so one largest body always fits.")
    api_token: SecretStr | None = Field(
        None, validation_alias="P38_API_TOKEN",
        description="When set, /api/* (but /api/health) requires Authorization: Bearer <token>.")
    @field_validator("api_token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        return _strong(token)

    @model_validator(mode="after")
    def _one_body_fits(self) -> ServerSettings:
        if self.reading_bodies_bytes < self.max_body_bytes:
            raise ValueError("P38_READING_BODIES_BYTES must be at least P38_MAX_BODY_BYTES")
        return self

    body_timeout_seconds: float = Field(
        30.0, validation_alias="P38_BODY_TIMEOUT_SECONDS", gt=0,
        description="Seconds a webhook body may take to arrive; a sender that trickles it in "
                    "is answered 408 and the connection's budget freed.")
    header_timeout_seconds: float = Field(
        10.0, validation_alias="P38_HEADER_TIMEOUT_SECONDS", gt=0,
        description="Seconds a new connection has to send its first request's head; one that "
                    "sends nothing (or trickles) is closed.")
    keepalive_seconds: float = Field(
        75.0, validation_alias="P38_KEEPALIVE_SECONDS", gt=0,
        description="Seconds an idle keep-alive connection is kept after an answer (above the "
                    "60 s idle timeout of common load balancers).")
    max_connections: int = Field(
        1000, validation_alias="P38_MAX_CONNECTIONS", ge=1,
        description="Open client connections at most; beyond, new ones are closed at once. "
                    "Lowered at start to what `ulimit -n` allows.")
    shutdown_grace_seconds: float = Field(
        20.0, validation_alias="P38_SHUTDOWN_GRACE_SECONDS", ge=0,
        description="Seconds a reconcile may finish after SIGTERM before its lease is released.")


class QueueSettings(_Group):
    """The work queue and the workers that drain it."""

    model_config = _ENV
    workers: int = Field(4, validation_alias="P38_WORKERS", ge=1, le=64,
                         description="Concurrent reconciles per process; reconciles wait on I/O. "
                                     "Each may hold a database connection (PostgreSQL allows "
                                     "100 by default): scale out with processes instead.")
    run_workers: int = Field(4, validation_alias="P38_RUN_WORKERS", ge=1, le=64,
                             description="Agent runs at once per process; a run holds its "
                                         "worker (not a reconcile worker) until it ends.")
    generation_workers: int = Field(
        2, validation_alias="P38_JOB_WORKERS_GENERATION", ge=1, le=16,
        description="Agent generations (Claude writing a version) at once per process, on job "
                    "workers of their own: a reconcile worker never waits on Claude.")
    session_workers: int = Field(
        2, validation_alias="P38_JOB_WORKERS_SESSION", ge=1, le=16,
        description="`/claude` task sessions at once per process, on job workers of their "
                    "own (a session may last half an hour).")
    lease_seconds: float = Field(30.0, validation_alias="P38_LEASE_SECONDS", gt=0,
                                 description="Seconds a claim is held without a heartbeat; a "
                                             "crashed worker's key is retried after this.")
    poll_seconds: float = Field(1.0, validation_alias="P38_POLL_SECONDS", gt=0,
                                description="Seconds between polls when no NOTIFY arrives.")
    coalesce_seconds: float = Field(
        0.25, validation_alias="P38_COALESCE_SECONDS", ge=0,
        description="Seconds a key hinted during its own reconcile waits before the next one, "
                    "so a burst of hints becomes one reconcile instead of many back to back.")
    max_attempts: int = Field(
        0, validation_alias="P38_MAX_ATTEMPTS", ge=0,
        description="Failed reconciles of one key before dead-letter; 0: no limit by count, "
                    "only by time (P38_GIVE_UP_SECONDS).")
    give_up_seconds: float = Field(
        3600.0, validation_alias="P38_GIVE_UP_SECONDS", ge=0,
        description="Seconds a key may keep failing before it is dead-lettered (an hour "
                    "outlasts most provider outages; a delivery, the resync or `p38 replay` "
                    "revives it).")
    backoff_base_seconds: float = Field(1.0, validation_alias="P38_BACKOFF_BASE_SECONDS", gt=0,
                                        description="First retry delay; doubles per attempt.")
    backoff_cap_seconds: float = Field(300.0, validation_alias="P38_BACKOFF_CAP_SECONDS", gt=0,
                                       description="Longest retry delay (5 min keeps a broken "
                                                   "key from hammering a provider).")
    @model_validator(mode="after")
    def _cap_above_base(self) -> QueueSettings:
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise ValueError("P38_BACKOFF_CAP_SECONDS must be at least P38_BACKOFF_BASE_SECONDS")
        return self

    deadline_seconds: float = Field(
        120.0, validation_alias="P38_RECONCILE_DEADLINE_SECONDS", gt=0,
        description="Seconds one reconcile may take before it is cancelled and retried (a "
                    "reconciler may declare its own); a hung call never holds a key for ever.")
    held_recheck_seconds: float = Field(
        60.0, validation_alias="P38_HELD_RECHECK_SECONDS", gt=0,
        description="Seconds between two looks at a key whose actions are held (approval, "
                    "killswitch); `p38 approve` and a Policy change end the wait at once.")


class IngestSettings(_Group):
    """Group commit of webhook deliveries."""

    model_config = _ENV
    timeout_seconds: float = Field(
        8.0, validation_alias="P38_INGEST_TIMEOUT_SECONDS", gt=0,
        description="Seconds a delivery may wait for its commit before it is answered 503: "
                    "under GitHub's 10 s, so a hung database is a failure GitHub records (and "
                    "the controller asks again later), not a silent timeout.")
    writers: int = Field(3, validation_alias="P38_INGEST_WRITERS", ge=1,
                         description="Concurrent batch transactions; more overlap commit waits.")
    max_batch: int = Field(128, validation_alias="P38_INGEST_MAX_BATCH", ge=1,
                           description="Deliveries per transaction at most.")


class SecretsSettings(_Group):
    """Inbound webhook secrets; a route whose secret is missing answers 503."""

    model_config = _ENV
    github_webhook_secret: SecretStr | None = Field(None, validation_alias="GITHUB_WEBHOOK_SECRET")
    railway_webhook_secret: SecretStr | None = Field(None,
                                                     validation_alias="RAILWAY_WEBHOOK_SECRET")
    n8n_webhook_secret: SecretStr | None = Field(None, validation_alias="N8N_WEBHOOK_SECRET")

    @field_validator("github_webhook_secret", "railway_webhook_secret", "n8n_webhook_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        return _strong(secret)


PROVIDERS = ("github", "railway", "anthropic")


class ProviderSettings(_Group):
    """Outbound credentials and endpoints."""

    model_config = _ENV
    github_app_id: str | None = Field(None, validation_alias="GITHUB_APP_ID")
    github_app_private_key: SecretStr | None = Field(None,
                                                     validation_alias="GITHUB_APP_PRIVATE_KEY")
    github_api_url: str = Field("https://api.github.com", validation_alias="GITHUB_API_URL",
                                description="REST base; set for GitHub Enterprise Server.")
    railway_token: SecretStr | None = Field(None, validation_alias="RAILWAY_TOKEN")
    railway_api_url: str = Field("https://backboard.railway.app/graphql/v2",
                                 validation_alias="RAILWAY_API_URL")
    railway_token_kind: Literal["account", "team", "project"] = Field(
        "account", validation_alias="RAILWAY_TOKEN_KIND",
        description="What RAILWAY_TOKEN is: an account or team (workspace) token is sent as "
                    "`Authorization: Bearer`, a project token as `Project-Access-Token`.")
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")

    @field_validator("github_app_private_key")
    @classmethod
    def _a_private_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and (problem := private_key_problem(key.get_secret_value())):
            raise ValueError(problem)
        return key
    gcp_project_id: str | None = Field(
        None, validation_alias="GCP_PROJECT_ID",
        description="When set, secrets are read from Google Secret Manager in this project.")
    secrets_ttl_seconds: float = Field(
        600.0, validation_alias="P38_SECRETS_TTL_SECONDS", gt=0,
        description="How often secrets are re-read from Secret Manager (a rotated key is used "
                    "from then on).")

    def configured(self) -> frozenset[str]:
        """The providers whose credentials are set: github, railway, anthropic."""
        found = {"github": bool(self.github_app_id and self.github_app_private_key),
                 "railway": bool(self.railway_token), "anthropic": bool(self.anthropic_api_key)}
        return frozenset(name for name, ok in found.items() if ok)

    def any_credentials(self) -> bool:
        """True when at least one provider could be written to."""
        return bool(self.configured())


PEM_MARK = "-----BEGIN"


def private_key_problem(value: str) -> str | None:
    """Why `value` is not a usable GitHub App private key (a PEM, a PEM with escaped newlines
    as environment variables often carry it, or the path of a file holding one), or None.
    The message never quotes the value, nor a file's content: either may be the key."""
    text = value.strip()
    where = "it"
    if PEM_MARK not in text:
        path = Path(text).expanduser()
        try:
            found = path.is_file()
        except (OSError, ValueError):  # a name too long, a NUL byte: not a path either
            found = False
        if not found:
            shown = f" ({path.absolute()})" if _path_like(text) else ""
            return ("neither a PEM private key (-----BEGIN RSA PRIVATE KEY----- ...) nor the "
                    f"path of an existing file{shown}")
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return f"cannot read {path.absolute()}: {getattr(exc, 'strerror', None) or exc}"
        where = str(path.absolute())
        if PEM_MARK not in text:
            return f"{where} does not hold a PEM private key (no -----BEGIN line)"
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(text.replace("\\n", "\n").strip().encode() + b"\n", None)
    except (ValueError, TypeError, UnicodeEncodeError):  # TypeError: it needs a password
        return (f"{'the PEM' if where == 'it' else 'the PEM in ' + where} does not parse as "
                "an unencrypted private key (download a new one from the GitHub App's "
                "settings; the value is not shown)")
    return None


def _path_like(text: str) -> bool:
    """A value that reads as a file path (shown in a message), not as a mangled key (never
    shown): one short line starting like a path."""
    return text.startswith(("/", "~", "./", "../")) and len(text) <= 255 \
        and not any(c.isspace() for c in text)


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


class Settings(BaseModel):
    """Everything the controller needs to run, grouped by concern."""

    store: StoreSettings = Field(default_factory=lambda: StoreSettings())
    retention: RetentionSettings = Field(default_factory=lambda: RetentionSettings())
    policy: PolicySettings = Field(default_factory=lambda: PolicySettings())
    server: ServerSettings = Field(default_factory=lambda: ServerSettings())
    queue: QueueSettings = Field(default_factory=lambda: QueueSettings())
    ingest: IngestSettings = Field(default_factory=lambda: IngestSettings())
    secrets: SecretsSettings = Field(default_factory=lambda: SecretsSettings())
    providers: ProviderSettings = Field(default_factory=lambda: ProviderSettings())
    manifests: ManifestSettings = Field(default_factory=lambda: ManifestSettings())
    log: LogSettings = Field(default_factory=lambda: LogSettings())

    def dry_run_providers(self) -> list[str]:
        """The providers whose actions are recorded as dry-run, not executed."""
        if self.policy.dry_run:
            return list(PROVIDERS)
        return [p for p in PROVIDERS if p not in self.providers.configured()]

    def secret_values(self) -> list[str]:
        """Every configured secret value, for the log redactor."""
        found: list[str] = []
        for group in (self.server, self.secrets, self.providers):
            for name in type(group).model_fields:
                value = getattr(group, name)
                if isinstance(value, SecretStr) and value.get_secret_value():
                    found.append(value.get_secret_value())
        if password := _dsn_password(self.store.database_url):
            found.append(password)
        found.extend(value for name, value in os.environ.items()  # tools' targets' tokens
                     if name.startswith(("P38_NOTIFY_", "P38_N8N_")) and name.endswith("_TOKEN")
                     and value)
        return found


def _dsn_password(dsn: str | None) -> str | None:
    """The password in a DATABASE_URL (`postgresql://user:password@host/db`), decoded."""
    password = urlsplit(dsn).password if dsn else None
    return unquote(password) if password else None
