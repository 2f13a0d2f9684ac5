"""How many bytes of request bodies are being read at once, across every webhook route.

A body nobody has authenticated yet (GitHub signs the body, so it must be read to be checked)
takes its size from the budget while it is read and gives it back after; beyond the budget the
request is answered 503 with Retry-After, so many large unsigned bodies cannot take the memory.
Single event loop: no lock. No I/O.
"""

from __future__ import annotations


class BodyBudget:
    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, size: int) -> bool:
        """Reserve `size` bytes; False (nothing reserved) when they do not fit."""
        if self.used + size > self.total:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size
