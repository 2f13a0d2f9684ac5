"""Manifest sources (`manifests:SOURCE`): the diff between the manifests and what was applied.

`decide` is pure and is the one code path behind both `p38 plan` and the live loop: it turns a
snapshot (the desired objects with their content hashes, or the problems that made them
unloadable, and the applied objects) into a plan of create / update (with the changed fields) /
delete actions. Guard: an invalid or empty manifest set prunes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconcilers.base import Action, Plan

if TYPE_CHECKING:
    from controller.policy import Policy


@dataclass(frozen=True)
class ObjectState:
    """One object as desired or as applied: its identity, hash and normalised document."""

    kind: str
    name: str
    content_hash: str
    document: Mapping[str, Any] = field(compare=False)


@dataclass(frozen=True)
class ManifestSnapshot:
    source: str
    revision: str | None
    desired: tuple[ObjectState, ...]
    problems: tuple[str, ...]  # `path:line:col: message`; any problem means apply nothing
    applied: tuple[ObjectState, ...]


@dataclass(frozen=True)
class Change:
    op: str  # create | update | delete
    kind: str
    name: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.op]
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{sign} {self.kind}/{self.name}{detail}"


def changed_fields(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two documents."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        paths: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                paths.append(path)
            else:
                paths.extend(changed_fields(old[key], new[key], path))
        return paths
    return [] if old == new else [prefix or "(document)"]


def diff(desired: Sequence[ObjectState], applied: Sequence[ObjectState], *,
         prune: bool = True) -> list[Change]:
    """Create, update (changed fields) and delete, sorted by kind and name."""
    have = {(o.kind, o.name): o for o in applied}
    want = {(o.kind, o.name): o for o in desired}
    changes: list[Change] = []
    for ident, obj in want.items():
        old = have.get(ident)
        if old is None:
            changes.append(Change("create", *ident))
        elif old.content_hash != obj.content_hash:
            changes.append(Change("update", *ident,
                                  tuple(changed_fields(old.document, obj.document))))
    if prune:
        changes.extend(Change("delete", *ident) for ident in have if ident not in want)
    return sorted(changes, key=lambda c: (c.kind, c.name))


def decide(snapshot: ManifestSnapshot, policy: Policy | None = None) -> Plan:
    """The plan for one manifest source: an action per change, nothing when invalid."""
    if snapshot.problems:
        return Plan("Invalid", f"{len(snapshot.problems)} problem(s); nothing is applied and "
                               "the last good revision stays")
    prune = bool(snapshot.desired)
    changes = diff(snapshot.desired, snapshot.applied, prune=prune)
    desired = {(o.kind, o.name): o for o in snapshot.desired}
    actions = tuple(
        Action(
            kind=f"manifest.{change.op}",
            params={"source": snapshot.source, "kind": change.kind, "name": change.name,
                    "fields": list(change.fields), "revision": snapshot.revision,
                    "content_hash": desired[(change.kind, change.name)].content_hash
                    if change.op != "delete" else None},
            idempotency_key=(f"{snapshot.source}:{change.kind}/{change.name}:"
                             f"{desired[(change.kind, change.name)].content_hash}"
                             if change.op != "delete" else
                             f"{snapshot.source}:{change.kind}/{change.name}:delete:"
                             f"{snapshot.revision}"),
            description=str(change))
        for change in changes)
    if not changes:
        reason = "no manifests: nothing is pruned" if not prune else "up to date"
        return Plan("UpToDate", reason)
    counts = {op: sum(c.op == op for c in changes) for op in ("create", "update", "delete")}
    return Plan("Changes", f"{counts['create']} to create, {counts['update']} to update, "
                           f"{counts['delete']} to delete", actions=actions)
