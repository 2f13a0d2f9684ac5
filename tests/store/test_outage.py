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
    """A hundred failed polls in the first minute are one line (once past the grace); a
    minute after it, one more; then one when it is back."""
    now = [0.0]
    outage = Outage(every=60.0, clock=lambda: now[0])
    with capture_logs() as logs:
        for step in range(100):
            now[0] = step * 0.5
            assert outage.failed(_gone(), where="claim")
        now[0] = 61.0  # a minute after the first line (at 2 s, past the grace): not yet
        assert outage.failed(_gone(), where="claim")
        now[0] = 62.0
        assert outage.failed(_gone(), where="listen:p38_queue")
        outage.ok()
        outage.ok()  # once back, nothing more to say
    assert [(line["event"], line["log_level"]) for line in logs] == [
        ("database_unreachable", "error"), ("database_still_unreachable", "warning"),
        ("database_back", "info")]
    assert (logs[0]["where"], logs[0]["for_seconds"], logs[0]["failures"]) == ("claim", 2.0, 5)
    assert logs[0]["error"] == "FileNotFoundError: no server listens there (stopped?)"
    assert (logs[1]["for_seconds"], logs[1]["failures"]) == (62, 102)
    assert (logs[2]["after_seconds"], logs[2]["failures"]) == (62.0, 102)
    assert not outage.down


def test_a_blip_is_not_announced() -> None:
    """Failures that a success ends within the grace (a pooled connection answering once
    more while the server shuts down) say nothing, so the lines never flap."""
    now = [0.0]
    outage = Outage(grace=2.0, clock=lambda: now[0])
    with capture_logs() as logs:
        assert outage.failed(_gone(), where="claim")
        now[0] = 1.0
        outage.ok()
        assert outage.failed(_gone(), where="claim")
        now[0] = 2.5  # 1.5 s into this outage: still within the grace
        assert outage.failed(_gone(), where="claim")
        now[0] = 3.0
        assert outage.failed(_gone(), where="claim")
    assert [line["event"] for line in logs] == ["database_unreachable"]


def test_other_errors_are_the_callers_to_log() -> None:
    """A bug or a refused value is not an outage: nothing logged here, False returned."""
    outage = Outage()
    with capture_logs() as logs:
        assert not outage.failed(ValueError("a bug"), where="claim")
        assert not outage.failed(TransientStoreError("DeadlockDetectedError"), where="claim")
    assert logs == [] and not outage.down
    assert unreachable(DatabaseUnavailable("cannot reach the database at x:5432"))
    assert unreachable(ConnectionRefusedError())
