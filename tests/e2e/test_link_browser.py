"""A signed link in a real browser: Debian's chromium, headless at a phone's size, via Selenium.

The public app runs on a real socket in the test's event loop; the browser is driven from a worker
thread (`asyncio.to_thread`), so the loop keeps serving while Selenium waits.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.apiserver import ApiServer
from proxy.channels.links import KEY_BYTES, LinkSigner
from proxy.events import EventBus
from proxy.holds import HoldQueue
from proxy.outcomes import Outcome
from proxy.public import create_public_app
from tests.proxy.test_public import Public

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = {"width": 375, "height": 812}
WAIT = 30.0  # seconds; the machine may be busy


def browser_or_skip() -> None:
    """Skip when there is no browser to drive, unless CI says there must be one."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if not missing:
        return
    why = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
    if os.environ.get("INTERLOCK_REQUIRE_BROWSER") == "1":
        pytest.fail(f"INTERLOCK_REQUIRE_BROWSER=1 but the browser test {why}")
    pytest.skip(f"the browser test {why}")


def start_chromium(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 f"--window-size={PHONE['width']},{PHONE['height']}"]:  # fmt: skip
        options.add_argument(flag)
    # A phone's viewport: honours <meta name="viewport">, so the page must fit 375 CSS pixels.
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": PHONE | {"pixelRatio": 3.0}}
    )
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    return driver


class Phone:
    """What a person does on the page, one blocking Selenium call at a time."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, url: str) -> str:
        self.driver.get(url)
        return str(self.driver.find_element("tag name", "main").text)

    def fits_the_screen(self) -> bool:
        width = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        return bool(width[1] == PHONE["width"] and width[0] <= width[1])

    def styled_within_its_policy(self) -> bool:
        """The stylesheet applied (its CSP hash matched) and nothing broke the policy."""
        green = self.driver.execute_script(
            "return getComputedStyle(document.querySelector('button.approve')).backgroundColor"
        )
        logs = self.driver.get_log("browser")
        return green in ("rgb(26, 127, 55)", "rgb(63, 185, 80)") and not [
            entry for entry in logs if "Content Security Policy" in entry["message"]
        ]

    def press(self, button: str, reason: str | None = None, heading: str = "") -> str:
        """Type `reason` (if given), press Approve or Deny, and wait for the next page."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        if reason is not None:
            box = self.driver.find_element("id", "reason")
            box.clear()
            box.send_keys(reason)
        old = self.driver.find_element("tag name", "main")
        self.driver.find_element("css selector", f"button[value={button.lower()}]").click()
        ignored = (NoSuchElementException, StaleElementReferenceException)
        wait = WebDriverWait(self.driver, WAIT, ignored_exceptions=ignored)
        wait.until(lambda d: d.find_element("tag name", "main") != old)
        text = str(self.driver.find_element("tag name", "main").text)
        assert heading in text, text
        return text


@pytest.fixture
async def phone(tmp_path: Path) -> AsyncIterator[Phone]:
    browser_or_skip()
    driver = await asyncio.to_thread(start_chromium, tmp_path / "chromium-profile")
    try:
        yield Phone(driver)
    finally:
        await asyncio.to_thread(driver.quit)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Public]:
    """The public app on 127.0.0.1, its links pointing there, over a real audit store."""
    from proxy.audit import AuditStore

    store = await AuditStore.open(tmp_path / "audit.db")
    holds = HoldQueue(store, EventBus())
    links = LinkSigner(secrets.token_bytes(KEY_BYTES))
    app = create_public_app(holds=holds, links=links)
    server = ApiServer(app)
    await server.start("127.0.0.1", 0)
    assert server.url is not None
    links.public_url = server.url  # known once bound, as in the running proxy
    try:
        yield Public(store, holds, links, app)
    finally:
        await holds.expire_all("test over")
        await server.stop()
        await store.close()


async def run(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(step, *args, **kwargs)


async def test_deny_and_approve_from_a_phone(served: Public, phone: Phone) -> None:
    first, second = served.hold(1, reasons=("Not during the freeze",)), served.hold(2)
    deny_link = served.links.mint(first.id, audience="alice", channel="manual",
                                  expires_at=first.deadline)  # fmt: skip

    page = await run(phone.open, deny_link.deny)
    for fact in ["Approve this request?", "deploy-bot", "POST https://api.example.com/deploy/web-1",
                 "deploy-prod", "Deploys to prod need a person.", "high", "Not during the freeze"]:  # fmt: skip
        assert fact in page
    assert await run(phone.fits_the_screen) and await run(phone.styled_within_its_policy)
    assert first.pending

    refused = await run(phone.press, "Deny", heading="Approve this request?")
    assert "A denial needs a reason" in refused
    assert first.pending and await served.hold_rows() == []

    denied = await run(phone.press, "Deny", "use the staging cluster", heading="Denied")
    assert "The agent was told: use the staging cluster" in denied
    assert (first.state, first.decided_by, first.channel, first.decision_reason) == (
        Outcome.DENIED, "person:link:alice", "link:manual", "use the staging cluster")  # fmt: skip

    approve_link = served.links.mint(second.id, audience="bob", channel="ops-hook",
                                     expires_at=second.deadline)  # fmt: skip
    await run(phone.open, approve_link.approve)
    approved = await run(phone.press, "Approve", heading="Approved")
    assert "the request was released" in approved
    assert (second.state, second.decided_by, second.channel) == (
        Outcome.APPROVED, "person:link:bob", "link:ops-hook")  # fmt: skip
    rows = await served.hold_rows()
    assert sorted((r["outcome"], r["decided_by"]) for r in rows) == [
        ("approved", "person:link:bob"), ("denied", "person:link:alice")]  # fmt: skip

    used = await run(phone.open, approve_link.review)
    assert "This link was already used." in used
    assert "approved by person:link:bob via link:ops-hook" in used
    assert await run(phone.fits_the_screen)
