"""The Railway operations a Service needs (issue 17, part 1): every document is valid against
Railway's published schema; the token goes in the header its kind needs; a 429 is a firm wait
until Railway's reset and nothing is sent meanwhile; a mutation whose answer was lost is never
sent again by the client, a query is."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from controller.clients import railway_ops
from controller.clients.railway import RailwayClient, RailwayError
from controller.reconcile.errors import RateLimited
from tests.fakes.railway import validation_errors

URL = "https://backboard.railway.app/graphql/v2"
NODE = {"id": "dep-2", "status": "SUCCESS", "canRollback": True,
        "createdAt": "2026-12-07T10:00:00.000Z", "serviceId": "svc", "environmentId": "env",
        "staticUrl": "web.up.railway.app", "meta": {"commitHash": "a" * 40, "branch": "main"}}


@pytest.mark.parametrize("name", sorted(railway_ops.DOCUMENTS))
def test_every_document_is_valid_against_railways_schema(name: str) -> None:
    assert validation_errors(railway_ops.DOCUMENTS[name]) == []


def serve(answer: Callable[[dict[str, Any]], httpx.Response],
          seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        assert validation_errors(body["query"]) == []
        return answer(body)

    return httpx.MockTransport(handle)


async def test_the_operations_shape_railways_answers() -> None:
    seen: list[httpx.Request] = []

    def answer(body: dict[str, Any]) -> httpx.Response:
        if "deploymentRollback" in body["query"]:
            return httpx.Response(200, json={"data": {"deploymentRollback": True}})
        if "serviceInstanceDeployV2" in body["query"]:
            assert body["variables"] == {"serviceId": "svc", "environmentId": "env",
                                         "commitSha": "b" * 40}
            return httpx.Response(200, json={"data": {"serviceInstanceDeployV2": "dep-3"}})
        if "deployments(" in body["query"]:
            older = {**NODE, "id": "dep-1", "status": "REMOVED",
                     "createdAt": "2026-12-06T10:00:00.000Z"}
            return httpx.Response(200, json={"data": {"deployments": {"edges": [
                {"node": older}, {"node": NODE}]}}})
        return httpx.Response(200, json={"data": {"deployment": NODE}})

    async with RailwayClient.open(token="t" * 20, url=URL,
                                  transport=serve(answer, seen)) as client:
        found = await railway_ops.deployment(client, "dep-2")
        listed = await railway_ops.deployments(client, "svc", "env")
        made = await railway_ops.deploy(client, "svc", "env", "b" * 40)
        rolled = await railway_ops.rollback(client, "dep-1")
    assert (found.status, found.commit, found.can_rollback) == ("SUCCESS", "a" * 40, True)
    assert [d.id for d in listed] == ["dep-2", "dep-1"]  # newest first
    assert (made, rolled) == ("dep-3", True)
    assert all(r.headers["authorization"] == f"Bearer {'t' * 20}" for r in seen)


async def test_a_project_token_goes_in_its_own_header() -> None:
    seen: list[httpx.Request] = []
    ok = serve(lambda _b: httpx.Response(200, json={"data": {"deployment": NODE}}), seen)
    async with RailwayClient.open(token="p" * 20, url=URL, kind="project",
                                  transport=ok) as client:
        await railway_ops.deployment(client, "dep-2")
    assert seen[0].headers["project-access-token"] == "p" * 20
    assert "authorization" not in seen[0].headers


async def test_a_rate_limit_is_a_firm_wait_and_nothing_is_sent_meanwhile() -> None:
    seen: list[httpx.Request] = []
    limited = serve(lambda _b: httpx.Response(429, headers={"Retry-After": "90"},
                                              json={"errors": [{"message": "slow down"}]}),
                    seen)
    async with RailwayClient.open(token="t" * 20, url=URL, transport=limited) as client:
        with pytest.raises(RateLimited) as first:
            await railway_ops.deployment(client, "dep-2")
        with pytest.raises(RateLimited):
            await railway_ops.deployment(client, "dep-2")
    assert 80 < first.value.requeue_after <= 90 and first.value.firm
    assert len(seen) == 1


async def test_a_mutation_whose_answer_was_lost_is_not_sent_again_a_query_is() -> None:
    seen: list[httpx.Request] = []
    failing = serve(lambda _b: httpx.Response(502, text="bad gateway"), seen)
    async with RailwayClient.open(token="t" * 20, url=URL, transport=failing) as client:
        with pytest.raises(RailwayError, match="not sent again"):
            await railway_ops.rollback(client, "dep-1")
        assert len(seen) == 1
        with pytest.raises(RailwayError):
            await railway_ops.deployment(client, "dep-2")
    assert len(seen) == 3  # the query was tried twice


async def test_railways_errors_come_back_with_its_messages() -> None:
    seen: list[httpx.Request] = []
    refused = serve(lambda _b: httpx.Response(200, json={
        "data": None, "errors": [{"message": "Deployment not found"}]}), seen)
    async with RailwayClient.open(token="t" * 20, url=URL, transport=refused) as client:
        with pytest.raises(RailwayError, match="Deployment not found"):
            await railway_ops.deployment(client, "nope")


async def test_against_the_stateful_fake_deploy_fail_and_roll_back() -> None:
    """The fake moves deployments as Railway does: a deploy is QUEUED, a success supersedes
    the live one (REMOVED, still able to roll back), a rollback makes a new deployment of
    the earlier commit; a rollback whose answer was lost is carried out once."""
    from tests.fakes.railway import FakeRailway

    fake = FakeRailway()
    good = fake.add("svc", "env", "a" * 40)
    async with RailwayClient.open(token=fake.token, url=URL,
                                  transport=fake.transport()) as client:
        made = await railway_ops.deploy(client, "svc", "env", "b" * 40)
        fake.advance(made, "SUCCESS")
        assert fake.by_id(good["id"])["status"] == "REMOVED"
        fake.advance(made, "FAILED")
        listed = await railway_ops.deployments(client, "svc", "env")
        assert [(d.id, d.status, d.commit) for d in listed] == [
            (made, "FAILED", "b" * 40), (good["id"], "REMOVED", "a" * 40)]
        fake.lose_next()
        with pytest.raises(RailwayError, match="not sent again"):
            await railway_ops.rollback(client, good["id"])
        fake.fail_next(429, headers={"Retry-After": "30"})
        with pytest.raises(RateLimited):
            await railway_ops.deployments(client, "svc", "env")
    assert [kind for kind, _ in fake.mutations] == ["deploy", "rollback"]
    assert fake.deployments[0]["meta"]["commitHash"] == "a" * 40  # the rollback's deployment
