"""Browser test in headless Chromium against the real server: review duplicates (keep one:
the group disappears in place and the copies go to the trash), then open an "On this day"
memory from the home page and step through the slideshow with the keyboard. Screenshots
go to test-artifacts/."""

from __future__ import annotations

import time
from datetime import date, datetime

import pytest

from tests.browser import (
    create_owner,
    make_driver,
    quit_driver,
    screenshot,
    upload_through_page,
)
from tests.gen import jpeg_bytes
from tests.gen_dupes import _exif, _jpeg
from tests.server import Server
from tests.test_duplicates import _scene

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("browser-dupes") / "data").start()
    yield s
    s.stop()


def _db(server):
    """A photobox on the server's data folder, from this process (as the CLI would be)."""
    from photobox.core import Photobox
    from photobox.settings import load_settings

    return Photobox(load_settings({"data_dir": server.data_dir}, env={})).open()


def _until(fn, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_review_duplicates_and_memory_slideshow(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from photobox.jobs import store as job_store
    from photobox.library import memories

    im = _scene(41, size=(1024, 768))
    taken = datetime(2022, 6, 5, 10, 0, 0)
    files = {"IMG_0001.jpg": _jpeg(im, 92, _exif(taken)),
             "IMG_0001-small.jpg": _jpeg(im.resize((512, 384)), 85, _exif(taken)),
             "IMG-20220605-WA0003.jpg": _jpeg(im.resize((800, 600)), 70)}
    today = date.today()
    for n in range(2):
        when = datetime(today.year - 2, today.month, min(today.day, 28), 9 + 4 * n, 0, 0)
        files[f"memory{n}.jpg"] = jpeg_bytes(taken=when.strftime("%Y:%m:%d %H:%M:%S"), seed=50 + n, size=(900, 600))
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)

    d = make_driver(1280, 900)
    wait = WebDriverWait(d, 30)
    box = _db(server)
    try:
        create_owner(d, server.url)
        upload_through_page(d, server.url, paths)

        def count(sql):
            with box.db.reader() as conn:
                return conn.execute(sql).fetchone()[0]

        _until(lambda: count("SELECT count(*) FROM assets WHERE thumb_version > 0") == len(paths))
        with box.db.transaction() as conn:  # what the periodic task does every minute
            job_store.enqueue(conn, "dupes", "", now=time.time(), priority=9, force=True)
        _until(lambda: count("SELECT count(*) FROM dupe_groups") == 1)

        # The More menu leads to the review page: one group of three, the original suggested.
        d.get(server.url + "/")
        d.find_element(By.CSS_SELECTOR, "details.more-menu summary").click()
        d.find_element(By.CSS_SELECTOR, '.more-menu a[href="/duplicates"]').click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "section.dupe-group")))
        cards = d.find_elements(By.CSS_SELECTOR, "figure.dupe-card")
        assert len(cards) == 3
        assert "keeper" in cards[0].get_attribute("class") and "IMG_0001.jpg" in cards[0].text
        assert "1024 × 768" in cards[0].text
        wait.until(lambda drv: all(drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                                   for i in drv.find_elements(By.CSS_SELECTOR, ".dupe-thumb img")))
        screenshot(d, "duplicates-desktop")
        d.set_window_size(390, 844)
        screenshot(d, "duplicates-phone")
        d.set_window_size(1280, 900)
        cards[0].find_element(By.CSS_SELECTOR, "button.keep-button").click()
        wait.until(lambda drv: not drv.find_elements(By.CSS_SELECTOR, "section.dupe-group"))
        assert d.current_url == server.url + "/duplicates"  # removed in place by HTMX
        assert count("SELECT count(*) FROM assets WHERE trashed_at IS NOT NULL") == 2
        d.get(server.url + "/trash")
        assert len(d.find_elements(By.CSS_SELECTOR, "a.tile")) == 2

        # On this day: the memory row on the home page opens the slideshow.
        with box.db.transaction() as conn:  # what the daily task does
            memories.build_memories(conn, today, now=time.time())
        d.get(server.url + "/")
        card = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".memories a.memory-card")))
        assert "2 years ago" in card.text and "2 photos" in card.text
        screenshot(d, "memories-row-desktop")
        card.click()
        wait.until(EC.presence_of_element_located((By.ID, "slideshow")))
        counter = d.find_element(By.ID, "slide-counter")
        assert counter.text == "1 / 2"
        first_src = d.find_element(By.ID, "slide-image").get_attribute("src")
        d.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda drv: drv.find_element(By.ID, "slide-counter").text == "2 / 2")
        assert d.find_element(By.ID, "slide-image").get_attribute("src") != first_src
        play = d.find_element(By.ID, "slide-play")
        assert play.get_attribute("aria-pressed") == "true"
        play.click()
        assert play.get_attribute("aria-pressed") == "false"
        d.find_element(By.ID, "slide-next").click()
        wait.until(lambda drv: drv.find_element(By.ID, "slide-counter").text == "1 / 2")
        d.set_window_size(390, 844)
        screenshot(d, "slideshow-phone")
        d.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        wait.until(EC.url_to_be(server.url + "/"))
        logs = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not logs, logs
    finally:
        box.close()
        quit_driver(d)
