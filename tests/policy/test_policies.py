"""The policy a key runs under: the environment's switches combined with the Policy manifest
applied from the key's source; a key of no source gets every source's killswitch and
approvals (table-driven, pure)."""

from __future__ import annotations

import pytest

from controller.manifests.models import PolicySpec
from controller.reconcile.policy import Policies, Policy

OFF = PolicySpec()
KILL = PolicySpec(killswitch=True)
APPROVE = PolicySpec(approval_required=["railway.rollback"])
MANIFESTS = {"octo/infra": ("default", KILL), "octo/app": ("default", APPROVE),
             "local": ("default", OFF)}


@pytest.mark.parametrize(
    ("env", "source", "killswitch", "by", "approvals", "governed_by"),
    [
        (Policy(), "octo/infra", True, "Policy/default in octo/infra", set(),
         "Policy/default in octo/infra"),
        (Policy(), "octo/app", False, "P38_KILLSWITCH", {"railway.rollback"},
         "Policy/default in octo/app"),
        (Policy(), "local", False, "P38_KILLSWITCH", set(), "Policy/default in local"),
        (Policy(), "other/repo", False, "P38_KILLSWITCH", set(), None),  # no manifest
        (Policy(), None, True, "Policy/default in octo/infra", {"railway.rollback"}, None),
        (Policy(killswitch=True), "local", True, "P38_KILLSWITCH", set(),
         "Policy/default in local"),
        (Policy(killswitch=True), "octo/infra", True, "P38_KILLSWITCH", set(),
         "Policy/default in octo/infra"),
    ],
    ids=["manifest-killswitch", "manifest-approvals", "manifest-off", "no-manifest",
         "no-source-strictest", "env-killswitch", "env-wins-the-credit"],
)
def test_policy_for_a_source(env: Policy, source: str | None, killswitch: bool, by: str,
                             approvals: set[str], governed_by: str | None) -> None:
    """Each source gets the environment's policy under its own Policy manifest; a key of no source
    gets them all."""
    policy = Policies(env, MANIFESTS).for_source(source)
    assert policy.killswitch is killswitch
    if killswitch:
        assert policy.killswitch_by == by
    assert set(policy.approval_required) == approvals
    assert policy.governed_by == governed_by


def test_the_manifest_spec_reaches_decide() -> None:
    """Reconcilers read the rest of the Policy (auto-merge, commands) from the policy."""
    spec = PolicySpec.model_validate({"autoMerge": {"method": "rebase"}})
    policy = Policies(Policy(), {"octo/app": ("default", spec)}).for_source("octo/app")
    assert policy.spec.auto_merge.method == "rebase"
    assert Policies(Policy(), {}).for_source("octo/app").spec == PolicySpec()


def test_a_comment_stop_holds_its_repository_only_never_keys_of_no_source() -> None:
    """A writer of any repository can /claude stop it; that must not freeze the deployments
    and redeliveries (keys of no source) of every other repository."""
    from controller.reconcile.policy import Policies, Policy

    policies = Policies(Policy(), {}, {"mallory/x": "/claude stop by @mallory in mallory/x"})
    assert policies.for_source("mallory/x").killswitch
    assert not policies.for_source("octo/infra").killswitch
    assert not policies.for_source(None).killswitch
