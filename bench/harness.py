"""Harness benchmark: runs of a trivial agent through `run_agent` (the same call a run worker
makes: a process group of its own, the sandbox launcher, the bootstrap, the JSON-lines
protocol), warm (a `WarmPool` process, fenced in ahead) and cold (the run starts its own).

Prints, for each path, p50/p99 of start to first instruction (from the `run_agent` call to the
agent module's first line running: it reads `time.perf_counter()`, CLOCK_MONOTONIC, the same
clock in every process) and of start to result, for runs one at a time with the pool full
when each starts (the latency a run sees when a process is waiting); then runs/s with
`--parallel` runs at once back to back, where the pool must start a process for every run
(what a burst costs: the CPU of an interpreter and the launcher per run). In the same run, the
sandbox launcher alone (`probe`) and the ceiling: `python -I -S -c pass`, the floor of any run
in its own process.

    python bench/harness.py [--runs 200] [--parallel 2] [--pool 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.clients.harness import Limits, run_agent  # noqa: E402
from controller.clients.sandbox import probe  # noqa: E402
from controller.clients.warm_pool import WarmPool  # noqa: E402

CODE = ("import time\n\nFIRST = time.perf_counter()\n\n\ndef run(task):\n"
        "    task.state['n'] = task.state.get('n', 0) + 1\n    return FIRST\n")
LIMITS = Limits(timeout=30, memory_bytes=256 * 1024 ** 2)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(name: str, values: list[float]) -> str:
    return f"{name}: p50 {statistics.median(values):.1f} ms, p99 {quantile(values, 0.99):.1f} ms"


async def one(pool: WarmPool | None) -> tuple[float, float]:
    """(start to first instruction, start to result) in ms."""
    started = time.perf_counter()
    done = await run_agent(code=CODE, input={"x": 1}, state={}, tools=[], limits=LIMITS,
                           pool=pool)
    ended = time.perf_counter()
    assert done.outcome == "succeeded", done
    return (done.output - started) * 1000, (ended - started) * 1000


async def launcher() -> float:
    started = time.perf_counter()
    found = await probe()
    assert found["sandbox"] == "complete", found
    return (time.perf_counter() - started) * 1000


async def bare() -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(sys.executable, "-I", "-S", "-c", "pass")
    await process.wait()
    return (time.perf_counter() - started) * 1000


async def rate(runs: int, parallel: int, run: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    pending = list(range(runs))

    async def lane() -> None:
        while pending:
            pending.pop()
            await run()

    await asyncio.gather(*(lane() for _ in range(parallel)))
    return runs / (time.perf_counter() - started)


async def main(runs: int, parallel: int, size: int) -> None:
    await one(None)  # warm the page cache
    floor = [await bare() for _ in range(runs)]
    sandbox = [await launcher() for _ in range(runs)]
    cold = [await one(None) for _ in range(runs)]
    cold_rate = await rate(runs, parallel, lambda: one(None))
    warm: list[tuple[float, float]] = []
    async with WarmPool.open(size) as pool:
        for _ in range(runs):
            await pool.wait_full()  # a process is waiting, as between runs of a quiet hour
            warm.append(await one(pool))
        warm_rate = await rate(runs, parallel, lambda: one(pool))
    print(f"harness: {runs} runs of a trivial agent (pool of {size})")
    print("  " + line("warm, start to first instruction", [f for f, _ in warm]))
    print("  " + line("warm, start to result", [r for _, r in warm]))
    print("  " + line("cold, start to first instruction", [f for f, _ in cold]))
    print("  " + line("cold, start to result", [r for _, r in cold]))
    print(f"  {parallel} at a time, back to back: warm {warm_rate:.1f} runs/s (each run's "
          f"process started meanwhile), cold {cold_rate:.1f} runs/s")
    print("  " + line("the sandbox launcher alone (interpreter, ctypes, namespaces, Landlock, "
                      "seccomp)", sandbox))
    print("  " + line("ceiling (same run): a bare `python -I -S -c pass`", floor))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--pool", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.parallel, args.pool))
