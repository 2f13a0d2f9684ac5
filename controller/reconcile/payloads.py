"""Reading webhook payloads defensively: GitHub adds fields, old events lack new ones.

Pure functions, importable from handlers and reconcilers alike. No I/O.
"""

from __future__ import annotations

import re
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


# GitHub's own rules: an owner is letters, digits and single hyphens; a repository name
# letters, digits, `-`, `_` and `.`, but not `.` or `..`. Anything else never names a
# repository, and must not reach a key or an API path (`../`, `#`, `?`).
_FULL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
MAX_NUMBER = 2**31 - 1  # GitHub's issue and pull request numbers are 32-bit


def repo_full_name(payload: Any) -> str | None:
    """`owner/name` of the delivery's repository, when it has one that GitHub could have."""
    full_name = dig(payload, "repository", "full_name")
    return full_name if plausible_repo(full_name) else None


def plausible_repo(full_name: Any) -> bool:
    """Whether `full_name` is an `owner/name` GitHub could have."""
    return isinstance(full_name, str) and bool(_FULL_NAME.fullmatch(full_name)) \
        and full_name.partition("/")[2] not in (".", "..")


# A name someone else chose that becomes part of a key (an n8n alert's key): plain characters.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def number(obj: Any) -> int | None:
    """An issue's or pull request's `number`, when it is one GitHub could have given."""
    value = obj.get("number") if isinstance(obj, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and 0 < value <= MAX_NUMBER else None


def installation_id(payload: Any) -> int | None:
    value = dig(payload, "installation", "id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a mapping, else an empty one (a field an old delivery lacks)."""
    return value if isinstance(value, Mapping) else {}


MAX_JSON_DEPTH = 32  # PostgreSQL's and the encoders' limits are far beyond any real input


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why `value` (parsed JSON) cannot be stored as a run's input, None when it can: a NUL
    in a string or a key (PostgreSQL's jsonb refuses it), nesting deeper than `max_depth`,
    an integer beyond 64 bits (it would come back rounded)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list) and depth > max_depth:
            return f"nested deeper than {max_depth} levels"
        if isinstance(item, dict):
            for key, inner in item.items():
                if "\x00" in str(key):
                    return "a key holds a NUL character"
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str) and "\x00" in item:
            return "a string holds a NUL character"
        elif isinstance(item, int) and not isinstance(item, bool) and \
                not -2 ** 63 <= item < 2 ** 64:
            return "an integer beyond 64 bits"
    return None
