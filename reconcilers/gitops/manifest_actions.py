"""The actions a manifest source plans on the controller's own records, as typed parameters
shared by `reconcilers/gitops/manifest_decide.py`, which builds them, and the `local`
provider's runners (`controller/providers/local.py`), which carry them out: an object applied
(created or updated), an object pruned, a revision recorded. Pure data; no I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar

from controller.reconcile.plan import Params


class CreateObject(Params):
    """Record an object as applied from its source (its document and content hash)."""

    action_kind: ClassVar[str] = "manifest.create"
    source: str
    kind: str
    name: str
    fields: list[str] = []
    revision: str | None = None
    content_hash: str | None = None
    document: dict[str, Any] | None = None


class UpdateObject(CreateObject):
    action_kind: ClassVar[str] = "manifest.update"


class DeleteObject(CreateObject):
    """Prune an object no longer in its source."""

    action_kind: ClassVar[str] = "manifest.delete"


APPLY: dict[str, type[CreateObject]] = {"create": CreateObject, "update": UpdateObject,
                                        "delete": DeleteObject}


class RecordRevision(Params):
    """Record a revision of a source as applied (with its changes) or invalid, at the source's
    state version (`generation`): a return to an earlier tree is recorded again."""

    action_kind: ClassVar[str] = "manifest.revision"
    source: str
    revision: str
    tree: str | None = None
    status: str
    objects: int
    changes: list[str] = []
    problems: list[str] = []
    generation: int | None = None  # None: planned by a release before returns were recorded


APPLY_KINDS = frozenset(cls.action_kind for cls in APPLY.values())
