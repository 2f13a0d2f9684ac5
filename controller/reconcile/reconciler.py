"""The reconciler contract: what a reconciler declares (the events it watches, the keys it owns,
its retry policy and deadline, how often it re-reads) and the two methods it implements.

`observe(ctx, key)` reads through the context; `decide(snapshot, policy)` is pure. `Router`
combines every reconciler's `Watch` declarations into the one function the sans-I/O handlers
call to turn a verified delivery into keys (controller-runtime's Watches, gidgethub's Router).
No I/O, no clock; imports nothing from the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from controller.reconcile.context import ObserveContext
from controller.reconcile.ids import key_kind, key_name
from controller.reconcile.plan import Plan

if TYPE_CHECKING:
    from controller.reconcile.fsm import StateMachine
    from controller.reconcile.policy import Policy


@dataclass(frozen=True, slots=True)
class Event:
    """A verified delivery as the watches see it."""

    source: str  # github | railway | n8n
    name: str  # the event name (X-GitHub-Event, Railway's `type`, n8n's `event`)
    action: str | None
    payload: Mapping[str, Any]


KeysOf = Callable[[Event], Iterable[str]]


@dataclass(frozen=True)
class Watch:
    """Deliveries from `source` whose event is one of `events` (None: any) are hints about the
    keys `keys` returns (none: not about this reconciler's objects)."""

    source: str
    events: frozenset[str] | None
    keys: KeysOf


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing key is retried: capped exponential backoff with jitter, and given up
    (dead-lettered) once it has failed for `give_up_after` seconds, or after `max_attempts`
    attempts when that is set. None fields take the controller's settings."""

    backoff_base: float | None = None
    backoff_cap: float | None = None
    give_up_after: float | None = None
    max_attempts: int | None = None


class Reconciler:
    """Base of every reconciler: declarations with their defaults, and the two methods.

    `kind`: the key kind it reconciles (`kind:name`). `watches`: which deliveries are hints
    about its keys. `owns`: the kinds of keys its plans may enqueue (`*`: any, for a
    reconciler that governs others, as the Policy does). `machine`: the state
    machine of its objects, where their lifecycle is the product. `retry` and `deadline`
    (seconds a reconcile may take before it is cancelled): None takes the settings.
    `resync`: whether its objects have something to re-read without a hint (a source, a
    provider's state); they are then reconciled every P38_RESYNC_SECONDS at least, and their
    keys that gave up revived. `at_start`: keys hinted when the app starts (an object that
    exists without any webhook naming it, such as the App's webhook deliveries);
    `every_key_at_start`: every known key of its kind is hinted when the app starts (what may
    have changed while it was down, as a repository's open pull requests).
    `wakes_on_failure`: a reconcile that fails still enqueues its plan's keys (a job's
    failure wakes the key that queued it, which decides what it means: reconcilers/jobs.py).
    """

    kind: ClassVar[str]
    machine: ClassVar[StateMachine | None] = None
    owns: ClassVar[frozenset[str]] = frozenset()
    retry: ClassVar[RetryPolicy | None] = None
    deadline: ClassVar[float | None] = None
    resync: ClassVar[bool] = False
    at_start: ClassVar[tuple[str, ...]] = ()
    every_key_at_start: ClassVar[bool] = False
    wakes_on_failure: ClassVar[bool] = False  # a failed reconcile still enqueues its plan's keys

    def watches(self) -> Sequence[Watch]:
        return ()

    def source(self, key: str) -> str | None:
        """The manifest source (`local` or `owner/repo`) whose Policy governs this key's
        actions; None when the key belongs to none (the strictest policy applies)."""
        return None

    async def observe(self, ctx: ObserveContext, key: str) -> Any:
        raise NotImplementedError

    def decide(self, snapshot: Any, policy: Policy) -> Plan:
        raise NotImplementedError


def repo_of(key: str) -> str | None:
    """`owner/repo` of keys named `owner/repo`, `owner/repo#N` or `owner/repo/name`."""
    name = key_name(key).partition("#")[0]
    owner, slash, rest = name.partition("/")
    if not slash or not owner or not rest:
        return None
    return f"{owner}/{rest.partition('/')[0]}"


def object_key(kind: str, source: str, name: str) -> str:
    """The key of a manifest object: `agent:owner/repo/name`, `agent:local/name`."""
    return f"{kind.lower()}:{source}/{name}"


def object_ref(key: str) -> tuple[str, str, str]:
    """(manifest kind in lower case, source, name) of a manifest object's key."""
    source, _, name = key_name(key).rpartition("/")
    return key_kind(key), source, name


class Router:
    """Every reconciler's watches, combined: (source, event, action, payload) -> keys, in
    registration order without duplicates. Pure; built once per application."""

    def __init__(self, watches: Iterable[Watch]) -> None:
        self._watches = tuple(watches)
        self._chosen: dict[tuple[str, str], tuple[KeysOf, ...]] = {}

    @classmethod
    def of(cls, reconcilers: Iterable[Reconciler]) -> Router:
        return cls(w for r in reconcilers for w in r.watches())

    def keys(self, source: str, event: str, action: str | None,
             payload: Mapping[str, Any]) -> tuple[str, ...]:
        chosen = self._chosen.get((source, event))
        if chosen is None:
            chosen = tuple(w.keys for w in self._watches if w.source == source
                           and (w.events is None or event in w.events))
            if len(self._chosen) < 4096:  # event names come from verified senders; bounded
                self._chosen[(source, event)] = chosen
        if not chosen:
            return ()
        found: dict[str, None] = {}
        incoming = Event(source, event, action, payload)
        for keys_of in chosen:
            for key in keys_of(incoming):
                found[key] = None
        return tuple(found)
