"""The everyday web app: timeline, viewer, favourites, archive, trash, albums, downloads."""

from __future__ import annotations

import asyncio
import io
import zipfile

import pytest
from bs4 import BeautifulSoup
from litestar.testing import TestClient

from photobox.library import actions, assets
from photobox.library.paths import original_path
from tests.conftest import csrf_from
from tests.gen import jpeg_bytes
from tests.test_ingest import api_key, wait_idle


def upload(client, data, name):
    r = client.post("/api/assets", files={"file": (name, data, "image/jpeg")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def library(owner_client):
    """Five photos over two months, uploaded through the API, pipeline done."""
    c = owner_client
    key = api_key(c)
    ids = {}
    for name, taken in [("a.jpg", "2021:07:14 09:00:00"), ("b.jpg", "2021:07:14 18:30:00"),
                        ("c.jpg", "2021:07:15 12:00:00"), ("d.jpg", "2021:06:01 08:00:00"),
                        ("e.jpg", "2019:12:31 23:59:00")]:
        r = c.post("/api/assets", files={"file": (name, jpeg_bytes(taken=taken, seed=len(ids)), "image/jpeg")},
                   headers=key)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    wait_idle(c.app.state.photobox)
    return ids


def tiles(html: str) -> list[int]:
    return [int(a["data-id"]) for a in BeautifulSoup(html, "html.parser").select("a.tile")]


def token(c):
    return csrf_from(c.get("/settings").text)


def test_timeline_groups_newest_first(owner_client, library):
    html = owner_client.get("/").text
    s = BeautifulSoup(html, "html.parser")
    assert tiles(html) == [library[n] for n in ("c.jpg", "b.jpg", "a.jpg", "d.jpg", "e.jpg")]
    assert [h.text for h in s.select("h2.month")] == ["July 2021", "June 2021", "December 2019"]
    days = [sec["data-day"] for sec in s.select("section.day")]
    assert days == ["2021-07-15", "2021-07-14", "2021-06-01", "2019-12-31"]
    tile = s.select_one(f'a.tile[data-id="{library["a.jpg"]}"]')
    img = tile.find("img")
    assert img["src"].startswith(f"/api/assets/{library['a.jpg']}/thumbnail?v=") and img["loading"] == "lazy"
    assert "a.jpg" in img["alt"] and tile.get("data-th")
    years = [a.text for a in s.select(".scrubber details > ul > li > a")]
    assert years == ["2021", "2019"]


def test_keyset_pagination_and_month_jump(owner_client, library):
    from photobox.library.views import timeline as tl

    old = tl.PAGE_SIZE
    tl.PAGE_SIZE = 2
    try:
        html = owner_client.get("/").text
        assert tiles(html) == [library["c.jpg"], library["b.jpg"]]
        more = BeautifulSoup(html, "html.parser").select_one(".more")["hx-get"]
        page2 = owner_client.get(more, headers={"HX-Request": "true"}).text
        assert tiles(page2) == [library["a.jpg"], library["d.jpg"]]
        # The day that continues from the previous page gets no second heading.
        s2 = BeautifulSoup(page2, "html.parser")
        assert "cont" in s2.select("section.day")[0]["class"]
        assert not s2.select("section.day")[0].select("h3")
    finally:
        tl.PAGE_SIZE = old
    assert tiles(owner_client.get("/?at=2021-06").text) == [library["d.jpg"], library["e.jpg"]]


def test_viewer_neighbours_details_and_keyboard_links(owner_client, library):
    r = owner_client.get(f"/photos/{library['b.jpg']}?in=timeline")
    s = BeautifulSoup(r.text, "html.parser")
    assert s.select_one("a[rel=prev]")["href"] == f"/photos/{library['c.jpg']}?in=timeline"
    assert s.select_one("a[rel=next]")["href"] == f"/photos/{library['a.jpg']}?in=timeline"
    facts = {dt.text: dd.text for dt, dd in zip(s.select("dl.facts dt"), s.select("dl.facts dd"))}
    assert facts["Taken"].startswith("2021-07-14 18:30:00 UTC+02:00")
    assert facts["Camera"] == "Pixelcam PC-1" and "b.jpg" in facts["File"]
    assert s.select_one("#media")["src"].startswith(f"/api/assets/{library['b.jpg']}/preview")
    assert "b.jpg" in s.select_one("#media")["alt"]
    first = BeautifulSoup(owner_client.get(f"/photos/{library['c.jpg']}").text, "html.parser")
    assert first.select_one("a[rel=prev]") is None


def bulk(c, action, ids, **extra):
    return c.post("/assets/bulk", data={"action": action, "ids": [str(i) for i in ids], "csrf_token": token(c),
                                        **extra}, follow_redirects=False)


def test_favorite_archive_trash_restore(owner_client, library):
    c = owner_client
    a, b = library["a.jpg"], library["b.jpg"]
    assert bulk(c, "favorite", [a]).status_code == 303
    assert tiles(c.get("/favorites").text) == [a]
    bulk(c, "archive", [b])
    assert b not in tiles(c.get("/").text) and tiles(c.get("/archive").text) == [b]
    bulk(c, "trash", [a])
    assert a not in tiles(c.get("/").text) and a not in tiles(c.get("/favorites").text)
    assert tiles(c.get("/trash").text) == [a]
    bulk(c, "restore", [a])
    assert a in tiles(c.get("/").text) and tiles(c.get("/trash").text) == []


def test_delete_for_good_removes_uploaded_original_only_from_trash(owner_client, library):
    c = owner_client
    box = c.app.state.photobox
    a = library["a.jpg"]
    with box.db.reader() as conn:
        asset = assets.get_asset(conn, a)
        path = original_path(box, conn, asset.library_id, asset.rel_path)
    bulk(c, "delete", [a])  # not in the trash yet: nothing happens
    assert path.exists()
    bulk(c, "trash", [a])
    bulk(c, "delete", [a])
    assert not path.exists()
    with box.db.reader() as conn:
        assert assets.get_asset(conn, a) is None


def test_external_originals_are_never_deleted(box, tmp_path):
    from photobox.library import libraries

    share = tmp_path / "share"
    share.mkdir()
    (share / "x.jpg").write_bytes(jpeg_bytes(seed=77))
    with box.db.transaction() as conn:
        lib = libraries.add_library(conn, share, now=box.clock(), data_dir=box.data_dir)
    libraries.scan_library(box, lib)
    asyncio.run(box.scheduler.run_until_idle())
    with box.db.transaction() as conn:
        (asset_id,) = conn.execute("SELECT id FROM assets").fetchone()
        assets.apply_action(conn, "trash", [asset_id], now=box.clock())
    assert actions.purge(box, [asset_id]) == 1
    assert (share / "x.jpg").exists()


def test_trash_expires_after_setting(box):
    from photobox.library.ingest import ingest_temp_file

    tmp = box.path("tmp", "x.part")
    tmp.write_bytes(jpeg_bytes(seed=5))
    import hashlib

    res = ingest_temp_file(box, tmp, hashlib.sha1(tmp.read_bytes()).digest(), tmp.stat().st_size, original_name="x.jpg")
    with box.db.transaction() as conn:
        assets.apply_action(conn, "trash", [res.asset_id], now=box.clock() - 31 * 86400)
    assert asyncio.run(actions.empty_expired_trash(box)) == 1


def test_albums(owner_client, library):
    c = owner_client
    r = c.post("/albums", data={"name": "Summer", "csrf_token": token(c)}, follow_redirects=False)
    album_url = r.headers["location"]
    album_id = int(album_url.rsplit("/", 1)[1])
    bulk(c, "album_add", [library["a.jpg"], library["c.jpg"], library["e.jpg"]], album_id=str(album_id))
    assert tiles(c.get(album_url).text) == [library["c.jpg"], library["a.jpg"], library["e.jpg"]]
    # The viewer moves within the album.
    s = BeautifulSoup(c.get(f"/photos/{library['a.jpg']}?in=album-{album_id}").text, "html.parser")
    assert s.select_one("a[rel=prev]")["href"] == f"/photos/{library['c.jpg']}?in=album-{album_id}"
    assert s.select_one("a[rel=next]")["href"] == f"/photos/{library['e.jpg']}?in=album-{album_id}"
    assert "Summer" in s.select_one(".album-links").text
    bulk(c, "album_remove", [library["e.jpg"]], album_id=str(album_id))
    c.post(f"/albums/{album_id}/cover", data={"asset_id": library["a.jpg"], "csrf_token": token(c)})
    c.post(album_url, data={"name": "Summer 2021", "description": "Beach", "csrf_token": token(c)})
    listing = BeautifulSoup(c.get("/albums").text, "html.parser")
    card = listing.select_one(".album-card")
    assert "Summer 2021" in card.text and "2 items" in card.text
    assert card.find("img")["src"].startswith(f"/api/assets/{library['a.jpg']}/thumbnail")
    # A new album straight from a selection.
    r = bulk(c, "album_new", [library["d.jpg"]], album_name="Trip")
    assert tiles(c.get(r.headers["location"]).text) == [library["d.jpg"]]
    c.post(f"/albums/{album_id}/delete", data={"csrf_token": token(c)})
    assert library["a.jpg"] in tiles(c.get("/").text)  # deleting an album keeps its photos


def test_zip_download_streams_originals(owner_client, library):
    c = owner_client
    r = c.post("/assets/download", data={"ids": [str(library["a.jpg"]), str(library["b.jpg"])],
                                         "csrf_token": token(c)})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(zf.namelist()) == ["a.jpg", "b.jpg"]
    assert zf.read("a.jpg") == c.get(f"/api/assets/{library['a.jpg']}/original").content


def test_originals_etag_and_range(owner_client, library):
    c = owner_client
    url = f"/api/assets/{library['a.jpg']}/original"
    full = c.get(url)
    etag = full.headers["etag"]
    assert full.headers["accept-ranges"] == "bytes"
    assert c.get(url, headers={"If-None-Match": etag}).status_code == 304
    part = c.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == full.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(full.content)}"
    tail = c.get(url, headers={"Range": "bytes=-5"})
    assert tail.content == full.content[-5:]
    assert c.get(url, headers={"Range": f"bytes={len(full.content)}-"}).status_code == 416
    dl = c.get(url + "?download=1")
    assert "attachment" in dl.headers["content-disposition"] and "a.jpg" in dl.headers["content-disposition"]
    thumb = c.get(f"/api/assets/{library['a.jpg']}/thumbnail?v=1")
    assert "immutable" in thumb.headers["cache-control"]
    assert c.get(f"/api/assets/{library['a.jpg']}/thumbnail?v=1",
                 headers={"If-None-Match": thumb.headers["etag"]}).status_code == 304


def test_one_camera_name_in_viewer_search_and_share(owner_client):
    """"Canon" + "Canon EOS 6D" is shown as "Canon EOS 6D" (not "Canon Canon EOS 6D"), and
    "NIKON CORPORATION" + "NIKON D750" as "Nikon D750", the same camera as "Nikon" + "D750":
    the viewer, the search page's camera menu and filter, and a share page agree."""
    from tests.test_sharing import make_share

    c = owner_client
    key = api_key(c)
    ids = {}
    for name, make, model in [("canon.jpg", "Canon", "Canon EOS 6D"), ("nikon1.jpg", "NIKON CORPORATION", "NIKON D750"),
                              ("nikon2.jpg", "Nikon", "D750")]:
        r = c.post("/api/assets", files={"file": (name, jpeg_bytes(make=make, model=model, seed=len(ids)), "image/jpeg")},
                   headers=key)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    wait_idle(c.app.state.photobox)

    def camera_fact(html: str) -> str:
        s = BeautifulSoup(html, "html.parser")
        facts = s.select_one("dl.facts, dl.share-facts")
        return {dt.text: dd.text for dt, dd in zip(facts.select("dt"), facts.select("dd"))}["Camera"]

    assert camera_fact(c.get(f"/photos/{ids['canon.jpg']}").text) == "Canon EOS 6D"
    assert camera_fact(c.get(f"/photos/{ids['nikon1.jpg']}").text) == "Nikon D750"
    menu = BeautifulSoup(c.get("/search").text, "html.parser").select('select[name="camera"] option')
    assert [(o["value"], o.text) for o in menu] == [("", "Any camera"), ("Nikon D750", "Nikon D750 (2)"),
                                                    ("Canon EOS 6D", "Canon EOS 6D (1)")]
    found = c.get("/api/search", params={"camera": "Nikon D750"}).json()["results"]
    assert sorted(hit["id"] for hit in found) == sorted([ids["nikon1.jpg"], ids["nikon2.jpg"]])
    assert [hit["id"] for hit in c.get("/api/search", params={"camera": "Canon EOS 6D"}).json()["results"]] == [
        ids["canon.jpg"]]
    assert c.get("/api/search", params={"camera": "Canon Canon EOS 6D"}).json()["results"] == []
    share = make_share(c, {"csrf": token(c)}, ids=[ids["nikon1.jpg"]], show_metadata="1")
    public = TestClient(app=c.app).get(f"/s/{share}/p/{ids['nikon1.jpg']}")
    assert camera_fact(public.text) == "Nikon D750"
