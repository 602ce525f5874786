"""The installable web app in headless Chromium: manifest and icons load, the service worker
registers at scope /, the offline page shows when the box is out of reach, and a share-style
POST works from photobox's own origin but not from another site."""

from __future__ import annotations

import json

import pytest

from tests.browser import create_owner, make_driver, quit_driver, screenshot
from tests.gen import jpeg_bytes
from tests.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

_FORM_JS = """
const f = document.createElement('form');
f.method = 'post'; f.enctype = 'multipart/form-data'; f.action = arguments[0]; f.id = 'share-form';
const i = document.createElement('input'); i.type = 'file'; i.name = 'media'; i.id = 'share-file'; i.multiple = true;
f.appendChild(i); document.body.appendChild(f);
"""


def _asset_count(server) -> int:
    from photobox.db import connect

    conn = connect(server.data_dir / "photobox.db", readonly=True)
    try:
        return conn.execute("SELECT count(*) FROM assets").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("browser-pwa") / "data").start()
    yield s
    s.stop()


def test_installable_and_share(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "shared photo.jpg"
    photo.write_bytes(jpeg_bytes(seed=31))
    other_photo = tmp_path / "other.jpg"
    other_photo.write_bytes(jpeg_bytes(seed=32))
    d = make_driver(412, 915)  # a phone
    wait = WebDriverWait(d, 30)
    try:
        create_owner(d, server.url)

        # The manifest is linked, parses, and its icons load.
        href = d.find_element(By.CSS_SELECTOR, "link[rel=manifest]").get_attribute("href")
        manifest = json.loads(d.execute_async_script(
            "fetch(arguments[0]).then(r => r.text()).then(arguments[1])", href))
        assert manifest["share_target"]["action"] == "/share"
        loaded = d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            Promise.all(arguments[0].map(src => new Promise(ok => {
              const im = new Image(); im.onload = () => ok(im.naturalWidth); im.onerror = () => ok(0); im.src = src;
            }))).then(done);""", [i["src"] for i in manifest["icons"]])
        assert all(w > 0 for w in loaded), loaded

        # The service worker registers with the whole app as its scope and becomes active.
        scope = d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            navigator.serviceWorker.ready.then(reg => done(reg.scope + ' ' + reg.active.state),
                                               err => done('error ' + err));""")
        assert scope in (server.url + "/ activated", server.url + "/ activating"), scope

        # A share-style POST (no CSRF token, as the share sheet sends it) from photobox's origin works.
        d.get(server.url + "/upload")
        d.execute_script(_FORM_JS, server.url + "/share")
        d.find_element(By.ID, "share-file").send_keys(str(photo))
        d.execute_script("document.getElementById('share-form').submit()")
        wait.until(lambda drv: "/share/done" in drv.current_url)
        assert "1 new photo or video added" in d.page_source and _asset_count(server) == 1
        screenshot(d, "pwa-share-done-phone")

        # The same POST from another site is refused (a data: page is an opaque, cross-site origin;
        # the server-side rule for a cross-site POST that carries the cookie is in test_pwa.py).
        d.get("data:text/html,<title>elsewhere</title><body></body>")
        d.execute_script(_FORM_JS, server.url + "/share")
        d.find_element(By.ID, "share-file").send_keys(str(other_photo))
        d.execute_script("document.getElementById('share-form').submit()")
        wait.until(lambda drv: drv.current_url.startswith(server.url))
        # (no cookie on a cross-site POST: the login redirect, which sends a logged-in browser home)
        assert "/share/done" not in d.current_url, d.current_url
        assert _asset_count(server) == 1
        # Offline (the box is switched off): a navigation gets the cached offline page, not the
        # browser's error. (DevTools' offline emulation does not reach service workers, so the
        # server really stops; this is the test's last step.)
        d.get(server.url + "/")
        assert server.stop() == 0
        d.get(server.url + "/albums")
        assert "out of reach" in d.find_element(By.TAG_NAME, "h1").text
        screenshot(d, "pwa-offline-phone")
    finally:
        quit_driver(d)
