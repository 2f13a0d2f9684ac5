"""Counting the statements this process sends to PostgreSQL: in all, by query name, and within
a block (`counting()`: a reconcile, a delivery, a benchmark's window).

Every named query is one round trip; a transaction adds its BEGIN and COMMIT. The counts are
how the benchmarks (and the audit row of each reconcile) show what a piece of work costs the
database. Counting is a few dict operations per statement; it never touches the database.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import Counter
from collections.abc import Iterator

TRANSACTION = "(begin/commit)"  # what a transaction's own two statements are counted as

# The counter of the innermost `counting()` block this task runs in (tasks inherit it).
_current: contextvars.ContextVar[Counter[str] | None] = contextvars.ContextVar(
    "p38_statements", default=None)

total: Counter[str] = Counter()  # everything this process sent, by query name


def sent(name: str, n: int = 1) -> None:
    """Count `n` statements of query `name` (the store calls this once per statement)."""
    total[name] += n
    block = _current.get()
    if block is not None:
        block[name] += n


@contextlib.contextmanager
def counting() -> Iterator[Counter[str]]:
    """Count, in a Counter by query name, the statements sent inside this block (and the tasks
    it starts); an enclosing block counts them too."""
    outer = _current.get()
    block: Counter[str] = Counter()
    token = _current.set(block)
    try:
        yield block
    finally:
        _current.reset(token)
        if outer is not None:
            outer.update(block)


def block() -> Counter[str] | None:
    """The innermost counting block this task runs in (None: outside any)."""
    return _current.get()


def snapshot() -> Counter[str]:
    """A copy of the process's totals (subtract two snapshots to count a window)."""
    return Counter(total)
