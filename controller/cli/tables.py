"""Text for the read commands: aligned tables as `kubectl get` prints them, ages ("5m"),
timestamps, JSON. Pure formatting of the dicts the readers return; no I/O but `emit`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from controller.cli.common import shown

MESSAGE_WIDTH = 100  # a table's last column is cut here (`describe` and `-o json` show it all)


def when(value: Any) -> datetime | None:
    """A timestamp as the readers give it (ISO text), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: Any, now: datetime | None = None) -> str:
    """How long ago (or, for a future instant, in how long): 42s, 5m, 3h, 2d."""
    then = when(value)
    if then is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    if seconds < 120:
        text = f"{int(seconds)}s"
    elif seconds < 120 * 60:
        text = f"{int(seconds // 60)}m"
    elif seconds < 48 * 3600:
        text = f"{int(seconds // 3600)}h"
    else:
        text = f"{int(seconds // 86400)}d"
    return f"in {text}" if ahead else text


def stamp(value: Any) -> str:
    """A timestamp with its age: `2025-01-02 03:04:05 UTC (5m ago)`."""
    then = when(value)
    if then is None:
        return "-"
    shown_age = age(value)
    suffix = shown_age if shown_age.startswith("in ") else f"{shown_age} ago"
    return f"{then.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({suffix})"


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return shown(value)


def cut(text: str, width: int = MESSAGE_WIDTH) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
          indent: str = "") -> list[str]:
    """Aligned columns; the last one is not padded (and is cut at MESSAGE_WIDTH)."""
    texts = [[cell(v) for v in row] for row in rows]
    for row in texts:
        row[-1] = cut(row[-1])
    widths = [max([len(h), *(len(r[i]) for r in texts)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = [v.ljust(w) for v, w in zip(values[:-1], widths[:-1], strict=True)]
        return (indent + "   ".join([*padded, values[-1]])).rstrip()

    return [line(list(headers)), *(line(r) for r in texts)]


def emit(lines: Sequence[str]) -> None:
    for text in lines:
        print(text, flush=True)


def emit_json(value: Any, *, one_line: bool = False) -> None:
    option = 0 if one_line else orjson.OPT_INDENT_2
    sys.stdout.write(orjson.dumps(value, option=option).decode() + "\n")
    sys.stdout.flush()
