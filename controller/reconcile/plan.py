"""What a reconcile decides, as plain frozen data: actions (with typed parameters), the state
transition, the keys it enqueues, and the status people see.

Shared by the reconcilers that build plans, the engine that gates and records them and the
providers whose runners execute the actions. Imports no I/O library; no clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from controller.reconcile.authz import Authority

Status = Literal["Ready", "Reconciling", "Waiting", "Stalled", "Blocked"]
"""The one status every object shows: Ready (the world matches), Reconciling (working on it, or
retrying after an error), Waiting (for something outside, with a requeue time), Stalled (gave
up or cannot proceed until a person acts), Blocked (held: approval, killswitch, dry-run,
missing credentials)."""

STATUSES: tuple[Status, ...] = ("Ready", "Reconciling", "Waiting", "Stalled", "Blocked")


@dataclass(frozen=True)
class Action:
    """One side effect, named by an idempotency key that is stable across retries."""

    kind: str
    params: Mapping[str, Any]
    idempotency_key: str
    description: str = ""
    needs_approval: bool = False
    needs: str | None = None  # the provider whose credentials it uses (None: internal)
    authority: Authority | None = None  # planned on someone's behalf: the gate checks them
    answer: bool = False  # `/claude resume`'s answer: no killswitch holds it
    job: str | None = None  # long work: run by that kind's job workers, not in this reconcile


ActionRunner = Callable[[Action], Awaitable[Mapping[str, Any] | None]]
"""Executes one kind of action: the action in, a JSON-able result out (recorded with it)."""


@dataclass(frozen=True)
class Batched:
    """A runner that can also run many actions of its kind at once (one write for all, as
    the store's upserts): the executor hands `many` each run of consecutive allowed actions
    of the kind, and records them together. `many` answers one result per action, in order,
    or raises for all of them."""

    one: ActionRunner
    many: Callable[[Sequence[Action]], Awaitable[Sequence[Mapping[str, Any] | None]]]

    async def __call__(self, action: Action) -> Mapping[str, Any] | None:
        return await self.one(action)


class Params(BaseModel):
    """The typed parameters of one kind of action, shared by the reconciler that builds the
    action and the runner that executes it (stored as JSON with the action)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    action_kind: ClassVar[str]
    needs: ClassVar[str | None] = None  # the provider whose credentials it uses
    # Long work (a Claude session, a generation, a run): the kind of job workers that run it,
    # so that the reconcile that plans it only queues it and waits (controller/engine/jobs).
    job: ClassVar[str | None] = None

    def action(self, key: str, *, description: str, needs_approval: bool = False,
               authority: Authority | None = None, answer: bool = False) -> Action:
        return Action(self.action_kind, self.model_dump(mode="json"), key,
                      description=description, needs_approval=needs_approval, needs=self.needs,
                      authority=authority, answer=answer, job=self.job)

    @classmethod
    def of(cls, action: Action) -> Self:
        return cls.model_validate(dict(action.params))


P = TypeVar("P", bound=Params)


def runner(params: type[P], run: Callable[[P, Action], Awaitable[Mapping[str, Any] | None]]
           ) -> dict[str, ActionRunner]:
    """`{kind: runner}` for a runner written against its typed parameters."""
    async def execute(action: Action) -> Mapping[str, Any] | None:
        return await run(params.of(action), action)

    return {params.action_kind: execute}


@dataclass(frozen=True)
class Resource:
    """An object's persisted state, with the version used for optimistic concurrency."""

    state: str
    version: int
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """Move the object from `from_state` (None: new) to `to_state`, expecting `version`."""

    from_state: str | None
    to_state: str
    data: Mapping[str, Any]
    expected_version: int | None
    reason: str


@dataclass(frozen=True)
class Plan:
    """What a reconcile decided: a CamelCase decision (the status reason), why (its message),
    and what to do about it.

    `enqueue`: keys to reconcile after this one, written in the transaction that settles it
    (kinds the reconciler declares in `owns`). `status`: what people see when the plan is
    carried out (the engine says Blocked when actions are held or dry-run, Waiting when
    `requeue_after` is set). `revision`: what was observed (a commit, a content hash).
    `forget`: the object is gone; its status is dropped and it is not resynced any more.
    `periodic`: `requeue_after` is the object's own rhythm (a schedule's next instant), not a
    wait on something: a Ready plan stays Ready instead of showing Waiting.
    """

    decision: str
    reason: str
    actions: tuple[Action, ...] = ()
    transition: Transition | None = None
    requeue_after: float | None = None
    enqueue: tuple[str, ...] = ()
    status: Status = "Ready"
    revision: str | None = None
    forget: bool = False
    periodic: bool = False
