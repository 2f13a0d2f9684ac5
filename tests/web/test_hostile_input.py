"""Hostile and odd input through the real app: one clear 4xx for the sender, never a 500, never
a good delivery lost for a bad one, never a body read before its token is checked, bounded
memory for bodies nobody has authenticated, and a log line for every request."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from structlog.testing import capture_logs

from controller.app import create_app
from controller.config import ServerSettings
from controller.store import Store
from controller.web.keys import BODIES
from tests.helpers import (
    GITHUB_SECRET,
    N8N_SECRET,
    RAILWAY_SECRET,
    github_payload,
    github_request,
    make_settings,
    sign,
    wait_until,
)


async def raw(client: Any, data: bytes) -> tuple[int, dict[str, Any]]:
    """Send bytes no HTTP client library would (undecodable header bytes) to the test server;
    the answer's status and JSON body."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(data)
    await writer.drain()
    try:
        return await read_response(reader)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """One response, by its Content-Length (the server may keep the connection open a while
    to discard a request body it did not read)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines
                  if line.lower().startswith("content-length:"))
    return int(lines[0].split(" ", 2)[1]), json.loads(await reader.readexactly(length))


def signed_request(headers: dict[str, str], body: bytes, *, odd: bytes = b"") -> bytes:
    """An HTTP/1.1 request with `odd` appended raw to the header block."""
    lines = [b"POST /webhooks/github HTTP/1.1", b"Host: test", b"Connection: close",
             f"Content-Length: {len(body)}".encode()]
    lines += [f"{k}: {v}".encode() for k, v in headers.items()]
    if odd:
        lines.append(odd)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def test_a_bad_delivery_in_a_batch_costs_no_good_one(aiohttp_client, store: Store,
                                                           dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A validly signed delivery with an undecodable byte in a kept header, sent with twenty
    good ones: it alone gets a 400 naming the header; every good one is stored."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    good = [github_request("pull_request", "opened") for _ in range(20)]
    headers, body = github_request("pull_request", "opened")
    bad = signed_request({k: v for k, v in headers.items() if k != "User-Agent"}, body,
                         odd=b"User-Agent: GitHub-Hookshot/\xff")
    answers = await asyncio.gather(
        raw(client, bad),
        *[client.post("/webhooks/github", data=b, headers=h) for h, b in good])
    status, reason = answers[0]
    assert (status, reason["reason"]) == (400, "the User-Agent header is not valid UTF-8")
    assert [r.status for r in answers[1:]] == [202] * 20
    stored = {r["guid"] for r in await store.fetch("deliveries_list", "github", None, None,
                                                    None, 100)}
    assert stored == {h["X-GitHub-Delivery"] for h, _ in good}


async def test_a_nul_the_database_cannot_hold_is_a_400_alone_or_in_a_batch(
        aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A NUL in the repository name (it becomes a key) is refused with 400, whether the
    delivery comes alone or with others; never a 503 inviting retries that cannot succeed."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    _, sample_body = github_request("push", "default-branch")
    payload = json.loads(sample_body)
    payload["repository"]["full_name"] = "octo-org/in\u0000fra"
    for company in (0, 5):
        headers, body = github_payload("push", payload)
        others = [github_request("push", "default-branch") for _ in range(company)]
        answers = await asyncio.gather(
            client.post("/webhooks/github", data=body, headers=headers),
            *[client.post("/webhooks/github", data=b, headers=h) for h, b in others])
        assert answers[0].status == 400
        assert "holds a NUL character" in (await answers[0].json())["reason"]
        assert [a.status for a in answers[1:]] == [202] * company


async def test_overlong_identities_are_a_400_naming_the_field(aiohttp_client, store: Store,
                                                              dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A delivery id or a repository name far longer than any sender's (they would not fit a
    database index) is refused with 400 naming the field and the limit, not PostgreSQL's
    words; good deliveries beside them are stored."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    long_guid = github_request("push", "default-branch", guid="g" * 3000)
    _, sample_body = github_request("push", "default-branch")
    payload = json.loads(sample_body)
    payload["repository"]["full_name"] = "octo-org/" + "r" * 3000
    long_name = github_payload("push", payload)
    good = [github_request("push", "default-branch") for _ in range(5)]
    answers = await asyncio.gather(*[client.post("/webhooks/github", data=b, headers=h)
                                     for h, b in [long_guid, long_name, *good]])
    reasons = [(await a.json())["reason"] for a in answers[:2]]
    assert [a.status for a in answers] == [400, 400] + [202] * 5
    assert reasons[0] == "the delivery id is 3000 bytes long; at most 256 are accepted"
    assert reasons[1] == "repository.full_name is 3009 bytes long; at most 140 are accepted"
    assert "index" not in " ".join(reasons)


async def test_an_identity_header_sent_twice_is_a_400(aiohttp_client, store: Store,
                                                     dsn: str) -> None:  # type: ignore[no-untyped-def]
    """Two X-GitHub-Event or two signature headers: which counts would be a guess (the
    signature does not cover headers), so the delivery is refused, naming the header."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    headers, body = github_request("push", "default-branch")
    for odd, name in ((b"X-GitHub-Event: ping", "X-GitHub-Event"),
                      (b"X-Hub-Signature-256: sha256=00", "X-Hub-Signature-256")):
        status, answer = await raw(client, signed_request(headers, body, odd=odd))
        assert (status, answer["reason"]) == (400, f"the {name} header is sent 2 times; once "
                                                   "is expected")


async def test_a_delivery_naming_too_many_objects_is_a_400(aiohttp_client, store: Store,
                                                           dsn: str) -> None:  # type: ignore[no-untyped-def]
    """An installation granting 2,000 repositories names 2,001 objects (itself too): refused
    with the count and the limit (each would take a lock PostgreSQL shares with every
    database); one naming 2,000 is stored with its keys."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    _, sample_body = github_request("installation", "created")
    payload = json.loads(sample_body)
    template = payload["repositories"][0]
    answers = []
    for count in (2000, 1999):  # with the installation's own key: 2,001 and 2,000
        payload["repositories"] = [{**template, "full_name": f"octo-org/r{n}", "name": f"r{n}"}
                                   for n in range(count)]
        headers, body = github_payload("installation", payload)
        answers.append(await client.post("/webhooks/github", data=body, headers=headers))
    assert [a.status for a in answers] == [400, 202]
    assert (await answers[0].json())["reason"].startswith("the delivery names 2001 objects; "
                                                          "at most 2000 are accepted")
    stored = (await answers[1].json())["keys"]
    assert len(stored) == 2000


async def test_odd_bytes_in_secrets_are_a_401_with_a_log_line(aiohttp_client, store: Store,
                                                              dsn: str) -> None:  # type: ignore[no-untyped-def]
    """Undecodable or non-ASCII bytes where a signature or token goes: 401 JSON, never a 500,
    and the request's log line is written."""
    settings = make_settings(dsn, api_token="api-token-123456")
    client = await aiohttp_client(create_app(settings))
    headers, body = github_request("push", "default-branch")
    unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    railway = (b"POST /webhooks/railway HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nContent-Length: 2\r\n")
    with capture_logs() as logs:
        for odd in (b"X-Hub-Signature-256: sha256=\xff\xfe", "X-Hub-Signature-256: "
                    "sha256=\u00e9\u2603".encode()):
            assert (await raw(client, signed_request(unsigned, body, odd=odd)))[0] == 401
        for odd in (b"Authorization: Bearer \xff\xfe", b"X-P38-Token: \xe9t\xe9"):
            status, answer = await raw(client, railway + odd + b"\r\n\r\n{}")
            assert (status, answer["reason"]) == (401, "token does not match")
    lines = [e for e in logs if e["event"] == "delivery"]
    assert [line["status"] for line in lines] == [401, 401, 401, 401]
    api = (b"GET /api/deliveries HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
           b"Authorization: Bearer \xff\xfe\r\n\r\n")
    assert (await raw(client, api))[0] == 401
    lower = await client.get("/api/deliveries",
                             headers={"Authorization": "bearer api-token-123456"})
    assert lower.status == 200  # the scheme is case-insensitive


async def test_odd_event_names_neither_break_metrics_nor_grow_them(aiohttp_client, store: Store,
                                                                  dsn: str) -> None:  # type: ignore[no-untyped-def]
    """An undecodable byte in the event name is a 400 (and /metrics keeps answering); forty
    verified but unknown event names are counted under one label, `other`."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    headers, body = github_request("push", "default-branch")
    odd = signed_request({k: v for k, v in headers.items() if k != "X-GitHub-Event"}, body,
                         odd=b"X-GitHub-Event: pu\xffsh")
    status, answer = await raw(client, odd)
    assert (status, answer["reason"]) == (400, "the event name is not valid UTF-8")
    for n in range(40):
        h, b = github_payload(f"invented_event_{n}", {"zen": "x"})
        assert (await client.post("/webhooks/github", data=b, headers=h)).status == 202
    metrics = await client.get("/metrics")
    text = await metrics.text()
    assert metrics.status == 200 and "invented_event" not in text
    assert 'p38_deliveries_total{event="other",outcome="stored",source="github"} 40.0' in text


async def test_n8n_alerts_have_their_label_and_other_expectations_a_json_417(
        aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """`alert.fired` (docs/webhooks.md) is counted as `alert`, not `other`; an `Expect` other
    than 100-continue is a JSON 417 that does not quote it; 100-continue still works."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    alert = await client.post("/webhooks/n8n", json={"event": "alert.fired", "workflow": "w",
                                                     "message": "TSLA +5%"},
                              headers={"Authorization": f"Bearer {N8N_SECRET}"})
    assert alert.status == 202
    text = await (await client.get("/metrics")).text()
    assert 'p38_deliveries_total{event="alert",outcome="stored",source="n8n"} 1.0' in text
    headers, body = github_request("ping", "app-hook")
    refused = await client.post("/webhooks/github", data=body,
                                headers={**headers, "Expect": "<script>"})
    answer = await refused.json()
    assert refused.status == 417 and "<script>" not in json.dumps(answer)
    continued = await client.post("/webhooks/github", data=body, expect100=True,
                                  headers={**headers, "X-GitHub-Delivery": str(uuid.uuid4())})
    assert continued.status == 200
    probe = await client.get("/healthz", headers={"Expect": "<script>"})
    assert probe.status == 417 and "<script>" not in await probe.text()
    # A wrong token is not told to continue: its 401 comes instead of "100 Continue".
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"POST /webhooks/n8n HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"X-P38-Token: wrong-token\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
                 b"\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 401")
    writer.close()


async def test_ambiguous_forms_and_odd_routes_are_answered_plainly(
        aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A token or a form's payload given twice, a payload with undecodable escapes: 400; a
    wrong method: 405 with Allow; an unknown path: 404 without echoing all of it; an API 400
    has its log line."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    twice = await client.post(f"/webhooks/railway?token={RAILWAY_SECRET}&token=x", json={})
    assert (twice.status, (await twice.json())["reason"]) == (
        400, "?token= is given more than once; give it once")
    form = {"Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event": "ping"}
    for body, reason in ((b"payload=%7B%7D&payload=%7B%7D", "'payload' more than once"),
                         (b"payload=%7B%22a%22%3A%22%FF%22%7D", "form body is not UTF-8")):
        headers = {**form, "X-GitHub-Delivery": str(uuid.uuid4()),
                   "X-Hub-Signature-256": sign(body)}
        answer = await client.post("/webhooks/github", data=body, headers=headers)
        assert answer.status == 400 and reason in (await answer.json())["reason"]
    wrong = await client.delete("/api/deliveries")
    assert wrong.status == 405 and "GET" in wrong.headers["Allow"]
    missing = await client.get("/nowhere/" + "x" * 5000)
    assert missing.status == 404 and len((await missing.json())["reason"]) < 200
    with capture_logs() as logs:
        assert (await client.get("/api/deliveries?limit=0")).status == 400
    assert [(line["event"], line["status"]) for line in logs] == [("api_request", 400)]


async def test_a_token_is_checked_before_the_body_is_read(aiohttp_client, store: Store,
                                                         dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A Railway request announcing 20 MiB without a token is refused at once: the server
    answers without waiting for (or reading) a byte of the body."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    announced = (b"POST /webhooks/railway HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 20971520\r\n\r\n")
    status, answer = await asyncio.wait_for(raw(client, announced), timeout=10)
    assert status == 401 and answer["reason"].startswith("missing token")


async def _start_bodies(client: Any, sizes: list[int]) -> list[tuple[Any, Any]]:
    """Open one unsigned GitHub request per size, announcing 4096 bytes and sending `size`."""
    held = []
    for size in sizes:
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(b"POST /webhooks/github HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
                     b"X-GitHub-Delivery: slow\r\nContent-Length: 4096\r\n\r\n" + b"{" * size)
        await writer.drain()
        held.append((reader, writer))
    return held


def _budget_settings(dsn: str) -> Any:
    return make_settings(dsn).model_copy(update={"server": ServerSettings(
        P38_MAX_BODY_BYTES=4096, P38_READING_BODIES_BYTES=8192, P38_BODY_TIMEOUT_SECONDS=60)})


async def _finish_bodies(client: Any, held: list[tuple[Any, Any]], sent: list[int]) -> None:
    for (reader, writer), size in zip(held, sent, strict=True):
        writer.write(b" " * (4096 - size))  # the rest: unsigned, so 401, and the budget freed
        await writer.drain()
        assert (await read_response(reader))[0] == 401
        writer.close()
    assert client.app[BODIES].used == 0


async def test_bodies_read_at_once_share_a_budget(aiohttp_client, store: Store,
                                                  dsn: str) -> None:  # type: ignore[no-untyped-def]
    """Two unsigned bodies still arriving hold nearly the whole budget with the bytes they
    sent: a third request whose body does not fit is answered 503 with Retry-After; once they
    end, the budget is free again."""
    client = await aiohttp_client(create_app(_budget_settings(dsn)))
    sent = [4000, 4000]
    held = await _start_bodies(client, sent)

    async def full() -> bool:
        return client.app[BODIES].used == 8000

    await wait_until(full, what="two bodies being read")
    third = await client.post("/webhooks/github", data=b" " * 300,
                              headers={"Content-Type": "application/json"})
    assert third.status == 503 and third.headers["Retry-After"] == "1"
    assert "too many request bodies" in (await third.json())["reason"]
    await _finish_bodies(client, held, sent)


async def test_a_body_announced_but_not_sent_holds_nothing(aiohttp_client, store: Store,
                                                          dsn: str) -> None:  # type: ignore[no-untyped-def]
    """Four unsigned requests announce the largest body and send one byte: they hold four
    bytes of the budget, not four times the body limit, and a good delivery is stored."""
    client = await aiohttp_client(create_app(_budget_settings(dsn)))
    sent = [1, 1, 1, 1]
    held = await _start_bodies(client, sent)

    async def reading() -> bool:
        return client.app[BODIES].used == 4

    await wait_until(reading, what="four bodies being read")
    headers, body = github_request("ping", "app-hook")
    good = await client.post("/webhooks/github", data=body, headers=headers)
    assert good.status == 200, await good.text()
    await _finish_bodies(client, held, sent)


async def test_a_body_that_trickles_in_is_cut_off(aiohttp_client, store: Store,
                                                  dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A sender that never finishes its body gets 408 after P38_BODY_TIMEOUT_SECONDS and
    gives its share of the budget back."""
    settings = make_settings(dsn).model_copy(update={"server": ServerSettings(
        P38_BODY_TIMEOUT_SECONDS=0.5)})
    client = await aiohttp_client(create_app(settings))
    stalled = (b"POST /webhooks/github HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    status, answer = await asyncio.wait_for(raw(client, stalled), timeout=10)
    assert status == 408 and "did not arrive within 0.5s" in answer["reason"]
    assert client.app[BODIES].used == 0


async def test_a_hung_database_is_a_503_within_the_ingest_timeout(aiohttp_client, store: Store,
                                                                  dsn: str) -> None:  # type: ignore[no-untyped-def]
    """The database holds the delivery's write (a lock another session keeps): it is answered
    503 within P38_INGEST_TIMEOUT_SECONDS, under GitHub's 10 s; the write lands once the lock
    goes, so GitHub's redelivery is then a duplicate."""
    import asyncpg

    from controller.config import IngestSettings

    settings = make_settings(dsn).model_copy(update={"ingest": IngestSettings(
        P38_INGEST_TIMEOUT_SECONDS=0.5)})
    client = await aiohttp_client(create_app(settings))
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock(1338, hashtext('repo:octo-org/infra'))")
        headers, body = github_request("push", "default-branch", guid="held-up")
        response = await client.post("/webhooks/github", data=body, headers=headers)
        assert response.status == 503
        assert "could not be stored within 0.5s" in (await response.json())["reason"]
    finally:
        await holder.execute("SELECT pg_advisory_unlock_all()")
        await holder.close()

    async def landed() -> bool:
        return await store.fetchrow("delivery_by_guid", "held-up") is not None

    await wait_until(landed, what="the held write committed", store=store)
    again = await client.post("/webhooks/github", data=body, headers=headers)
    assert again.status == 200 and (await again.json())["status"] == "duplicate"


async def test_api_parameters_are_checked(aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """Every odd query value is a 400 naming what is valid; never a 500, never an ignored
    filter."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    cases = {
        "/api/deliveries?status=%00": "status must be text without NUL",
        "/api/deliveries?status=bogus": "status must be one of failed, ignored, pending",
        "/api/deliveries?source=bogus": "source must be one of github, n8n, p38, railway",
        "/api/deliveries?kind=pull": "unknown parameter 'kind'; this route takes before, "
                                     "event, limit, source, status",
        "/api/deliveries?before=abc": "before must be an integer",
        "/api/deliveries?before=-1": "before must be between 1 and",
        "/api/deliveries?limit=%2B5": "limit must be an integer written in digits",
        "/api/deliveries?limit=1_000": "limit must be an integer written in digits",
        "/api/deliveries?limit=1&limit=2": "limit is given more than once",
        "/api/deliveries?status=pending&status=bogus": "status is given more than once",
        "/api/deliveries?limit=0": "limit must be between 1 and 1000",
        "/api/deliveries?limit=99999999999999999999": "limit must be between 1 and 1000",
        "/api/deliveries/abc%00": "the delivery's GUID or id must be text without NUL",
        "/api/queue?state=bogus": "state must be one of dead, queued",
        "/api/queue?status=dead": "unknown parameter 'status'",
        "/api/audit?outcome=bogus": "outcome must be one of dead, done, lost, requeue, retry",
        "/api/actions?status=bogus": "status must be one of dry_run, failed, held",
        "/api/resources?kind=bogus": "kind must be one of agent, alert, automerge",
        "/api/objects?kind=bogus": "kind must be one of agent, alert, automerge",
        "/api/objects?after=%00": "after must be text without NUL",
        "/api/revisions?kind=x": "unknown parameter 'kind'",
    }
    for path, reason in cases.items():
        response = await client.get(path)
        body = await response.json()
        assert response.status == 400, (path, body)
        assert body["reason"].startswith(reason), (path, body)
    for odd_digit in ("%C2%B2", "%D9%A3"):  # superscript two, Arabic three: not an id
        assert (await client.get(f"/api/deliveries/{odd_digit}")).status == 404
    ok = await client.get("/api/actions?status=held&limit=5")
    assert ok.status == 200 and (await ok.json())["items"] == []


async def test_the_database_away_is_a_503_for_the_api_and_stale_metrics(
        aiohttp_client, store: Store, dsn: str) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL refuses connections: the API answers 503 JSON with the reason, /metrics
    still answers (its queue depths marked stale), /healthz is up, /readyz says why."""
    import asyncpg

    from tests.conftest import with_database

    client = await aiohttp_client(create_app(make_settings(dsn)))
    database = urlsplit(dsn).path.lstrip("/")  # the embedded server's DSN has ?host=
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        await admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = $1 AND pid <> pg_backend_pid()", database)
        api = await client.get("/api/deliveries")
        assert api.status == 503
        reason = (await api.json())["reason"]
        assert reason.startswith("the database is not available") and "Error" not in reason
        assert api.headers["Retry-After"] == "5"
        metrics = await client.get("/metrics")
        assert metrics.status == 200 and "p38_queue_depth_stale 1.0" in await metrics.text()
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 503 and "reason" in await ready.json()
    finally:
        await admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        await admin.close()
    metrics = await wait_until(lambda: _fresh_metrics(client), what="metrics fresh again")
    assert "p38_queue_depth_stale 0.0" in metrics


async def _fresh_metrics(client: Any) -> str | None:
    text: str = await (await client.get("/metrics")).text()
    return text if "p38_queue_depth_stale 0.0" in text else None


async def test_readyz_answers_in_time_when_the_database_hangs(aiohttp_client, store: Store,
                                                              dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A lock held on a table /readyz reads makes PostgreSQL hang for it: it answers 503 with
    the reason within its own timeout instead of holding the probe."""
    import asyncpg

    client = await aiohttp_client(create_app(make_settings(dsn)))
    holder = await asyncpg.connect(dsn)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE applied_objects IN ACCESS EXCLUSIVE MODE")
        ready = await asyncio.wait_for(client.get("/readyz"), timeout=10)
        assert ready.status == 503
        assert (await ready.json())["reason"] == "the database did not answer within 3s"
        await transaction.rollback()
    finally:
        await holder.close()
    assert (await client.get("/readyz")).status == 200


def test_sign_helper_matches_githubs_scheme() -> None:
    """The helper these tests sign with computes GitHub's sha256 HMAC of the exact body."""
    assert sign(b"{}", GITHUB_SECRET).startswith("sha256=") and RAILWAY_SECRET
    assert uuid.UUID(github_request("ping", "app-hook")[0]["X-GitHub-Delivery"])


async def test_a_compressed_body_is_refused_before_decoding(aiohttp_client, store: Store,
                                                     dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A compressed body is a 415 before a byte of it is decoded (a few bytes of gzip would
    hold megabytes of the budget), not a 500 when it does not decode."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    bomb = signed_request({"Content-Type": "application/json", "X-GitHub-Event": "ping",
                           "X-GitHub-Delivery": "gz", "Content-Encoding": "gzip",
                           "X-Hub-Signature-256": sign(b"\x1f\x8bxx")}, b"\x1f\x8bxx")
    status, body = await raw(client, bomb)
    assert (status, body["reason"]) == (415, "a Content-Encoding is not accepted: send the body "
                                             "uncompressed")
    assert client.app[BODIES].used == 0
    # Twice, "identity" first: the parser would decode by the last one; refused all the same.
    headers, plain = github_request("ping", "app-hook")
    twice = signed_request({**headers, "Content-Encoding": "identity"}, gzip.compress(plain),
                           odd=b"Content-Encoding: gzip")
    status, body = await raw(client, twice)
    assert status == 415, body


async def test_a_repository_name_github_could_not_send_is_a_400(aiohttp_client, store: Store,
                                                                 dsn: str) -> None:  # type: ignore[no-untyped-def]
    """A `repository.full_name` with `#`, `..`, more than one `/` or a space would become a key
    another object's and an API path (`/repos/octo-org/infra/../other/...`): refused, named."""
    client = await aiohttp_client(create_app(make_settings(dsn)))
    _, sample_body = github_request("pull_request", "opened")
    for odd in ("octo-org/infra#8", "octo-org/infra/../other", "octo-org/..", "octo org/infra",
                "octo-org/infra?x=1", "/infra"):
        payload = json.loads(sample_body)
        payload["repository"]["full_name"] = odd
        headers, body = github_payload("pull_request", payload)
        answer = await client.post("/webhooks/github", data=body, headers=headers)
        assert answer.status == 400, odd
        assert (await answer.json())["reason"] == (
            f"repository.full_name {odd!r} is not owner/name as GitHub names repositories")
    assert await store.fetch("queue_list", None, None, 10) == []
