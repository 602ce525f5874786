"""Headless Chromium for browser tests (Debian's chromium + chromium-driver, via Selenium)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless browser tests need Debian's chromium and chromium-driver (.ci/run installs them)")
    return browser, driver


def make_driver(width: int = 1280, height: int = 900):
    """A headless Chromium started with the flags this machine needs (no network, no sandbox as root)."""
    selenium = pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    del selenium
    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    profile = tempfile.mkdtemp(prefix="photobox-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    d = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    d.set_page_load_timeout(30)
    d._photobox_profile = profile
    return d


def quit_driver(d) -> None:
    profile = getattr(d, "_photobox_profile", None)
    d.quit()
    if profile:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(d, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    d.save_screenshot(str(path))
    return path


def create_owner(d, base_url: str, username: str = "alice", timeout: float = 30) -> None:
    """Create the owner account through the first-run page and wait for the timeline."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.conftest import PASSWORD

    d.get(base_url + "/setup")
    d.find_element(By.NAME, "username").send_keys(username)
    d.find_element(By.NAME, "password").send_keys(PASSWORD)
    d.find_element(By.NAME, "password2").send_keys(PASSWORD + Keys.ENTER)
    WebDriverWait(d, timeout).until(lambda drv: drv.current_url == base_url + "/")


def upload_through_page(d, base_url: str, paths, timeout: float = 30) -> None:
    """Pick ``paths`` on the upload page and wait until all of them are done."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    paths = list(paths)
    d.get(base_url + "/upload")
    d.find_element(By.ID, "pick-files").send_keys("\n".join(str(p) for p in paths))
    WebDriverWait(d, timeout).until(lambda drv: drv.find_element(By.ID, "sum-done").text == str(len(paths)))
