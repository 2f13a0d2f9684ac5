"""Cron in a time zone: the UTC instants a 5-field expression is due at. Pure computation.

The expression is read on the zone's wall clock, and each wall time it names becomes zero,
one or two instants:
- a wall time that does not exist (the hour skipped when clocks go forward): a job with a
  fixed hour (`30 2 * * *`) runs at the first minute after the gap, once however many of its
  times fell in the gap; a job whose hour field is `*` skips it (its next minute comes soon);
- a wall time that happens twice (the hour repeated when clocks go back): a fixed-hour job
  runs at the first occurrence only, a `*`-hour job at both;
- two wall times that land on the same instant run once.

Far from a clock change a wall time maps to one instant at a fixed offset, which is the fast
path; near one (`MARGIN` either side) the wall times are walked with that margin and sorted.
Must not read the clock: every "now" is an argument.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

MARGIN = timedelta(hours=3)  # wider than any clock change: what a wall time can move
SAMPLE = timedelta(days=10)  # clock changes of one zone are further apart than this
SLOW_WINDOW = timedelta(days=45)  # the longest window walked the slow way (older: dropped)


@dataclass(frozen=True)
class Pending:
    """The instants due in a window: the newest `keep` of them (oldest first), and the newest
    of those left out (`dropped_before`, None when none were)."""

    instants: tuple[datetime, ...]
    dropped_before: datetime | None = None


@dataclass(frozen=True)
class CronZone:
    expr: str
    zone: str = "UTC"
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)
    _wildcard_hour: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hours = _parsed(self.expr).expanded[1]
        object.__setattr__(self, "_tz", ZoneInfo(self.zone))
        object.__setattr__(self, "_wildcard_hour", hours == ["*"] or len(hours) == 24)

    def pending(self, after: datetime, until: datetime, keep: int) -> Pending:
        """The instants in (`after`, `until`]: the newest `keep`, and whether older ones were
        left out."""
        if until <= after:
            return Pending(())
        if self._steady(after - MARGIN, until + MARGIN):
            return self._pending_steady(after, until, keep)
        start = max(after, until - SLOW_WINDOW)
        found = self._walk(start, until)
        if len(found) > keep:
            return Pending(tuple(found[-keep:]), found[-keep - 1])
        # A window longer than SLOW_WINDOW is walked from `start`: what was due before it is
        # dropped, and `start` stands for it.
        return Pending(tuple(found), start if start > after else None)

    def next_after(self, moment: datetime) -> datetime:
        """The first instant after `moment`."""
        if self._steady(moment - MARGIN, moment + MARGIN):
            walls = _walls(self.expr, self._wall(moment))
            while True:
                candidates = [u for u in self._instants(walls.get_next(datetime)) if u > moment]
                if candidates:
                    return min(candidates)
        walls = _walls(self.expr, self._wall(moment - MARGIN))
        best: datetime | None = None
        while True:
            wall = walls.get_next(datetime)
            if best is not None and wall > self._wall(best) + 2 * MARGIN:
                return best
            for instant in self._instants(wall):
                if instant > moment and (best is None or instant < best):
                    best = instant

    # --- wall times and instants ---------------------------------------------------------

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self._tz).replace(tzinfo=None, fold=0)

    def _offset(self, instant: datetime) -> timedelta | None:
        return instant.astimezone(self._tz).utcoffset()

    def _steady(self, start: datetime, end: datetime) -> bool:
        """No clock change between `start` and `end` (sampled every `SAMPLE`)."""
        first = self._offset(start)
        probe = start + SAMPLE
        while probe < end:
            if self._offset(probe) != first:
                return False
            probe += SAMPLE
        return self._offset(end) == first

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants of one wall time, by the rules in the module docstring."""
        first = wall.replace(tzinfo=self._tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self._tz, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if self._wall(first) == wall:  # exists twice: fold 0 is the earlier
            return [first, second] if self._wildcard_hour else [first]
        if self._wildcard_hour:
            return []
        # In the gap: `second` (the offset after the change) lies before it, `first` after.
        instant = second.replace(second=0, microsecond=0)
        while self._offset(instant) == self._offset(second) and instant < first:
            instant += timedelta(minutes=1)
        return [instant]

    def _pending_steady(self, after: datetime, until: datetime, keep: int) -> Pending:
        walls = _walls(self.expr, self._wall(until) + timedelta(seconds=1))
        floor = self._wall(after)
        newest_first: list[datetime] = []
        while len(newest_first) <= keep:
            wall = walls.get_prev(datetime)
            if wall <= floor:
                break
            newest_first.extend(sorted((u for u in self._instants(wall) if after < u <= until),
                                       reverse=True))
        instants = sorted(newest_first[:keep])
        dropped = newest_first[keep] if len(newest_first) > keep else None
        return Pending(tuple(instants), dropped)

    def _walk(self, after: datetime, until: datetime) -> list[datetime]:
        walls = _walls(self.expr, self._wall(after - MARGIN))
        last = self._wall(until + MARGIN)
        found: set[datetime] = set()
        while (wall := walls.get_next(datetime)) <= last:
            found.update(u for u in self._instants(wall) if after < u <= until)
        return sorted(found)


@functools.lru_cache(maxsize=4096)
def _parsed(expr: str) -> croniter:
    """The expression parsed once (expanding it costs ~0.5 ms; a tick looks at it often)."""
    return croniter(expr)


def _walls(expr: str, start: datetime) -> croniter:
    """An iterator of the expression's wall times from `start`: a copy of the parsed one (its
    expanded fields are shared and only read)."""
    walls = copy.copy(_parsed(expr))
    walls.set_current(start, force=True)
    return walls
