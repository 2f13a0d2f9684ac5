"""One reconciler per kind of object; `default_registry()` maps each key kind to its reconciler.

Reconcilers do no I/O of their own (import-linter checks it): `observe` reads through the
context it is given, `decide` is pure. Their order here is the order in which a delivery's
keys are listed.
"""

from __future__ import annotations

from controller.reconcile.reconciler import Reconciler
from reconcilers.agents import Agents
from reconcilers.command_intake import CommandIntake
from reconcilers.deployments import Deployments
from reconcilers.installations import Installations
from reconcilers.issues import Issues
from reconcilers.manifests import ManifestSources
from reconcilers.objects import Services
from reconcilers.plans import PullRequestPlans
from reconcilers.policies import PolicyObjects
from reconcilers.pulls import PullRequests
from reconcilers.redeliveries import Redeliveries
from reconcilers.repos import Repositories
from reconcilers.runs import Runs
from reconcilers.schedules import Schedules
from reconcilers.tasks import Tasks
from reconcilers.workflows import Workflows


def default_registry(*, manifests_folder: str = "manifests/") -> dict[str, Reconciler]:
    """Every reconciler; `manifests_folder` is the folder holding manifests in each
    repository (P38_MANIFESTS_PATH)."""
    reconcilers: list[Reconciler] = [
        Repositories(), PullRequests(), Issues(), Installations(), Deployments(), Workflows(),
        ManifestSources(folder=manifests_folder), PullRequestPlans(),
        Agents(), Runs(), Schedules(), Services(), PolicyObjects(), Redeliveries(),
        CommandIntake(), Tasks()]
    return {r.kind: r for r in reconcilers}
