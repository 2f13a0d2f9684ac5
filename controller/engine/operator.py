"""What an operator does by hand, the same whether asked from the CLI, the API or the
operator's page: approve a held action, replay a delivery, revive a dead key, set or lift a
source's killswitch. Each is recorded in `operator_actions` with who asked and through what
(`via`), and wakes the keys it concerns at once. The callers check who may ask (the token,
`controller.reconcile.authz`); this module does not. No HTTP, no printing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from controller.engine.queue import WorkQueue
from controller.store import Store

Via = Literal["cli", "api", "page"]


@dataclass(frozen=True)
class Done:
    """What came of an operator's word: `found` False when its target does not exist."""

    found: bool
    message: str
    keys: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


async def _record(store: Store, by: str, via: Via, verb: str, target: str,
                  done: Done) -> Done:
    await store.fetchval("operator_action_record", by, via, verb, target,
                         "done" if done.found else "not_found", done.detail or None)
    return done


async def approve(store: Store, queue: WorkQueue, idempotency_key: str, *, by: str,
                  via: Via) -> Done:
    """Approve the action of this idempotency key; its key is reconciled at once (the action
    runs unless the killswitch is on)."""
    row = await store.fetchrow("action_by_key", idempotency_key)
    if row is None:
        done = Done(False, f"no action with idempotency key {idempotency_key!r}")
        return await _record(store, by, via, "approve", idempotency_key, done)
    await store.execute("approval_grant", idempotency_key, by)
    keys = (row["key"],) if row["key"] else ()
    if keys:
        await queue.enqueue_now(list(keys))
    done = Done(True, f"approved {idempotency_key} (by {by}); "
                      f"{row['key'] or 'its key'} is reconciled now, and the action runs "
                      "unless the killswitch is on",
                keys, {"status_before": row["status"], "kind": row["kind"]})
    return await _record(store, by, via, "approve", idempotency_key, done)


async def replay(store: Store, queue: WorkQueue, ref: str, *, by: str, via: Via) -> Done:
    """Process a stored delivery again (by GUID or internal id): its keys are due now."""
    row = await store.fetchrow("delivery_by_guid", ref)
    if row is None and ref.isascii() and ref.isdigit() and int(ref) < 2**62:
        row = await store.fetchrow("delivery_by_id", int(ref))
    if row is None:
        return await _record(store, by, via, "replay", ref,
                             Done(False, f"no delivery with GUID or id {ref!r}"))
    target = f"delivery:{row['id']}"
    keys = await store.fetchval("delivery_reopen", row["id"])
    if not keys:
        done = Done(True, f"delivery {row['id']} ({row['event']}) produced no keys: nothing "
                          "to replay", detail={"event": row["event"]})
        return await _record(store, by, via, "replay", target, done)
    await queue.enqueue_now(keys)
    done = Done(True, f"delivery {row['id']} ({row['event']}) re-enqueued: {', '.join(keys)}",
                tuple(keys), {"event": row["event"], "keys": list(keys)})
    return await _record(store, by, via, "replay", target, done)


async def revive(store: Store, queue: WorkQueue, key: str, *, by: str, via: Via) -> Done:
    """A dead key (it gave up) is queued again now, with a fresh count of attempts."""
    row = await store.fetchrow("queue_of_key", key)
    if row is None:
        return await _record(store, by, via, "revive", key,
                             Done(False, f"no key {key!r} in the queue"))
    await queue.enqueue_now([key])
    was = "dead" if row["state"] == "dead" else "not dead: it is reconciled now"
    return await _record(store, by, via, "revive", key, Done(
        True, f"{key} is queued again now (by {by}; it was {was})", (key,),
        {"state_before": row["state"], "last_error": row["last_error"]}))


async def killswitch(store: Store, source: str, on: bool, *, by: str, via: Via) -> Done:
    """Set or lift `source`'s killswitch (as `/claude stop` and `/claude resume` do): every
    action of that source that touches the world is held while it is on."""
    if on:
        await store.execute("killswitch_on", source, by)
        done = Done(True, f"killswitch on for {source} (by {by}): its actions are held")
    else:
        was = await store.fetchval("killswitch_off", source)
        done = Done(True, f"killswitch lifted for {source} (by {by}); it was set by {was}"
                    if was else f"the killswitch of {source} was not on", detail={"was": was})
    return await _record(store, by, via, "killswitch_on" if on else "killswitch_off",
                         source, done)


async def run_agent(store: Store, key: str, given: Any, *, by: str, via: Via) -> Done:
    """Queue a manual run of the agent `key` with input `given` (checked by the caller); a run
    worker carries it out. `detail["run"]`: its id."""
    requested_by = f"page ({by})" if via == "page" else via  # (as runs always said)
    row = await store.fetchrow("agent_run_create", key, "manual", requested_by, None, given)
    assert row is not None
    done = Done(True, f"run {row['id']} of {key} queued (by {by})", detail={"run": row["id"]})
    return await _record(store, by, via, "run", key, done)
