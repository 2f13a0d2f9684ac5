"""A reconciler for tests: kind `probe`, scripted through plain attributes.

It is a real reconciler registered through the public registry; it lets tests hold a reconcile
open (gates), fail on purpose, or plan actions, and records what it saw.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

from controller.fsm import StateMachine
from controller.ids import key_name
from controller.policy import Policy
from reconcilers.base import Action, ObserveContext, Plan, Resource, Transition


@dataclass(frozen=True)
class ProbeSnapshot:
    key: str
    current: Resource | None
    deliveries: tuple[int, ...]


@dataclass
class Probe:
    kind: ClassVar[str] = "probe"
    machine: ClassVar[StateMachine] = StateMachine.declare(
        "probe", initial=["seen"], table={"seen": ["seen"]})

    fail_with: BaseException | None = None
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    actions: list[Action] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    overlaps: list[str] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)
    on_observe: Any = None  # async callable(key), run after observe's reads

    async def observe(self, ctx: ObserveContext, key: str) -> ProbeSnapshot:
        if key in self.active:
            self.overlaps.append(key)
        self.active.add(key)
        try:
            self.observed.append(key)
            self.entered.set()
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_with is not None:
                raise self.fail_with
            current = await ctx.resource(self.kind, key_name(key))
            recent = await ctx.recent_payloads(key, 50)
            if self.on_observe is not None:  # runs after the reads, before decide
                await self.on_observe(key)
            return ProbeSnapshot(key, current, tuple(p.delivery_id for p in recent))
        finally:
            self.active.discard(key)

    def decide(self, snapshot: ProbeSnapshot, policy: Policy) -> Plan:
        current = snapshot.current
        count = int(current.data.get("count", 0)) + 1 if current else 1
        return Plan(
            "Probed", f"reconcile number {count}", actions=tuple(self.actions),
            transition=Transition(current.state if current else None, "seen", {"count": count},
                                  current.version if current else None, "probed"))
