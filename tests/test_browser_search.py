"""Browser test: search as you type in headless Chromium, with the tiny generated CLIP model
installed in the server's data folder (no network)."""

from __future__ import annotations

import time

import httpx
import pytest

from photobox import auth
from photobox.db import connect
from photobox.ml.fetch import fetch_model
from tests.browser import create_owner, make_driver, quit_driver, screenshot
from tests.ml.helpers import file_override, write_manifest
from tests.ml.tinymodels import tiny_manifest, write_tiny_models
from tests.server import Server
from tests.test_search import COLOURS, jpeg

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_search_as_you_type(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    data = tmp_path / "data"
    files = write_tiny_models(tmp_path / "tiny")
    write_manifest(tmp_path / "manifests", tiny_manifest(files, default=True))
    fetch_model("tiny-clip", data / "models", source_override=file_override(files),
                manifests_dir=tmp_path / "manifests")
    server = Server(data).start()
    d = make_driver(1280, 900)
    try:
        create_owner(d, server.url)
        conn = connect(data / "photobox.db")
        with conn:
            _, key = auth.create_api_key(conn, "test")
        conn.close()
        for i, (colour, rgb) in enumerate(COLOURS.items()):
            r = httpx.post(server.url + "/api/assets", headers={"Authorization": f"Bearer {key}"},
                           files={"file": (f"{colour}.jpg", jpeg(rgb, "2022:01:0%d 10:00:00" % (i + 1), i), "image/jpeg")})
            assert r.status_code == 201, r.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            hits = httpx.get(server.url + "/api/search", params={"q": "red"},
                             headers={"Authorization": f"Bearer {key}"}).json()["results"]
            if hits:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the library was never indexed for search")

        d.get(server.url + "/search")
        box = d.find_element(By.ID, "q")
        box.send_keys("grass")
        # HTMX swaps the results in as you type (no Enter, no page load).
        WebDriverWait(d, 20).until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#search-results a.tile")) == 1)
        tile = d.find_element(By.CSS_SELECTOR, "#search-results a.tile img")
        assert "green.jpg" in tile.get_attribute("alt")
        assert "q=grass" in d.current_url  # hx-push-url keeps the search shareable
        screenshot(d, "search-desktop")
        box.clear()
        box.send_keys("a photo of my cat")
        WebDriverWait(d, 20).until(lambda drv: "No good match" in drv.find_element(By.ID, "search-results").text)
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        quit_driver(d)
        server.stop()
