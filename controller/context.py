"""The read side offered to reconcilers' `observe`: persisted state, stored deliveries, and
manifest files (a local folder or GitHub).

Implements `reconcilers.base.ObserveContext` over the store and the GitHub client. Reads only
(the manifest blob cache aside); writes go through the executor and the worker's
end-of-reconcile transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import orjson

from controller.errors import NotConfigured
from controller.sources import GitHubManifests, read_local
from controller.store import Store
from reconcilers.base import AppliedObject, ManifestFiles, Resource, StoredPayload, Where


class StoreContext:
    def __init__(self, store: Store, *, github: GitHubManifests | None = None,
                 local_dir: Path | None = None) -> None:
        self._store = store
        self._github = github
        self._local_dir = local_dir

    async def resource(self, kind: str, name: str) -> Resource | None:
        row = await self._store.fetchrow("resource_get", kind, name)
        if row is None:
            return None
        return Resource(state=row["state"], version=row["version"], data=row["data"])

    async def recent_payloads(self, key: str, limit: int, *,
                              events: Collection[str] | None = None,
                              before: int | None = None) -> list[StoredPayload]:
        rows = await self._store.fetch("recent_payloads_for_key", key, limit,
                                       sorted(events) if events is not None else None, before)
        return [StoredPayload(delivery_id=r["id"], source=r["source"], event=r["event"],
                              action=r["action"], payload=orjson.loads(r["payload"]))
                for r in rows]

    async def applied_objects(self, source: str) -> list[AppliedObject]:
        rows = await self._store.fetch("applied_objects_of", source)
        return [AppliedObject(r["kind"], r["name"], r["content_hash"], r["document"])
                for r in rows]

    async def manifest_files(self, where: Where, *, known_tree: str | None) -> ManifestFiles:
        if where.source == "local":
            if self._local_dir is None:
                raise NotConfigured("no local manifests folder is configured "
                                    "(P38_MANIFESTS_DIR)")
            return await read_local(self._local_dir, known_tree=known_tree)
        return await self._github_source().read(where, known_tree=known_tree)

    async def pull_touches(self, repo: str, number: int, *, installation_id: int) -> bool:
        return await self._github_source().pull_touches(repo, number,
                                                        installation_id=installation_id)

    def _github_source(self) -> GitHubManifests:
        if self._github is None:
            raise NotConfigured("no GitHub App credentials (GITHUB_APP_ID, "
                                "GITHUB_APP_PRIVATE_KEY): the repository cannot be read")
        return self._github
