"""Browser test of Settings → Backups in headless Chromium against the real server: back up
now, then restore an uploaded backup bigger than the form-field CSRF limit (so it must go
through HTMX with the CSRF header), at phone width."""

from __future__ import annotations

import pytest

from photobox.db import connect
from tests.browser import create_owner, make_driver, quit_driver, screenshot
from tests.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def tap(d, element) -> None:
    """Click ``element`` after scrolling it to the middle: on a phone the fixed bottom tab bar
    covers the last 60px, where Selenium would otherwise leave an element it scrolls to."""
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def test_backup_now_and_upload_a_backup_to_restore(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    # A valid photobox database of ~3 MiB to upload (larger than the 1 MiB form CSRF limit).
    from photobox.core import Photobox
    from photobox.safety import backups
    from photobox.settings import load_settings

    other = Photobox(load_settings({"data_dir": tmp_path / "other", "workers": 1}, env={})).open()
    with other.db.transaction() as conn:
        conn.execute("CREATE TABLE ballast (pad BLOB)")
        conn.executemany("INSERT INTO ballast VALUES (randomblob(8000))", [()] * 400)
        conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('from the upload', 0, 0)")
    upload = backups.make_backup(other, tmp_path / "elsewhere.db", sidecar=False)
    other.close()

    server = Server(tmp_path / "data").start()
    d = make_driver(390, 844)  # a phone
    wait = WebDriverWait(d, 30)
    try:
        create_owner(d, server.url)
        d.get(server.url + "/settings")
        tap(d, d.find_element(By.LINK_TEXT, "Backups and restore"))
        wait.until(EC.url_to_be(server.url + "/settings/backups"))
        tap(d, d.find_element(By.XPATH, "//button[normalize-space()='Back up now']"))
        wait.until(lambda drv: "being made" in drv.page_source)

        def listed(drv):
            drv.get(server.url + "/settings/backups")
            return drv.find_elements(By.CSS_SELECTOR, "table.backups tbody tr")

        rows = wait.until(listed)
        assert "verified when made" in rows[0].text
        d.find_element(By.CSS_SELECTOR, "input[name=file]").send_keys(str(upload))
        tap(d, d.find_element(By.CSS_SELECTOR, ".restore-upload input[name=confirm]"))
        tap(d, d.find_element(By.XPATH, "//button[normalize-space()='Upload and restore']"))
        wait.until(lambda drv: "Restore staged" in drv.page_source)
        assert "A restore is waiting" in d.page_source
        screenshot(d, "backups-phone")
        wide = d.execute_script(
            "return [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > "
            "window.innerWidth + 1).map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)")
        assert not wide, f"no sideways scrolling on a phone: {wide}"
    finally:
        quit_driver(d)
        server.stop()
    assert (tmp_path / "data" / "photobox.db.restore").exists()
    server = Server(tmp_path / "data").start()  # the restart applies it
    try:
        assert not (tmp_path / "data" / "photobox.db.restore").exists()
    finally:
        server.stop()
    conn = connect(tmp_path / "data" / "photobox.db", readonly=True)
    assert conn.execute("SELECT count(*) FROM albums WHERE name = 'from the upload'").fetchone()[0] == 1
    conn.close()
    assert list((tmp_path / "data" / "backups").glob("pre-restore-*.db"))
