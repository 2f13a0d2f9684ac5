"""Railway's client sends a query again after a 5xx; a document that changes something only
when it certainly did not arrive (the Railway issue's deploys and rollbacks will use it)."""

from __future__ import annotations

import httpx
import pytest
import respx

from controller.clients.railway import RailwayClient, RailwayError

URL = "https://backboard.railway.app/graphql/v2"


async def test_a_query_is_sent_again_a_mutation_is_not() -> None:
    with respx.mock() as outside:
        route = outside.post(URL).mock(side_effect=[
            httpx.Response(502), httpx.Response(200, json={"data": {"ok": 1}}),
            httpx.Response(502)])
        async with RailwayClient.open(token="t" * 20, url=URL) as railway:
            assert await railway.execute("query { ok }") == {"ok": 1}
            with pytest.raises(RailwayError, match="502"):
                await railway.execute('mutation { deploymentRollback(id: "d") }',
                                      changes=True)
    assert route.call_count == 3  # the query twice, the mutation once
