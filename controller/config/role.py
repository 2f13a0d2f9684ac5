"""What one process does, from its settings and how it was started: `serve` (`p38 up`, `p38
serve`: webhooks, the API, reconciles, and the job kinds P38_JOBS names) or `worker` (`p38
worker --kinds ...`: only the job workers of its kinds, and the health routes). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.config.serving import JOB_KINDS

if TYPE_CHECKING:
    from controller.config import Settings


@dataclass(frozen=True)
class Role:
    name: str  # "serve" or "worker"
    reconcile_workers: int
    jobs: Mapping[str, int] = field(default_factory=dict)  # job kind -> job workers here

    @classmethod
    def of(cls, settings: Settings, worker: Sequence[str] | None) -> Role:
        queue = settings.queue
        if worker is not None:
            unknown = sorted(set(worker) - set(JOB_KINDS))
            if unknown:
                raise ValueError(f"unknown job kind {', '.join(unknown)}: use "
                                 f"{', '.join(JOB_KINDS)}")
            return cls("worker", 0, {kind: queue.job_workers(kind) for kind in JOB_KINDS
                                     if kind in worker})
        if not queue.workers:  # --workers 0: this process only ingests
            return cls("serve", 0)
        return cls("serve", queue.workers,
                   {kind: queue.job_workers(kind) for kind in queue.job_kinds()})
