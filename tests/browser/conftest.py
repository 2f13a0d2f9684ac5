"""Fixtures of the browser tests: Debian's chromium driven by Playwright (never a downloaded
browser: `executable_path` is the system's), and the seeded controller on a real socket.

Without chromium (P38_CHROMIUM, else `chromium` on PATH) or without the playwright package,
these tests, and only these, skip, saying why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.store import Store
from tests.browser.seed import Site, start

ARTIFACTS = Path(__file__).parents[1] / "artifacts"  # ignored by git: for a person to look at


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system chromium's path, or a skip with the reason."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the playwright package is not installed ({exc}): pip install -e '.[test]'")
    given = os.environ.get("P38_CHROMIUM")
    found = given if given and os.access(given, os.X_OK) else shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium, or set P38_CHROMIUM "
                    "to its path); the browser tests never download one")
    return found


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    # --no-sandbox: chromium refuses to start its sandbox as root (CI containers).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=chromium, args=args)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def site(chromium: str, aiohttp_server: Any, aiohttp_client: Any, store: Store,
               dsn: str, tmp_path: Path) -> Site:
    """(after `chromium`: without a browser, nothing is seeded for nothing)"""
    return await start(aiohttp_server, aiohttp_client, store, dsn, tmp_path / "repository")


@pytest.fixture
def shots() -> Path:
    """Where screenshots go."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
