"""Browser test of share links against the real server (granian) in headless Chromium: the
owner shares an album with a password from the album page, then a visitor with a fresh
browser on a phone-sized window opens the link, enters the password, sees the grid, steps
through the viewer and finds the download button. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.browser import make_driver, quit_driver, screenshot
from tests.conftest import PASSWORD
from tests.gen import jpeg_bytes
from tests.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("browser-share") / "data").start()
    yield s
    s.stop()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _owner_with_album(server) -> tuple[httpx.Client, int, list[int]]:
    """Set up the owner, upload four photos and put them in an album (over plain HTTP)."""
    c = httpx.Client(base_url=server.url, follow_redirects=True, timeout=30)
    page = c.get("/setup")
    c.post("/setup", data={"username": "alice", "password": PASSWORD, "password2": PASSWORD,
                           "csrf_token": _csrf(page.text)})
    token = _csrf(c.get("/albums").text)
    ids = []
    for i in range(4):
        r = c.post("/api/assets", files={"file": (f"IMG_{i}.jpg", jpeg_bytes(seed=i, gps=(48.85, 2.29),
                                                                         taken=f"2024:06:0{i + 1} 10:00:00",
                                                                         size=(800, 600) if i % 2 else (600, 800)),
                                                  "image/jpeg")}, headers={"X-CSRF-Token": token})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(c.get(f"/api/assets/{i}").json()["thumb_version"] for i in ids):
            break
        time.sleep(0.2)
    r = c.post("/albums", data={"name": "Summer", "csrf_token": token})
    album_id = int(str(r.url).rsplit("/", 1)[1])
    c.post("/assets/bulk", data={"action": "album_add", "album_id": album_id, "ids": ids, "csrf_token": token})
    return c, album_id, ids


def test_share_album_and_open_it_on_a_phone(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    owner_http, album_id, ids = _owner_with_album(server)
    owner_http.close()

    owner = make_driver(1280, 900)
    try:
        wait = WebDriverWait(owner, 30)
        owner.get(server.url + "/login")
        owner.find_element(By.NAME, "username").send_keys("alice")
        owner.find_element(By.NAME, "password").send_keys(PASSWORD + Keys.ENTER)
        wait.until(EC.url_to_be(server.url + "/"))
        owner.get(f"{server.url}/albums/{album_id}")
        owner.find_element(By.CSS_SELECTOR, "#album-share summary").click()
        form = owner.find_element(By.ID, "share-form")
        form.find_element(By.NAME, "password").send_keys("summer 2024")
        form.find_element(By.NAME, "allow_download").click()
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        link = wait.until(EC.presence_of_element_located((By.ID, "new-link-url"))).get_attribute("value")
        assert link.startswith(server.url + "/s/")
        screenshot(owner, "shares-desktop")
        assert not [e for e in owner.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        quit_driver(owner)

    visitor = make_driver(390, 844)  # a fresh browser: no session, no cookies
    try:
        wait = WebDriverWait(visitor, 30)
        visitor.get(link)
        assert visitor.find_elements(By.CSS_SELECTOR, "input[type=password]")
        assert not visitor.find_elements(By.CSS_SELECTOR, "nav.nav")  # no owner navigation
        visitor.find_element(By.NAME, "password").send_keys("summer 2024" + Keys.ENTER)

        def grid_ready(drv):
            imgs = drv.find_elements(By.CSS_SELECTOR, "a.tile img")
            return len(imgs) == len(ids) and all(
                drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in imgs)
        wait.until(grid_ready)
        assert visitor.find_element(By.TAG_NAME, "h1").text == "Summer"
        assert visitor.find_element(By.ID, "share-download-all").is_displayed()
        # Fits the phone: no sideways scrolling.
        assert visitor.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        screenshot(visitor, "share-phone")

        visitor.find_elements(By.CSS_SELECTOR, "a.tile")[0].click()
        wait.until(EC.presence_of_element_located((By.ID, "viewer")))
        wait.until(lambda drv: drv.execute_script("return document.getElementById('media').naturalWidth") > 0)
        assert visitor.find_element(By.ID, "share-download").is_displayed()
        first = visitor.current_url
        older = visitor.find_element(By.CSS_SELECTOR, "a.nav-arrow.next").get_attribute("href")
        visitor.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)  # (arrows hide on touch screens)
        wait.until(lambda drv: drv.current_url == older)
        visitor.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)  # share.js: back to the newer one
        wait.until(lambda drv: drv.current_url == first)
        screenshot(visitor, "share-viewer-phone")
        # Every request the page made stayed under /s/ or /static/ (no private routes).
        urls = visitor.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        for url in urls:
            path = url.removeprefix(server.url)
            assert path.startswith(("/s/", "/static/")), path
        visitor.find_element(By.ID, "viewer-back").click()
        wait.until(lambda drv: drv.current_url == link)
        errors = [e for e in visitor.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        quit_driver(visitor)
