"""The desk: how a provider's runner has another action carried out on its behalf (an agent's
tool call), gated by the policy of its source and recorded by the executor like any other.

A protocol with the answer's shape; the engine implements it (`controller/engine/desk.py`).
No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from controller.reconcile.plan import Action


@dataclass(frozen=True)
class Performed:
    """`status`: succeeded, already_succeeded, dry_run, held or failed; `result` when run."""

    status: str
    reason: str
    result: Mapping[str, Any] | None = None


class Desk(Protocol):
    async def perform(self, action: Action, *, key: str, source: str | None) -> Performed:
        """Gate `action` under the policy of `source`, record it, and run it when allowed."""
        ...
