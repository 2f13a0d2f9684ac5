"""The lifecycles of an agent's versions (`agent_versions.state`) and runs (`agent_runs.state`),
declared once as data.

A version is PENDING when created, GENERATING while Claude writes it (every fix round moves it
there again), VALIDATING while its test runs (hand-written code goes there at once), then READY
or FAILED, and never changes again (a trigger also refuses any later write). A run is `queued`,
`running` once a run worker starts it, and `finished` with an outcome (`OUTCOMES`); a run cut
off by a shutdown or a crash goes back from `running` to `queued` once, when its agent allows it.

Every move goes through `controller.providers.lifecycle.move`, whose conditional UPDATE allows
exactly `machine.sources(target)`, so the database refuses anything else atomically. Pure data.
"""

from __future__ import annotations

from controller.reconcile.fsm import StateMachine

VERSION_MACHINE = StateMachine.declare(
    "version", initial=["PENDING"],
    table={
        "PENDING": ["GENERATING", "VALIDATING", "FAILED"],
        "GENERATING": ["GENERATING", "VALIDATING", "FAILED"],  # each round starts again
        "VALIDATING": ["GENERATING", "VALIDATING", "READY", "FAILED"],
    })

RUN_MACHINE = StateMachine.declare(
    "run", initial=["queued"],
    table={
        "queued": ["running", "finished"],  # finished: cancelled, or it cannot run
        "running": ["finished", "queued"],  # queued: interrupted, tried once more
    })

# How a finished run ended (`agent_runs.outcome`, NULL until it is finished).
OUTCOMES = ("succeeded", "failed", "timed_out", "killed", "over_budget", "cancelled",
            "interrupted")
