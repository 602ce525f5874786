"""Search by description end to end with the tiny generated CLIP model: fetch → embed the
library in the clip job → search with filters, the relevance cut-off, "more like this"."""

from __future__ import annotations

import asyncio
import io

import pytest
from bs4 import BeautifulSoup
from PIL import Image

from photobox.ml.fetch import fetch_model
from photobox.search import vectors
from photobox.search.filters import Filters
from photobox.search.service import search
from tests.ml.helpers import file_override, write_manifest
from tests.ml.tinymodels import tiny_manifest, write_tiny_models
from tests.test_ingest import api_key, wait_idle

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def jpeg(colour, taken, seed=0):
    import piexif

    im = Image.new("RGB", (320, 240), colour)
    im.putpixel((seed % 320, 0), (seed % 255, 0, 0))  # distinct bytes per file
    exif = piexif.dump({"0th": {}, "Exif": {piexif.ExifIFD.DateTimeOriginal: taken.encode()}, "GPS": {}, "1st": {}})
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


@pytest.fixture
def tiny_installed(tmp_path_factory, settings):
    files = write_tiny_models(tmp_path_factory.mktemp("tiny"))
    manifests = tmp_path_factory.mktemp("manifests")
    write_manifest(manifests, tiny_manifest(files, default=True))
    fetch_model("tiny-clip", settings.data_dir / "models", source_override=file_override(files),
                manifests_dir=manifests)


@pytest.fixture
def library(tiny_installed, owner_client):
    c = owner_client
    key = api_key(c)
    ids = {}
    for i, (name, colour, taken) in enumerate([
            ("red1.jpg", "red", "2020:05:01 10:00:00"), ("red2.jpg", "red", "2021:05:01 10:00:00"),
            ("green1.jpg", "green", "2020:06:01 10:00:00"), ("blue1.jpg", "blue", "2021:07:01 10:00:00"),
            ("blue2.jpg", "blue", "2019:01:01 10:00:00")]):
        r = c.post("/api/assets", files={"file": (name, jpeg(COLOURS[colour], taken, i), "image/jpeg")}, headers=key)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    box = c.app.state.photobox
    wait_idle(box)
    asyncio.run(box.scheduler.run_until_idle())  # in case the clip job was queued last
    wait_idle(box)
    return ids


def test_library_is_embedded_in_an_active_space(owner_client, library):
    box = owner_client.app.state.photobox
    with box.db.reader() as conn:
        space = vectors.active_space(conn)
        assert space is not None and space.model.startswith("tiny-clip")
        assert vectors.count(conn, space.id) == len(library)
        assert vectors.missing_assets(conn, space.id, 10) == []


def test_description_ranks_and_cut_off(owner_client, library):
    box = owner_client.app.state.photobox
    out = search(box, q="red")
    assert set(out.ids[:2]) == {library["red1.jpg"], library["red2.jpg"]}
    assert out.ranked and out.scores == sorted(out.scores, reverse=True)
    # The cut-off: only the two red photos are good matches for "red"; the rest are dropped.
    assert set(out.ids) == {library["red1.jpg"], library["red2.jpg"]}, list(zip(out.ids, out.scores))
    nothing = search(box, q="a photo of my cat")  # best score 0.17 on this data: below the 0.2 cut-off
    assert nothing.ids == [] and "No good match" in nothing.message


def test_filters_apply_before_ranking(owner_client, library):
    box = owner_client.app.state.photobox
    only_2021 = search(box, q="sky", f=Filters(date_from="2021-01-01", date_to="2021-12-31"))
    assert only_2021.ids == [library["blue1.jpg"]]
    videos = search(box, q="sky", f=Filters(kind="video"))
    assert videos.ids == []
    with box.db.transaction() as conn:
        conn.execute("UPDATE assets SET favorite = 1 WHERE id = ?", (library["blue2.jpg"],))
    assert search(box, q="blue", f=Filters(favorite=True)).ids == [library["blue2.jpg"]]
    # Filters alone (no description) list matches in timeline order.
    assert search(box, f=Filters(date_from="2020-01-01", date_to="2020-12-31")).ids == [
        library["green1.jpg"], library["red1.jpg"]]


def test_more_like_this(owner_client, library):
    box = owner_client.app.state.photobox
    out = search(box, like=library["blue1.jpg"])
    assert out.ids[0] == library["blue2.jpg"] and library["blue1.jpg"] not in out.ids


def test_trashed_and_archived_are_left_out(owner_client, library):
    box = owner_client.app.state.photobox
    with box.db.transaction() as conn:
        conn.execute("UPDATE assets SET trashed_at = 1 WHERE id = ?", (library["red1.jpg"],))
        conn.execute("UPDATE assets SET archived = 1 WHERE id = ?", (library["red2.jpg"],))
    assert search(box, q="red").ids == []
    assert search(box, q="red", f=Filters(archived="include")).ids == [library["red2.jpg"]]


def test_hidden_hits_do_not_shorten_the_page(owner_client, library, monkeypatch):
    """When hidden assets fill the over-fetch, the search widens it instead of returning less."""
    from photobox.search import service

    box = owner_client.app.state.photobox
    first, second = search(box, q="red").ids
    with box.db.transaction() as conn:
        conn.execute("UPDATE assets SET trashed_at = 1 WHERE id = ?", (first,))
    monkeypatch.setattr(service, "_OVERFETCH", 0)
    assert search(box, q="red", limit=1).ids == [second]


def test_search_page_and_api(owner_client, library):
    c = owner_client
    s = BeautifulSoup(c.get("/search?q=fire").text, "html.parser")
    found = [int(a["data-id"]) for a in s.select("#search-results a.tile")]
    assert set(found) == {library["red1.jpg"], library["red2.jpg"]}
    href = s.select_one("#search-results a.tile")["href"]
    assert "in=search" in href and "q=fire" in href
    viewer = BeautifulSoup(c.get(href).text, "html.parser")
    assert viewer.select_one("a[rel=next]") is not None or viewer.select_one("a[rel=prev]") is not None
    partial = c.get("/search?q=grass", headers={"HX-Request": "true"})
    assert partial.text.lstrip().startswith('<div id="search-results"')
    api = c.get("/api/search", params={"q": "sky", "limit": 10}).json()
    assert [hit["id"] for hit in api["results"]][:2] in ([library["blue1.jpg"], library["blue2.jpg"]],
                                                         [library["blue2.jpg"], library["blue1.jpg"]])
    assert api["ranked"] is True


def test_search_without_model_explains(owner_client):
    s = BeautifulSoup(owner_client.get("/search?q=dog").text, "html.parser")
    assert "photobox models fetch" in s.select_one("#ml-missing").text
    assert "photobox models fetch" in owner_client.get("/api/search?q=dog").json()["message"]
