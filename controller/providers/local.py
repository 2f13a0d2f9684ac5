"""The controller's own provider, `local`: the runners of the actions it carries out on its own
records (what is applied from each source, the revisions acted on) and the reads of a local
manifests folder (`p38 up`, `P38_MANIFESTS_DIR`).

Its runners are idempotent by construction (upserts keyed by source, kind and name; a revision
recorded once). Reads only from the folder; no network.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from controller.manifests.loader import manifest_files, not_a_folder
from controller.providers import Env, Provider
from controller.reconcile.errors import NotConfigured
from controller.reconcile.plan import Action, ActionRunner, Batched, runner
from controller.reconcile.reads import (
    MAX_SOURCE_FILE_BYTES,
    ManifestFiles,
    SourceFile,
    Where,
    safe_relative,
)
from controller.store import Store
from reconcilers.claude.command_intake import GrantApproval, SetKillswitch
from reconcilers.gitops.manifest_actions import (
    CreateObject,
    DeleteObject,
    RecordRevision,
    UpdateObject,
)

NAME = "local"


@contextlib.asynccontextmanager
async def bundle(env: Env) -> AsyncIterator[Provider]:
    folder = env.settings.manifests.directory
    yield Provider(NAME, runners=runners(env.store),
                   reads=LocalReads(folder) if folder is not None else None,
                   unavailable=None if folder is not None else
                   "no local manifests folder is configured (P38_MANIFESTS_DIR)")


def runners(store: Store) -> dict[str, ActionRunner]:
    async def apply(p: CreateObject, _action: Action) -> Mapping[str, Any]:
        await store.execute("applied_object_upsert", p.source, p.kind, p.name, p.content_hash,
                            p.document, p.revision)
        return {"applied": p.content_hash}

    async def delete(p: DeleteObject, _action: Action) -> Mapping[str, Any]:
        await store.execute("applied_object_delete", p.source, p.kind, p.name)
        return {"pruned": f"{p.kind}/{p.name}"}

    async def revision(p: RecordRevision, _action: Action) -> Mapping[str, Any]:
        await store.execute("manifest_revision_record", p.source, p.revision, p.tree,
                            p.status, p.objects, list(p.changes), list(p.problems),
                            p.generation)
        return {"recorded": p.revision}

    async def killswitch(p: SetKillswitch, _action: Action) -> Mapping[str, Any]:
        if p.on:
            await store.execute("killswitch_on", p.source, p.by)
            return {"killswitch": "on", "source": p.source}
        await store.execute("killswitch_off", p.source)
        held = [s["key"] for s in await store.fetch("statuses_held", p.source)]
        if held:  # look again now, not at the held recheck
            await store.execute("queue_enqueue", held)
        return {"killswitch": "off", "source": p.source, "released": len(held)}

    async def approve(p: GrantApproval, _action: Action) -> Mapping[str, Any]:
        await store.execute("approval_grant", p.idempotency_key, p.by)
        if p.key:
            await store.execute("queue_enqueue", [p.key])
        return {"approved": p.idempotency_key, "by": p.by}

    async def apply_many(actions: Sequence[Action]) -> list[Mapping[str, Any]]:
        objects = [CreateObject.model_validate(dict(a.params)) for a in actions]
        await store.execute(
            "applied_objects_upsert_many", [p.source for p in objects],
            [p.kind for p in objects], [p.name for p in objects],
            [p.content_hash for p in objects], [p.document for p in objects],
            [p.revision for p in objects])
        return [{"applied": p.content_hash} for p in objects]

    batched = {kind: Batched(one, apply_many) for kind, one in
               {**runner(CreateObject, apply), **runner(UpdateObject, apply)}.items()}
    return {**batched,
            **runner(DeleteObject, delete), **runner(RecordRevision, revision),
            **runner(SetKillswitch, killswitch), **runner(GrantApproval, approve)}


class LocalReads:
    """What `observe` may read from the local folder (`controller.reconcile.reads.LOCAL`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def manifest_files(self, where: Where, *, known_tree: str | None) -> ManifestFiles:
        if where.source != NAME:
            raise NotConfigured(f"{where.source} is not the local folder")
        return await asyncio.to_thread(_read_local, self.folder, known_tree)

    async def source_file(self, where: Where, path: str) -> SourceFile:
        if where.source != NAME:
            raise NotConfigured(f"{where.source} is not the local folder")
        return await asyncio.to_thread(_read_source_file, self.folder.parent, path)


def _read_source_file(root: Path, path: str) -> SourceFile:
    if not safe_relative(path):
        return SourceFile(path, None, "the path must stay inside the repository")
    target = root / path
    try:
        resolved = target.resolve()
        if not resolved.is_relative_to(root.resolve()):
            return SourceFile(path, None, "the path leaves the repository (a link)")
        if resolved.stat().st_size > MAX_SOURCE_FILE_BYTES:
            return SourceFile(path, None, f"larger than {MAX_SOURCE_FILE_BYTES} bytes")
        return SourceFile(path, resolved.read_text("utf-8"))
    except FileNotFoundError:
        return SourceFile(path, None, f"no file {path} in {root}")
    except (OSError, UnicodeDecodeError) as exc:
        return SourceFile(path, None, f"cannot read {path}: {exc}")


def local_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every manifest file: cheap to compare, to notice changes."""
    found = []
    paths, problems = manifest_files(folder) if folder.is_dir() else ([], [])
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((str(path), stat.st_mtime_ns, stat.st_size))
    found.extend((str(problem), 0, 0) for problem in problems)
    return tuple(found)


def code_signature(root: Path, paths: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of files a local agent is made of (`spec.code`, `spec.test`, paths
    from the folder's parent); a file that is missing counts as (path, 0, -1)."""
    found = []
    for path in paths:
        try:
            stat = (root / path).stat() if safe_relative(path) else None
        except OSError:
            stat = None
        found.append((path, stat.st_mtime_ns, stat.st_size) if stat else (path, 0, -1))
    return tuple(found)


def _read_local(folder: Path, known_tree: str | None) -> ManifestFiles:
    files: dict[str, str] = {}
    unreadable: list[str] = []
    digest = hashlib.sha256()
    paths, problems = manifest_files(folder) if folder.is_dir() else ([], [])
    unreadable.extend(str(problem) for problem in problems)
    if (why := not_a_folder(folder)) is not None:
        unreadable.append(f"{folder}:1:1: {why}")
    for path in paths:
        try:
            data = path.read_bytes()
            files[str(path)] = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            unreadable.append(f"{path}:1:1: cannot read: {exc}")
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + data + b"\0")
    for line in unreadable:  # another problem is another revision, recorded with its problems
        digest.update(b"\0unreadable\0" + line.encode("utf-8", "surrogateescape"))
    tree = digest.hexdigest()
    if tree == known_tree and not unreadable:
        return ManifestFiles(revision=tree, tree=tree, files=None)
    return ManifestFiles(revision=tree, tree=tree, files=files, unreadable=tuple(unreadable))


