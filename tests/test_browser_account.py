"""Browser test: first-run setup, home, settings and an API key through HTMX, in headless Chromium."""

from __future__ import annotations

import pytest

from tests.browser import make_driver, quit_driver, screenshot
from tests.conftest import PASSWORD
from tests.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("browser") / "data").start()
    yield s
    s.stop()


def test_setup_login_settings_api_key(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    d = make_driver(390, 844)  # a phone
    try:
        d.get(server.url + "/")
        assert d.current_url.endswith("/setup")
        screenshot(d, "setup-phone")
        d.find_element(By.NAME, "username").send_keys("alice")
        d.find_element(By.NAME, "password").send_keys(PASSWORD)
        d.find_element(By.NAME, "password2").send_keys(PASSWORD)
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(d, 10).until(EC.url_to_be(server.url + "/"))
        assert "No photos yet" in d.page_source
        # The session cookie is HttpOnly: page scripts cannot read it.
        assert "pb_session" not in d.execute_script("return document.cookie")
        screenshot(d, "home-phone")

        d.get(server.url + "/settings")
        d.find_element(By.CSS_SELECTOR, "#api-keys input[name=name]").send_keys("phone backup")
        d.find_element(By.CSS_SELECTOR, "#api-keys button[type=submit]").click()
        # HTMX swaps the list in place (with the CSRF header from hx-headers); no page load.
        secret = WebDriverWait(d, 10).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, "code.secret"))).text
        assert secret.startswith("pbk_")
        assert d.current_url.endswith("/settings")
        screenshot(d, "settings-phone")
        d.set_window_size(1280, 900)
        screenshot(d, "settings-desktop")
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors  # e.g. a CSP violation or a missing asset
    finally:
        quit_driver(d)
