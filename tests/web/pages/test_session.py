"""Signing in and out of the operator's page, and forgery, without a browser (the real app on
the real store, through aiohttp's test client): a wrong token sets no cookie; the reader token
(P38_DASHBOARD_TOKEN) reads but says no word; reads need a sign-in once a token is set; a
cookie changed in any part, or expired, is not accepted; `next` never leads off the site;
every word without the page's CSRF token, or from another origin, is refused and changes
nothing; pages carry the security headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from controller.app import create_app
from controller.store import Store
from tests.helpers import WRITE_TOKEN, make_settings

COOKIE = "p38_session"
READ_TOKEN = "dashboard-read-token-9b2e4f61"
API_TOKEN = "operator-api-token-73c1a0d8"
HELD = "railway.rollback:svc:dep-2"
WORDS = {"/approve": {"idempotency_key": HELD},
         "/killswitch": {"source": "local", "state": "on"},
         "/replay": {"delivery": "1"},
         "/revive": {"key": "service:local/web"},
         "/run": {"agent": "agent:local/heartbeat"}}


def _settings(dsn: str, *, api: str | None = None, dashboard: str | None = None) -> Any:
    settings = make_settings(dsn, api_token=api)
    server = settings.server.model_copy(update={
        "dashboard_token": SecretStr(dashboard) if dashboard else None})
    return settings.model_copy(update={"server": server})


async def _client(aiohttp_client: Any, dsn: str, **tokens: str | None) -> Any:
    return await aiohttp_client(create_app(_settings(dsn, **tokens), write_token=WRITE_TOKEN))


async def _held(store: Store) -> None:
    """A rollback held for an approval, recorded as the executor records one."""
    await store.fetchrow("action_record", HELD, "railway.rollback", {}, "held",
                         "held: waiting for approval", "service:local/web", None,
                         "roll back web", None)


async def _sign_in(client: Any, token: str, name: str = "dana", next_: str = "/") -> Any:
    return await client.post("/login", data={"name": name, "token": token, "next": next_},
                             allow_redirects=False)


async def _csrf(client: Any) -> str:
    page = await (await client.get("/")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no word's form on the page"
    return found[1]


def _cookie(token: str, role: str, name: str, expires: int) -> str:
    """A sign-in cookie made by the documented recipe (role, name, expiry, HMAC-SHA256 with a
    key derived from the token), independently of the product's code."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    payload = f"{role}.{b64(name.encode())}.{expires}"
    key = hashlib.sha256(b"p38-page-session\0" + token.encode()).digest()
    return f"{payload}.{b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())}"


async def _as(client: Any, cookie: str, path: str = "/") -> Any:
    client.session.cookie_jar.clear()
    return await client.get(path, headers={"Cookie": f"{COOKIE}={cookie}"},
                            allow_redirects=False)


async def _nothing_changed(store: Store) -> None:
    assert await store.pool.fetchval("SELECT count(*) FROM approvals") == 0
    assert await store.fetch("killswitches_all") == []
    assert await store.fetch("operator_actions_list", None, None, 10) == []
    assert await store.pool.fetchval("SELECT count(*) FROM agent_runs") == 0


async def test_a_wrong_token_is_refused_and_sets_no_cookie(aiohttp_client: Any, store: Store,
                                                          dsn: str) -> None:
    client = await _client(aiohttp_client, dsn)
    wrong = await _sign_in(client, "not-the-token")
    assert wrong.status == 401
    assert COOKIE not in wrong.cookies
    assert "that token is not this controller&#39;s write token" in await wrong.text()
    nameless = await _sign_in(client, WRITE_TOKEN, name="  ")
    assert nameless.status == 400 and COOKIE not in nameless.cookies
    assert "give your name" in await nameless.text()


async def test_the_write_token_signs_in_and_out(aiohttp_client: Any, store: Store,
                                               dsn: str) -> None:
    client = await _client(aiohttp_client, dsn)
    await _held(store)
    signed = await _sign_in(client, WRITE_TOKEN, next_="/login")
    assert (signed.status, signed.headers["Location"]) == (303, "/login")
    morsel = signed.cookies[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert morsel.value.startswith("write.")
    page = await (await client.get("/")).text()
    assert "dana (write)" in page and ">Approve</button>" in page
    out = await client.post("/logout", allow_redirects=False)
    assert out.status == 303 and out.cookies[COOKIE].value == ""
    page = await (await client.get("/")).text()
    assert "dana (write)" not in page and ">Approve</button>" not in page
    assert ">Sign in</a>" in page


async def test_the_reader_token_reads_but_says_no_word(aiohttp_client: Any, store: Store,
                                                      dsn: str) -> None:
    client = await _client(aiohttp_client, dsn, dashboard=READ_TOKEN)
    await _held(store)
    signed = await _sign_in(client, READ_TOKEN)
    assert signed.status == 303 and signed.cookies[COOKIE].value.startswith("read.")
    page = await client.get("/")
    assert page.status == 200
    text = await page.text()
    assert "dana (read only)" in text and HELD in text
    assert 'name="csrf"' not in text and ">Approve</button>" not in text
    for path, form in WORDS.items():
        refused = await client.post(path, data={**form, "csrf": "anything", "back": "/"},
                                    allow_redirects=False)
        assert refused.status == 403, path
        assert "this needs a sign-in with the write token" in await refused.text()
    await _nothing_changed(store)


@pytest.mark.parametrize("tokens", [{"api": API_TOKEN}, {"dashboard": READ_TOKEN}])
async def test_reads_need_a_sign_in_once_a_token_is_set(aiohttp_client: Any, store: Store,
                                                        dsn: str, tokens: dict[str, str]
                                                        ) -> None:
    client = await _client(aiohttp_client, dsn, **tokens)
    away = await client.get("/?x=1", allow_redirects=False)
    location = urlsplit(away.headers["Location"])
    assert (away.status, location.path, parse_qs(location.query)) == (
        303, "/login", {"next": ["/?x=1"]})
    login = await client.get("/login?next=%2F%3Fx%3D1")
    assert login.status == 200
    assert 'name="next" value="/?x=1"' in await login.text()
    token = tokens.get("api") or READ_TOKEN
    signed = await _sign_in(client, token, next_="/?x=1")
    assert (signed.status, signed.headers["Location"]) == (303, "/?x=1")
    assert (await client.get("/", allow_redirects=False)).status == 200
    open_reads = await _client(aiohttp_client, dsn)
    assert (await open_reads.get("/", allow_redirects=False)).status == 200


async def test_a_changed_or_expired_cookie_is_not_accepted(aiohttp_client: Any, store: Store,
                                                           dsn: str) -> None:
    client = await _client(aiohttp_client, dsn, api=API_TOKEN, dashboard=READ_TOKEN)
    good = (await _sign_in(client, API_TOKEN)).cookies[COOKIE].value
    assert (await _as(client, good)).status == 200
    role, name, expires, mac = good.split(".")
    eve = base64.urlsafe_b64encode(b"eve").decode().rstrip("=")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    for changed in (f"{role}.{eve}.{expires}.{mac}",            # another name
                    f"read.{name}.{expires}.{mac}",              # another role
                    f"{role}.{name}.{int(expires) + 3600}.{mac}",  # a longer life
                    f"{role}.{name}.{expires}.{flipped}",        # another signature
                    f"{role}.{name}.{expires}", "", "write...", good + "."):
        refused = await _as(client, changed)
        assert refused.status == 303 and refused.headers["Location"].startswith("/login"), \
            changed
    # The recipe is the product's: a cookie made by it now is accepted, one expired is not.
    assert _cookie(API_TOKEN, "write", "dana", int(time.time()) + 600).split(".")[:2] == \
        good.split(".")[:2]
    assert (await _as(client, _cookie(API_TOKEN, "write", "dana",
                                      int(time.time()) + 600))).status == 200
    expired = _cookie(API_TOKEN, "write", "dana", int(time.time()) - 1)
    assert (await _as(client, expired)).status == 303
    # Signed with the other token's key, a role is not taken either.
    assert (await _as(client, _cookie(READ_TOKEN, "write", "dana",
                                      int(time.time()) + 600))).status == 303
    await _held(store)
    client.session.cookie_jar.clear()
    words = await client.post("/approve", data={"idempotency_key": HELD, "csrf": "x"},
                              headers={"Cookie": f"{COOKIE}={expired}"},
                              allow_redirects=False)
    assert words.status == 401
    await _nothing_changed(store)


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example",
                                    "/\\evil.example", "\\\\evil.example",
                                    "http:evil.example", "javascript:alert(1)", "/\r\nx",
                                    "evil.example", ""])
async def test_next_never_leads_off_the_site(aiohttp_client: Any, store: Store, dsn: str,
                                             target: str) -> None:
    """After a sign-in, and after a word (its `back` field), only a path on this site."""
    client = await _client(aiohttp_client, dsn)
    await _held(store)
    signed = await _sign_in(client, WRITE_TOKEN, next_=target)
    assert (signed.status, signed.headers["Location"]) == (303, "/")
    form = await (await client.get("/login", params={"next": target})).text()
    assert 'name="next" value="/"' in form
    back = await client.post("/killswitch", allow_redirects=False, data={
        "source": "local", "state": "off", "back": target, "csrf": await _csrf(client)})
    assert (back.status, back.headers["Location"]) == (303, "/")
    kept = await client.post("/killswitch", allow_redirects=False, data={
        "source": "local", "state": "off", "back": "/objects?status=Ready",
        "csrf": await _csrf(client)})
    assert kept.headers["Location"] == "/objects?status=Ready"  # a path here is kept


async def test_every_word_needs_this_pages_csrf_token_and_origin(aiohttp_client: Any,
                                                                store: Store, dsn: str) -> None:
    """Signed in with the write token, each word is refused (403, nothing done) without the
    CSRF token, with another's, and with the right one posted from another origin; with the
    page's own token from this origin it is done."""
    client = await _client(aiohttp_client, dsn)
    await _held(store)
    assert (await _sign_in(client, WRITE_TOKEN)).status == 303
    csrf = await _csrf(client)
    other = await _client(aiohttp_client, dsn)  # another person's sign-in, another token
    await _sign_in(other, WRITE_TOKEN, name="eve")
    theirs = await _csrf(other)
    assert theirs != csrf
    for path, form in WORDS.items():
        for given, headers, why in (
                ({}, {}, "the form is stale"),
                ({"csrf": ""}, {}, "the form is stale"),
                ({"csrf": theirs}, {}, "the form is stale"),
                ({"csrf": csrf}, {"Origin": "https://evil.example"},
                 "a form posted from another site (https://evil.example) is refused"),
                ({"csrf": csrf}, {"Origin": f"http://evil.example:{client.port}"},
                 "a form posted from another site")):
            refused = await client.post(path, data={**form, **given, "back": "/"},
                                        headers=headers, allow_redirects=False)
            assert refused.status == 403, (path, given, headers, refused.status)
            assert why in await refused.text(), (path, why)
    await _nothing_changed(store)
    done = await client.post("/approve", allow_redirects=False, headers={
        "Origin": f"http://{client.host}:{client.port}"}, data={
        **WORDS["/approve"], "csrf": csrf, "back": "/"})
    assert done.status == 303
    assert await store.pool.fetchval("SELECT approved_by FROM approvals") == "dana"


async def test_pages_carry_the_security_headers(aiohttp_client: Any, store: Store,
                                               dsn: str) -> None:
    client = await _client(aiohttp_client, dsn)
    answers = [await client.get("/"), await client.get("/login"),
               await _sign_in(client, "wrong-token"),
               await client.post("/approve", data={"idempotency_key": HELD})]
    assert [a.status for a in answers] == [200, 200, 401, 401]
    for answer in answers:
        headers = answer.headers
        policy = headers["Content-Security-Policy"]
        for part in ("default-src 'self'", "script-src 'self'", "style-src 'self'",
                     "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
            assert part in policy, (answer.url, part)
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("field", ["source", "idempotency_key"])
async def test_a_word_with_a_nul_or_control_character_is_a_400(aiohttp_client: Any,
                                                               store: Store, dsn: str,
                                                               field: str) -> None:
    """A field PostgreSQL cannot store (NUL) or a control character is refused with a reason
    page, never a 500, and nothing is recorded."""
    client = await _client(aiohttp_client, dsn)
    await _held(store)
    await _sign_in(client, WRITE_TOKEN)
    csrf = await _csrf(client)
    action = "/killswitch" if field == "source" else "/approve"
    for bad in ("local\x00x", "local\x1b[31m"):
        answer = await client.post(action, data={"csrf": csrf, "back": "/", "state": "on",
                                                 field: bad}, allow_redirects=False)
        assert answer.status == 400, await answer.text()
        assert "printable characters" in await answer.text()
    assert await store.fetch("killswitches_all") == []
    assert await store.fetch("operator_actions_list", None, None, 10) == []
