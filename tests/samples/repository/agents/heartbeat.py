"""A hand-written agent: counts its runs and remembers when each happened.

It shows the contract every agent follows: one module with `run(task)`; `task.input` is what
the run was started with, `task.state` what the previous run left (whatever it holds when `run`
returns is handed to the next), `task.tools` the tools its manifest grants (none here).
"""

import datetime


def run(task):
    runs = task.state.get("runs", 0) + 1
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    recent = [*(task.state.get("recent") or [])[-4:], now]
    task.state["runs"] = runs
    task.state["recent"] = recent
    note = task.input.get("note") if isinstance(task.input, dict) else None
    return {"runs": runs, "at": now, "note": note}
