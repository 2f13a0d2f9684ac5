"""How many bytes of request bodies are being read at once, across every webhook route.

A body nobody has authenticated yet (GitHub signs the body, so it must be read to be checked)
takes from the budget the bytes that have arrived, as they arrive, and gives them back once
handled; beyond the budget the request is answered 503 with Retry-After, so many large unsigned
bodies cannot take the memory. Only bytes received count, not the length a request declares:
a sender that announces 25 MiB and sends nothing holds nothing. Single event loop: no lock.
No I/O.
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
