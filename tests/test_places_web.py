"""Places through the real app: the page with and without data, towns and countries, the map
JSON (auth, clustering, antimeridian), the search filter, and the CSP for map tiles."""

from __future__ import annotations

import time

import pytest
from bs4 import BeautifulSoup
from litestar.testing import TestClient

from photobox.library.ingest import hash_file, ingest_temp_file
from photobox.library.timeline import Scope
from photobox.settings import SettingsError, load_settings
from photobox.web.app import create_app
from tests.conftest import do_setup
from tests.gen import jpeg_bytes
from tests.places_data import install_known


def wait_idle(box, timeout: float = 60.0) -> None:
    from photobox.jobs import store

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with box.db.reader() as conn:
            counts = store.counts(conn)
        if not any(s.get("queued") or s.get("running") for s in counts.values()):
            return
        time.sleep(0.02)
    raise AssertionError(f"jobs still pending: {counts}")


def ingest(box, name, **kw) -> int:
    tmp = box.path("tmp", name)
    tmp.write_bytes(jpeg_bytes(**kw))
    checksum, size = hash_file(tmp)
    return ingest_temp_file(box, tmp, checksum, size, original_name=name).asset_id


@pytest.fixture
def placed(owner_client, tmp_path):
    """The app with the test gazetteer and photos in Paris (2), Berlin, Fiji (at 180°), at sea, and without GPS."""
    box = owner_client.app.state.photobox
    install_known(box, tmp_path)
    ids = {
        "paris1": ingest(box, "p1.jpg", gps=(48.8584, 2.2945), seed=1, taken="2021:07:14 10:00:00"),
        "paris2": ingest(box, "p2.jpg", gps=(48.8606, 2.3376), seed=2, taken="2022:07:14 10:00:00"),
        "berlin": ingest(box, "b.jpg", gps=(52.5163, 13.3777), seed=3),
        "fiji": ingest(box, "f.jpg", gps=(-16.8, 179.99), seed=4),
        "sea": ingest(box, "s.jpg", gps=(0.5, 0.5), seed=5),
        "nogps": ingest(box, "n.jpg", seed=6),
    }
    wait_idle(box)
    return owner_client, ids


def soup(response) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html.parser")


def test_auth_required(client):
    do_setup(client)
    client.cookies.clear()
    assert client.get("/places", headers={"accept": "text/html"}, follow_redirects=False).status_code == 303
    for path in ("/api/places/map", "/api/places", "/places/FR", "/places/town/1"):
        assert client.get(path, follow_redirects=False).status_code in (401, 303), path


def test_page_without_data_says_how_to_install(owner_client):
    page = soup(owner_client.get("/places"))
    notice = page.select_one(".places-missing")
    assert notice is not None and "photobox places install" in notice.text
    nav = [a.text for a in page.select("nav.nav a")]
    assert nav.index("Places") == nav.index("People") + 1


def test_countries_towns_and_grids(placed):
    client, ids = placed
    page = soup(client.get("/places"))
    assert page.select_one(".places-missing") is None
    cards = {c.select_one(".place-name").text: c for c in page.select(".place-card")}
    assert set(cards) == {"France", "Germany", "Fiji"}
    assert list(cards)[0] == "France"  # most photos first
    assert "2 photos" in cards["France"].text
    assert cards["France"]["href"] == "/places/FR"
    assert cards["France"].img["src"] == f"/api/assets/{ids['paris2']}/thumbnail"  # newest photo as cover
    assert page.select_one("#photo-map")["data-points"] == "/api/places/map"
    assert page.select_one("#photo-map").get("data-tiles") is None  # offline by default

    country = soup(client.get("/places/FR"))
    towns = country.select(".place-card")
    assert [t.select_one(".place-name").text for t in towns] == ["Paris"]
    town_url = towns[0]["href"]
    grid = soup(client.get(town_url))
    assert grid.h1.text == "Paris"
    tiles = {int(t["data-id"]) for t in grid.select("a.tile")}
    assert tiles == {ids["paris1"], ids["paris2"]}
    place_id = int(town_url.rsplit("/", 1)[1])
    viewer = client.get(f"/photos/{ids['paris1']}?in=place-{place_id}")
    facts = soup(viewer).select_one("dl.facts").text
    assert "Paris, Ile-de-France, France · 48.85840, 2.29450" in facts
    assert f'href="/places/town/{place_id}"' in viewer.text  # back to the town's photos
    assert {int(t["data-id"]) for t in soup(client.get("/places/fj/photos")).select("a.tile")} == {ids["fiji"]}
    # The grid's infinite scroll asks /grid with the scope key.
    more = client.get(f"/grid?in=place-{place_id}&before=1e18:0", headers={"hx-request": "true"})
    assert {int(t["data-id"]) for t in soup(more).select("a.tile")} == {ids["paris1"], ids["paris2"]}
    more = client.get("/grid?in=country-DE&before=1e18:0", headers={"hx-request": "true"})
    assert {int(t["data-id"]) for t in soup(more).select("a.tile")} == {ids["berlin"]}
    assert client.get("/places/ZZ").status_code == 404
    assert client.get("/places/town/999999").status_code == 404
    assert client.get("/places/notacountry").status_code == 404


def test_scope_keys_round_trip():
    for text in ("place-12", "country-FR"):
        assert Scope.parse(text).key == text
    assert Scope.parse("country-fr").name == "timeline"
    assert Scope.parse("place-x").name == "timeline"


def test_map_points_cluster_by_zoom(placed):
    client, ids = placed
    world = client.get("/api/places/map?south=-90&north=90&west=-180&east=180&zoom=2").json()
    counts = sorted(c["count"] for c in world["cells"])
    assert counts == [1, 1, 1, 2]  # Paris ×2 in one cell; Berlin, Fiji, the sea photo alone
    assert sum(counts) == 5 and not world["truncated"]
    close = client.get("/api/places/map?south=48&north=49.5&west=2&east=3&zoom=16").json()
    assert sorted(c["count"] for c in close["cells"]) == [1, 1]
    assert {c["id"] for c in close["cells"]} == {ids["paris1"], ids["paris2"]}
    # A box across the antimeridian (west > east) holds the photo at 179.99°.
    pacific = client.get("/api/places/map?south=-30&north=0&west=170&east=-170&zoom=5").json()
    assert [c["id"] for c in pacific["cells"]] == [ids["fiji"]]
    # Leaflet's unwrapped longitudes (panned one world east) mean the same place.
    wrapped = client.get("/api/places/map?south=-30&north=0&west=530&east=550&zoom=5").json()
    assert [c["id"] for c in wrapped["cells"]] == [ids["fiji"]]
    # The zoomed-out views are cached until the library changes: trashing a photo shows.
    box = client.app.state.photobox
    from photobox.library import assets

    with box.db.transaction() as conn:
        assets.apply_action(conn, "trash", [ids["berlin"]], now=time.time())
    world = client.get("/api/places/map?south=-90&north=90&west=-180&east=180&zoom=2").json()
    assert sorted(c["count"] for c in world["cells"]) == [1, 1, 2]
    # So are the lists of countries and towns.
    names = [n.text for n in soup(client.get("/places")).select(".place-name")]
    assert names == ["France", "Fiji"]
    assert client.get("/places/DE").status_code == 404
    # Malformed numbers fall back to the whole world instead of failing.
    assert client.get("/api/places/map?south=x&zoom=y").status_code == 200


def test_map_points_are_bounded(placed, monkeypatch):
    client, _ = placed
    from photobox.places import views as places

    monkeypatch.setattr(places, "MAX_CELLS", 2)
    out = client.get("/api/places/map?zoom=18").json()
    assert len(out["cells"]) == 2 and out["truncated"]


def test_api_places(placed):
    client, _ = placed
    countries = client.get("/api/places").json()
    assert [(c["code"], c["name"], c["count"]) for c in countries] == [
        ("FR", "France", 2), ("DE", "Germany", 1), ("FJ", "Fiji", 1)]
    towns = client.get("/api/places?country=FR").json()
    assert [(t["city"], t["region"], t["count"]) for t in towns] == [("Paris", "Ile-de-France", 2)]


def test_search_place_filter(placed):
    client, ids = placed
    hits = {h["id"] for h in client.get("/api/search?country=FR").json()["results"]}
    assert hits == {ids["paris1"], ids["paris2"]}
    town = client.get("/api/places?country=DE").json()[0]["id"]
    assert {h["id"] for h in client.get(f"/api/search?place={town}").json()["results"]} == {ids["berlin"]}
    assert client.get("/api/search?country=FR&place=" + str(town)).json()["results"] == []
    page = soup(client.get("/search?country=FR"))
    assert {int(t["data-id"]) for t in page.select("a.tile")} == {ids["paris1"], ids["paris2"]}
    country_select = page.select_one("select[name=country]")
    assert country_select.select_one("option[selected]")["value"] == "FR"
    assert "Berlin, Germany (1)" in page.select_one("select[name=place]").text


def test_csp_has_no_tile_origin_by_default(owner_client):
    csp = owner_client.get("/places").headers["content-security-policy"]
    assert "img-src 'self' data: blob:;" in csp


def test_map_tile_url_setting(tmp_path):
    with pytest.raises(SettingsError):
        load_settings({"data_dir": tmp_path, "map_tile_url": "http://tiles.example/{z}/{x}/{y}.png"}, env={})
    with pytest.raises(SettingsError):
        load_settings({"data_dir": tmp_path, "map_tile_url": "https://tiles.example/tile.png"}, env={})
    settings = load_settings({"data_dir": tmp_path / "d", "workers": 1,
                              "map_tile_url": "https://{s}.tile.example.org/{z}/{x}/{y}.png"}, env={})
    with TestClient(app=create_app(settings)) as client:
        do_setup(client)
        response = client.get("/places")
        assert "img-src 'self' data: blob: https://*.tile.example.org;" in response.headers["content-security-policy"]
        assert soup(response).select_one("#photo-map") is None  # no GPS photos yet: no map
        ingest(client.app.state.photobox, "x.jpg", gps=(1.0, 2.0))
        page = soup(client.get("/places"))
        assert page.select_one("#photo-map")["data-tiles"] == "https://{s}.tile.example.org/{z}/{x}/{y}.png"


def test_long_town_lists_are_cut(placed, monkeypatch):
    client, _ = placed
    from photobox.places import views as places

    soup(client.get("/places/FR"))  # cached before the limit changes: the cut is applied after the cache
    monkeypatch.setattr(places, "MAX_TOWNS", 0)
    page = soup(client.get("/places/FR"))
    assert page.select(".place-card") == [] and "And 1 more place " in page.text
