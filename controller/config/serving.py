"""Settings of the serving process: the HTTP server, the queue and its workers (reconcile
workers and the job workers of long work), webhook ingest. Validation only; nothing here
starts anything."""

from __future__ import annotations

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from controller.config.base import _ENV, _Group, _strong

JOB_KINDS = ("run", "generation", "session")  # long work, on job workers of its own


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
    dashboard_token: SecretStr | None = Field(
        None, validation_alias="P38_DASHBOARD_TOKEN",
        description="When set, the operator's page needs a sign-in with this token (reads "
                    "only) or the write token (reads and the operator's words).")

    @field_validator("api_token", "dashboard_token")
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
    run_workers: int = Field(4, validation_alias=AliasChoices("P38_JOB_WORKERS_RUN",
                                                              "P38_RUN_WORKERS"), ge=1, le=64,
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
    jobs: str = Field(
        "all", validation_alias="P38_JOBS",
        description="The kinds of long work this process carries out on its job workers: "
                    "`all`, `none`, or a comma-separated list of run, generation, session. "
                    "`none` (or a list without a kind): a `p38 worker` process must run them.")

    @field_validator("jobs")
    @classmethod
    def _known_job_kinds(cls, value: str) -> str:
        named = [part.strip().lower() for part in value.split(",") if part.strip()]
        if named in (["all"], ["none"]):
            return named[0]
        unknown = sorted(set(named) - set(JOB_KINDS))
        if unknown or not named:
            raise ValueError(f"unknown job kind {', '.join(unknown) or '(empty)'}: use all, "
                             f"none, or a comma-separated list of {', '.join(JOB_KINDS)}")
        return ",".join(kind for kind in JOB_KINDS if kind in named)

    def job_kinds(self) -> tuple[str, ...]:
        """The job kinds P38_JOBS names, in JOB_KINDS order."""
        if self.jobs == "all":
            return JOB_KINDS
        return () if self.jobs == "none" else tuple(self.jobs.split(","))

    def job_workers(self, kind: str) -> int:
        """How many job workers of `kind` a process that runs that kind starts."""
        return {"run": self.run_workers, "generation": self.generation_workers,
                "session": self.session_workers}[kind]

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
