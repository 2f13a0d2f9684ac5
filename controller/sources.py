"""Reading manifest files: a local folder, or a GitHub repository at a revision.

GitHub: the commit's root tree, then one tree per folder down to the manifests folder (small
answers whatever the size of the repository), and when that folder's tree SHA is not the one
the caller already knows, its recursive listing and only the blobs never fetched before
(blobs are content-addressed, kept in `manifest_blobs`). Local: the folder's files and a
digest of their paths and contents. Reads only, apart from that blob cache; never writes to
GitHub.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from controller.clients.github import GitHubApp
from controller.errors import TerminalError
from controller.manifests.loader import manifest_files
from controller.store import Store
from reconcilers.base import ManifestFiles, Where

MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_BLOB_BYTES = 1024 * 1024  # a manifest larger than 1 MiB is refused, not fetched


def is_manifest(path: str, folder: str) -> bool:
    return path.startswith(folder) and path.endswith(MANIFEST_SUFFIXES)


class GitHubManifests:
    def __init__(self, github: GitHubApp, store: Store, *, folder: str) -> None:
        self._github = github
        self._store = store
        self.folder = folder  # "manifests/" (always ends with a slash)

    async def read(self, where: Where, *, known_tree: str | None) -> ManifestFiles:
        repo, installation = where.source, where.installation_id
        if installation is None:
            raise TerminalError(f"{repo}: no GitHub App installation is known for this "
                                "repository (install the App on it)")
        if where.commit is not None:
            revision = where.commit
            root = await self._github.commit_tree(repo, revision, installation_id=installation)
        else:
            branch = where.branch
            if branch is None:
                info = await self._github.repository(repo, installation_id=installation)
                branch = str(info["default_branch"])
            revision, root = await self._github.branch_revision(repo, branch,
                                                                installation_id=installation)
        folder_tree = await self._folder_tree(repo, root, installation)
        if folder_tree is None:  # no manifests folder at this revision
            return ManifestFiles(revision=revision, tree="", files={})
        if folder_tree == known_tree:
            return ManifestFiles(revision=revision, tree=folder_tree, files=None)
        listing = await self._github.tree(repo, folder_tree, installation_id=installation)
        if listing.get("truncated"):
            raise TerminalError(f"{repo}: the {self.folder} tree is too large for one listing")
        entries = [e for e in listing["tree"] if e.get("type") == "blob"
                   and is_manifest(self.folder + e["path"], self.folder)]
        files, unreadable, fetched = await self._contents(repo, installation, entries)
        return ManifestFiles(revision=revision, tree=folder_tree, files=files,
                             unreadable=tuple(unreadable), blobs_fetched=fetched)

    async def _folder_tree(self, repo: str, root: str, installation: int) -> str | None:
        sha = root
        for part in self.folder.strip("/").split("/"):
            listing = await self._github.tree(repo, sha, installation_id=installation,
                                              recursive=False)
            found = [e for e in listing["tree"] if e.get("path") == part
                     and e.get("type") == "tree"]
            if not found:
                return None
            sha = str(found[0]["sha"])
        return sha

    async def _contents(self, repo: str, installation: int, entries: list[dict[str, Any]]
                        ) -> tuple[dict[str, str], list[str], int]:
        shas = sorted({str(e["sha"]) for e in entries})
        cached = {r["sha"]: r["content"] for r in await self._store.fetch("manifest_blobs_get",
                                                                          shas)}
        missing = [e for e in entries if e["sha"] not in cached]
        wanted = [e for e in missing if int(e.get("size") or 0) <= MAX_BLOB_BYTES]
        unreadable = [f"{self.folder}{e['path']}:1:1: larger than {MAX_BLOB_BYTES} bytes; "
                      "not read" for e in missing if e not in wanted]
        new: dict[str, str] = {}
        for sha in sorted({str(e["sha"]) for e in wanted}):
            data = await self._github.blob(repo, sha, installation_id=installation)
            try:
                new[sha] = data.decode("utf-8")
            except UnicodeDecodeError:
                unreadable.extend(f"{self.folder}{e['path']}:1:1: not UTF-8 text"
                                  for e in wanted if e["sha"] == sha)
        if new:
            await self._store.execute("manifest_blobs_put", list(new), list(new.values()))
        cached.update(new)
        files = {self.folder + str(e["path"]): cached[e["sha"]] for e in entries
                 if e["sha"] in cached}
        return files, unreadable, len(new)

    async def pull_touches(self, repo: str, number: int, *, installation_id: int) -> bool:
        files = await self._github.pull_files(repo, number, installation_id=installation_id)
        return any(is_manifest(str(f.get(key) or ""), self.folder)
                   for f in files for key in ("filename", "previous_filename"))


def local_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every manifest file: cheap to compare, to notice changes."""
    found = []
    for path in manifest_files(folder) if folder.is_dir() else []:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def _read_local(folder: Path, known_tree: str | None) -> ManifestFiles:
    files: dict[str, str] = {}
    unreadable: list[str] = []
    digest = hashlib.sha256()
    if not folder.is_dir():
        unreadable.append(f"{folder}:1:1: not a directory")
    for path in manifest_files(folder) if folder.is_dir() else []:
        try:
            data = path.read_bytes()
            files[str(path)] = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            unreadable.append(f"{path}:1:1: cannot read: {exc}")
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + data + b"\0")
    tree = digest.hexdigest()
    if tree == known_tree and not unreadable:
        return ManifestFiles(revision=tree, tree=tree, files=None)
    return ManifestFiles(revision=tree, tree=tree, files=files, unreadable=tuple(unreadable))


async def read_local(folder: Path, *, known_tree: str | None) -> ManifestFiles:
    return await asyncio.to_thread(_read_local, folder, known_tree)
