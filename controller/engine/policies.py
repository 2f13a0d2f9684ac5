"""Where the gate's policy comes from: the environment's switches and the Policy manifest
applied from each source and the killswitches `/claude stop` turned on, read from the store at
every reconcile (two small queries), so a killswitch holds the very next action.

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
from reconcilers.claude.command_intake import STOPPED_BY

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
        switched = {row["source"]: f"{STOPPED_BY}{row['by_whom']} in {row['source']}"
                    for row in await self._store.fetch("killswitches_all")}
        return Policies(self.base, manifests, switched)
