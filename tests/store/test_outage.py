"""A lost database is said once, then at the slow interval, then once when it is back; other
errors are left to the caller."""

from __future__ import annotations

from structlog.testing import capture_logs

from controller.store import DatabaseUnavailable, TransientStoreError
from controller.store.outage import Outage, unreachable


def _gone() -> TransientStoreError:
    try:
        raise TransientStoreError("FileNotFoundError") from FileNotFoundError(2, "No such file")
    except TransientStoreError as exc:
        return exc


def test_an_outage_is_said_once_then_every_interval_then_back() -> None:
    """A hundred failed polls in the first minute are one line; the minute after, one more."""
    now = [0.0]
    outage = Outage(every=60.0, clock=lambda: now[0])
    with capture_logs() as logs:
        for step in range(100):
            now[0] = step * 0.5
            assert outage.failed(_gone(), where="claim")
        now[0] = 61.0
        assert outage.failed(_gone(), where="claim")
        now[0] = 62.0
        assert outage.failed(_gone(), where="listen:p38_queue")
        outage.ok()
        outage.ok()  # once back, nothing more to say
    assert [(line["event"], line["log_level"]) for line in logs] == [
        ("database_unreachable", "error"), ("database_still_unreachable", "warning"),
        ("database_back", "info")]
    assert logs[0]["where"] == "claim"
    assert logs[0]["error"] == "FileNotFoundError: no server listens there (stopped?)"
    assert (logs[1]["for_seconds"], logs[1]["failures"]) == (61, 101)
    assert (logs[2]["after_seconds"], logs[2]["failures"]) == (62.0, 102)
    assert not outage.down


def test_other_errors_are_the_callers_to_log() -> None:
    """A bug or a refused value is not an outage: nothing logged here, False returned."""
    outage = Outage()
    with capture_logs() as logs:
        assert not outage.failed(ValueError("a bug"), where="claim")
        assert not outage.failed(TransientStoreError("DeadlockDetectedError"), where="claim")
    assert logs == [] and not outage.down
    assert unreachable(DatabaseUnavailable("cannot reach the database at x:5432"))
    assert unreachable(ConnectionRefusedError())
