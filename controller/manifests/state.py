"""From loaded manifests and stored rows to the snapshot the pure `decide` plans on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.manifests.loader import ManifestSet
from reconcilers.manifests import ManifestSnapshot, ObjectState


def desired_states(manifests: ManifestSet) -> tuple[ObjectState, ...]:
    return tuple(ObjectState(o.kind, o.name, o.content_hash, o.document())
                 for o in manifests.objects)


def applied_states(rows: Iterable[Mapping[str, Any]]) -> tuple[ObjectState, ...]:
    return tuple(ObjectState(r["kind"], r["name"], r["content_hash"], r["document"])
                 for r in rows)


def snapshot(manifests: ManifestSet, applied: Iterable[Mapping[str, Any]], *, source: str,
             revision: str | None = None) -> ManifestSnapshot:
    return ManifestSnapshot(source=source, revision=revision,
                            desired=desired_states(manifests),
                            problems=tuple(str(p) for p in manifests.problems),
                            applied=applied_states(applied))
