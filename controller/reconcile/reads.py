"""The reads providers offer to `observe`, as protocols with their `ReadsKey`.

A provider module implements one of these (structurally: it does not import this module's
protocols to do so) and registers its reads under the key's provider name. Reconcilers ask
`ctx.reads(GITHUB)`. A read used by one reconciler only may declare its protocol and key in
that reconciler's module instead. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from controller.reconcile.context import ReadsKey


@dataclass(frozen=True)
class Where:
    """Which revision of a source to read: the default branch head unless `commit` is set."""

    source: str  # `local` or `owner/repo`
    installation_id: int | None = None
    branch: str | None = None  # None: ask GitHub for the default branch
    commit: str | None = None


@dataclass(frozen=True)
class ManifestFiles:
    """The manifest files of a source at one revision.

    `revision` is the commit SHA (a content digest for a local folder) and `tree` the
    manifests folder's tree SHA (the same digest locally). `files` is None when `tree` equals
    the `known_tree` the caller passed (nothing was read); otherwise path -> text, with files
    that could not be read in `unreadable` as `path:1:1: message`.
    """

    revision: str
    tree: str
    files: Mapping[str, str] | None
    unreadable: tuple[str, ...] = ()
    blobs_fetched: int = 0


MAX_SOURCE_FILE_BYTES = 512 * 1024  # an agent's module larger than this is refused


@dataclass(frozen=True)
class SourceFile:
    """A repository file's text, or why there is none (`missing`: not found, too large, not
    UTF-8, outside the repository)."""

    path: str
    text: str | None
    missing: str | None = None


def safe_relative(path: str) -> bool:
    """A path that stays inside the repository: relative, no `..`, no empty part."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and "\\" not in path and \
        all(p not in ("", ".", "..") for p in parts)


class ManifestReads(Protocol):
    async def manifest_files(self, where: Where, *, known_tree: str | None) -> ManifestFiles:
        """A source's manifest files (GitHub: only blobs not seen before are downloaded)."""
        ...

    async def source_file(self, where: Where, path: str) -> SourceFile:
        """A file of the source's repository at `where` (an agent's `spec.code`), by its path
        from the repository root (for a local folder: the folder's parent)."""
        ...


class GitHubReads(ManifestReads, Protocol):
    async def pull_touches(self, repo: str, number: int, *, installation_id: int) -> bool:
        """Whether the pull request changes a file under the manifests folder."""
        ...

    async def pull_request(self, repo: str, number: int, *,
                           installation_id: int) -> Mapping[str, Any]:
        """The pull request as GitHub has it now (GET /repos/{owner}/{repo}/pulls/{n})."""
        ...

    async def app_deliveries(self) -> list[Mapping[str, Any]]:
        """The App webhook's recent deliveries, newest first (GET /app/hook/deliveries)."""
        ...

    async def permission(self, repo: str, login: str, *, installation_id: int) -> str:
        """`login`'s role on the repository (admin, maintain, write, triage, read, none),
        remembered for a minute."""
        ...


GITHUB: ReadsKey[GitHubReads] = ReadsKey("github")
LOCAL: ReadsKey[ManifestReads] = ReadsKey("local")
