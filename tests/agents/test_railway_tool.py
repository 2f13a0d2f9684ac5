"""The `railway` tool: an agent's read-only GraphQL query goes to Railway (a fake that validates
every document against Railway's real schema and executes it over its data); mutations and
documents Railway does not accept are refused with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.app import create_app
from controller.clients.railway import read_only
from controller.config import ManifestSettings, ProviderSettings
from controller.providers import railway
from controller.store import Store
from tests.fakes.railway import FakeRailway, validation_errors
from tests.helpers import WRITE, WRITE_TOKEN, make_settings, wait_until

AGENT = """apiVersion: p38/v1
kind: Agent
metadata: {name: watcher}
spec:
  description: Reads the service's newest deployments.
  code: agents/watcher.py
  tools: [railway]
"""
CODE = '''from p38_agent import ToolError

QUERY = """query Recent($service: String!) {
  deployments(first: 2, input: {serviceId: $service}) {
    edges { node { id status } }
  }
}"""


def run(task):
    found = task.tools.railway.query(query=QUERY, variables={"service": "svc-1"})
    refused = []
    for document in ('mutation { deploymentRollback(id: "d1") }',
                     'query { deployment(id: "d1") { nothing } }',
                     'query { variables(projectId: "p", environmentId: "e") }'):
        try:
            task.tools.railway.query(query=document)
        except ToolError as exc:
            refused.append(str(exc))
    edges = found["data"]["deployments"]["edges"]
    return {"statuses": [e["node"]["status"] for e in edges], "refused": refused}
'''


def test_only_one_query_is_read_only() -> None:
    assert read_only("{ projects { edges { node { id name } } } }")
    for document, why in (("mutation { deploymentRollback(id: \"x\") }", "only reads"),
                          ("subscription { x }", "only reads"),
                          ("query a { a } query b { b }", "exactly one operation"),
                          ("query {", "not a GraphQL document")):
        with pytest.raises(ValueError, match=why):
            read_only(document)


SECRETS = {  # each a document Railway's schema accepts, refused by the tool before sending
    "variables": 'query { variables(projectId: "p", environmentId: "e", serviceId: "s") }',
    "variablesForServiceDeployment": 'query { variablesForServiceDeployment(projectId: "p", '
                                     'environmentId: "e", serviceId: "s") }',
    "Environment.variables": 'query { environment(id: "e") { variables { edges { node { '
                             'name } } } } }',
    "through a fragment": 'query { project(id: "p") { environments { edges { node { ...E } } } '
                          '} } fragment E on Environment { variables { edges { node { id } } } }',
    "Plugin.variables": 'query { plugin(id: "x") { variables { edges { node { name } } } } }',
    "DeploymentSnapshot.variables": 'query { deploymentSnapshot(deploymentId: "d") { '
                                    'variables } }',
    "apiTokens": "query { apiTokens { edges { node { displayToken } } } }",
    "apiToken": "query { apiToken { workspaces { id } } }",
    "projectToken": "query { projectToken { projectId } }",
    "projectTokens": 'query { projectTokens(projectId: "p") { edges { node { displayToken } '
                     '} } }',
    "bucketS3Credentials": 'query { bucketS3Credentials(bucketId: "b", projectId: "p", '
                           'environmentId: "e") { secretAccessKey } }',
    "gitHubSshKeys": "query { gitHubSshKeys { id } }",
    "aliased": 'query { harmless: variables(projectId: "p", environmentId: "e") }',
    "introspection": "query { __schema { types { name } } }",
    "not a root it reads": "query { me { email } }",
    # found by a hostile pass: valid below the allowed roots, and each hands over config
    "Environment.config decrypted": 'query { environment(id: "e") { config(decryptVariables: '
                                    'true) } }',
    "config through a project": 'query { project(id: "p") { environments { edges { node { '
                                'c: config(decryptVariables: true) } } } } }',
    "decrypt as a variable": 'query($d: Boolean!) { environment(id: "e") { '
                             'config(decryptVariables: $d) } }',
    "Environment.config": 'query { environment(id: "e") { config } }',
    "project members' emails": 'query { project(id: "p") { members { email } } }',
    "Deployment.meta": 'query { deployment(id: "d") { meta } }',
    "ServiceInstance.nixpacksPlan": 'query { serviceInstance(serviceId: "s", environmentId: '
                                    '"e") { nixpacksPlan } }',
    "ServiceInstance.railwayConfigFile": 'query { serviceInstance(serviceId: "s", '
                                         'environmentId: "e") { railwayConfigFile } }',
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_fields_that_return_secrets_are_refused(name: str) -> None:
    """Each document is valid against Railway's schema (else the test proves nothing), and
    the tool refuses it with the reason."""
    document = SECRETS[name]
    if name != "introspection":
        assert validation_errors(document) == [], document
    with pytest.raises(ValueError, match=r"does not read|does not pass|is not one of them"):
        read_only(document)


async def test_an_agent_reads_railway_through_the_tool(aiohttp_client: Any, store: Store,
                                                       dsn: str, tmp_path: Path) -> None:
    fake = FakeRailway(deployments=[
        {"id": "d2", "status": "SUCCESS", "serviceId": "svc-1"},
        {"id": "d1", "status": "FAILED", "serviceId": "svc-1"},
        {"id": "d0", "status": "SUCCESS", "serviceId": "svc-2"}])
    (tmp_path / "manifests").mkdir()
    (tmp_path / "agents").mkdir()
    (tmp_path / "manifests" / "watcher.yaml").write_text(AGENT)
    (tmp_path / "agents" / "watcher.py").write_text(CODE)
    settings = make_settings(dsn, workers=2).model_copy(update={
        "providers": ProviderSettings(RAILWAY_TOKEN=fake.token),
        "manifests": ManifestSettings(P38_MANIFESTS_DIR=tmp_path / "manifests",
                                      P38_MANIFESTS_POLL_SECONDS=0.05)})
    client = await aiohttp_client(create_app(settings, write_token=WRITE_TOKEN, providers=[
        railway.bundle(transport=fake.transport())]), headers=WRITE)

    async def ready() -> bool:
        return (await (await client.get("/api/agents/watcher")).json()).get("status") == "Ready"

    await wait_until(ready, what="watcher READY", store=store)
    url = (await (await client.post("/api/agents/watcher/runs", json={})).json())["url"]

    async def finished() -> dict[str, Any] | None:
        run = await (await client.get(url)).json()
        return run if run["state"] == "finished" else None

    run = await wait_until(finished, what="the run", store=store)
    assert run["outcome"] == "succeeded", run
    output = run["result"]["output"]
    assert output["statuses"] == ["SUCCESS", "FAILED"]
    mutation, unknown, secrets = output["refused"]
    assert "the railway tool only reads: a mutation is refused" in mutation
    assert "Cannot query field 'nothing' on type 'Deployment'" in unknown
    assert "does not read 'variables'" in secrets
    assert len(fake.requests) == 2  # neither the mutation nor the variables left the controller
