"""The overview's chart: webhook deliveries and reconciles per minute over the last hour, as
bars in an inline SVG drawn here (no script, no library). Pure: counts in, shapes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MINUTES = 60
WIDTH, HEIGHT = 600, 120


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what a person hovering (or a screen reader) gets


@dataclass(frozen=True)
class Series:
    name: str
    total: int
    peak: int
    bars: tuple[Bar, ...]


def activity(rows: Iterable[Mapping[str, Any]], now: datetime) -> list[Series]:
    """Bars for each series of `page_activity`'s rows, the newest minute on the right."""
    end = now.replace(second=0, microsecond=0)
    minutes = [end - timedelta(minutes=MINUTES - 1 - n) for n in range(MINUTES)]
    counts: dict[str, dict[datetime, int]] = {"deliveries": {}, "reconciles": {}}
    for row in rows:
        counts.setdefault(row["series"], {})[row["minute"]] = int(row["n"])
    out = []
    for name, by_minute in counts.items():
        values = [by_minute.get(m, 0) for m in minutes]
        peak = max(values, default=0)
        step = WIDTH / MINUTES
        bars = tuple(
            Bar(x=round(n * step, 2), y=round(HEIGHT - _height(v, peak), 2),
                width=round(step - 1, 2), height=round(_height(v, peak), 2),
                label=f"{m:%H:%M} UTC: {v} {name}")
            for n, (m, v) in enumerate(zip(minutes, values, strict=True)))
        out.append(Series(name, sum(values), peak, bars))
    return out


def _height(value: int, peak: int) -> float:
    return 0.0 if not peak else max(1.0, HEIGHT * value / peak) if value else 0.0
