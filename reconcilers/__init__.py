"""One reconciler per kind of object; `default_registry()` maps each key kind to its reconciler.

Reconcilers do no I/O of their own (import-linter checks it): `observe` reads through the
context it is given, `decide` is pure. Their order here is the order in which a delivery's
keys are listed.
"""

from __future__ import annotations

from controller.reconcile.reconciler import Reconciler
from reconcilers.agents.agents import Agents
from reconcilers.agents.generations import Generations
from reconcilers.agents.runs import Runs
from reconcilers.agents.schedules import Schedules
from reconcilers.automerge.pulls import AutoMergePulls
from reconcilers.automerge.sweep import Commits, Sweeps
from reconcilers.claude.command_intake import CommandIntake
from reconcilers.claude.sessions import Sessions
from reconcilers.claude.tasks import Tasks
from reconcilers.github.installations import Installations
from reconcilers.github.issues import Issues
from reconcilers.github.redeliveries import Redeliveries
from reconcilers.github.repos import Repositories
from reconcilers.github.workflows import Workflows
from reconcilers.gitops.manifests import ManifestSources
from reconcilers.gitops.plans import PullRequestPlans
from reconcilers.gitops.policies import PolicyObjects
from reconcilers.n8n.alerts import Alerts
from reconcilers.railway.deployments import Deployments
from reconcilers.railway.services import ServiceObjects


def default_registry(*, manifests_folder: str = "manifests/") -> dict[str, Reconciler]:
    """Every reconciler; `manifests_folder` is the folder holding manifests in each
    repository (P38_MANIFESTS_PATH)."""
    reconcilers: list[Reconciler] = [
        Repositories(), AutoMergePulls(manifests_folder=manifests_folder), Commits(), Issues(),
        Installations(), Deployments(), Workflows(),
        ManifestSources(folder=manifests_folder), PullRequestPlans(),
        Agents(), Runs(), Schedules(), ServiceObjects(), PolicyObjects(), Redeliveries(),
        CommandIntake(), Tasks(), Sweeps(), Alerts(), Generations(),
        Sessions()]
    return {r.kind: r for r in reconcilers}
