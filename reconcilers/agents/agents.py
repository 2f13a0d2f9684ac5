"""Agents (`agent:owner/repo/name`, `agent:local/name`): one version per change of what the code
is made from, built once, and the status of the one runs use.

What the code is made from is the spec's description, model and tools, and for a hand-written
agent (`spec.code`) the text of its module and test read from the source's repository; their
hash names the version. Hand-written files are read at the default branch head (GitHub) or
from the folder's parent (local), so a change to them alone is seen at the next look (at once
for the local folder, whose watcher follows them; at the resync for GitHub). A hash with no
version gets a build action (`agent.build` for hand-written code, `agent.generate` for
Claude's), and the key is looked at again at once to report the result: Ready when the newest
version of the hash is READY, Stalled when it FAILED (runs go on with the last READY version).
A version FAILED because the provider refused its key is built again (a new version) once this
process has a different key; `p38 agents rebuild` asks for a new version whatever the newest
one's state.
On a GitHub source a FAILED version opens or updates one issue (found by a hidden marker) and
a later READY version closes it. Limits and notification targets are read at run time, so
changing them builds nothing. n8n's `agent.run` deliveries name the agent's key; each becomes
one queued run. No I/O of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import orjson
from pydantic import ValidationError

from controller.manifests.models import AgentSpec, AgentsPolicy
from controller.reconcile.context import AppliedObject, ObserveContext, StoredPayload
from controller.reconcile.plan import Action, Plan
from controller.reconcile.reads import GITHUB, LOCAL, SourceFile, Where
from controller.reconcile.reconciler import Event, Watch, object_key, object_ref
from reconcilers.agents.agent_actions import (
    AGENTS,
    BuildVersion,
    GenerateVersion,
    QueueRun,
    VersionInfo,
)
from reconcilers.gitops import reporting
from reconcilers.gitops.objects import ManifestObject, ObjectSnapshot

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy

ISSUE_MARKER = "<!-- p38:agent-failed:{name} -->"
MAX_TRIGGERS = 200  # n8n's `agent.run` deliveries turned into runs per reconcile


@dataclass(frozen=True)
class AgentSnapshot(ObjectSnapshot):
    spec: AgentSpec | None = None
    unreadable: str | None = None  # why the applied document does not validate
    code: SourceFile | None = None
    test: SourceFile | None = None
    versions: tuple[VersionInfo, ...] = ()
    installation_id: int | None = None  # a GitHub source's App installation
    schedules: tuple[str, ...] = ()  # keys of the source's schedules that start this agent
    shown: str | None = None  # the status reason people see now
    triggers: tuple[StoredPayload, ...] = ()  # n8n's `agent.run` deliveries not settled yet
    credential: str | None = None  # fingerprint of the generating provider's key here
    rebuild_after: int | None = None  # a rebuild asked for a version after this one


def spec_hash(spec: AgentSpec, code: SourceFile | None, test: SourceFile | None) -> str:
    """What the code is made from: description, model, tools, and the hand-written files."""
    made_of = {"description": spec.description, "model": spec.model,
               "tools": sorted(spec.tools), "code": spec.code, "test": spec.test,
               "code_text": code.text if code else None, "test_text": test.text if test else None}
    return hashlib.sha256(orjson.dumps(made_of, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Agents(ManifestObject):
    kind: ClassVar[str] = "agent"
    manifest_kind: ClassVar[str] = "Agent"
    deadline: ClassVar[float | None] = 900.0  # a generation with its fix rounds
    owns: ClassVar[frozenset[str]] = frozenset({"schedule"})

    def watches(self) -> Sequence[Watch]:
        return (Watch("n8n", frozenset({"agent.run"}), _triggered),)
    resync: ClassVar[bool] = True  # a hand-written module can change without its manifest

    async def observe(self, ctx: ObserveContext, key: str) -> AgentSnapshot:
        agents = ctx.reads(AGENTS)
        source = object_ref(key)[1]
        # Every store read at once (one round trip), even those an agent not applied does
        # not need; only the module's files, read from the source, wait for the spec.
        base, triggers, versions, rebuild_after, applied, shown = await asyncio.gather(
            super().observe(ctx, key),
            ctx.recent_payloads(key, MAX_TRIGGERS, events=("agent.run",), pending=True),
            agents.versions(key), agents.rebuild_after(key),
            ctx.applied_referring(source, "Schedule", "agent", object_ref(key)[2]),
            ctx.statuses([key]))
        snapshot = AgentSnapshot(base.key, base.source, base.name, base.applied, base.desired,
                                 triggers=tuple(triggers))
        if base.applied is None:
            return snapshot
        try:
            spec = AgentSpec.model_validate(base.applied.document.get("spec") or {})
        except ValidationError as exc:
            return replace(snapshot, unreadable=str(exc).splitlines()[0])
        state = base.source_state
        installation = (state.data.get("installation_id") if state else None)
        installation = installation if isinstance(installation, int) else None
        code = test = None
        if spec.code is not None:
            # The module as on the default branch now, not at the commit the manifest was
            # applied from: a push that changes only the module leaves that commit behind.
            where = Where(base.source, installation_id=installation)
            reads = ctx.reads(LOCAL) if base.source == "local" else ctx.reads(GITHUB)
            code = await reads.source_file(where, spec.code)
            if spec.test is not None:
                test = await reads.source_file(where, spec.test)
        credential = None if spec.code is not None else await agents.credential("anthropic")
        schedules = tuple(object_key("Schedule", base.source, o.name) for o in applied)
        return replace(snapshot, spec=spec, code=code, test=test, versions=tuple(versions),
                       installation_id=installation, schedules=schedules,
                       shown=shown[0].reason if shown else None, credential=credential,
                       rebuild_after=rebuild_after)

    def decide(self, snapshot: ObjectSnapshot, policy: Policy) -> Plan:
        """Every `agent.run` delivery becomes a run, even for an agent that is not applied:
        that run ends failed saying so, so whoever asked can see why nothing ran."""
        assert isinstance(snapshot, AgentSnapshot)
        plan = super().decide(snapshot, policy)
        if not snapshot.triggers:
            return plan
        return replace(plan, actions=(*plan.actions, *_queue_runs(snapshot)),
                       reason=f"{plan.reason}; queued {len(snapshot.triggers)} run(s) asked "
                              "for by n8n")

    def decide_applied(self, snapshot: ObjectSnapshot, applied: AppliedObject,
                       policy: Policy) -> Plan:
        assert isinstance(snapshot, AgentSnapshot)
        return decide_agent(snapshot, applied, policy)


def _triggered(event: Event) -> tuple[str, ...]:
    """The agent an n8n `agent.run` names (`<source>/<name>`, checked by the handler)."""
    agent = event.payload.get("agent")
    name = agent.removeprefix("agent:") if isinstance(agent, str) else ""
    return (f"agent:{name}",) if "/" in name else ()


def _queue_runs(snapshot: AgentSnapshot) -> tuple[Action, ...]:
    actions = []
    for trigger in reversed(snapshot.triggers):  # oldest first
        payload = trigger.payload
        who = "/".join(str(payload[k]) for k in ("workflow", "execution") if payload.get(k))
        params = QueueRun(agent=snapshot.key, requested_by=f"n8n:{who or trigger.delivery_id}",
                          input=payload.get("input"))
        actions.append(params.action(f"n8n-run:{trigger.delivery_id}",
                                     description=f"queue a run of {snapshot.name} asked for "
                                                 f"by n8n delivery {trigger.delivery_id}"))
    return tuple(actions)


def decide_agent(snapshot: AgentSnapshot, applied: AppliedObject,
                 policy: Policy | None = None) -> Plan:
    """The plan for one applied agent (pure)."""
    revision = snapshot.revision
    if snapshot.spec is None:
        return Plan("Unreadable", f"the applied document does not validate: "
                                  f"{snapshot.unreadable}", status="Stalled", revision=revision)
    spec = snapshot.spec
    for wanted, found in ((spec.code, snapshot.code), (spec.test, snapshot.test)):
        if wanted is not None and (found is None or found.text is None):
            why = found.missing if found is not None else "not read"
            return Plan("CodeNotFound", f"{wanted}: {why}", status="Stalled", revision=revision)
    digest = spec_hash(spec, snapshot.code, snapshot.test)
    ours = [v for v in snapshot.versions if v.spec_hash == digest]
    ready = [v for v in snapshot.versions if v.state == "READY"]
    running = f"; runs use v{ready[0].number}" if ready else "; no version can run yet"
    if not ours or ours[0].state not in ("READY", "FAILED"):
        return _build(snapshot, spec, digest, revision, running, policy)
    version = ours[0]
    newest = snapshot.versions[0].number
    if snapshot.rebuild_after is not None and newest <= snapshot.rebuild_after:
        return _build(snapshot, spec, digest, revision, running, policy, after=newest,
                      why="rebuilding on demand (p38 agents rebuild)")
    if version.state == "FAILED" and version.failure == "provider" \
            and snapshot.credential is not None \
            and snapshot.credential != version.failed_credential:
        return _build(snapshot, spec, digest, revision, running, policy, after=newest,
                      why=f"building again: v{version.number} failed on a key this "
                          "controller no longer uses")
    if version.state == "READY":
        actions = _close_issue(snapshot, version)
        return Plan("VersionReady", f"v{version.number} is READY ({version.origin}; "
                                    f"{version.rounds} fix round(s), ${version.usd:.4f})",
                    actions=actions, revision=revision, enqueue=_wake(snapshot, "VersionReady"))
    return Plan("VersionFailed", f"v{version.number} FAILED: {version.error}{running}",
                actions=_open_issue(snapshot, version), status="Stalled", revision=revision,
                enqueue=_wake(snapshot, "VersionFailed"))


def _wake(snapshot: AgentSnapshot, decision: str) -> tuple[str, ...]:
    """The schedules to look again when what they see of the agent changes (they say whether
    their ticks can fire)."""
    return snapshot.schedules if snapshot.shown != decision else ()


def _build(snapshot: AgentSnapshot, spec: AgentSpec, digest: str, revision: str | None,
           running: str, policy: Policy | None, *, after: int | None = None,
           why: str = "building a new version") -> Plan:
    """`after`: a new version after that one even when one of this hash exists."""
    common = {"agent": snapshot.key, "spec_hash": digest, "model": spec.model,
              "spec": spec.model_dump(mode="json", by_alias=True), "code_path": spec.code,
              "code": snapshot.code.text if snapshot.code else None,
              "test": snapshot.test.text if snapshot.test else None, "after": after}
    params: BuildVersion
    if spec.code is not None:
        params = BuildVersion(**common)
    else:
        rules = (policy.spec.agents if policy is not None else AgentsPolicy())
        params = GenerateVersion(**common, fix_rounds=rules.fix_rounds,
                                 usd_ceiling=rules.generation_usd)
    what = (f"validate {spec.code}" if spec.code is not None
            else f"have {spec.model} write the code for: {spec.description[:200]}")
    again = "" if after is None else f":after-v{after}"
    action = params.action(f"agent-build:{snapshot.key}:{digest[:16]}{again}",
                           description=f"new version of {snapshot.name}: {what}")
    return Plan("Building", f"{why}{running}", actions=(action,),
                requeue_after=0.0, status="Reconciling", revision=revision)


def _issue_target(snapshot: AgentSnapshot) -> tuple[str, int] | None:
    if snapshot.source == "local" or snapshot.installation_id is None:
        return None
    return snapshot.source, snapshot.installation_id


def _open_issue(snapshot: AgentSnapshot, version: VersionInfo) -> tuple[Action, ...]:
    target = _issue_target(snapshot)
    if target is None:
        return ()
    repo, installation = target
    body = (f"{ISSUE_MARKER.format(name=snapshot.name)}\n"
            f"Version {version.number} of agent `{snapshot.name}` failed and cannot run.\n\n"
            f"**Why:** {version.error}\n\n"
            f"Its report: `GET /api/agents/{snapshot.name}/versions/{version.number}`. "
            "This issue is closed when a later version is READY.")
    params = reporting.IssueUpsert(repo=repo, installation_id=installation,
                                   marker=ISSUE_MARKER.format(name=snapshot.name),
                                   title=f"p38: agent {snapshot.name} failed to build",
                                   body=body, labels=[reporting.ISSUE_LABEL])
    return (params.action(f"agent-issue:{snapshot.key}:v{version.number}",
                          description=f"report that v{version.number} of {snapshot.name} "
                                      "failed"),)


def _close_issue(snapshot: AgentSnapshot, version: VersionInfo) -> tuple[Action, ...]:
    target = _issue_target(snapshot)
    if target is None or not any(v.state == "FAILED" and v.number < version.number
                                 for v in snapshot.versions):
        return ()
    repo, installation = target
    params = reporting.IssueClose(repo=repo, installation_id=installation,
                                  marker=ISSUE_MARKER.format(name=snapshot.name),
                                  comment=f"Version {version.number} is READY.")
    return (params.action(f"agent-issue-close:{snapshot.key}:v{version.number}",
                          description=f"close the failure issue of {snapshot.name}"),)
