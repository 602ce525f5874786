"""Face boxes in the viewer, in headless Chromium: a person chip in the details shows that
face's box on the photo (hover on a desktop, tap on a phone), "Show faces" shows them all,
and each box sits on the face in the picture, for a photo stored sideways (EXIF orientation
6) and letterboxed in the window. Checked on the screenshot's pixels, not on the CSS alone."""

from __future__ import annotations

import io
import time

import numpy as np
import piexif
import pytest
from PIL import Image, ImageOps

from photobox.db import connect
from tests.browser import (
    create_owner,
    make_driver,
    quit_driver,
    screenshot,
    upload_through_page,
)
from tests.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

RED, BLUE = (230, 40, 40), (40, 60, 230)
# Faces as fractions of the upright (portrait, 480 x 640) picture.
RED_BOX = (60 / 480, 400 / 640, 180 / 480, 520 / 640)
BLUE_BOX = (300 / 480, 80 / 640, 420 / 480, 200 / 640)


def sideways_jpeg() -> bytes:
    """A portrait picture with a red and a blue square, stored landscape with orientation 6."""
    upright = np.full((640, 480, 3), 90, np.uint8)
    for (x1, y1, x2, y2), colour in ((RED_BOX, RED), (BLUE_BOX, BLUE)):
        upright[round(y1 * 640):round(y2 * 640), round(x1 * 480):round(x2 * 480)] = colour
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6},
                        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:05:01 12:00:00"}})
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    data = buf.getvalue()
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    assert shown.shape == (640, 480, 3) and shown[460, 120, 0] > 200  # the red square, upright
    return data


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("browser-faces") / "data").start()
    yield s
    s.stop()


def colour_at(d, el) -> tuple[int, int, int]:
    """The rendered colour at the centre of ``el`` (from a screenshot of the window)."""
    r = d.execute_script("const r = arguments[0].getBoundingClientRect();"
                         "return [r.left + r.width / 2, r.top + r.height / 2, window.devicePixelRatio];", el)
    shot = Image.open(io.BytesIO(d.get_screenshot_as_png())).convert("RGB")
    return shot.getpixel((round(r[0] * r[2]), round(r[1] * r[2])))


def is_red(c) -> bool:
    return c[0] > 170 and c[1] < 110 and c[2] < 110


def is_blue(c) -> bool:
    return c[2] > 170 and c[0] < 110


def test_person_chip_shows_its_face_on_the_photo(server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "IMG_SIDEWAYS.jpg"
    photo.write_bytes(sideways_jpeg())
    d = make_driver(1280, 900)
    wait = WebDriverWait(d, 30)
    try:
        create_owner(d, server.url)
        upload_through_page(d, server.url, [photo])

        # Faces as the faces stage stores them (fractions of the upright preview).
        conn = connect(server.data_dir / "photobox.db")
        deadline = time.time() + 60
        while not conn.execute("SELECT id FROM assets WHERE thumb_version > 0").fetchone():
            assert time.time() < deadline, "no preview was made"
            time.sleep(0.2)
        asset = conn.execute("SELECT id FROM assets").fetchone()[0]
        with conn:
            conn.execute("INSERT INTO people (id, name, created_at, updated_at) VALUES (1, 'Ada', 0, 0), (2, '', 0, 0)")
            for face_id, person, box in ((1, 1, RED_BOX), (2, 2, BLUE_BOX)):
                conn.execute("INSERT INTO faces (id, asset_id, person_id, x1, y1, x2, y2, score, model, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, 0.9, 'test', 0)", (face_id, asset, person, *box))
        conn.close()

        d.get(f"{server.url}/photos/{asset}")
        wait.until(lambda drv: drv.execute_script(
            "const m = document.getElementById('media'); return m.complete && m.naturalWidth > 0"))
        assert d.execute_script("const m = document.getElementById('media'); return [m.naturalWidth, m.naturalHeight]"
                                )[0] < d.execute_script("return document.getElementById('media').naturalHeight")
        assert "info-open" in d.find_element(By.ID, "viewer").get_attribute("class")  # wide window: details open
        red = d.find_element(By.CSS_SELECTOR, '.face-box[data-face="1"]')
        blue = d.find_element(By.CSS_SELECTOR, '.face-box[data-face="2"]')
        assert not red.is_displayed() and not blue.is_displayed()

        # Hovering Ada's chip shows her face, on the red square, in the picture's proportions.
        chip = d.find_element(By.CSS_SELECTOR, '.face-list li[data-face="1"]')
        ActionChains(d).move_to_element(chip).perform()
        wait.until(lambda drv: red.is_displayed())
        assert not blue.is_displayed()
        assert is_red(colour_at(d, red)), colour_at(d, red)
        img = d.find_element(By.ID, "media").rect
        # The <img> is letterboxed in the wide stage; the box is 1/4 of the picture's width.
        assert red.rect["width"] == pytest.approx(img["width"] / 4, abs=2)
        assert red.rect["height"] == pytest.approx(img["height"] * (120 / 640), abs=2)
        assert red.rect["x"] == pytest.approx(img["x"] + img["width"] * RED_BOX[0], abs=2)
        assert "Ada" in red.text
        screenshot(d, "viewer-face-hover-desktop")
        ActionChains(d).move_to_element(d.find_element(By.CSS_SELECTOR, ".details h2")).perform()
        wait.until(lambda drv: not red.is_displayed())

        # "Show faces" shows every face, each on its square, and is remembered.
        toggle = d.find_element(By.ID, "faces-toggle")
        assert toggle.get_attribute("aria-pressed") == "false"
        toggle.click()
        wait.until(lambda drv: red.is_displayed() and blue.is_displayed())
        assert toggle.get_attribute("aria-pressed") == "true"
        assert is_red(colour_at(d, red)) and is_blue(colour_at(d, blue))
        d.refresh()
        wait.until(lambda drv: drv.find_element(By.CSS_SELECTOR, '.face-box[data-face="2"]').is_displayed())
        d.find_element(By.ID, "faces-toggle").click()
        wait.until(lambda drv: not drv.find_element(By.CSS_SELECTOR, '.face-box[data-face="2"]').is_displayed())

        # On a phone the details sit under the photo; tapping a chip shows its face.
        d.set_window_size(390, 844)
        d.refresh()
        wait.until(lambda drv: drv.execute_script("return document.getElementById('media').naturalWidth > 0"))
        if "info-open" not in d.find_element(By.ID, "viewer").get_attribute("class"):
            d.find_element(By.ID, "info-button").click()
        blue = d.find_element(By.CSS_SELECTOR, '.face-box[data-face="2"]')
        chip = d.find_element(By.CSS_SELECTOR, '.face-list li[data-face="2"]')
        d.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", chip)
        d.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", chip)
        wait.until(lambda drv: blue.is_displayed())
        assert is_blue(colour_at(d, blue)), colour_at(d, blue)
        screenshot(d, "viewer-face-tap-phone")
    finally:
        quit_driver(d)
