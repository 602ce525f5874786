"""Browser test of the Places map in headless Chromium against the real server: the bundled
world outline and the clustered photo markers draw with no request leaving the box.
Screenshots at desktop and phone widths go to test-artifacts/."""

from __future__ import annotations

import pytest

from photobox.core import Photobox
from photobox.library.ingest import hash_file, ingest_temp_file
from photobox.settings import load_settings
from tests.browser import create_owner, make_driver, quit_driver, screenshot
from tests.gen import jpeg_bytes
from tests.places_data import install_known
from tests.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHOTOS = [(48.8584, 2.2945), (48.8606, 2.3376), (52.5163, 13.3777), (-16.8, 179.99), (35.3, -93.7)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-places")
    data = root / "data"
    # Prepare the data folder the way `photobox places install` and an import would.
    box = Photobox(load_settings({"data_dir": data, "workers": 1}, env={})).open()
    try:
        install_known(box, root)
        for i, gps in enumerate(PHOTOS):
            tmp = box.path("tmp", f"{i}.jpg")
            tmp.write_bytes(jpeg_bytes(gps=gps, seed=i))
            checksum, size = hash_file(tmp)
            ingest_temp_file(box, tmp, checksum, size, original_name=f"IMG_{i}.jpg")
    finally:
        box.close()
    s = Server(data).start()
    yield s
    s.stop()


def test_map_draws_outline_and_markers_offline(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = make_driver(1280, 900)
    wait = WebDriverWait(d, 30)
    try:
        create_owner(d, server.url)

        # The jobs (thumbnails, places) run in the server; the country cards appear when done.
        def countries_listed(drv):
            drv.get(server.url + "/places")
            return len(drv.find_elements(By.CSS_SELECTOR, ".place-card")) == 4  # FR, DE, FJ, US

        wait.until(countries_listed)
        wait.until(lambda drv: drv.find_element(By.ID, "photo-map").get_attribute("data-outline-ready"))
        wait.until(lambda drv: int(drv.find_element(By.ID, "photo-map").get_attribute("data-markers") or 0) > 0)
        wait.until(lambda drv: drv.execute_script(
            "return Array.from(document.images).every(function (i) { return i.complete; })"))
        assert int(d.find_element(By.ID, "photo-map").get_attribute("data-outline-ready")) > 150
        land = d.find_elements(By.CSS_SELECTOR, "#photo-map path.map-land")
        assert len(land) > 150  # every country of the 1:110m outline is an SVG path
        markers = d.find_elements(By.CSS_SELECTOR, "#photo-map .map-cluster, #photo-map .map-photo")
        assert len(markers) >= 3
        assert d.find_element(By.ID, "photo-map").get_attribute("data-error") is None
        screenshot(d, "places-desktop")

        # Nothing was loaded from anywhere but photobox itself.
        urls = d.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
        assert urls and all(u.startswith(server.url) for u in urls), [u for u in urls if not u.startswith(server.url)]
        assert any(u.endswith("countries-110m.geojson?v=1") for u in urls)
        assert any("/api/places/map?" in u for u in urls)

        # A single photo's marker opens it in the viewer.
        single = d.find_elements(By.CSS_SELECTOR, "#photo-map .map-photo")
        if single:
            single[0].click()
            wait.until(lambda drv: "/photos/" in drv.current_url)

        d.get(server.url + "/places/FR")
        cards = d.find_elements(By.CSS_SELECTOR, ".place-card")
        assert [c.find_element(By.CSS_SELECTOR, ".place-name").text for c in cards] == ["Paris"]
        cards[0].click()
        wait.until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "a.tile img")) == 2)
        screenshot(d, "places-town")

        d.set_window_size(390, 844)
        d.get(server.url + "/places")
        wait.until(lambda drv: int(drv.find_element(By.ID, "photo-map").get_attribute("data-markers") or 0) > 0)
        width = d.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, f"the Places page scrolls sideways on a phone ({width}px)"
        screenshot(d, "places-phone")
    finally:
        quit_driver(d)
