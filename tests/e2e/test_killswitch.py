"""The Policy manifest reaches the gate: its killswitch, committed in the source's manifests,
holds the actions of that source's objects (audited, status Blocked) while observing and the
controller's own records go on; committing it off releases them at once."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from controller.app import create_app
from controller.config import ManifestSettings
from controller.providers import Env, Provider
from controller.reconcile.plan import Action
from controller.store import Store
from controller.web.keys import QUEUE
from reconcilers import default_registry
from tests.helpers import make_settings, wait_until
from tests.manifest_samples import MANIFESTS as SAMPLE_MANIFESTS
from tests.probes import Probe

OWN = SAMPLE_MANIFESTS  # a copy of the shipped manifests; never the working tree's
POKE = Action("probe.poke", {"target": "the world"}, "poke:local/x:1", needs="probe",
              description="poke the world")


def probe_provider(calls: list[Mapping[str, Any]]) -> Any:
    """A provider bundle as a new API would add one: its name, its runner."""
    async def poke(action: Action) -> Mapping[str, Any]:
        calls.append(dict(action.params))
        return {"poked": True}

    @contextlib.asynccontextmanager
    async def bundle(_env: Env) -> AsyncIterator[Provider]:
        yield Provider("probe", runners={"probe.poke": poke})

    return bundle


async def test_the_policy_manifests_killswitch_holds_then_releases(
        aiohttp_client, store: Store, dsn: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A source's Policy killswitch holds its objects' actions while manifests are applied, and
    committing it off releases them at once."""
    folder = tmp_path / "manifests"
    shutil.copytree(OWN, folder)
    policy = folder / "policy.yaml"
    policy.write_text(policy.read_text().replace("killswitch: false", "killswitch: true"))
    calls: list[Mapping[str, Any]] = []
    probe = Probe(actions=[POKE])
    settings = make_settings(dsn, workers=2).model_copy(update={"manifests": ManifestSettings(
        P38_MANIFESTS_DIR=folder, P38_MANIFESTS_POLL_SECONDS=0.05)})
    client = await aiohttp_client(create_app(settings, registry={**default_registry(),
                                                                 "probe": probe},
                                             providers=[probe_provider(calls)]))

    async def status(key: str, wanted: str) -> dict[str, Any] | None:
        found = await store.fetch("statuses_of", [key])
        return dict(found[0]) if found and found[0]["reason"] == wanted else None

    await wait_until(lambda: status("policy:local/default", "KillswitchOn"),
                     what="the policy applied with its killswitch on", store=store)
    # Applying went on under the killswitch: the controller's own records are not held.
    assert len(await store.fetch("applied_objects_of", "local")) == 8

    await client.app[QUEUE].hint(["probe:local/x"], event="test")
    held = await wait_until(lambda: status("probe:local/x", "Killswitch"),
                            what="the action held", store=store)
    assert held["status"] == "Blocked"
    assert "Policy/default in local" in held["message"]
    [action] = await store.fetch("actions_list", "probe:local/x", None, 5, None)
    assert (action["status"], action["reason"]) == (
        "held", "held: the killswitch is on (Policy/default in local)")
    assert calls == []  # nothing touched the world
    assert probe.policies[-1].governed_by == "Policy/default in local"

    policy.write_text(policy.read_text().replace("killswitch: true", "killswitch: false"))
    await wait_until(lambda: status("probe:local/x", "Probed"),
                     what="released when the killswitch is committed off", store=store)
    assert calls == [{"target": "the world"}]
    [action] = await store.fetch("actions_list", "probe:local/x", None, 5, None)
    assert action["status"] == "succeeded"
    assert (await status("policy:local/default", "Active")) is not None
