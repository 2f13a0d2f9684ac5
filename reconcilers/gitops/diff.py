"""The pure diff between desired and applied objects, and how a plan reads as text.

Shared by the manifest source reconciler (push -> apply), the pull request plan and
`p38 plan`. No I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ObjectState:
    """One object as desired or as applied: its identity, hash and normalised document."""

    kind: str
    name: str
    content_hash: str
    document: Mapping[str, Any] = field(compare=False)

    @property
    def ident(self) -> str:
        return f"{self.kind}/{self.name}"


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


def counts(changes: Iterable[Change]) -> str:
    changes = list(changes)
    n = {op: sum(c.op == op for c in changes) for op in ("create", "update", "delete")}
    return f"{n['create']} to create, {n['update']} to update, {n['delete']} to delete"


def digest(objects: Iterable[ObjectState]) -> str:
    """A short digest of a set of objects' identities and hashes."""
    h = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: (o.kind, o.name)):
        h.update(f"{obj.kind}/{obj.name}={obj.content_hash}\n".encode())
    return h.hexdigest()[:16]
