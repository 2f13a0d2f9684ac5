"""A reconciler for tests: kind `probe`, scripted through plain attributes.

It is a real reconciler registered through the public registry; it lets tests hold a reconcile
open (gates), fail on purpose, or plan actions, and records what it saw.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

from controller.reconcile.context import ObserveContext
from controller.reconcile.fsm import StateMachine
from controller.reconcile.ids import key_name
from controller.reconcile.plan import Action, Plan, Resource, Transition
from controller.reconcile.policy import Policy
from controller.reconcile.reconciler import Reconciler, Watch


@dataclass(frozen=True)
class ProbeSnapshot:
    key: str
    current: Resource | None
    deliveries: tuple[int, ...]


@dataclass
class Probe(Reconciler):
    kind: ClassVar[str] = "probe"
    machine: ClassVar[StateMachine | None] = StateMachine.declare(
        "probe", initial=["seen"], table={"seen": ["seen"]})

    fail_with: BaseException | None = None
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    actions: list[Action] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    overlaps: list[str] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)
    on_observe: Any = None  # async callable(key), run after observe's reads
    enqueue: tuple[str, ...] = ()  # keys each plan enqueues
    follow_ups: Any = None  # callable(key) -> keys to enqueue, instead of `enqueue`
    owns: frozenset[str] = frozenset()  # what it may enqueue (the declaration is checked)
    watching: tuple[Watch, ...] = ()  # the deliveries it watches
    resync: bool = False  # whether the resync re-reads its objects
    deadline: float | None = None  # its own reconcile deadline (None: the settings')
    requeue_after: float | None = None
    policies: list[Policy] = field(default_factory=list)  # the policy each decide was given

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

    def watches(self) -> tuple[Watch, ...]:
        return self.watching

    def source(self, key: str) -> str | None:
        """`probe:SOURCE/NAME` belongs to SOURCE; `probe:NAME` to none."""
        source, slash, _ = key_name(key).rpartition("/")
        return source if slash else None

    def decide(self, snapshot: ProbeSnapshot, policy: Policy) -> Plan:
        self.policies.append(policy)
        current = snapshot.current
        count = int(current.data.get("count", 0)) + 1 if current else 1
        return Plan(
            "Probed", f"reconcile number {count}", actions=tuple(self.actions),
            transition=Transition(current.state if current else None, "seen", {"count": count},
                                  current.version if current else None, "probed"),
            enqueue=self.follow_ups(snapshot.key) if self.follow_ups else self.enqueue,
            requeue_after=self.requeue_after)
