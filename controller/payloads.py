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
