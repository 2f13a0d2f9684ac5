"""Path and branch globs as the Policy writes them: `**` any number of folders (`a/**` is
everything below `a`), `*` and `?` within one name, anything else literal. Pure."""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=512)
def _glob(pattern: str) -> re.Pattern[str]:
    """`**` any number of folders (`a/**` everything below `a`), `*` and `?` within one
    name, anything else literal."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def matches(path: str, pattern: str) -> bool:
    return _glob(pattern).fullmatch(path) is not None
