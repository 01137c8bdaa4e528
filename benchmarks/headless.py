"""A headless Chromium driven by Selenium, for the dashboard's browser test, its benchmark and
its screenshot: Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them),
started so that it reaches nothing but this machine."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: where Debian and other distributions put the browser and its driver
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "chromium-driver")


def missing() -> str | None:
    """Why no headless browser can be driven here (None when one can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(shutil.which(b) for b in BROWSERS):
        return "no Chromium found (apt-get install chromium chromium-driver)"
    if not any(shutil.which(d) for d in DRIVERS):
        return "no chromedriver found (apt-get install chromium-driver)"
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile, closed on exit. It runs as root
    (``--no-sandbox``) and is kept off the network's background services (no updates, no
    sync, no first-run pages): the dashboard needs nothing from outside."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = next(p for p in map(shutil.which, BROWSERS) if p)
    driver_path = next(p for p in map(shutil.which, DRIVERS) if p)
    with tempfile.TemporaryDirectory(prefix="evo-nas-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--metrics-recording-only",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            yield driver
        finally:
            driver.quit()
