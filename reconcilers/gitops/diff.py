"""The pure diff between desired and applied objects, and how a plan reads as text.

Shared by the manifest source reconciler (push -> apply), the pull request plan and
`p38 plan`. No I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
import re
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


# A field is secret when one of the words of its name (snake_case, kebab-case or camelCase)
# is one of these, as for hard-coded secrets in agent code: `token`, `apiKey`, `secretRef`,
# `db-password`. Everything below such a field is secret too (a Secret reference's parts).
# `tokens_per_run` is a limit, not a token: words are matched whole.
SECRET_WORDS = frozenset({"token", "secret", "secrets", "password", "passwd", "key", "apikey",
                          "credential", "credentials", "pem"})
REDACTED = "(redacted)"
ABSENT = "(absent)"


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def secret_path(path: str) -> bool:
    """Whether a dotted field path names a secret or lies below one."""
    return any(word in SECRET_WORDS for part in path.split(".") for word in _words(part))


class _Absent:
    """A field one side does not have."""


def _changed(old: Any, new: Any, path: str, secret: bool
             ) -> Iterable[tuple[str, Any, Any, bool]]:
    """(path, old value, new value, whether secret) of each changed field, as
    `changed_fields` walks them (values kept, so a key with a dot in it is no trouble)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            below = f"{path}.{key}" if path else str(key)
            hidden = secret or secret_path(str(key))
            if key not in old or key not in new:
                yield below, old.get(key, _Absent), new.get(key, _Absent), hidden
            else:
                yield from _changed(old[key], new[key], below, hidden)
    elif old != new:
        yield path or "(document)", old, new, secret


def _shown(value: Any, secret: bool) -> str:
    if value is _Absent:
        return ABSENT
    if secret:
        return REDACTED
    return json.dumps(_masked(value), ensure_ascii=False, sort_keys=True, default=str)


def _masked(value: Any) -> Any:
    """A value with the secrets inside it (a whole new section) replaced."""
    if isinstance(value, Mapping):
        return {k: REDACTED if secret_path(str(k)) else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def value_changes(old: Any, new: Any) -> list[str]:
    """`path: old -> new` for every changed field, values as JSON; a secret's values are
    replaced by `(redacted)` (that it changed is still shown)."""
    return [f"{path}: {_shown(before, secret)} -> {_shown(after, secret)}"
            for path, before, after, secret in _changed(old, new, "", False)]
