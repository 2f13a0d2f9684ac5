"""Manifest benchmark: 1,000 manifests in 100 files, validated and planned.

Prints the time to load and validate (`p38 validate`), to plan against an applied set where
10% of the objects changed (the pure `decide` that `p38 plan` and the live loop share), and the
ceiling from issue 3: validate + plan <= 1 s on this machine.

    python bench/reconcile.py [--files 100] [--per-file 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.manifests.loader import load_dir  # noqa: E402
from reconcilers.gitops.diff import ObjectState  # noqa: E402
from reconcilers.gitops.manifest_decide import (  # noqa: E402
    ManifestSnapshot,
    decide,
    desired_states,
)

AGENT = """\
apiVersion: p38/v1
kind: Agent
metadata:
  name: agent-{n}
  labels: {{team: ops, tier: "{tier}"}}
spec:
  description: Watch signal {n} and notify the ops channel when it moves more than 5% a day.
  model: claude-sonnet-5-5
  tools: [http, notify]
  limits: {{timeout: 300s, memory: 256Mi, tokensPerRun: 20000}}
  notify: [ops]
"""
SCHEDULE = """\
apiVersion: p38/v1
kind: Schedule
metadata:
  name: schedule-{n}
spec:
  cron: "{minute} 9-17 * * 1-5"
  timezone: Europe/Berlin
  agent: agent-{agent}
  catchUp: latest
"""
SERVICE = """\
apiVersion: p38/v1
kind: Service
metadata:
  name: service-{n}
spec:
  railway: {{project: p-{n}, environment: production, service: s-{n}}}
  branch: main
  healthCheck: {{url: "https://svc-{n}.example.com/healthz", timeout: 120s}}
"""
POLICY = """\
apiVersion: p38/v1
kind: Policy
metadata:
  name: default
spec:
  autoMerge: {branches: ["claude/*"], method: squash}
  notifications:
    ops: {url: "https://n8n.example.com/webhook/ops"}
"""


def write_tree(root: Path, files: int, per_file: int) -> int:
    count = 0
    for f in range(files):
        docs = []
        for i in range(per_file):
            n = f * per_file + i
            if f == 0 and i == 0:
                docs.append(POLICY)
            elif n % 10 < 5:
                docs.append(AGENT.format(n=n, tier=n % 3))
            elif n % 10 < 9:
                docs.append(SCHEDULE.format(n=n, minute=n % 60, agent=n - n % 10 + 1))
            else:
                docs.append(SERVICE.format(n=n))
            count += 1
        (root / f"m{f:03d}.yaml").write_text("---\n".join(docs))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--per-file", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        count = write_tree(root, args.files, args.per_file)
        t0 = time.perf_counter()
        manifests = load_dir(root)
        t1 = time.perf_counter()
        assert manifests.ok, manifests.problems[:5]
        desired = desired_states(manifests)
        # What was applied: the same objects, 10% of them with an older spec.
        applied = tuple(
            ObjectState(o.kind, o.name, "old" if i % 10 == 0 else o.content_hash, o.document)
            for i, o in enumerate(desired))
        t2 = time.perf_counter()
        plan = decide(ManifestSnapshot("bench", "rev", desired, (), applied))
        t3 = time.perf_counter()
    validate_s, states_s, plan_s = t1 - t0, t2 - t1, t3 - t2
    total = validate_s + states_s + plan_s
    print(f"manifest benchmark: {count} manifests in {args.files} files")
    print(f"load + validate     {validate_s * 1000:8.1f} ms  "
          f"({count / validate_s:,.0f} manifests/s)")
    print(f"hash + normalise    {states_s * 1000:8.1f} ms")
    print(f"plan (decide)       {plan_s * 1000:8.1f} ms  ({len(plan.actions)} changes: "
          f"{plan.reason})")
    print(f"total               {total * 1000:8.1f} ms  (ceiling 1000 ms: "
          f"{'within' if total <= 1.0 else 'OVER'})")


if __name__ == "__main__":
    main()
