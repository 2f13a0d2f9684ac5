"""The manifest kinds as pydantic v2 models: validation, `p38 schema` and docs come from here.

YAML keys are camelCase (`rollbackOnFailure`), unknown keys are errors, and every field says
what it means and why its default. Pure: no I/O.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal

from croniter import CroniterBadDateError, croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    model_validator,
)
from pydantic.alias_generators import to_camel

API_VERSION = "p38/v1"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi)$")


def _name(value: str) -> str:
    if len(value) > 63 or not _NAME.match(value):
        raise ValueError("must be 1-63 lower-case letters, digits or '-', starting and ending "
                         "with a letter or digit")
    return value


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError("must be a duration like 500ms, 30s, 5m or 1h")
    return value


def duration_seconds(value: str) -> float:
    match = _DURATION.match(value)
    assert match, value
    return int(match[1]) * _DURATION_SECONDS[match[2]]


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError("must be a size like 512Ki, 256Mi or 1Gi")
    return value


CRON_FIELDS = ("minute (0-59)", "hour (0-23)", "day of month (1-31)", "month (1-12)",
               "weekday (0-6, or SUN-SAT)")


def _cron(value: str) -> str:
    problem = _cron_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


@functools.lru_cache(maxsize=4096)
def _cron_problem(value: str) -> str | None:
    """What is wrong with a cron expression, or None (each expression is checked once per
    process: croniter expands it seven times here, ~0.5 ms each)."""
    fields = value.split()
    if len(fields) != 5:
        return ("must be a 5-field cron expression (minute hour day month weekday), "
                f"e.g. '30 9 * * 1-5'; this one has {len(fields)} field(s)")
    for n, field in enumerate(fields):
        alone = " ".join(field if i == n else "*" for i in range(5))
        if not croniter.is_valid(alone):
            return f"field {n + 1}, {field!r}, is not a valid {CRON_FIELDS[n]}"
    if not croniter.is_valid(value):
        return "is not a valid cron expression"
    try:
        croniter(value, datetime(2026, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return f"{value!r} never fires (no such date)"
    return None


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. UTC, Europe/Berlin)") from None
    return value


Name = Annotated[str, AfterValidator(_name)]
def _seconds_as_duration(value: Any) -> Any:
    return f"{value}s" if isinstance(value, int) and not isinstance(value, bool) else value


Duration = Annotated[str, BeforeValidator(_seconds_as_duration), AfterValidator(_duration)]
Quantity = Annotated[str, AfterValidator(_quantity)]


class Strict(BaseModel):
    """camelCase keys in YAML, snake_case in Python; unknown keys are errors; immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)


class Metadata(Strict):
    name: Name = Field(description="Unique per kind; lower-case DNS label.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form key/values.")


class Envelope(Strict):
    """What every manifest has besides its `kind` and `spec`."""

    api_version: Literal["p38/v1"] = Field(alias="apiVersion")
    metadata: Metadata


# --- Agent ---------------------------------------------------------------------------------

Tool = Literal["http", "notify", "github", "railway", "n8n", "claude"]
MAX_RUN_SECONDS = 3600  # an agent run may take an hour at most (a run holds a run worker)


def _run_timeout(value: str) -> str:
    if duration_seconds(value) > MAX_RUN_SECONDS:
        raise ValueError("must be at most 1h")
    if duration_seconds(value) < 1:
        raise ValueError("must be at least 1s")
    return value


def _code_path(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts) \
            or not value.endswith(".py"):
        raise ValueError("must be a .py file's path from the repository root, like "
                         "agents/digest.py (no '..', not absolute)")
    return value


CodePath = Annotated[str, AfterValidator(_code_path)]


class Limits(Strict):
    timeout: Annotated[Duration, AfterValidator(_run_timeout)] = Field(
        "300s", description="Longest run (1s to 1h); past it the run's processes are killed.")
    memory: Quantity = Field("256Mi", description="Memory of the agent's container.")
    tokens_per_run: int = Field(50_000, ge=1, description="Claude tokens one run may use.")
    usd_per_day: float = Field(5.0, ge=0, description="Spend ceiling per day, in US dollars; "
                                                       "runs stop being scheduled past it.")


class AgentSpec(Strict):
    description: str = Field(min_length=10, description="What the agent should do, in natural "
                                                        "language; Claude writes the code "
                                                        "unless `code` names it.")
    code: CodePath | None = Field(None, description="Hand-written module (from the repository "
                                                    "root, e.g. agents/digest.py) defining "
                                                    "run(task): validated and run as is, "
                                                    "nothing generated.")
    test: CodePath | None = Field(None, description="Its test module (test_* functions run in "
                                                    "the harness before the code may run); "
                                                    "only with `code`.")
    model: str = Field("claude-sonnet-5-5", description="Anthropic model that writes and runs it.")
    tools: list[Tool] = Field(default_factory=list, description="Capabilities it may use.")
    limits: Limits = Field(default_factory=lambda: Limits())
    retry_on_interrupt: bool | None = Field(
        None, description="Run a run once more when the controller stops in the middle of it "
                          "(a deploy, a crash); unset: scheduled runs are, manual and n8n "
                          "runs end `interrupted`.")
    notify: list[Name] = Field(default_factory=list,
                               description="Notification targets (names from the Policy).")
    workflows: list[Name] = Field(default_factory=list,
                                  description="n8n workflows it may start with the `n8n` tool "
                                              "(names from the Policy's `workflows`).")


    @model_validator(mode="after")
    def _test_with_code(self) -> AgentSpec:
        if self.test is not None and self.code is None:
            raise ValueError("test names the test of hand-written code: set code as well")
        return self


class Agent(Envelope):
    kind: Literal["Agent"]
    spec: AgentSpec


# --- Schedule ------------------------------------------------------------------------------

class ScheduleSpec(Strict):
    cron: Annotated[str, AfterValidator(_cron)] = Field(
        description="5-field cron expression, evaluated in `timezone`.")
    timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        "UTC", description="IANA time zone of `cron`.")
    agent: Name = Field(description="Name of the Agent to run.")
    catch_up: Literal["none", "latest", "all"] = Field(
        "latest", description="Runs missed while the controller was down: none, only the "
                              "latest, or all of them.")
    concurrency: Literal["forbid", "allow", "replace"] = Field(
        "forbid", description="When a run is due while the previous one still runs: skip it, "
                              "run both, or stop the previous one.")
    suspended: bool = Field(False, description="Keep the schedule but start no runs.")


class Schedule(Envelope):
    kind: Literal["Schedule"]
    spec: ScheduleSpec


# --- Service -------------------------------------------------------------------------------

class RailwayTarget(Strict):
    project: str = Field(min_length=1, description="Railway project id.")
    environment: str = Field(min_length=1, description="Railway environment id.")
    service: str = Field(min_length=1, description="Railway service id.")


class HealthCheck(Strict):
    url: HttpUrl | None = Field(None, description="Checked after a deploy; 2xx means healthy.")
    timeout: Duration = Field("120s", description="How long a deploy may take to turn healthy.")


class ServiceSpec(Strict):
    railway: RailwayTarget
    branch: str = Field("main", min_length=1, description="Branch whose commits are deployed.")
    health_check: HealthCheck = Field(default_factory=lambda: HealthCheck())
    rollback_on_failure: bool = Field(True, description="Roll back to the previous deployment "
                                                        "when a deploy fails or turns unhealthy.")
    require_approval: bool = Field(False, description="Hold each deploy until approved.")


class Service(Envelope):
    kind: Literal["Service"]
    spec: ServiceSpec


# --- Policy --------------------------------------------------------------------------------

def _denied_by_default() -> list[str]:
    """What a `/claude` task may not change and auto-merge does not merge unapproved: the
    workflows (CI runs with the repository's secrets), the manifests (the Policy itself, who may
    give commands, new agents) and the hand-written agents."""
    return [".github/**", ".gitmodules", "manifests/**", "agents/**"]


def _blocking_labels() -> list[str]:
    return ["do-not-merge", "hold"]


class AutoMerge(Strict):
    """Pull requests that merge themselves once every condition holds (docs/automerge.md)."""

    enabled: bool = Field(True, description="Merge allowed pull requests when checks pass.")
    branches: list[str] = Field(default_factory=lambda: ["claude/*"],
                                description="Head branch globs that may be merged.")
    bases: list[str] = Field(default_factory=list,
                             description="Base branch globs they may be merged into (empty: "
                                         "the repository's default branch only).")
    method: Literal["merge", "squash", "rebase"] = Field(
        "squash", description="How GitHub merges: squash, merge or rebase.")
    required_checks: list[str] = Field(default_factory=list,
                                       description="Check names that must succeed (besides the "
                                                   "branch protection's).")
    required_approvals: int = Field(0, ge=0, le=20, description="Approving reviews by "
                                                                "writers needed.")
    blocking_labels: list[str] = Field(default_factory=_blocking_labels,
                                       description="A pull request with any of these labels "
                                                   "is not merged.")
    delete_branch: bool = Field(True, description="Delete the head branch once merged.")
    update_branch: bool = Field(True, description="Bring a branch that is behind its base up "
                                                  "to date (then wait for its checks).")
    allow_forks: bool = Field(False, description="Merge pull requests from forks too.")
    untrusted_input: Literal["review", "allow"] = Field(
        "review", description="A /claude pull request whose task read text by someone without "
                              "write permission: `review` merges it only after a writer's "
                              "approving review.")
    protected_paths: list[str] = Field(
        default_factory=_denied_by_default,
        description="Path globs a pull request may not change and still be merged without a "
                    "writer's approving review, whatever its branch (`**` any depth).")


Association = Literal["OWNER", "MEMBER", "COLLABORATOR"]


def _default_associations() -> list[Association]:
    return ["OWNER", "MEMBER"]


class Commands(Strict):
    users: list[str] = Field(default_factory=list, description="GitHub logins allowed to use "
                                                               "/claude, besides associations.")
    associations: list[Association] = Field(
        default_factory=_default_associations,
        description="Author associations allowed to use /claude.")


class NotificationTarget(Strict):
    url: HttpUrl = Field(description="n8n webhook URL that receives notifications.")


class AgentsPolicy(Strict):
    fix_rounds: int = Field(3, ge=0, le=10, description="Rounds in which validation's "
                                                        "messages go back to Claude before a "
                                                        "generated version is FAILED.")
    generation_usd: float = Field(3.0, gt=0, le=100, description="Most one generation of one "
                                                                 "agent may spend, in US "
                                                                 "dollars (all its rounds).")


class ClaudePolicy(Strict):
    """What a `/claude` task may do: the controller checks every write and every call against
    it, whatever the model is told."""

    model: str = Field("claude-sonnet-5-5", description="Anthropic model that does the work.")
    allow: list[str] = Field(default_factory=lambda: ["**"],
                             description="Path globs a change may touch (`**` any depth, `*` "
                                         "one name).")
    deny: list[str] = Field(default_factory=_denied_by_default,
                            description="Path globs a change may never touch, even if "
                                        "allowed.")
    max_files: int = Field(20, ge=1, le=1000, description="Most files one task may change.")
    max_bytes: int = Field(200_000, ge=1, le=10_000_000,
                           description="Most bytes one task may write (all files).")
    max_tokens: int = Field(400_000, ge=1000, description="Most tokens one task may use.")
    max_usd: float = Field(2.0, gt=0, le=100, description="Most one task may spend, in US "
                                                          "dollars.")
    max_tool_calls: int = Field(60, ge=1, le=1000, description="Most tool calls (list, read, "
                                                               "search, write, delete) per "
                                                               "task.")


class PolicySpec(Strict):
    killswitch: bool = Field(False, description="While true, every action of this source's "
                                                 "objects that touches the world is held "
                                                 "(audited, status Blocked); manifests are "
                                                 "still applied, so committing it off works.")
    auto_merge: AutoMerge = Field(default_factory=lambda: AutoMerge())
    commands: Commands = Field(default_factory=lambda: Commands())
    approval_required: list[str] = Field(default_factory=list,
                                         description="Action kinds held until approved "
                                                     "(`p38 approve`).")
    agent_paths: list[str] = Field(default_factory=lambda: ["agents/**"],
                                   description="Path globs agents' changes may touch.")
    notifications: dict[Name, NotificationTarget] = Field(
        default_factory=dict, description="Notification targets by name.")
    workflows: dict[Name, NotificationTarget] = Field(
        default_factory=dict, description="n8n workflows agents may start (the `n8n` tool), "
                                          "by name: each an n8n Webhook node's URL.")
    agents: AgentsPolicy = Field(default_factory=lambda: AgentsPolicy(),
                                 description="How agents are generated.")
    claude: ClaudePolicy = Field(default_factory=lambda: ClaudePolicy(),
                                 description="The limits of `/claude` tasks.")


class Policy(Envelope):
    kind: Literal["Policy"]
    spec: PolicySpec


Manifest = Agent | Schedule | Service | Policy
KINDS: dict[str, type[Agent] | type[Schedule] | type[Service] | type[Policy]] = {
    "Agent": Agent, "Schedule": Schedule, "Service": Service, "Policy": Policy}


def json_schema() -> dict[str, Any]:
    """JSON Schema of a manifest document (any kind), for editors."""
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(
        Annotated[Manifest, Field(discriminator="kind")])
    schema = adapter.json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "project38 manifest (p38/v1)"
    return schema
