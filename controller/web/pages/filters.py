"""Jinja filters the pages share: ages, times, money, short text. Pure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote


def age(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def utc(when: datetime | None) -> str:
    return "-" if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def short(text: Any, most: int = 120) -> str:
    shown = "" if text is None else str(text)
    return shown if len(shown) <= most else shown[:most - 1] + "…"


def url_part(text: Any) -> str:
    return quote(str(text), safe="")


FILTERS: dict[str, Callable[..., Any]] = {"age": age, "utc": utc, "usd": usd, "short": short,
                                          "url_part": url_part}
