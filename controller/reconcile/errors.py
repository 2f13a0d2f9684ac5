"""The few error types that mean something to the worker loop.

`TerminalError`: retrying cannot help; the key is dead-lettered and a person is told.
`Waiting`: not an error; come back after `requeue_after` seconds.
Anything else raised by a reconcile is retried with capped exponential backoff and jitter.
This module imports nothing from the project and does no I/O.
"""

from __future__ import annotations


class P38Error(Exception):
    """project38 failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or type(self).__name__).strip())


class TerminalError(P38Error):
    """Retrying cannot fix this; the object is stalled until a person acts."""


class JobGaveUp(TerminalError):
    """Long work queued as a job failed until its key gave up: the key that queued it stalls
    too, saying why (a person asks again: `p38 agents rebuild`, `/claude retry`)."""


class InvalidTransition(TerminalError):
    """The state machine does not allow this transition."""


class UnknownKind(TerminalError):
    """No reconciler is registered for this kind of key."""


class NoActionRunner(TerminalError):
    """No runner is registered for this kind of action."""


class UndeclaredEnqueue(TerminalError):
    """A plan enqueued a kind of key its reconciler does not declare in `owns`."""


class DeadlineExceeded(P38Error):
    """The reconcile took longer than its deadline and was cancelled; retried with backoff."""


class SettleFailed(P38Error):
    """The end of a reconcile could not be written; retried with backoff, without its plan."""


class ConcurrentUpdate(P38Error):
    """The resource changed since it was observed (optimistic concurrency); retry."""


class LeaseLost(P38Error):
    """Another worker holds this key now; this worker's results are discarded."""


class Waiting(P38Error):
    """The reconcile is waiting for something outside; requeue after a delay. A delivery or an
    enqueue for the key ends the wait early, unless the wait is `firm`."""

    firm = False  # True: hints must not end it (a rate limit must not be hammered)

    def __init__(self, requeue_after: float, reason: str) -> None:
        super().__init__(reason)
        self.requeue_after = requeue_after
        self.reason = reason


class NotConfigured(P38Error):
    """The credentials or settings this read needs are not configured."""


class ProviderError(P38Error):
    """A provider failed in a way a later attempt may fix (a 5xx, a timeout); retried."""


class ProviderRefused(TerminalError):
    """A provider refused the request and retrying cannot change that (a 4xx other than 408
    and 429); its message says why."""


class RateLimited(Waiting):
    """A provider's rate limit resets later than a client may sleep; come back then, not
    earlier, whatever arrives meanwhile."""

    firm = True
