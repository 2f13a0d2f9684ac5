"""Prometheus metrics, one registry per application (no module-level collectors).

Queue depth and delivery counts are read from the database at scrape time by the /metrics
route; everything else is counted where it happens. No I/O here.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "p38_deliveries_total", "Webhook deliveries by source, event and outcome.",
            ["source", "event", "outcome"], registry=self.registry)
        self.ingest_seconds = Histogram(
            "p38_ingest_seconds", "Time from request to answer for webhook deliveries.",
            ["source"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self.queue_depth = Gauge(
            "p38_queue_depth", "Keys in the work queue by state (queued, running, dead).",
            ["state"], registry=self.registry)
        self.queue_depth_stale = Gauge(
            "p38_queue_depth_stale", "1 when the database did not answer at this scrape: the "
            "queue depths are the last ones read.", registry=self.registry)
        self.reconciles = Counter(
            "p38_reconciles_total", "Reconciles by kind and outcome.", ["kind", "outcome"],
            registry=self.registry)
        self.reconcile_seconds = Histogram(
            "p38_reconcile_seconds", "Reconcile duration by kind.", ["kind"],
            registry=self.registry)
        self._delivery_children: dict[tuple[str, str, str], Any] = {}
        self.actions = Counter(
            "p38_actions_total", "Actions by kind and status.", ["kind", "status"],
            registry=self.registry)

    def count_delivery(self, source: str, event: str, outcome: str, seconds: float) -> None:
        """Count one answered delivery (label children cached: this runs per request)."""
        labels = (source, event, outcome)
        child = self._delivery_children.get(labels)
        if child is None:
            child = self._delivery_children[labels] = self.deliveries.labels(*labels)
        child.inc()
        self.ingest_seconds.labels(source).observe(seconds)
