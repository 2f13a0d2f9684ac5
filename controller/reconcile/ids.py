"""Typed identifiers shared across layers (NewType: free at run time, checked by mypy).

A `Key` names one object to reconcile, as `kind:name` (`pull:octo/app#12`, `repo:octo/app`).
"""

from __future__ import annotations

from typing import NewType

DeliveryId = NewType("DeliveryId", int)
Key = NewType("Key", str)
ReconcileId = NewType("ReconcileId", str)


def key_kind(key: str) -> str:
    """The kind part of a key: everything before the first colon."""
    kind, sep, _ = key.partition(":")
    return kind if sep else ""


def key_name(key: str) -> str:
    """The name part of a key: everything after the first colon."""
    return key.partition(":")[2]


def make_key(kind: str, name: str) -> Key:
    return Key(f"{kind}:{name}")


def job_key(job: str, source: str | None, action_id: int) -> str:
    """`<job kind>:<source>#<action id>`: the long work (an action) a reconcile queued; the
    source is that of the key that planned it (whose Policy governs the job too), `-` for
    none."""
    return f"{job}:{source or '-'}#{action_id}"


def job_ref(key: str) -> tuple[str | None, int] | None:
    """(source, action id) of a job key; None when it is not one."""
    source, sep, number = key_name(key).rpartition("#")
    if not sep or not (number.isascii() and number.isdigit()) or len(number) > 18:
        return None
    return (None if source in ("", "-") else source), int(number)
