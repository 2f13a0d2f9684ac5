"""`p38 plan` against what a running controller applied: each update with its fields' old ->
new values (secrets redacted), and a source it does not know refused with the known ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings
from controller.store import Store
from tests.helpers import env_for, make_settings, p38, wait_until

POLICY = """\
apiVersion: p38/v1
kind: Policy
metadata:
  name: default
  labels: {team: ops, deploy-token: tok-old-1234567890}
spec:
  approvalRequired: [railway.rollback]
"""


async def test_plan_shows_old_and_new_values_and_refuses_an_unknown_source(  # type: ignore[no-untyped-def]
        aiohttp_client, store: Store, dsn: str, tmp_path: Path) -> None:
    """After the controller applied a folder, an edit plans one update whose changed fields
    read `path: old -> new`; a label named like a token shows `(redacted)` and never its
    value; `--source typo` is exit 1 (2 means changes) naming the sources the controller knows."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "policy.yaml").write_text(POLICY)
    settings = make_settings(dsn, workers=1).model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=folder, P38_MANIFESTS_POLL_SECONDS=0.05)})
    await aiohttp_client(create_app(settings))

    async def applied() -> list[Any]:
        return list(await store.fetch("applied_objects_of", "local"))

    await wait_until(applied, what="the policy applied", store=store)
    env = env_for(dsn)
    same = p38("plan", str(folder), env=env)
    assert (same.returncode, same.stdout) == (0, "Plan (local): no object changed.\n"), \
        same.stderr

    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "policy.yaml").write_text(
        POLICY.replace("team: ops", "team: sre").replace("tok-old-1234567890",
                                                        "tok-new-0987654321")
        .replace("[railway.rollback]", "[railway.rollback, railway.deploy]"))
    plan = p38("plan", str(edited), env=env)
    assert plan.returncode == 2, plan.stderr
    assert plan.stdout.splitlines() == [
        "~ Policy/default (metadata.labels.deploy-token, metadata.labels.team, "
        "spec.approvalRequired)",
        "    metadata.labels.deploy-token: (redacted) -> (redacted)",
        '    metadata.labels.team: "ops" -> "sre"',
        '    spec.approvalRequired: ["railway.rollback"] -> ["railway.rollback", '
        '"railway.deploy"]',
        "Plan (local): 0 to create, 1 to update, 0 to delete."]
    assert "tok-" not in plan.stdout + plan.stderr

    typo = p38("plan", str(edited), "--source", "octo/infar", env=env)
    assert typo.returncode == 1 and typo.stdout == ""
    assert typo.stderr == ("p38 plan: --source octo/infar is not a source this controller "
                           "knows: the known sources are local (a GitHub source is "
                           "OWNER/NAME)\n")


def test_an_unknown_source_with_no_database_is_refused(tmp_path: Path) -> None:
    """With no database anywhere, only `local` is known: another source is exit 2, and no
    database is created by the look."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "policy.yaml").write_text(POLICY)
    env = {**env_for(""), "P38_HOME": str(tmp_path / "home")}
    env.pop("DATABASE_URL")
    typo = p38("plan", str(folder), "--source", "typo", env=env)
    assert (typo.returncode, typo.stdout) == (1, ""), typo.stderr
    assert "there is no database here, so the only known source is local" in typo.stderr
    assert not (tmp_path / "home" / "pgdata").exists()
    local = p38("plan", str(folder), env=env)
    assert local.returncode == 2 and local.stdout.startswith("+ Policy/default\n")
