"""One reconciler per kind of object; `default_registry()` maps each key kind to its reconciler.

Reconcilers do no I/O of their own (import-linter checks it): `observe` reads through the
context it is given, `decide` is pure.
"""

from __future__ import annotations

from reconcilers.base import Reconciler
from reconcilers.deployments import Deployments
from reconcilers.installations import Installations
from reconcilers.issues import Issues
from reconcilers.manifests import ManifestSources
from reconcilers.plans import PullRequestPlans
from reconcilers.pulls import PullRequests
from reconcilers.repos import Repositories
from reconcilers.workflows import Workflows


def default_registry() -> dict[str, Reconciler]:
    reconcilers: list[Reconciler] = [Repositories(), PullRequests(), Issues(), Installations(),
                                     Deployments(), Workflows(),
                                     ManifestSources(),
                                     PullRequestPlans()]
    return {r.kind: r for r in reconcilers}
