"""The one place a job's record changes state: a `/claude` task, an agent version, a run.

Each kind's lifecycle is declared as a `StateMachine` by its domain (`reconcilers/claude/
lifecycle.py`, `reconcilers/agents/lifecycles.py`) and moved here only, by `move`: one
conditional UPDATE per kind (`claude_task_move`, `agent_version_move`, `agent_run_move`) whose
allowed from-states are the machine's `sources(target)`, so the database applies the machine
atomically (no read-then-write race). A caller may narrow the from-states (`only_from`, e.g.
cancel only a run that has not started), never widen them. A move the machine does not allow,
or that finds the record elsewhere, changes nothing: it is logged (`job_move_refused`) and
returned as not moved. What goes with a move (a run's result, a version's code and figures, a
task's pull request, the state a run hands on) is written in the same statement, and what a
run starts with is returned by the move that starts it (`Moved.row`).

No other query sets the state of these tables (tests/store/test_lifecycle.py scans
queries.sql). Runs no reconciler and decides nothing: callers say where to go and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from controller.reconcile.errors import ConcurrentUpdate, InvalidTransition
from controller.reconcile.fsm import StateMachine
from controller.store import Queries
from reconcilers.agents.lifecycles import RUN_MACHINE, VERSION_MACHINE
from reconcilers.claude.lifecycle import TASK_MACHINE

log = structlog.get_logger("p38.lifecycle")


@dataclass(frozen=True)
class Lifecycle:
    """A job kind's machine and its move query. The query takes the record's identity
    (`ident`), then the target state, the allowed from-states, whether the target ends the
    lifecycle, then `fields` in this order (None: left as it is); it returns `moved` (the new
    state, NULL when refused) and `was` (the state before, NULL when there is no record)."""

    machine: StateMachine
    query: str
    ident: tuple[str, ...]
    fields: tuple[str, ...]


TASKS = Lifecycle(TASK_MACHINE, "claude_task_move", ("task",),
                  ("reason", "pull_number", "pull_url", "commit_sha"))
VERSIONS = Lifecycle(VERSION_MACHINE, "agent_version_move", ("agent", "number"),
                     ("code", "test", "rounds", "input_tokens", "output_tokens",
                      "cache_read_tokens", "cache_write_tokens", "usd", "report", "error",
                      "duration_ms"))
RUNS = Lifecycle(RUN_MACHINE, "agent_run_move", ("run",),
                 ("outcome", "result", "error", "stderr", "tool_calls", "tokens", "usd",
                  "isolation", "version", "interrupted", "max_interruptions", "handed_state"))


@dataclass(frozen=True)
class Moved:
    """What a move did: `was` is the state the record was in (None: no such record)."""

    kind: str
    ident: tuple[Any, ...]
    to: str
    was: str | None
    moved: bool
    row: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __bool__(self) -> bool:
        return self.moved

    def required(self) -> Moved:
        """This move, or `ConcurrentUpdate` when it was refused (the record changed under a
        runner that still held it: its next attempt finds what happened)."""
        if not self.moved:
            raise ConcurrentUpdate(f"{self.kind} {'/'.join(map(str, self.ident))}: "
                                   f"{self.was or '(none)'} -> {self.to} was refused")
        return self


def sources(machine: StateMachine, to: str, only_from: Iterable[str] | None = None,
            ) -> frozenset[str]:
    """The from-states a move to `to` is allowed from; `only_from` narrows them (a state the
    machine does not allow there raises `InvalidTransition`: a caller's mistake)."""
    if to not in machine.states:
        raise InvalidTransition(f"{machine.name}: unknown state {to!r}")
    allowed = machine.sources(to)
    if only_from is None:
        return allowed
    narrowed = frozenset(only_from)
    if not narrowed <= allowed:
        wrong = ", ".join(sorted(narrowed - allowed))
        raise InvalidTransition(f"{machine.name}: {wrong} -> {to} is not allowed")
    return narrowed


async def move(db: Queries, life: Lifecycle, ident: Sequence[Any], to: str, reason: str, *,
               only_from: Iterable[str] | None = None, **fields: Any) -> Moved:
    """Move one record to `to` for `reason`, only from the states its machine allows (or
    `only_from`, a subset), writing `fields` with it, in one statement."""
    unknown = set(fields) - set(life.fields)
    if unknown:
        raise TypeError(f"{life.query} takes no {', '.join(sorted(unknown))}")
    machine = life.machine
    allowed = sources(machine, to, only_from)
    values = {"reason": reason, **fields}
    row = await db.fetchrow(life.query, *ident, to, sorted(allowed), to in machine.terminal,
                            *(values.get(name) for name in life.fields))
    assert row is not None
    done = Moved(machine.name, tuple(ident), to, row["was"], row["moved"] is not None,
                 row=row)
    named = dict(zip(life.ident, ident, strict=True))
    if done.moved:
        log.info("job_moved", kind=machine.name, **named, was=done.was, to=to,
                 reason=reason[:300])
    else:
        log.info("job_move_refused", kind=machine.name, **named, was=done.was, to=to,
                 allowed_from=sorted(allowed), reason=reason[:300])
    return done
