"""Prometheus metrics, one registry per application (no module-level collectors).

Queue depth and delivery counts are read from the database at scrape time by the /metrics
route; everything else is counted where it happens. No I/O here.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Label values come from a known set, so a sender (even a verified one) cannot grow /metrics
# without bound: GitHub's webhook events as documented, Railway's event families, and the n8n
# callbacks docs/n8n.md describes. Anything else is counted as "other".
GITHUB_EVENTS = frozenset("""
branch_protection_configuration branch_protection_rule check_run check_suite code_scanning_alert
commit_comment create custom_property custom_property_values delete dependabot_alert deploy_key
deployment deployment_protection_rule deployment_review deployment_status discussion
discussion_comment fork github_app_authorization gollum installation installation_repositories
installation_target issue_comment issues label marketplace_purchase member membership
merge_group meta milestone org_block organization package page_build
personal_access_token_request ping project project_card project_column projects_v2
projects_v2_item public pull_request pull_request_review pull_request_review_comment
pull_request_review_thread push registry_package release repository repository_advisory
repository_dispatch repository_import repository_ruleset repository_vulnerability_alert
secret_scanning_alert secret_scanning_alert_location security_advisory security_and_analysis
sponsorship star status sub_issues team team_add watch workflow_dispatch workflow_job
workflow_run""".split())
RAILWAY_FAMILIES = frozenset({"DEPLOY", "Deployment", "Volume", "Alert", "Service"})
N8N_EVENTS = frozenset({"callback", "execution.finished", "execution.failed", "alert"})


def event_label(source: str, event: str) -> str:
    """The event's label value: itself when known, else `other` (empty when unverified)."""
    if not event:
        return ""
    if source == "github":
        return event if event in GITHUB_EVENTS else "other"
    if source == "railway":
        family = event.split(".", 1)[0]
        return family if family in RAILWAY_FAMILIES else "other"
    if event.startswith("alert"):  # alert.fired, alert.resolved: what docs/webhooks.md says
        return "alert"
    return event if event in N8N_EVENTS else "other"


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
        labels = (source, event_label(source, event), outcome)
        child = self._delivery_children.get(labels)
        if child is None:
            child = self._delivery_children[labels] = self.deliveries.labels(*labels)
        child.inc()
        self.ingest_seconds.labels(source).observe(seconds)
