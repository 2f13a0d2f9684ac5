"""Declared state machines: a transition table per kind, checked before anything is persisted.

A `StateMachine` is data (states, allowed transitions, initial states). `check` is pure and
raises `InvalidTransition`; persistence (with a version for optimistic concurrency) is in
`controller.engine.ooda` through the store. A job's record (a `/claude` task, an agent version,
a run) moves only through `controller.providers.lifecycle.move`, whose conditional UPDATE
allows exactly `sources(target)`. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from controller.reconcile.errors import InvalidTransition


@dataclass(frozen=True)
class StateMachine:
    """Allowed `(from, to)` pairs; `initial` are the states a new object may start in."""

    name: str
    initial: frozenset[str]
    transitions: frozenset[tuple[str, str]]
    states: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        states = set(self.initial)
        for src, dst in self.transitions:
            states.update((src, dst))
        object.__setattr__(self, "states", frozenset(states))

    @classmethod
    def declare(cls, name: str, *, initial: Iterable[str],
                table: dict[str, Iterable[str]]) -> StateMachine:
        """Build from `{from_state: [to_state, ...]}`."""
        pairs = frozenset((src, dst) for src, targets in table.items() for dst in targets)
        return cls(name, frozenset(initial), pairs)

    def allows(self, current: str | None, target: str) -> bool:
        if current is None:
            return target in self.initial
        return current == target or (current, target) in self.transitions

    def sources(self, target: str) -> frozenset[str]:
        """The states a move to `target` may start from: declared pairs only (staying in a
        state is a move only where the table says so, e.g. a version's next round)."""
        return frozenset(src for src, dst in self.transitions if dst == target)

    @property
    def terminal(self) -> frozenset[str]:
        """The states with no way out: an object in one never changes again."""
        return self.states - {src for src, _ in self.transitions}

    def check(self, current: str | None, target: str) -> None:
        """Raise `InvalidTransition` unless `current -> target` is declared."""
        if target not in self.states:
            raise InvalidTransition(f"{self.name}: unknown state {target!r}")
        if not self.allows(current, target):
            start = "(new)" if current is None else current
            raise InvalidTransition(f"{self.name}: {start} -> {target} is not allowed")
