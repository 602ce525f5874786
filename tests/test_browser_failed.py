"""A file photobox cannot read, in headless Chromium at desktop and phone width: the tile says
"Could not read" (not "Processing…" forever) on the day of the file's own time, and the viewer
says why, with Retry and Download original, instead of a broken image. Screenshots go to
test-artifacts/failed-*.png."""

from __future__ import annotations

import os
import re

import pytest

from tests.browser import create_owner, make_driver, quit_driver, screenshot, upload_through_page
from tests.gen import jpeg_bytes
from tests.server import Server
from tests.test_failed_files import truncated_heic

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

JUNE_2019 = 1_560_000_000  # 2019-06-08 13:20 UTC


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("browser-failed") / "data").start()
    yield s
    s.stop()


def test_unreadable_file_in_timeline_and_viewer(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    good = tmp_path / "IMG_good.jpg"
    good.write_bytes(jpeg_bytes(taken="2019:06:08 09:00:00", seed=1, size=(800, 600)))
    bad = tmp_path / "IMG_broken.HEIC"
    bad.write_bytes(truncated_heic(seed=2))  # an interrupted copy: the picture cannot be made
    os.utime(bad, (JUNE_2019, JUNE_2019))  # the browser sends it as lastModified

    d = make_driver(1280, 900)
    wait = WebDriverWait(d, 60)
    try:
        create_owner(d, server.url)
        upload_through_page(d, server.url, [good, bad])

        def settled(drv):
            drv.get(server.url + "/")
            return drv.find_elements(By.CSS_SELECTOR, "a.tile.failed") and drv.find_elements(By.CSS_SELECTOR, "a.tile img")
        wait.until(settled)
        tile = d.find_element(By.CSS_SELECTOR, "a.tile.failed")
        assert "Could not read" in tile.text and "IMG_broken.HEIC" in tile.text and "Processing" not in tile.text
        day = tile.find_element(By.XPATH, "ancestor::section[contains(@class, 'day')]")
        assert day.get_attribute("data-day") == "2019-06-08"
        assert "Today" not in day.text
        assert tile.size["height"] >= 100 and tile.size["width"] >= 60
        screenshot(d, "failed-timeline-desktop")
        d.set_window_size(390, 844)
        d.get(server.url + "/")
        tile = d.find_element(By.CSS_SELECTOR, "a.tile.failed")
        assert "Could not read" in tile.text
        assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(d, "failed-timeline-phone")
        d.set_window_size(1280, 900)

        tile = d.find_element(By.CSS_SELECTOR, "a.tile.failed")
        d.get(tile.get_attribute("href"))
        panel = wait.until(lambda drv: drv.find_element(By.ID, "unreadable"))
        assert re.search(r"Could not read this file: truncated HEI[CF]\b", panel.text), panel.text
        assert not d.find_elements(By.ID, "media")  # no broken image
        download = d.find_element(By.ID, "download-original")
        assert download.get_attribute("href").endswith("/original?download=1")
        if "info-open" not in d.find_element(By.ID, "viewer").get_attribute("class"):
            d.find_element(By.ID, "info-button").click()  # details (open by default this wide)
        facts = wait.until(lambda drv: drv.find_element(By.CSS_SELECTOR, "dl.facts").text)
        assert "2019-06-08" in facts and "a guess" in facts
        screenshot(d, "failed-viewer-desktop")
        d.set_window_size(390, 844)
        d.refresh()
        panel = wait.until(lambda drv: drv.find_element(By.ID, "unreadable"))
        for el in (d.find_element(By.ID, "retry-thumbs"), d.find_element(By.ID, "download-original")):
            assert el.is_displayed() and el.size["height"] >= 40, el.size
        assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(d, "failed-viewer-phone")

        # Retry: the job runs again (and fails again: the bytes are what they are).
        viewer_url = d.current_url
        d.find_element(By.ID, "retry-thumbs").click()
        wait.until(lambda drv: drv.current_url == viewer_url and (
            drv.find_elements(By.ID, "unreadable") or drv.find_elements(By.ID, "processing")))
        wait.until(lambda drv: (drv.refresh() or True) and drv.find_elements(By.ID, "unreadable"))
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        quit_driver(d)
