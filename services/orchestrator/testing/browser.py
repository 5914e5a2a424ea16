"""A headless Chromium for the web view's browser tests, benchmark and screenshots: Debian's `chromium` driven
through its `chromedriver` by Selenium. Nothing is downloaded (Selenium Manager is kept offline)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def missing() -> str:
    """Why no browser can run here, or "" when one can."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return f"not installed: {', '.join(absent)} (apt-get install chromium chromium-driver)" if absent else ""


@contextlib.contextmanager
def chromium(width: int = 1440, height: int = 1000) -> Iterator[Any]:
    """A fresh browser with its own profile directory, closed and removed at the end."""
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch a driver or a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="web-view-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout_s: float = 30.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(condition)


def load_time_ms(driver: Any) -> float:
    """The last navigation's time from its start to the end of the load event (Navigation Timing)."""
    entry = driver.execute_script(
        "const e = performance.getEntriesByType('navigation')[0]; return [e.startTime, e.loadEventEnd];"
    )
    return float(entry[1]) - float(entry[0])


def full_page_screenshot(driver: Any, path: Path, width: int = 1440, max_height: int = 2400) -> None:
    """A PNG of the page as tall as its content (up to `max_height`)."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(max(height, 600), max_height))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
