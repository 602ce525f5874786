"""Browser test of the everyday flow in headless Chromium: upload through the upload page,
see it on the timeline, open the viewer, add to an album, trash and restore. Screenshots
of the timeline and the viewer at phone and desktop widths go to test-artifacts/."""

from __future__ import annotations

import pytest

from tests.browser import (
    create_owner,
    make_driver,
    quit_driver,
    screenshot,
    upload_through_page,
)
from tests.gen import jpeg_bytes, mp4_file
from tests.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("browser-web") / "data").start()
    yield s
    s.stop()


def test_upload_timeline_viewer_album_trash_restore(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    files = []
    for i, taken in enumerate(["2023:08:05 10:00:00", "2023:08:05 11:00:00", "2022:12:24 18:00:00"]):
        p = tmp_path / f"IMG_{i}.jpg"
        p.write_bytes(jpeg_bytes(taken=taken, seed=i, size=(800, 600) if i != 1 else (600, 900)))
        files.append(p)
    files.append(mp4_file(tmp_path / "clip.mp4", seconds=2))

    d = make_driver(1280, 900)
    wait = WebDriverWait(d, 30)
    try:
        create_owner(d, server.url)

        upload_through_page(d, server.url, files)
        statuses = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".upload-item .status")]
        assert statuses == ["uploaded"] * len(files), statuses
        screenshot(d, "upload-desktop")
        # Uploading the same file again is reported as a duplicate.
        d.find_element(By.ID, "pick-files").send_keys(str(files[0]))
        wait.until(lambda drv: drv.find_element(By.ID, "sum-done").text == str(len(files) + 1))
        assert d.find_elements(By.CSS_SELECTOR, ".upload-item .status")[-1].text == "already in photobox"

        # The timeline shows them once thumbnails exist.
        def thumbs_ready(drv):
            drv.get(server.url + "/")
            imgs = drv.find_elements(By.CSS_SELECTOR, "a.tile img")
            return len(imgs) == len(files) and all(
                drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in imgs)
        wait.until(thumbs_ready)
        months = [h.text for h in d.find_elements(By.CSS_SELECTOR, "h2.month")]
        assert months[-1] == "December 2022"
        assert d.find_elements(By.CSS_SELECTOR, "a.tile .badge.video")
        screenshot(d, "timeline-desktop")
        d.set_window_size(390, 844)
        d.get(server.url + "/")
        screenshot(d, "timeline-phone")
        d.set_window_size(1280, 900)
        d.get(server.url + "/")

        # Open the viewer on the oldest photo; the arrow keys move to newer ones.
        tiles = d.find_elements(By.CSS_SELECTOR, "a.tile")
        tiles[-1].click()
        wait.until(EC.presence_of_element_located((By.ID, "viewer")))
        first = d.current_url
        d.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
        wait.until(lambda drv: drv.current_url != first)
        d.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda drv: drv.current_url == first)
        assert d.execute_script("return document.getElementById('media').naturalWidth") > 0
        screenshot(d, "viewer-desktop")
        d.set_window_size(390, 844)
        d.refresh()
        screenshot(d, "viewer-phone")
        d.set_window_size(1280, 900)

        # Add to a new album from the timeline's selection mode.
        d.get(server.url + "/")
        tile = d.find_elements(By.CSS_SELECTOR, "a.tile")[0]
        d.execute_script("arguments[0].querySelector('.check').click()", tile)
        wait.until(EC.visibility_of_element_located((By.ID, "selection-bar")))
        assert d.find_element(By.ID, "sel-count").text == "1 selected"
        d.find_element(By.ID, "sel-album").click()
        d.find_element(By.ID, "new-album-name").send_keys("Holiday")
        d.find_element(By.ID, "album-dialog-ok").click()
        wait.until(lambda drv: "/albums/" in drv.current_url)
        assert len(d.find_elements(By.CSS_SELECTOR, "a.tile")) == 1
        assert d.find_element(By.TAG_NAME, "h1").text == "Holiday"
        album_url = d.current_url

        # Trash from the viewer, then restore from the trash.
        d.find_element(By.CSS_SELECTOR, "a.tile").click()
        wait.until(EC.presence_of_element_located((By.ID, "trash-button"))).click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "button[value=restore]")))  # now in the trash
        d.get(server.url + "/trash")
        assert len(d.find_elements(By.CSS_SELECTOR, "a.tile")) == 1
        d.get(server.url + "/")
        assert len(d.find_elements(By.CSS_SELECTOR, "a.tile")) == len(files) - 1
        d.get(server.url + "/trash")
        d.find_element(By.CSS_SELECTOR, "a.tile").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "button[value=restore]"))).click()
        wait.until(EC.presence_of_element_located((By.ID, "trash-button")))  # the viewer, restored
        d.get(server.url + "/")
        assert len(d.find_elements(By.CSS_SELECTOR, "a.tile")) == len(files)
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors

        # Deleting the album asks first: "Cancel" keeps it, "OK" deletes it.
        d.get(album_url)
        d.find_element(By.CSS_SELECTOR, "details.album-edit summary").click()
        delete = d.find_element(By.CSS_SELECTOR, "form[action$='/delete'] button")
        delete.click()
        alert = wait.until(EC.alert_is_present())
        assert "Delete this album?" in alert.text
        alert.dismiss()
        assert d.current_url == album_url and d.find_element(By.TAG_NAME, "h1").text == "Holiday"
        delete.click()
        wait.until(EC.alert_is_present()).accept()
        wait.until(lambda drv: drv.current_url != album_url)
        d.get(server.url + "/albums")
        assert "Holiday" not in d.find_element(By.TAG_NAME, "main").text
    finally:
        quit_driver(d)
