"""Where the gate's policy comes from: the environment's switches and the Policy manifest
applied from each source, read from the store at every reconcile (one small query), so an
applied killswitch holds the very next action.

A stored Policy document that no longer validates (written by a newer release, say) is left
out with a warning rather than stopping every reconcile. Reads only.
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError

from controller.manifests.models import PolicySpec
from controller.reconcile.policy import Policies, Policy
from controller.store import Store

log = structlog.get_logger("p38.policies")


class PolicySource:
    def __init__(self, store: Store, base: Policy) -> None:
        self._store = store
        self.base = base

    async def current(self) -> Policies:
        manifests: dict[str, tuple[str, PolicySpec]] = {}
        for row in await self._store.fetch("applied_policies"):
            document: dict[str, Any] = row["document"] or {}
            try:
                spec = PolicySpec.model_validate(document.get("spec") or {})
            except ValidationError as exc:
                log.warning("policy_unreadable", source=row["source"], name=row["name"],
                            error=str(exc).splitlines()[0])
                continue
            manifests[row["source"]] = (row["name"], spec)
        return Policies(self.base, manifests)
