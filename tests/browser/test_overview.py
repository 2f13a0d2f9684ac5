"""The overview in a real browser, over a controller with a day's data: what a person sees
(the killswitch, the chart, the queue, the held deploy, objects by status, the failures, their
links), and its screenshot for a person to look at (tests/artifacts/overview.png)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.seed import DEPLOY, HELD_KEY, WEBHOOKS, Site
from tests.browser.steps import VIEWPORT, rows, shoot

expect = pytest.importorskip("playwright.async_api",
                             reason="the playwright package is not installed").expect


async def test_the_overview_shows_what_the_controller_is_doing(browser: Any, site: Site,
                                                               shots: Path) -> None:
    """Killswitch off everywhere, the chart's bars with their titles, the dead letter and the
    held deploy, objects counted by status with links to them, the retried failures."""
    page = await browser.new_page(viewport=VIEWPORT)
    response = await page.goto(site.url)
    assert response.status == 200
    await expect(page).to_have_title("Overview · project38")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")

    killswitch = page.locator("section:has(h2#ks)")
    await expect(killswitch).to_contain_text("Off everywhere: actions run as the Policy allows.")
    assert await rows(page, "Killswitch") == ["local\toff\t\t"]  # no button: not signed in

    deliveries = page.locator("svg.series-deliveries")
    await expect(deliveries.locator("> title")).to_have_text(
        re.compile(rf"^{WEBHOOKS} deliveries in the last hour, at most \d+ in a minute$"))
    assert await deliveries.get_attribute("role") == "img"
    bars = await deliveries.locator("rect > title").all_text_contents()
    assert sum(int(re.search(r": (\d+) deliveries$", b)[1]) for b in bars) == WEBHOOKS  # type: ignore[index]
    reconciles = page.locator("svg.series-reconciles > title")
    await expect(reconciles).to_have_text(re.compile(r"^\d+ reconciles in the last hour"))
    assert int((await reconciles.text_content() or "0").split()[0]) > 0
    await expect(page.get_by_text("Deliveries per minute")).to_be_visible()

    queue = page.locator("section:has(h2#queue)")
    await expect(queue).to_contain_text("Controllers running: 1")
    await expect(queue).to_contain_text(re.compile(r"dead [1-9]"))
    dead = await rows(page, "Controllers and queue")
    assert any(r.startswith("probe:local/gave-up\tTerminalError: service 'ghost'")
               for r in dead), dead

    [held] = await rows(page, "Held actions")
    assert held.startswith(f"{DEPLOY.idempotency_key}\n{DEPLOY.description}\t{HELD_KEY}\t")
    assert "approval" in held
    assert await page.get_by_role("button", name="Approve").count() == 0  # not signed in

    objects = page.locator("section:has(h2#objects)")
    for status in ("Ready", "Reconciling", "Waiting", "Stalled", "Blocked"):
        link = objects.locator(f"a[href='/objects?status={status}']")
        await expect(link).to_contain_text(re.compile(rf"^{status} [1-9]\d*$"))
    not_ready = "\n".join(await rows(page, "Objects by status"))
    for key in ("probe:local/flaky-upstream", "probe:local/waits-for-railway",
                "probe:local/gave-up", HELD_KEY, "agent:local/tesla-watch"):
        assert key in not_ready
    href = await objects.get_by_role("link", name=HELD_KEY).first.get_attribute("href")
    assert href == "/objects/probe%3Alocal%2Fdeploy-web"

    failures = await rows(page, "Recent failures")
    assert any("probe:local/flaky-upstream\tretry\tConnectionError: the upstream answered 503"
               in f for f in failures), failures

    nav = page.get_by_role("navigation", name="Sections")
    assert await nav.get_by_role("link").all_inner_texts() == [
        "Overview", "Objects", "Deliveries", "Agents", "Tasks", "Services", "Pull requests",
        "Operator log"]
    await expect(page.get_by_role("link", name="Sign in")).to_have_attribute(
        "href", "/login?next=%2F")
    await expect(page.locator("footer")).to_contain_text("every status links to the decision")
    await shoot(page, shots, "overview")

