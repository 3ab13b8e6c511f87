"""A real browser for tests: Debian's headless ``chromium`` driven through ``chromedriver`` (selenium), network off.

Pages are opened from ``file://`` (or a server the test started on 127.0.0.1). Every request the page makes is
recorded from Chromium's performance log; :meth:`Browser.stray_requests` lists those that leave the machine and
:meth:`Browser.failed_requests` those that failed, so a test asserts both are empty. A proxy that does not exist
(bypassed for 127.0.0.1 only) makes any request that does leave fail at once instead of waiting on DNS.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LOCAL = ("file:", "data:", "blob:", "about:", "http://127.0.0.1:", "http://127.0.0.1/")


def missing() -> str | None:
    """Why no browser test can run here (one line), or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is not installed (`make browser` installs Debian's chromium and chromium-driver; it needs root and apt)"
    return None


class Browser:
    """One headless Chromium window; what it loaded is in :attr:`driver`'s performance log."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.requests: dict[str, str] = {}  # request id -> URL
        self.failures: dict[str, str] = {}  # request id -> error text

    def open(self, url: str) -> None:
        self.driver.get(url)
        self._drain()

    def wait_for(self, script: str, timeout_s: float = 20.0, what: str = "") -> Any:
        """Poll the JavaScript expression ``script`` (``return ...``) until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.driver.execute_script(script)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"the page did not get there in {timeout_s:.0f} s: {what or script}")

    def _drain(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                self.requests[params["requestId"]] = params["request"]["url"]
            elif message["method"] == "Network.loadingFailed" and not params.get("canceled"):
                self.failures[params["requestId"]] = params.get("errorText", "failed")

    def stray_requests(self) -> list[str]:
        """URLs requested that are neither local files, inline data nor 127.0.0.1."""
        self._drain()
        return sorted({url for url in self.requests.values() if not url.startswith(LOCAL)})

    def failed_requests(self) -> list[str]:
        self._drain()
        return sorted(f"{self.requests.get(rid, rid)[:120]}: {error}" for rid, error in self.failures.items())

    def screenshot(self, path: Path) -> Path:
        """The whole page (not only the window) as a PNG."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, min(max(int(height), 800), 8000))
        self.driver.save_screenshot(str(path))
        return path


def start() -> Iterator[Browser]:
    """A :class:`Browser`, quit afterwards (skips the test, with the reason, where Chromium is not installed)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                 "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1", "--autoplay-policy=no-user-gesture-required",
                 "--allow-file-access-from-files"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield Browser(driver)
    finally:
        driver.quit()


def vega_charts(browser: Browser) -> Callable[[], dict[str, int]]:
    """A probe of a DVC plots page: how many vega-embed containers it has and how many drew a canvas or SVG."""
    script = """return {embeds: document.querySelectorAll('.vega-embed').length,
        drawn: document.querySelectorAll('.vega-embed canvas, .vega-embed svg.marks').length,
        divs: document.querySelectorAll('body > div[id]').length}"""
    return lambda: browser.driver.execute_script(script)


def mlflow_compare(browser: Browser, url: str, experiment_id: str, run_ids: list[str], artifact: str,
                   screenshot: Path | None = None) -> list[str]:
    """Open MLflow's compare page of ``run_ids``, select ``artifact`` among the files they have in common and return
    the sources of the images it then shows, once they loaded (one per run when each has the figure); with
    ``screenshot``, the window is saved there as it is then (a resize would make MLflow load the previews again)."""
    browser.open(f"{url}/#/compare-runs?runs={json.dumps(run_ids)}&experiments={json.dumps([experiment_id])}")
    node = f'[data-testid="artifact-tree-node"][artifact-name="{artifact}"]'
    browser.wait_for(f"return document.querySelector('{node}')", 120, f"{artifact} among the runs' common artifacts")
    loaded = "[...document.images].filter(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0).map(i => i.src)"
    before = browser.driver.execute_script(f"return {loaded}")  # a page opened afresh: none, unless MLflow kept some
    browser.driver.execute_script(f"const n = document.querySelector('{node}'); n.scrollIntoView(); n.click()")
    shown = browser.wait_for(
        # distinct sources: one run's preview may sit in two elements for a while, which is not the other run's figure
        f"const now = [...new Set({loaded}.filter(s => !{json.dumps(before)}.includes(s)))]; "
        f"return now.length >= {len(run_ids)} && now",
        120, f"{artifact} previewed for each of {len(run_ids)} runs",
    )
    if screenshot is not None:
        browser.driver.save_screenshot(str(screenshot))
    return shown
