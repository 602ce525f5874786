"""The phone's bottom tab bar and the Library page, checked with a parser (the layout itself,
at 390px in Chromium, is tests/test_browser_mobile.py)."""

from __future__ import annotations

from bs4 import BeautifulSoup

from photobox.library.views.menu import DESTINATIONS
from tests.conftest import PASSWORD, csrf_from


def soup(response):
    assert response.status_code == 200, response.text[:500]
    return BeautifulSoup(response.text, "html.parser")


def tabs(s):
    nav = s.find("nav", attrs={"aria-label": "Tabs"})
    assert nav is not None and "tabbar" in nav["class"]
    return [(a["href"], a.get_text(strip=True), a.get("aria-current")) for a in nav.find_all("a")]


def test_tab_bar_links_and_current_tab(owner_client):
    assert tabs(soup(owner_client.get("/"))) == [
        ("/", "Photos", "page"), ("/search", "Search", None), ("/albums", "Albums", None), ("/library", "Library", None)]
    assert [c for _, _, c in tabs(soup(owner_client.get("/albums")))] == [None, None, "page", None]
    assert [c for _, _, c in tabs(soup(owner_client.get("/library")))] == [None, None, None, "page"]
    # Pages reached from Library keep its tab lit ("true": inside that section, not the page itself).
    for path in ("/people", "/places", "/favorites", "/trash", "/duplicates", "/jobs", "/shares", "/settings", "/upload"):
        assert [c for _, _, c in tabs(soup(owner_client.get(path)))] == [None, None, None, "true"], path


def test_tab_bar_icons_exist_and_are_hidden_from_screen_readers(owner_client):
    s = soup(owner_client.get("/"))
    sprite = owner_client.get("/static/icons.svg").text
    uses = s.select("nav.tabbar svg use") + s.select("a.top-upload svg use")
    assert len(uses) == 5
    for use in uses:
        assert use.find_parent("svg")["aria-hidden"] == "true"
        assert f'id="{use["href"].split("#")[1]}"' in sprite
    assert s.find("a", class_="top-upload")["aria-label"] == "Upload"


def test_library_page_lists_everything_not_in_the_tab_bar(owner_client):
    s = soup(owner_client.get("/library"))
    hrefs = [a["href"] for a in s.select("ul.library-list a")]
    assert hrefs == [d[0] for d in DESTINATIONS]
    main_nav = [a["href"] for a in s.find("nav", attrs={"aria-label": "Main"}).find_all("a")]
    tab_hrefs = [h for h, _, _ in tabs(s)]
    assert set(main_nav) <= set(hrefs) | set(tab_hrefs), "every desktop destination is reachable on a phone"
    sprite = owner_client.get("/static/icons.svg").text
    for use in s.select("ul.library-list svg use"):
        assert f'id="{use["href"].split("#")[1]}"' in sprite
    # Log out is a POST with the CSRF token, like the desktop menu's.
    form = s.select_one('ul.library-list form[action="/logout"]')
    assert form["method"] == "post" and form.find("input", attrs={"name": "csrf_token"})["value"]
    r = owner_client.post("/logout", data={"csrf_token": form.find("input", attrs={"name": "csrf_token"})["value"]},
                          follow_redirects=False)
    assert r.status_code in (302, 303)
    assert owner_client.get("/library", follow_redirects=False).status_code in (302, 303, 401)


def test_no_tab_bar_without_an_owner(client):
    s = soup(client.get("/setup"))
    assert s.find("nav", attrs={"aria-label": "Tabs"}) is None
    client.post("/setup", data={"username": "alice", "password": PASSWORD, "password2": PASSWORD,
                                "csrf_token": csrf_from(client.get("/setup").text)})
    client.cookies.clear()
    s = soup(client.get("/login"))
    assert s.find("nav", attrs={"aria-label": "Tabs"}) is None
