"""The operator's words from the page in a real browser: sign in through the form, approve the
held deploy and see it released (it runs, the list empties, the approval is recorded with the
name), set and lift a killswitch; and what is refused: a word without a sign-in (no button,
and a direct post changes nothing), a form whose CSRF token is not the page's, and a form
posted from another site."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.browser.seed import DEPLOY, HELD_KEY, Site
from tests.browser.steps import VIEWPORT, rows, shoot, sign_in
from tests.helpers import wait_until

expect = pytest.importorskip("playwright.async_api",
                             reason="the playwright package is not installed").expect


async def _words(site: Site) -> list[tuple[str, str, str, str, str]]:
    """The words recorded as said from the page (the seeding said some through the API)."""
    return [(r["by_whom"], r["via"], r["verb"], r["target"], r["outcome"])
            for r in await site.store.fetch("operator_actions_list", None, None, 20)
            if r["via"] == "page"]


async def _unchanged(site: Site) -> None:
    """Nothing any refused word could have done was done."""
    assert await site.store.pool.fetchval("SELECT count(*) FROM approvals") == 0
    assert await site.store.fetch("killswitches_all") == []
    assert await _words(site) == []
    [held] = await site.store.fetch("actions_held", 5)
    assert held["idempotency_key"] == DEPLOY.idempotency_key
    assert site.deployed == []


async def test_approving_the_held_deploy_from_the_page_releases_it(browser: Any, site: Site,
                                                                   shots: Path) -> None:
    page = await browser.new_page(viewport=VIEWPORT)
    await sign_in(page, site, "Dana Ops")
    await expect(page.locator("header .who")).to_contain_text("Dana Ops (write)")
    await shoot(page, shots, "overview-signed-in")
    await page.set_viewport_size({"width": 1000, "height": 1300})  # the README's picture
    await page.screenshot(path=str(shots / "readme-overview.png"))

    row = page.locator("section:has(h2#held) tbody tr", has_text=DEPLOY.idempotency_key)
    async with page.expect_navigation() as went:
        await row.get_by_role("button", name="Approve").click()
    assert (await went.value).status == 200 and page.url == site.url  # 303 back to the page
    await expect(page.get_by_role("status")).to_have_text(
        f"approved {DEPLOY.idempotency_key} (by Dana Ops); {HELD_KEY} is reconciled now, "
        "and the action runs unless the killswitch is on")

    async def released() -> bool:
        await page.reload()
        return await rows(page, "Held actions") == [] and \
            await page.locator("section:has(h2#held) p").inner_text() == "None."

    await wait_until(released, what="the deploy gone from the held list", store=site.store)
    await expect(page.get_by_role("status")).to_have_count(0)  # the notice was shown once
    await shoot(page, shots, "overview-after-approve")

    async def ran() -> bool:  # (it leaves the held list when it starts; then it ends)
        action = await site.store.fetchrow("action_by_key", DEPLOY.idempotency_key)
        [status] = await site.store.fetch("statuses_of", [HELD_KEY])
        return action["status"] == "succeeded" and status["status"] == "Ready"

    await wait_until(ran, what="the deploy run and its object Ready", store=site.store)
    assert site.deployed == [DEPLOY.params]  # released: it ran, once
    granted = await site.store.pool.fetchrow(
        "SELECT approved_by FROM approvals WHERE idempotency_key = $1", DEPLOY.idempotency_key)
    assert granted["approved_by"] == "Dana Ops"
    assert await _words(site) == [
        ("Dana Ops", "page", "approve", DEPLOY.idempotency_key, "done")]


async def test_a_killswitch_is_set_and_lifted_from_the_page(browser: Any, site: Site,
                                                            shots: Path) -> None:
    page = await browser.new_page(viewport=VIEWPORT)
    await sign_in(page, site, "sam")
    local = page.locator("section:has(h2#ks) tbody tr", has_text="local")
    await local.get_by_role("button", name="Set").click()
    await expect(page.get_by_role("status")).to_have_text(
        "killswitch on for local (by sam): its actions are held")
    await expect(page.locator("section:has(h2#ks) p.error")).to_have_text(
        "On in: local (/claude stop by sam)")
    assert await rows(page, "Killswitch") == ["local\ton\tsam\tLift"]
    [switch] = await site.store.fetch("killswitches_all")
    assert (switch["source"], switch["by_whom"]) == ("local", "sam")
    await shoot(page, shots, "killswitch-on")

    await local.get_by_role("button", name="Lift").click()
    await expect(page.get_by_role("status")).to_have_text(
        "killswitch lifted for local (by sam); it was set by sam")
    await expect(page.locator("section:has(h2#ks)")).to_contain_text("Off everywhere")
    assert await rows(page, "Killswitch") == ["local\toff\t\tSet"]
    assert await site.store.fetch("killswitches_all") == []
    assert await _words(site) == [("sam", "page", "killswitch_off", "local", "done"),
                                  ("sam", "page", "killswitch_on", "local", "done")]


async def test_without_a_sign_in_no_word_is_offered_nor_taken(browser: Any,
                                                              site: Site) -> None:
    page = await browser.new_page(viewport=VIEWPORT)
    await page.goto(site.url)
    for label in ("Approve", "Set", "Lift", "Revive", "Sign out"):
        assert await page.get_by_role("button", name=label).count() == 0, label
    for path, form in (("/approve", {"idempotency_key": DEPLOY.idempotency_key}),
                       ("/killswitch", {"source": "local", "state": "on"}),
                       ("/revive", {"key": "probe:local/gave-up"})):
        answer = await page.request.post(site.at(path), form={**form, "back": "/"},
                                         max_redirects=0)
        assert answer.status == 401, (path, answer.status)
        assert "this needs a sign-in with the write token" in await answer.text()
    await _unchanged(site)
    dead = await site.store.fetchrow("queue_of_key", "probe:local/gave-up")
    assert dead["state"] == "dead"


async def test_a_forged_form_is_refused(browser: Any, site: Site, aiohttp_server: Any,
                                        shots: Path) -> None:
    """Signed in, a form whose CSRF token is not the page's is refused; so is this viewer's
    own form posted from a page on another origin, even carrying the right token."""
    page = await browser.new_page(viewport=VIEWPORT)
    await sign_in(page, site, "dana")
    csrf = await page.locator("form[action='/approve'] input[name=csrf]").get_attribute("value")
    assert csrf

    await page.locator("form[action='/approve'] input[name=csrf]").evaluate(
        "input => { input.value = 'forged' + input.value.slice(6); }")
    async with page.expect_navigation() as went:
        await page.get_by_role("button", name="Approve").click()
    assert (await went.value).status == 403
    await expect(page.get_by_role("alert")).to_have_text(
        "the form is stale or not this page's (sign in again, then retry)")
    await shoot(page, shots, "refused-forged-csrf")

    async def lure(_request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=f"""<!doctype html>
<title>Win a prize</title><form method="post" action="{site.at('/killswitch')}">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="source" value="local">
<input type="hidden" name="state" value="on"><input type="hidden" name="back" value="/">
<button>Claim the prize</button></form>""")

    evil = web.Application()
    evil.router.add_get("/", lure)
    elsewhere = await aiohttp_server(evil)
    assert elsewhere.port != int(re.findall(r":(\d+)/", site.url)[0])
    await page.goto(str(elsewhere.make_url("/")))
    async with page.expect_navigation() as went:
        await page.get_by_role("button", name="Claim the prize").click()
    assert (await went.value).status == 403
    await expect(page.get_by_role("alert")).to_have_text(re.compile(
        r"^a form posted from another site \(http://127\.0\.0\.1:\d+\) is refused$"))
    await _unchanged(site)
