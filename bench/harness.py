"""Harness benchmark: runs of a trivial agent, start to result, through `run_agent` (the same
call a run worker makes: a fresh process group, the sandbox launcher, the bootstrap, the
JSON-lines protocol).

Prints p50/p99 of start-to-result for runs one at a time, runs/s with `--parallel` runs at
once, and in the same run what the sandbox's part costs and the ceiling: the launcher alone
(`probe`: an interpreter that imports ctypes, enters the namespaces, applies Landlock and
seccomp, reports and exits) and starting `python -I -S -c pass` (the floor of any run in its
own process). The run before the sandbox was the floor plus the bootstrap; the launcher is one
more interpreter start plus its kernel calls (docs/benchmarks.md has both, measured in one
sitting).

    python bench/harness.py [--runs 200] [--parallel 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.clients.harness import Limits, run_agent  # noqa: E402
from controller.clients.sandbox import probe  # noqa: E402

CODE = "def run(task):\n    task.state['n'] = task.state.get('n', 0) + 1\n    return task.input\n"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one() -> float:
    started = time.perf_counter()
    done = await run_agent(code=CODE, input={"x": 1}, state={}, tools=[],
                           limits=Limits(timeout=30, memory_bytes=256 * 1024 ** 2))
    assert done.outcome == "succeeded", done
    return (time.perf_counter() - started) * 1000


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


async def main(runs: int, parallel: int) -> None:
    await one()  # warm the page cache
    floor = [await bare() for _ in range(runs)]
    sandbox = [await launcher() for _ in range(runs)]
    serial = [await one() for _ in range(runs)]
    started = time.perf_counter()
    pending = list(range(runs))

    async def lane() -> None:
        while pending:
            pending.pop()
            await one()

    await asyncio.gather(*(lane() for _ in range(parallel)))
    rate = runs / (time.perf_counter() - started)
    print(f"harness: {runs} runs of a trivial agent")
    print(f"  start to result, one at a time: p50 {statistics.median(serial):.1f} ms, "
          f"p99 {quantile(serial, 0.99):.1f} ms")
    print(f"  {parallel} at a time: {rate:.1f} runs/s")
    print(f"  the sandbox launcher alone (interpreter, ctypes, namespaces, Landlock, seccomp): "
          f"p50 {statistics.median(sandbox):.1f} ms, p99 {quantile(sandbox, 0.99):.1f} ms")
    print(f"  ceiling (same run): a bare `python -I -S -c pass` p50 "
          f"{statistics.median(floor):.1f} ms, p99 {quantile(floor, 0.99):.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.parallel))
