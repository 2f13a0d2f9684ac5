"""The heartbeat agent's test (a copy of agents/test_heartbeat.py, named so that pytest does
not collect it)."""

from agent import run
from p38_agent import FakeTools, Task


def test_counts_runs_and_hands_over_state():
    task = Task(input={"note": "hi"}, state={"runs": 2, "recent": ["a"]}, tools=FakeTools())
    result = run(task)
    assert result["runs"] == 3 and result["note"] == "hi"
    assert task.state["runs"] == 3 and len(task.state["recent"]) == 2


def test_first_run_starts_from_nothing():
    task = Task(input=None, state={}, tools=FakeTools())
    assert run(task)["runs"] == 1
