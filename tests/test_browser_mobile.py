"""Phone layout, in headless Chromium: every key page at 390x844 (and 1280x900) has no
sideways scrolling, the phone gets a bottom tab bar (Photos, Search, Albums, Library) that is
visible, highlights where you are and never covers content (the last tile of the timeline can
be scrolled above it), and full-screen pages (viewer, slideshow) and the selection bar have no
tab bar in the way. The desktop keeps its top nav and no tab bar. Screenshots of every page
go to test-artifacts/mobile-*.png."""

from __future__ import annotations

import time

import pytest

from photobox.db import connect
from photobox.sharing import store as share_store
from tests.browser import make_driver, quit_driver, screenshot
from tests.conftest import PASSWORD
from tests.gen import jpeg_bytes
from tests.server import Server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHOTOS = 24
PROBLEMS: list[str] = []

#: What the page shows that is wider than the window (tag.class and right edge), for messages.
WIDE_JS = """
return [...document.querySelectorAll('main *')].filter(e => {
  const r = e.getBoundingClientRect();
  return r.width > 0 && r.right > document.documentElement.clientWidth + 1 && getComputedStyle(e).position !== 'fixed'
         && !e.closest('.viewer, .slideshow, .scrubber, dialog:not([open])');
}).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));
"""

#: Buttons, tabs and menu handles smaller than 40px in height (inline text links are exempt).
SMALL_TARGETS_JS = """
return [...document.querySelectorAll('button, summary, .tabbar a, .top-upload, .library-list a, select, '
                                     + 'input:not([type=hidden]):not([type=checkbox]):not([type=radio]):not([type=file])')]
  .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && r.height < 40
                 && getComputedStyle(e).visibility !== 'hidden' && !e.closest('dialog:not([open]), [hidden]'); })
  .map(e => e.tagName + '#' + e.id + '.' + e.className + ' "' + (e.innerText || e.name || '').trim().slice(0, 20)
            + '" ' + Math.round(e.getBoundingClientRect().height));
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("browser-mobile") / "data").start()
    yield s
    s.stop()


def phone(d) -> None:
    """A 390x844 phone screen: headless Chromium's window cannot be narrower than 500px, so the
    viewport is set through DevTools (mobile: the viewport meta tag applies, scrollbars overlay)."""
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})


def desktop(d) -> None:
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    d.set_window_size(1280, 900)


def overflow(d) -> int:
    """How many pixels the page scrolls sideways (0 is right). On a mobile viewport Chromium widens
    the layout viewport (innerWidth) to fit too-wide content, so compare with the device width too."""
    return d.execute_script("return document.scrollingElement.scrollWidth"
                            " - Math.min(window.innerWidth, document.documentElement.clientWidth)")


def check_page(d, name: str, *, tabbar: bool = True, targets: bool = True) -> None:
    """No sideways scrolling, the tab bar shown (or not), buttons big enough to tap; a screenshot.
    Layout faults are collected in PROBLEMS (reported together at the end), so one run lists them all."""
    from selenium.webdriver.common.by import By

    d.execute_script("window.scrollTo(0, 0)")
    screenshot(d, f"mobile-{name}")
    width = d.execute_script("return document.documentElement.clientWidth")
    if overflow(d) > 0:
        PROBLEMS.append(f"{name} scrolls sideways at {width}px: {d.execute_script(WIDE_JS)}")
    bars = d.find_elements(By.CSS_SELECTOR, 'nav.tabbar[aria-label="Tabs"]')
    if width <= 640 and tabbar:
        assert bars and bars[0].is_displayed(), f"{name}: no tab bar on a phone"
        rect = bars[0].rect
        assert rect["y"] + rect["height"] == pytest.approx(d.execute_script("return window.innerHeight"), abs=1)
        assert not d.find_element(By.CSS_SELECTOR, 'nav[aria-label="Main"]').is_displayed()
    else:
        assert not bars or not bars[0].is_displayed(), f"{name}: a tab bar where there should be none"
    if targets and width <= 640:
        small = d.execute_script(SMALL_TARGETS_JS)
        if small:
            PROBLEMS.append(f"{name}: tap targets under 40px on a phone: {small}")


def test_phone_tab_bar_and_no_sideways_scrolling(server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    files = []
    for i in range(PHOTOS):
        # One file name with no place to break a line (phones' exports look like this).
        p = tmp_path / (f"IMG_{i:03}.jpg" if i != 8 else "PXL_20230918_100000123_MP_exported_from_a_phone_gallery_app_copy_2.jpg")
        p.write_bytes(jpeg_bytes(taken=f"2023:0{1 + i % 9}:1{i % 10} 10:00:00", seed=i,
                                 size=(400, 300) if i % 3 else (300, 400),
                                 gps=(48.85 + i / 100, 2.35) if i % 2 else None))
        files.append(p)

    d = make_driver(390, 844)
    wait = WebDriverWait(d, 60)
    try:
        phone(d)
        d.get(server.url + "/setup")
        check_page(d, "setup-phone", tabbar=False)
        d.find_element(By.NAME, "username").send_keys("alice")
        d.find_element(By.NAME, "password").send_keys(PASSWORD)
        d.find_element(By.NAME, "password2").send_keys(PASSWORD + Keys.ENTER)
        wait.until(EC.url_to_be(server.url + "/"))
        check_page(d, "timeline-empty-phone")

        # Upload from the phone: the header's upload button leads there.
        d.find_element(By.CSS_SELECTOR, "a.top-upload").click()
        wait.until(EC.url_to_be(server.url + "/upload"))
        d.find_element(By.ID, "pick-files").send_keys("\n".join(str(p) for p in files))
        wait.until(lambda drv: drv.find_element(By.ID, "sum-done").text == str(PHOTOS))
        check_page(d, "upload-phone")

        conn = connect(server.data_dir / "photobox.db")
        deadline = time.time() + 120
        while conn.execute("SELECT count(*) FROM assets WHERE thumb_version > 0").fetchone()[0] < PHOTOS:
            assert time.time() < deadline, "thumbnails were not made"
            time.sleep(0.3)
        ids = [r[0] for r in conn.execute("SELECT id FROM assets ORDER BY sort_ts DESC, id DESC")]
        with conn:
            conn.execute("INSERT INTO albums (id, name, description, created_at, updated_at) VALUES "
                         "(1, 'Holidays in the mountains with the whole family, summer 2023', "
                         "'A long description that should wrap on a phone rather than run off the side.', 0, 0)")
            for i, a in enumerate(ids[:10]):
                conn.execute("INSERT INTO album_assets (album_id, asset_id, sort_ts, added_at) VALUES (1, ?, ?, 0)",
                             (a, 1000 - i))
            conn.execute("INSERT INTO people (id, name, created_at, updated_at) VALUES "
                         "(1, 'Ada Lovelace-Byron Augusta King', 0, 0), (2, '', 0, 0)")
            for n, a in enumerate(ids[:6]):
                conn.execute("INSERT INTO faces (asset_id, person_id, x1, y1, x2, y2, score, model, created_at) "
                             "VALUES (?, ?, .2, .2, .5, .5, 0.9, 'test', 0)", (a, 1 + n % 2))
            conn.execute("INSERT INTO memories (id, day, year, title, cover_id, created_at) "
                         "VALUES (1, '2026-01-10', 2023, '3 years ago', ?, 0)", (ids[0],))
            for n, a in enumerate(ids[:3]):
                conn.execute("INSERT INTO memory_assets (memory_id, position, asset_id) VALUES (1, ?, ?)", (n, a))
            _share, token = share_store.create_share(conn, album_id=1)
        conn.close()

        # The timeline: the tab bar is there, Photos is current, and the last tile scrolls above it.
        d.get(server.url + "/")
        wait.until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "a.tile")) == PHOTOS)
        check_page(d, "timeline-phone")
        tabs = d.find_elements(By.CSS_SELECTOR, 'nav.tabbar a')
        assert [t.text for t in tabs] == ["Photos", "Search", "Albums", "Library"]
        assert [t.get_attribute("aria-current") for t in tabs] == ["page", None, None, None]
        assert all(t.rect["height"] >= 44 and t.rect["width"] >= 44 for t in tabs)
        # Keyboard: the tabs come right after the header's links (the hidden desktop nav is skipped).
        focused = []
        for _ in range(7):
            ActionChains(d).send_keys(Keys.TAB).perform()
            focused.append(d.execute_script("const e = document.activeElement;"
                                            "return (e.closest('nav.tabbar') ? 'tab ' : '') + e.getAttribute('href')"))
        assert focused[:7] == ["#main", "/", "/upload", "tab /", "tab /search", "tab /albums", "tab /library"], focused
        d.execute_script("window.scrollTo(0, document.scrollingElement.scrollHeight)")
        time.sleep(0.3)
        last = d.find_elements(By.CSS_SELECTOR, "a.tile")[-1]
        bar = d.find_element(By.CSS_SELECTOR, "nav.tabbar")
        assert last.rect["y"] + last.rect["height"] <= bar.rect["y"] + 1, (last.rect, bar.rect)
        screenshot(d, "mobile-timeline-bottom-phone")

        # Selecting photos swaps the tab bar for the selection actions, which fit the screen.
        d.execute_script("arguments[0].querySelector('.check').click()", last)
        sel = wait.until(EC.visibility_of_element_located((By.ID, "selection-bar")))
        assert not bar.is_displayed()
        box = d.execute_script("return arguments[0].getBoundingClientRect().toJSON()", sel)
        assert box["left"] >= 0 and box["right"] <= 390 and box["bottom"] <= 844, box
        assert box["height"] <= 170, f"the selection bar hides a fifth of the phone's screen: {box}"
        assert overflow(d) <= 0
        small = d.execute_script(SMALL_TARGETS_JS)
        assert not small, f"tap targets under 40px while selecting: {small}"
        d.execute_script("window.scrollTo(0, document.scrollingElement.scrollHeight)")
        time.sleep(0.3)
        tile_bottom = d.execute_script("return arguments[0].getBoundingClientRect().bottom", last)
        assert tile_bottom <= d.execute_script("return arguments[0].getBoundingClientRect().top", sel) + 1, \
            "the selection bar covers the last tile"
        screenshot(d, "mobile-selection-phone")
        d.find_element(By.ID, "sel-clear").click()
        wait.until(lambda drv: bar.is_displayed())

        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        d.refresh()
        check_page(d, "timeline-dark-phone")
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

        # The viewer is full screen: no bars over the photo.
        d.get(f"{server.url}/photos/{ids[0]}")
        wait.until(EC.presence_of_element_located((By.ID, "viewer")))
        check_page(d, "viewer-phone", tabbar=False, targets=False)
        d.find_element(By.ID, "info-button").click()
        time.sleep(0.3)
        check_page(d, "viewer-info-phone", tabbar=False, targets=False)

        d.get(f"{server.url}/memories/1")
        check_page(d, "slideshow-phone", tabbar=False, targets=False)

        # Library: everything that is not a tab, as big rows; its tab stays lit inside it.
        d.get(server.url + "/")
        d.find_element(By.CSS_SELECTOR, 'nav.tabbar a[href="/library"]').click()
        wait.until(EC.url_to_be(server.url + "/library"))
        check_page(d, "library-phone")
        hrefs = [a.get_attribute("href").removeprefix(server.url) for a in d.find_elements(By.CSS_SELECTOR, ".library-list a")]
        assert hrefs == ["/people", "/places", "/favorites", "/upload", "/archive", "/trash", "/duplicates",
                         "/shares", "/jobs", "/settings"]
        d.find_element(By.CSS_SELECTOR, '.library-list a[href="/people"]').click()
        wait.until(EC.url_to_be(server.url + "/people"))
        assert d.find_element(By.CSS_SELECTOR, 'nav.tabbar a[href="/library"]').get_attribute("aria-current") == "true"

        pages = [("/people", "people"), ("/people/1", "person"), ("/people/unassigned", "unassigned"),
                 ("/search", "search"), ("/search?q=mountains", "search-results"), ("/albums", "albums"),
                 ("/albums/1", "album"), ("/places", "places"), ("/favorites", "favourites"),
                 ("/archive", "archive"), ("/trash", "trash"), ("/duplicates", "duplicates"),
                 ("/settings", "settings"), ("/settings/backups", "backups"), ("/settings/health", "health"),
                 ("/jobs", "jobs"), ("/shares", "shares"), ("/upload", "upload-empty")]
        for path, name in pages:
            d.get(server.url + path)
            check_page(d, f"{name}-phone")
        desktop(d)
        for path, name in [("/", "timeline"), ("/library", "library"), *pages]:
            d.get(server.url + path)
            check_page(d, f"{name}-desktop")
            assert d.find_element(By.CSS_SELECTOR, 'nav[aria-label="Main"]').is_displayed()
        d.get(f"{server.url}/photos/{ids[0]}")
        check_page(d, "viewer-desktop", tabbar=False)
        # The More menu opens visibly (a sideways-scrolling nav used to clip it), on a desktop and
        # on a tablet, where the compact nav fits without scrolling.
        for width in (1280, 768, 660):
            d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                              {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
            d.get(server.url + "/")
            d.find_element(By.CSS_SELECTOR, "details.more-menu summary").click()
            link = d.find_element(By.CSS_SELECTOR, '.more-menu a[href="/duplicates"]')
            assert d.execute_script("const r = arguments[0].getBoundingClientRect();"
                                    "return document.elementFromPoint(r.left + 5, r.top + 5) === arguments[0]", link), width
            assert d.execute_script("const n = document.querySelector('nav.nav'); return n.scrollWidth <= n.clientWidth")
            check_page(d, f"more-menu-{width}")
        desktop(d)
        phone(d)

        # The public share page has no owner navigation at all.
        d.get(f"{server.url}/s/{token}")
        check_page(d, "share-public-phone", tabbar=False)

        # Log out from Library, then the login page.
        d.get(server.url + "/library")
        out = d.find_element(By.XPATH, "//ul[@class='library-list']//button[.//span[text()='Log out']]")
        # Scrolling an element into view (as focus does) stops it above the tab bar (scroll-padding).
        d.execute_script("arguments[0].scrollIntoView({block: 'end'})", out)
        assert d.execute_script("return arguments[0].getBoundingClientRect().bottom <= "
                                "document.querySelector('nav.tabbar').getBoundingClientRect().top", out)
        out.click()
        wait.until(lambda drv: "/login" in drv.current_url)
        check_page(d, "login-phone", tabbar=False)
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        assert not PROBLEMS, "\n".join(PROBLEMS)
    finally:
        quit_driver(d)
