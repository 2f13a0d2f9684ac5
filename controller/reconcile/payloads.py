"""Reading webhook payloads defensively: GitHub adds fields, old events lack new ones.

Pure functions, importable from handlers and reconcilers alike. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def dig(payload: Any, *path: str) -> Any:
    """payload[a][b]... or None when any step is missing or not an object."""
    node: Any = payload
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def repo_full_name(payload: Any) -> str | None:
    """`owner/name` of the delivery's repository, when it has one."""
    full_name = dig(payload, "repository", "full_name")
    return full_name if isinstance(full_name, str) and "/" in full_name else None


def number(obj: Any) -> int | None:
    """An issue's or pull request's `number`, when it is an integer."""
    value = obj.get("number") if isinstance(obj, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def installation_id(payload: Any) -> int | None:
    value = dig(payload, "installation", "id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a mapping, else an empty one (a field an old delivery lacks)."""
    return value if isinstance(value, Mapping) else {}
