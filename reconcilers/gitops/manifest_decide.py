"""What a manifest source (`manifests:local`, `manifests:owner/repo`) decides, pure: the
snapshot it decides on, its state machine (Ready, Invalid, Blocked) and `decide`.

`decide` is the one code path behind both `p38 plan` and the live loop: create / update (with
the changed fields) / delete actions for what changed, the revision recorded, and for a GitHub
source a `p38/reconcile` check run on the commit and the invalid-manifests issue. Guard: an
invalid or empty manifest set prunes nothing. Every object whose applied state this reconcile
changes has its own key enqueued (`agent:owner/repo/name`, `agent:local/name`, ...) in the
transaction that records the source's new state; an object recorded differently from what is
desired is enqueued too, so a crash between an apply and that record never loses the
follow-up, and so is an applied object that has no status yet (applied by an earlier release,
or its key lost).

No I/O and no clock: what is read is read by the reconciler's `observe` (`manifests.py`) or by
`p38 plan`, and handed in as a `ManifestSnapshot`. Nothing here knows about deliveries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.manifests.loader import ManifestSet, load_texts
from controller.reconcile.fsm import StateMachine
from controller.reconcile.plan import Action, Plan, Resource, Transition
from controller.reconcile.reads import Where
from controller.reconcile.reconciler import object_key
from reconcilers.gitops import reporting
from reconcilers.gitops.diff import Change, ObjectState, counts, diff
from reconcilers.gitops.manifest_actions import APPLY, APPLY_KINDS, RecordRevision

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy

LOCAL_SOURCE = "local"
OBJECT_KINDS = frozenset({"agent", "schedule", "service", "policy"})

MACHINE = StateMachine.declare(
    "manifests", initial=["Ready", "Invalid", "Blocked"],
    table={"Ready": ["Invalid", "Blocked"], "Invalid": ["Ready", "Blocked"],
           "Blocked": ["Ready", "Invalid"]})


@dataclass(frozen=True)
class ManifestSnapshot:
    source: str
    revision: str | None
    desired: tuple[ObjectState, ...]
    problems: tuple[str, ...]  # `path:line:col: message`; any problem means apply nothing
    applied: tuple[ObjectState, ...]
    tree: str | None = None
    unchanged: bool = False  # the folder's tree is the one recorded and fully applied
    blocked: str | None = None  # why the source cannot be read (credentials missing)
    current: Resource | None = None
    where: Where | None = None  # a GitHub source: where to report
    unreconciled: tuple[str, ...] = ()  # keys of applied objects that have no status yet


def parse(files: Mapping[str, str], unreadable: Sequence[str] = ()
          ) -> tuple[tuple[ObjectState, ...], tuple[str, ...]]:
    """Desired objects and problems from file texts (pure; ruamel + pydantic)."""
    loaded = load_texts(files)
    return desired_states(loaded), tuple(unreadable) + tuple(str(p) for p in loaded.problems)


def desired_states(manifests: ManifestSet) -> tuple[ObjectState, ...]:
    """The objects a loaded manifest set desires, as the diff compares them."""
    return tuple(ObjectState(o.kind, o.name, o.content_hash, o.document())
                 for o in manifests.objects)


def applied_states(rows: Iterable[Mapping[str, Any]]) -> tuple[ObjectState, ...]:
    """The objects applied, from stored `applied_objects` rows."""
    return tuple(ObjectState(r["kind"], r["name"], r["content_hash"], r["document"])
                 for r in rows)


def snapshot_of(manifests: ManifestSet, applied: Iterable[Mapping[str, Any]], *, source: str,
                revision: str | None = None) -> ManifestSnapshot:
    """The snapshot `p38 plan` decides on: a loaded folder against stored applied rows."""
    return ManifestSnapshot(source=source, revision=revision,
                            desired=desired_states(manifests),
                            problems=tuple(str(p) for p in manifests.problems),
                            applied=applied_states(applied))


def object_hashes(states: Sequence[ObjectState]) -> dict[str, str]:
    """`Kind/name` -> content hash: what a source's state records as applied."""
    return {o.ident: o.content_hash for o in states}


def _apply_actions(snapshot: ManifestSnapshot, changes: Sequence[Change],
                   generation: int) -> list[Action]:
    desired = {(o.kind, o.name): o for o in snapshot.desired}
    actions = []
    for change in changes:
        obj = desired.get((change.kind, change.name))
        params = APPLY[change.op](
            source=snapshot.source, kind=change.kind, name=change.name,
            fields=list(change.fields), revision=snapshot.revision,
            content_hash=obj.content_hash if obj else None,
            document=dict(obj.document) if obj else None)
        # The source's state version makes keys unique per applied revision (so deleting and
        # re-creating the same document applies again) yet stable across retries.
        key = (f"{snapshot.source}@{generation}:{change.op}:{change.kind}/{change.name}:"
               f"{obj.content_hash if obj else 'deleted'}")
        actions.append(params.action(key, description=str(change)))
    return actions


def _follow_ups(snapshot: ManifestSnapshot, changes: Sequence[Change],
                recorded: Mapping[str, str]) -> tuple[str, ...]:
    """Keys of the objects this reconcile changes, and of those recorded at the last settle
    with another content than desired (an apply whose settle was lost to a crash)."""
    desired = object_hashes(snapshot.desired)
    idents = {f"{c.kind}/{c.name}" for c in changes}
    idents |= {i for i in set(desired) | set(recorded) if desired.get(i) != recorded.get(i)}
    keys = {object_key(kind, snapshot.source, name)
            for kind, _, name in (i.partition("/") for i in idents)
            if kind.lower() in OBJECT_KINDS}
    return tuple(sorted(keys | set(snapshot.unreconciled)))


def object_changes(plan: Plan) -> list[Action]:
    """The plan's actions that change an object (what `p38 plan` shows)."""
    return [a for a in plan.actions if a.kind in APPLY_KINDS]


def decide(snapshot: ManifestSnapshot, policy: Policy | None = None) -> Plan:
    """The plan for one manifest source (pure)."""
    current = snapshot.current
    data: Mapping[str, Any] = current.data if current else {}
    state = current.state if current else None
    where = snapshot.where
    revision = snapshot.revision or ""
    at = f" (at {reporting.short(revision)})" if revision else ""
    if snapshot.unchanged:
        return Plan("UpToDate", f"manifests unchanged{at}", revision=revision or None,
                    enqueue=snapshot.unreconciled)
    if snapshot.blocked is not None:
        # Recorded, so the periodic resync retries it once the credentials are configured.
        if state == "Blocked" and data.get("reason") == snapshot.blocked:
            return Plan("Blocked", snapshot.blocked, status="Blocked",
                        enqueue=snapshot.unreconciled)
        return Plan("Blocked", snapshot.blocked, status="Blocked", transition=_transition(
            snapshot, "Blocked", {**data, "reason": snapshot.blocked}, snapshot.blocked),
            enqueue=snapshot.unreconciled)

    problems = snapshot.problems
    if not problems and not snapshot.desired and snapshot.applied:
        problems = (f"{snapshot.source}: no manifests found; refusing to prune the "
                    f"{len(snapshot.applied)} applied object(s) (an empty set prunes "
                    "nothing)",)
    if problems:
        if state == "Invalid" and data.get("tree") == snapshot.tree:
            return Plan("StillInvalid", _invalid_message(problems, data.get("revision"), at),
                        status="Stalled", revision=revision or None,
                        enqueue=snapshot.unreconciled)
        actions: list[Action] = [_revision(snapshot, "invalid", problems=problems)]
        if where is not None and where.installation_id is not None:
            summary = reporting.problems_markdown(problems)
            actions.append(reporting.check_run(
                snapshot.source, where.installation_id, revision,
                name=reporting.RECONCILE_CHECK, conclusion="failure",
                title=f"{len(problems)} problem(s) in the manifests", summary=summary,
                key=f"github:{snapshot.source}:{revision}:check:{reporting.RECONCILE_CHECK}"))
            actions.append(reporting.failure_issue(snapshot.source, where.installation_id,
                                                   revision, problems))
        return Plan("Invalid", _invalid_message(problems, data.get("revision"), at),
                    actions=tuple(actions),
                    status="Stalled", revision=revision or None, enqueue=snapshot.unreconciled,
                    transition=_transition(snapshot, "Invalid", {
                        **data, "tree": snapshot.tree, "failed_revision": revision,
                        "problems": list(problems[:reporting.SHOWN_PROBLEMS]),
                        "issue": len(actions) > 1 or bool(data.get("issue"))},
                        f"{len(problems)} problem(s) at {reporting.short(revision)}"))

    changes = diff(snapshot.desired, snapshot.applied, prune=True)
    ready = {"tree": snapshot.tree, "revision": revision,
             "objects": object_hashes(snapshot.desired), "problems": [], "issue": False,
             **_where_data(where)}
    recorded: Mapping[str, str] = data.get("objects") or {}
    follow_ups = _follow_ups(snapshot, changes, recorded)
    if not changes and not follow_ups and state == "Ready" \
            and data.get("tree") == snapshot.tree:
        return Plan("UpToDate", f"every object is as applied{at}", revision=revision or None)
    generation = current.version if current else 0
    # What this revision changed, to report: what is still to apply, or, when that was applied
    # by a reconcile whose plan was not carried out (held reporting, a crash before the
    # settle), what differs from the state recorded at the last one that was.
    changed = changes or (_recorded_changes(snapshot, recorded) if current else [])
    actions = _apply_actions(snapshot, changes, generation)
    actions.append(_revision(snapshot, "applied", changes=[str(c) for c in changed]))
    if where is not None and where.installation_id is not None:
        actions = _reported(snapshot, where.installation_id, changed, actions,
                            close_issue=bool(data.get("issue")))
    transition = None if current and current.state == "Ready" and dict(data) == ready else \
        _transition(snapshot, "Ready", ready, counts(changed) if changed else "no changes")
    return Plan("Applied" if changed else "UpToDate",
                f"{counts(changed)}{at}" if changed else f"no object changed{at}",
                actions=tuple(actions), transition=transition, enqueue=follow_ups,
                revision=revision or None)


SHOWN_IN_MESSAGE = 3


def _invalid_message(problems: Sequence[str], good: str | None, at: str) -> str:
    """What an invalid revision means, with its first problems and the revision that stays."""
    stays = (f"{reporting.short(good)} stays applied" if good
             else "nothing was ever applied from this source")
    shown = "; ".join(problems[:SHOWN_IN_MESSAGE])
    more = f" (and {len(problems) - SHOWN_IN_MESSAGE} more)" \
        if len(problems) > SHOWN_IN_MESSAGE else ""
    return (f"{len(problems)} problem(s){at}, nothing applied from it; {stays}. "
            f"{shown}{more}")


def _recorded_changes(snapshot: ManifestSnapshot, recorded: Mapping[str, str]) -> list[Change]:
    """Changes against the content hashes recorded at the last carried-out reconcile (no
    field names: the documents they were applied from are gone)."""
    desired = object_hashes(snapshot.desired)
    changes = []
    for ident in sorted(set(desired) | set(recorded)):
        if desired.get(ident) == recorded.get(ident):
            continue
        op = "create" if ident not in recorded else "delete" if ident not in desired \
            else "update"
        kind, _, name = ident.partition("/")
        changes.append(Change(op, kind, name))
    return sorted(changes, key=lambda c: (c.kind, c.name))


def _reported(snapshot: ManifestSnapshot, installation_id: int, changes: Sequence[Change],
              applying: list[Action], *, close_issue: bool) -> list[Action]:
    """The apply actions inside an in-progress / completed `p38/reconcile` check run."""
    repo, revision = snapshot.source, snapshot.revision or ""
    base = f"github:{repo}:{revision}:check:{reporting.RECONCILE_CHECK}"
    summary = reporting.changes_markdown(changes)
    title = counts(changes) if changes else "no changes"
    actions: list[Action] = []
    start_key = None
    if applying:
        start_key = f"{base}:start"
        actions.append(reporting.check_run(repo, installation_id, revision,
                                           name=reporting.RECONCILE_CHECK, key=start_key,
                                           conclusion=None, title=f"applying: {title}",
                                           summary=summary))
    actions += applying
    actions.append(reporting.check_run(repo, installation_id, revision,
                                       name=reporting.RECONCILE_CHECK, key=f"{base}:done",
                                       conclusion="success", title=f"applied: {title}",
                                       summary=summary, start_key=start_key))
    if close_issue:
        actions.append(reporting.resolve_issue(repo, installation_id, revision))
    return actions


def _revision(snapshot: ManifestSnapshot, status: str, *, changes: Sequence[str] = (),
              problems: Sequence[str] = ()) -> Action:
    """Record the revision acted on (the source's history: /api/revisions)."""
    revision = snapshot.revision or ""
    # The source's state version makes a return to an earlier tree (a revert) a record of its
    # own, yet keeps the key stable across retries of this reconcile.
    generation = snapshot.current.version if snapshot.current else 0
    params = RecordRevision(source=snapshot.source, revision=revision, tree=snapshot.tree,
                            status=status, objects=len(snapshot.desired), changes=list(changes),
                            problems=list(problems[:reporting.SHOWN_PROBLEMS]),
                            generation=generation)
    return params.action(f"{snapshot.source}@{generation}:revision:{revision}:"
                         f"{snapshot.tree}:{status}",
                         description=f"record revision {reporting.short(revision)} of "
                                     f"{snapshot.source} as {status}")


def _where_data(where: Where | None) -> dict[str, Any]:
    if where is None:
        return {}
    return {"installation_id": where.installation_id, "branch": where.branch}


def _transition(snapshot: ManifestSnapshot, to: str, data: Mapping[str, Any],
                reason: str) -> Transition:
    current = snapshot.current
    MACHINE.check(current.state if current else None, to)
    return Transition(from_state=current.state if current else None, to_state=to,
                      data=dict(data), expected_version=current.version if current else None,
                      reason=reason)
