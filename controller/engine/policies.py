"""Where the gate's policy comes from: the environment's switches and the Policy manifest
applied from each source and the killswitches `/claude stop` turned on.

They are read in one statement and kept with the policy epoch they were read at (migration
0025: bumped in the transaction of any change to them). A reconcile's claim returns the epoch
now, so the policies are read again only when it moved; just before a plan's actions run the
epoch is read again with the approvals, so a killswitch still holds the very next action.
A stored Policy document that no longer validates (written by a newer release, say) is left
out with a warning rather than stopping every reconcile. Reads only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
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
        self._kept: tuple[int, Policies] | None = None  # the last read, with its epoch

    async def current(self, epoch: int | None = None) -> tuple[int | None, Policies]:
        """The policies and the epoch they were read at. `epoch`: the epoch a claim saw; when
        the policies kept are of that epoch, no statement is sent."""
        kept = self._kept
        if epoch is not None and kept is not None and kept[0] == epoch:
            return kept
        row = await self._store.fetchrow("policies_current")
        assert row is not None
        manifests: dict[str, tuple[str, PolicySpec]] = {}
        for source, name, text in row["policies"]:
            document: dict[str, Any] = orjson.loads(text) if text else {}
            try:
                spec = PolicySpec.model_validate(document.get("spec") or {})
            except ValidationError as exc:
                log.warning("policy_unreadable", source=source, name=name,
                            error=str(exc).splitlines()[0])
                continue
            manifests[source] = (name, spec)
        switched = {source: f"{STOPPED_BY}{by_whom} in {source}"
                    for source, by_whom in row["killswitches"]}
        policies = Policies(self.base, manifests, switched)
        read_at: int | None = row["epoch"]
        if read_at is not None:
            self._kept = (read_at, policies)
        return read_at, policies

    async def approvals(self, keys: Sequence[str]) -> tuple[int | None, set[str]]:
        """The policy epoch now, and which of these action keys a person approved."""
        row: Any = await self._store.fetchrow("policy_epoch_approvals", list(keys))
        return row["epoch"], set(row["approved"])
