"""Every page of the operator's site in a real browser: the pages that exist answer 200 (each
nav link is followed, then one page of each kind the pages link to, an object's, a run's...; a
section still being built may answer 404 until it lands, then it is checked like the
others), and each passes the accessibility basics (tests/browser/a11y.py),
read by someone signed out and by someone signed in with the write token (whose pages carry
the forms). Each page is saved as a screenshot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser import a11y
from tests.browser.seed import DEPLOY, WEBHOOKS, Site
from tests.browser.steps import VIEWPORT, rows, shoot, sign_in

expect = pytest.importorskip("playwright.async_api",
                             reason="the playwright package is not installed").expect

# The pages that must answer 200: add a section here when it lands on main.
PAGES = ("/", "/login", "/objects", "/deliveries", "/agents", "/tasks", "/services", "/pulls",
         "/operator-log")
# What the nav links to while some sections are still being built (they may answer 404).
SECTIONS = ("/", "/objects", "/deliveries", "/agents", "/tasks", "/services", "/pulls",
            "/operator-log")
# One page of each kind linked from the pages (`/objects/{key}`, `/runs/{id}`...) is checked
# too; it must answer once its section is in PAGES (a run's page is part of the agents').
PART_OF = {"/runs": "/agents"}


async def _visit(page: Any, site: Site, path: str, shots: Path, label: str, *,
                 required: bool = False) -> int:
    """Load the page; when it is there, check it and save its picture. Its status."""
    response = await page.goto(site.at(path))
    assert response is not None
    if response.status == 404 and not required and path not in PAGES:
        return 404
    assert response.status == 200, (path, response.status)
    assert await page.title(), path
    found = await a11y.problems(page)
    assert found == [], (path, label, found)
    name = re.sub(r"[^A-Za-z0-9]+", "-", path.split("?")[0]).strip("-") or "overview"
    await shoot(page, shots, f"page-{name}-{label}")
    return 200


async def test_each_page_answers_and_passes_the_accessibility_basics(
        browser: Any, site: Site, shots: Path) -> None:
    page = await browser.new_page(viewport=VIEWPORT)
    await page.goto(site.url)
    nav = page.get_by_role("navigation", name="Sections").get_by_role("link")
    linked = [await link.get_attribute("href") for link in await nav.all()]
    assert tuple(linked) == SECTIONS  # the nav and this list agree; extend both
    answered = {path: await _visit(page, site, path, shots, "signed-out")
                for path in dict.fromkeys((*PAGES, *linked))}
    assert all(answered[path] == 200 for path in PAGES), answered

    await sign_in(page, site, "ally")
    details: dict[str, str] = {}  # one page of each kind the pages link to in their <main>
    for path in dict.fromkeys((*PAGES, *linked)):
        assert await _visit(page, site, path, shots, "signed-in") == answered[path], path
        if answered[path] == 200:
            for href in await page.eval_on_selector_all(
                    "main a[href^='/']", "links => links.map(a => a.getAttribute('href'))"):
                target = href.split("#")[0].split("?")[0]
                if target not in (*PAGES, *SECTIONS) and not target.startswith("/api/"):
                    details.setdefault("/" + target.strip("/").split("/")[0], href)
    assert "/objects" in details, details  # (the overview links its objects)
    for kind, href in details.items():
        required = PART_OF.get(kind, kind) in PAGES
        assert await _visit(page, site, href, shots, "detail", required=required) in (200, 404)
    # The signed-in overview carries the forms: each word's button is named, its fields hidden.
    await page.goto(site.url)
    assert await page.locator("form.word button").count() >= 3
    assert await a11y.problems(page) == []


async def test_contrast_is_measured_on_the_texts_people_read(browser: Any,
                                                            site: Site) -> None:
    """The contrast check sees the statuses, the buttons, the notice and the small print (it
    would pass vacuously if it measured nothing), and each reaches WCAG AA."""
    page = await browser.new_page(viewport=VIEWPORT)
    await sign_in(page, site, "ally")
    await page.locator("section:has(h2#ks) tbody tr", has_text="local").get_by_role(
        "button", name="Set").click()
    await expect(page.get_by_role("status")).to_be_visible()
    measured = {t["text"]: t for t in await a11y.texts(page)}
    for text in ("Stalled", "Blocked", "Waiting", "Reconciling", "Ready", "Approve", "Lift",
                 "Sign out", "killswitch on for local (by ally): its actions are held",
                 "On in: local (/claude stop by ally)"):
        assert text in measured, (text, sorted(measured)[:40])
        assert measured[text]["ratio"] >= a11y.NORMAL, measured[text]
    assert any(t.startswith("Deliveries per minute") for t in measured)
    assert any(t.startswith("project38 · every status") for t in measured)  # the footer


async def test_the_pages_read_without_javascript(browser: Any, site: Site,
                                                 shots: Path) -> None:
    """JavaScript off: each page that exists shows its heading and content (the overview its
    chart, drawn by the server, and the held deploy), and the sign-in form still works."""
    context = await browser.new_context(java_script_enabled=False, viewport=VIEWPORT)
    page = await context.new_page()
    for path in PAGES:
        response = await page.goto(site.at(path))
        assert response is not None and response.status == 200, path
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert await a11y.problems(page) == [], path
    await page.goto(site.url)
    await expect(page.locator("svg.series-deliveries > title")).to_have_text(
        re.compile(rf"^{WEBHOOKS} deliveries in the last hour"))
    assert await page.locator("svg.series-deliveries rect").count() >= 1
    [held] = await rows(page, "Held actions")
    assert held.startswith(DEPLOY.idempotency_key)
    await shoot(page, shots, "overview-without-javascript")
    await page.get_by_role("link", name="Sign in").click()
    await page.get_by_label("Your name").fill("noscript")
    await page.get_by_label("Token").fill("wrong-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("that token is not this")
    await sign_in(page, site, "noscript")
    await expect(page.locator("header .who")).to_contain_text("noscript (write)")
    await context.close()

async def test_the_accessibility_check_finds_what_it_looks_for(browser: Any) -> None:
    """The checker itself, on a page that gets each basic wrong (so a pass above means
    something)."""
    page = await browser.new_page(viewport=VIEWPORT)
    await page.set_content("""<html><body><div>
      <p style="color: #999999">grey on white</p>
      <p style="color: #ffffff; background: #ffee00">white on yellow</p>
      <input name="q"><button></button>
      <table><tr><th>Key</th></tr></table><svg role="img"></svg></div></body></html>""")
    found = "\n".join(await a11y.problems(page))
    for expected in ("no <title>", "<html> has no lang", "no <header> landmark",
                     "no <nav> landmark", "no <main> landmark", "no <footer> landmark",
                     "not exactly one <h1>", "form control without a label: <input name=\"q\">",
                     "unnamed button", "<th> without scope", "an <svg> without a name",
                     "contrast 2.85 < 4.5 for <p> 'grey on white'",
                     "< 4.5 for <p> 'white on yellow'"):
        assert expected in found, (expected, found)
