"""What a person does on the page, as steps the browser tests share: sign in through the form,
read the table rows of a section. No assertions about what the page should say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.seed import Site
from tests.helpers import WRITE_TOKEN

VIEWPORT = {"width": 1280, "height": 900}


async def sign_in(page: Any, site: Site, name: str, token: str = WRITE_TOKEN,
                  then: str = "/") -> None:
    """Through /login's form, as a person types it; back on `then`."""
    await page.goto(site.at("/login?next=" + then))
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(site.at(then))


async def rows(page: Any, section: str) -> list[str]:
    """The text of each body row of the tables in the section headed `section`."""
    found: list[str] = await page.locator(
        f"section:has(h2:text-is('{section}')) tbody tr").all_inner_texts()
    return found


async def shoot(page: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
