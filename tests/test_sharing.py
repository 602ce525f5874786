"""Share links through the real app: creation, the public pages, isolation between shares,
expiry, passwords, revocation, download permission, metadata (GPS) hiding and rate limits.

Media are real files made by tests/gen.py, uploaded through the API and processed by the
real pipeline; the metadata checks read the bytes that leave photobox."""

from __future__ import annotations

import hashlib
import io
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import piexif
import pytest
from bs4 import BeautifulSoup
from litestar.testing import TestClient
from PIL import Image

from photobox.sharing import store
from photobox.sharing.limits import TokenBucket
from tests.conftest import csrf_from
from tests.gen import jpeg_bytes, png_bytes
from tests.test_ingest import api_key, wait_idle

GPS = (48.85837, 2.29448)


def mov_bytes(tmp: Path) -> bytes:
    """A QuickTime video with a location (©xyz) in its metadata, as phones write it."""
    import av

    path = tmp / "clip.mov"
    with av.open(str(path), "w") as c:
        c.metadata["location"] = "+48.8584+002.2945/"
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    data = path.read_bytes()
    assert b"48.8584" in data
    return data


@pytest.fixture
def lib(owner_client, tmp_path):
    """Photos with GPS (one rotated), a PNG, a video with a location; an album of some of them."""
    c = owner_client
    key = api_key(c)
    files = {
        "paris.jpg": (jpeg_bytes(taken="2022:05:01 10:00:00", gps=GPS, seed=1), "image/jpeg"),
        "rotated.jpg": (jpeg_bytes(taken="2022:05:02 10:00:00", gps=GPS, seed=2, orientation=6), "image/jpeg"),
        "other.jpg": (jpeg_bytes(taken="2022:05:03 10:00:00", gps=GPS, seed=3), "image/jpeg"),
        "private.jpg": (jpeg_bytes(taken="2022:05:04 10:00:00", gps=GPS, seed=4), "image/jpeg"),
        "shot.png": (png_bytes(), "image/png"),
        "clip.mov": (mov_bytes(tmp_path), "video/quicktime"),
    }
    ids, raw = {}, {}
    for name, (data, mime) in files.items():
        r = c.post("/api/assets", files={"file": (name, data, mime)}, headers=key)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
        raw[name] = data
    wait_idle(c.app.state.photobox)
    token = csrf_from(c.get("/albums").text)
    r = c.post("/albums", data={"name": "Paris trip", "csrf_token": token}, follow_redirects=False)
    album_id = int(r.headers["location"].rsplit("/", 1)[1])
    c.post("/assets/bulk", data={"action": "album_add", "album_id": album_id, "csrf_token": token,
                                 "ids": [ids[n] for n in ("paris.jpg", "rotated.jpg", "shot.png", "clip.mov")]})
    return {"ids": ids, "raw": raw, "album": album_id, "csrf": token}


def make_share(c, lib, **form) -> str:
    """Create a link through the owner's form; returns the token from the link shown once."""
    data = {"csrf_token": lib["csrf"], "expires_days": 0, **form}
    r = c.post("/shares", data=data)
    assert r.status_code == 200, r.text
    url = BeautifulSoup(r.text, "html.parser").select_one("#new-link-url")["value"]
    assert "/s/" in url
    return url.rsplit("/s/", 1)[1]


def test_the_new_link_page_survives_a_reload(owner_client):
    """The create POST redirects (303) to a page showing the link once; reloading it makes no
    second link and no longer shows the token."""
    from photobox.sharing import store

    c = owner_client
    token = csrf_from(c.get("/albums").text)
    box = c.app.state.photobox
    with box.db.transaction() as conn:
        conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('Trip', 0, 0)")
        album = conn.last_insert_rowid()
    r = c.post("/shares", data={"csrf_token": token, "expires_days": 0, "album_id": album}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/shares?new=")
    shown = c.get(r.headers["location"])
    assert BeautifulSoup(shown.text, "html.parser").select_one("#new-link-url")["value"]
    again = c.get(r.headers["location"])
    assert BeautifulSoup(again.text, "html.parser").select_one("#new-link-url") is None
    with box.db.reader() as conn:
        assert len(store.list_shares(conn)) == 1


def anon(c) -> TestClient:
    return TestClient(app=c.app)


def tiles(html: str) -> list[int]:
    return [int(a["data-id"]) for a in BeautifulSoup(html, "html.parser").select("a.tile")]


def test_create_album_share_public_page(owner_client, lib):
    c = owner_client
    token = make_share(c, lib, album_id=lib["album"])
    assert len(token) >= 32
    box = c.app.state.photobox
    with box.db.reader() as conn:
        (stored,) = conn.execute("SELECT token_hash FROM shares").fetchone()
    assert stored == store.token_hash(token) and token.encode() not in stored  # only the hash is kept
    listing = c.get("/shares").text
    assert token not in listing and "Paris trip" in listing  # shown once

    a = anon(c)
    r = a.get(f"/s/{token}")
    assert r.status_code == 200
    ids = lib["ids"]
    assert sorted(tiles(r.text)) == sorted(ids[n] for n in ("paris.jpg", "rotated.jpg", "shot.png", "clip.mov"))
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-robots-tag"].startswith("noindex")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert "no-store" in r.headers["cache-control"]
    soup = BeautifulSoup(r.text, "html.parser")
    # No owner navigation and no link into private routes.
    assert not soup.select("nav.nav") and "/settings" not in r.text
    for tag, attr in (("a", "href"), ("img", "src"), ("script", "src"), ("link", "href"), ("form", "action")):
        for el in soup.find_all(tag):
            value = el.get(attr) or ""
            assert value.startswith(f"/s/{token}") or value.startswith("/static/"), (tag, value)
    for script in soup.find_all("script"):
        assert not script.string  # no inline scripts
    # Names are metadata too: hidden by default.
    assert "paris.jpg" not in r.text
    # The viewer moves within the share.
    v = a.get(f"/s/{token}/p/{ids['rotated.jpg']}")
    assert v.status_code == 200
    vs = BeautifulSoup(v.text, "html.parser")
    assert vs.select_one("#media")["src"].startswith(f"/s/{token}/a/{ids['rotated.jpg']}/preview")
    assert vs.select_one("a.nav-arrow") is not None
    assert not vs.select("#share-download")  # downloads are off by default
    with box.db.reader() as conn:
        views, last = conn.execute("SELECT views, last_viewed_at FROM shares").fetchone()
    assert views == 1 and last is not None


def test_selection_share_and_cross_share_isolation(owner_client, lib):
    c = owner_client
    ids = lib["ids"]
    # The selection bar's Share button leads to the options page with the ids.
    page = c.post("/shares/new", data={"ids": [ids["other.jpg"]], "csrf_token": lib["csrf"]})
    assert page.status_code == 200 and f'name="ids" value="{ids["other.jpg"]}"' in page.text
    sel = make_share(c, lib, ids=[ids["other.jpg"]], title="Just one", allow_download="1")
    album = make_share(c, lib, album_id=lib["album"], allow_download="1")
    a = anon(c)
    assert tiles(a.get(f"/s/{sel}").text) == [ids["other.jpg"]]
    assert a.get(f"/s/{sel}/a/{ids['other.jpg']}/thumbnail").status_code == 200
    for kind in ("thumbnail", "preview", "original", "video"):
        # A token never reaches another share's asset, nor an asset shared with nobody.
        for token, asset in ((sel, ids["paris.jpg"]), (album, ids["other.jpg"]), (album, ids["private.jpg"]),
                             (sel, ids["private.jpg"]), (album, 999999)):
            r = a.get(f"/s/{token}/a/{asset}/{kind}")
            assert r.status_code == 404, (kind, token == sel, asset, r.status_code)
    assert a.get(f"/s/{album}/p/{ids['private.jpg']}").status_code == 404
    assert a.get(f"/s/{'x' * 32}").status_code == 404
    assert a.get(f"/s/{'x' * 32}/a/{ids['paris.jpg']}/thumbnail").status_code == 404
    # Owner API routes stay closed to the share's visitor.
    assert a.get(f"/api/assets/{ids['paris.jpg']}/thumbnail", headers={"accept": "application/json"}).status_code == 401
    # A trashed photo disappears from the share at once.
    c.post("/assets/bulk", data={"action": "trash", "ids": [ids["other.jpg"]], "csrf_token": lib["csrf"]})
    assert a.get(f"/s/{sel}/a/{ids['other.jpg']}/thumbnail").status_code == 404


def _gps_in(data: bytes) -> bool:
    """Whether the JPEG/WebP bytes carry GPS in EXIF (or the coordinates as text, e.g. XMP)."""
    im = Image.open(io.BytesIO(data))
    exif = im.getexif()
    return bool(exif.get_ifd(0x8825)) or 0x8825 in exif or b"48.85" in data or b"GPS" in data


def test_derived_files_and_originals_carry_no_gps(owner_client, lib):
    c = owner_client
    ids, raw = lib["ids"], lib["raw"]
    assert _gps_in(raw["paris.jpg"])  # the original does
    token = make_share(c, lib, album_id=lib["album"], allow_download="1")
    a = anon(c)
    for name in ("paris.jpg", "rotated.jpg"):
        for kind in ("thumbnail", "preview"):
            r = a.get(f"/s/{token}/a/{ids[name]}/{kind}")
            assert r.status_code == 200 and not _gps_in(r.content), (name, kind)
            assert b"Pixelcam" not in r.content
        r = a.get(f"/s/{token}/a/{ids[name]}/original")
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/jpeg")
        assert "attachment" in r.headers["content-disposition"] and name not in r.headers["content-disposition"]
        assert not _gps_in(r.content) and b"Pixelcam" not in r.content
        im = Image.open(io.BytesIO(r.content))
        im.load()  # still a whole, decodable JPEG
        assert im.size == (320, 240)
        # The pixels are the original's, untouched (lossless: same decoded image).
        assert np.array_equal(np.asarray(im), np.asarray(Image.open(io.BytesIO(raw[name]))))
        assert im.getexif().get(0x0112, 1) == (6 if name == "rotated.jpg" else 1)  # orientation kept
    # A PNG original cannot be cleaned: refused, its preview still works.
    assert a.get(f"/s/{token}/a/{ids['shot.png']}/original").status_code == 403
    assert a.get(f"/s/{token}/a/{ids['shot.png']}/preview").status_code == 200
    # The video plays without its location; byte ranges (seeking) still line up.
    v = a.get(f"/s/{token}/a/{ids['clip.mov']}/video")  # the H.264 rendition photobox made
    assert v.status_code == 200 and b"48.8584" not in v.content
    part = a.get(f"/s/{token}/a/{ids['clip.mov']}/video", headers={"range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == v.content[100:200]
    # The original: same length (metadata boxes renamed to 'free'), ranges line up, still plays.
    o = a.get(f"/s/{token}/a/{ids['clip.mov']}/original")
    assert o.status_code == 200 and b"48.8584" not in o.content and len(o.content) == len(raw["clip.mov"])
    part = a.get(f"/s/{token}/a/{ids['clip.mov']}/original", headers={"range": "bytes=1000-"})
    assert part.status_code == 206 and part.content == o.content[1000:]
    import av

    with av.open(io.BytesIO(o.content)) as container:
        assert "location" not in container.metadata
        assert sum(1 for _ in container.decode(video=0)) == 5
    # The zip of all: cleaned JPEGs and video, no PNG.
    z = a.get(f"/s/{token}/download")
    assert z.status_code == 200
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        names = zf.namelist()
        assert len(names) == 3 and not any(n.endswith(".png") for n in names)
        for n in names:
            body = zf.read(n)
            assert b"48.85" not in body and b"48.8584" not in body, n
    # With metadata shown, the original is byte for byte.
    shown = make_share(c, lib, album_id=lib["album"], allow_download="1", show_metadata="1")
    r = a.get(f"/s/{shown}/a/{ids['paris.jpg']}/original")
    assert r.content == raw["paris.jpg"] and "paris.jpg" in r.headers["content-disposition"]
    viewer = a.get(f"/s/{shown}/p/{ids['paris.jpg']}").text
    assert "Location" in viewer and "48.858" in viewer
    assert "Location" not in a.get(f"/s/{token}/p/{ids['paris.jpg']}").text


def heic_bytes() -> bytes:
    """A HEIC (pillow-heif) with EXIF GPS and an XMP packet with the location."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    im = Image.open(io.BytesIO(jpeg_bytes(gps=GPS, seed=9)))
    buf = io.BytesIO()
    im.save(buf, "HEIF", exif=im.info["exif"], quality=80,
            xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>48,51.5N</exif:GPSLatitude></x:xmpmeta>')
    return buf.getvalue()


def test_heic_originals_are_cleaned_in_place(owner_client, lib):
    import pillow_heif

    pillow_heif.register_heif_opener()
    c = owner_client
    data = heic_bytes()
    assert b"GPSLatitude" in data and Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
    r = c.post("/api/assets", files={"file": ("IMG_0001.HEIC", data, "image/heic")}, headers=api_key(c))
    assert r.status_code == 201, r.text
    asset = r.json()["id"]
    wait_idle(c.app.state.photobox)
    token = make_share(c, lib, ids=[asset], allow_download="1")
    a = anon(c)
    assert 'id="share-download"' in a.get(f"/s/{token}/p/{asset}").text
    got = a.get(f"/s/{token}/a/{asset}/original")
    assert got.status_code == 200 and len(got.content) == len(data)  # same length: ranges stay valid
    assert b"GPSLatitude" not in got.content and b"48,51" not in got.content
    clean = Image.open(io.BytesIO(got.content))
    assert not clean.getexif().get_ifd(0x8825) and not clean.info.get("xmp")
    assert np.array_equal(np.asarray(clean), np.asarray(Image.open(io.BytesIO(data))))
    part = a.get(f"/s/{token}/a/{asset}/original", headers={"range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == got.content[10:100]


def test_download_permission(owner_client, lib):
    c = owner_client
    ids = lib["ids"]
    token = make_share(c, lib, album_id=lib["album"])
    a = anon(c)
    assert a.get(f"/s/{token}/a/{ids['paris.jpg']}/original").status_code == 403
    assert a.get(f"/s/{token}/download").status_code == 403
    assert 'id="share-download-all"' not in a.get(f"/s/{token}").text
    # Playing a video is not downloading it.
    assert a.get(f"/s/{token}/a/{ids['clip.mov']}/video").status_code == 200


def test_expiry_revocation_and_new_link(owner_client, lib):
    c = owner_client
    box = c.app.state.photobox
    expiring = make_share(c, lib, album_id=lib["album"], expires_days=1)
    a = anon(c)
    assert a.get(f"/s/{expiring}").status_code == 200
    real_clock = box.clock
    box.clock = lambda: real_clock() + 2 * 86400
    try:
        r = a.get(f"/s/{expiring}", headers={"accept": "text/html"})
        assert r.status_code == 410 and "expired" in r.text
        assert a.get(f"/s/{expiring}/a/{lib['ids']['paris.jpg']}/thumbnail").status_code == 410
    finally:
        box.clock = real_clock

    token = make_share(c, lib, ids=[lib["ids"]["paris.jpg"]])
    with box.db.reader() as conn:
        share_id = store.find_share(conn, token).id
    assert a.get(f"/s/{token}/a/{lib['ids']['paris.jpg']}/preview").status_code == 200
    # A new link replaces the old one.
    r = c.post(f"/shares/{share_id}/new-link", data={"csrf_token": lib["csrf"]})
    fresh = BeautifulSoup(r.text, "html.parser").select_one("#new-link-url")["value"].rsplit("/s/", 1)[1]
    assert fresh != token
    assert a.get(f"/s/{token}").status_code == 404 and a.get(f"/s/{fresh}").status_code == 200
    preview = a.get(f"/s/{fresh}/a/{lib['ids']['paris.jpg']}/preview")
    assert "no-cache" in preview.headers["cache-control"]  # browsers revalidate: revocation reaches caches
    etag = preview.headers["etag"]
    assert a.get(f"/s/{fresh}/a/{lib['ids']['paris.jpg']}/preview",
                 headers={"if-none-match": etag}).status_code == 304
    # Revoking stops it at once, files included (a cached copy's revalidation too).
    assert c.post(f"/shares/{share_id}/revoke", data={"csrf_token": lib["csrf"]}).status_code == 200
    gone = a.get(f"/s/{fresh}", headers={"accept": "text/html"})
    assert gone.status_code == 410 and "No longer available" in gone.text
    assert gone.headers["referrer-policy"] == "no-referrer"
    assert not [x["href"] for x in BeautifulSoup(gone.text, "html.parser").find_all("a") if not x["href"].startswith("#")]
    assert a.get(f"/s/{fresh}/a/{lib['ids']['paris.jpg']}/preview").status_code == 410
    assert a.get(f"/s/{fresh}/a/{lib['ids']['paris.jpg']}/preview",
                 headers={"if-none-match": etag}).status_code == 410
    assert "turned off" in c.get("/shares").text


def test_password(owner_client, lib):
    c = owner_client
    ids = lib["ids"]
    token = make_share(c, lib, album_id=lib["album"], password="open sesame")
    with c.app.state.photobox.db.reader() as conn:
        (stored,) = conn.execute("SELECT password_hash FROM shares").fetchone()
    assert stored.startswith("$argon2id$")
    a = anon(c)
    r = a.get(f"/s/{token}")
    assert r.status_code == 200 and not tiles(r.text) and 'type="password"' in r.text
    for kind in ("thumbnail", "preview"):
        assert a.get(f"/s/{token}/a/{ids['paris.jpg']}/{kind}").status_code == 403
    assert a.get(f"/s/{token}/p/{ids['paris.jpg']}").status_code == 403
    csrf = csrf_from(r.text)
    # The form needs its CSRF token like every other.
    assert a.post(f"/s/{token}/unlock", data={"password": "open sesame"}).status_code == 403
    bad = a.post(f"/s/{token}/unlock", data={"password": "wrong", "csrf_token": csrf})
    assert bad.status_code == 401 and "not the password" in bad.text
    ok = a.post(f"/s/{token}/unlock", data={"password": "open sesame", "csrf_token": csrf}, follow_redirects=False)
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and f"Path=/s/{token}" in cookie
    assert len(tiles(a.get(f"/s/{token}").text)) == 4
    assert a.get(f"/s/{token}/a/{ids['paris.jpg']}/thumbnail").status_code == 200
    # Another visitor without the cookie is still asked.
    assert not tiles(anon(c).get(f"/s/{token}").text)


def test_wrong_passwords_are_throttled(owner_client, lib):
    c = owner_client
    token = make_share(c, lib, album_id=lib["album"], password="open sesame")
    a = anon(c)
    csrf = csrf_from(a.get(f"/s/{token}").text)
    codes = [a.post(f"/s/{token}/unlock", data={"password": f"guess{i}", "csrf_token": csrf}).status_code
             for i in range(6)]
    assert codes == [401] * 5 + [429]
    r = a.post(f"/s/{token}/unlock", data={"password": "open sesame", "csrf_token": csrf})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_public_routes_are_rate_limited(owner_client, lib):
    c = owner_client
    token = make_share(c, lib, album_id=lib["album"])
    now = [0.0]
    c.app.state.share_bucket = TokenBucket(rate=1.0, burst=3, clock=lambda: now[0])
    a = anon(c)
    url = f"/s/{token}/a/{lib['ids']['paris.jpg']}/thumbnail"
    assert [a.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]
    r = a.get(f"/s/{'y' * 32}")  # unknown tokens count too: no free guessing
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    now[0] += 2
    assert a.get(url).status_code == 200


def test_token_bucket_unit():
    now = [0.0]
    b = TokenBucket(rate=2.0, burst=4, clock=lambda: now[0])
    assert [b.take("a") for _ in range(4)] == [0, 0, 0, 0]
    assert b.take("a") > 0 and b.take("b") == 0
    now[0] = 0.5
    assert b.take("a") == 0 and b.take("a") > 0


def test_owner_ui_entry_points(owner_client, lib):
    c = owner_client
    album = BeautifulSoup(c.get(f"/albums/{lib['album']}").text, "html.parser")
    form = album.select_one("#album-share form")
    assert form["action"] == "/shares" and form.find("input", attrs={"name": "csrf_token"})["value"]
    assert form.find("input", attrs={"name": "allow_download"}).get("checked") is None  # default: off
    assert form.find("input", attrs={"name": "show_metadata"}).get("checked") is None  # default: hidden
    assert BeautifulSoup(c.get("/").text, "html.parser").select_one("#sel-share")["formaction"] == "/shares/new"
    assert 'href="/shares"' in c.get("/").text  # in the More menu
    r = c.post("/shares", data={"csrf_token": lib["csrf"], "ids": []})
    assert r.status_code == 400 and "Select at least one" in r.text


def test_share_store_unit(box):
    with box.db.transaction() as conn:
        with pytest.raises(ValueError):
            store.create_share(conn, album_id=12345)
        with pytest.raises(ValueError):
            store.create_share(conn, asset_ids=[])
    with box.db.reader() as conn:
        assert store.find_share(conn, "") is None and store.find_share(conn, "x" * 500) is None
        assert store.list_shares(conn) == []


def test_jpeg_clean_drops_trailing_data_and_xmp(tmp_path):
    from photobox.sharing.redact import jpeg_clean

    data = jpeg_bytes(gps=GPS)
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><exif:GPSLatitude>48,51.5N</exif:GPSLatitude></x:xmpmeta>"
    segment = b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp
    comment = b"\xff\xfe" + (12).to_bytes(2, "big") + b"home addr!"
    evil = data[:2] + segment + comment + data[2:] + b"ftypmp42 appended motion video with GPS 48.85"
    p = tmp_path / "evil.jpg"
    p.write_bytes(evil)
    out = b"".join(jpeg_clean(p))
    assert b"GPSLatitude" not in out and b"home addr" not in out and b"appended" not in out
    assert out.endswith(b"\xff\xd9")
    assert piexif.load(out)["GPS"] == {}
    Image.open(io.BytesIO(out)).load()


def test_public_grid_is_keyset_paginated(owner_client, lib, monkeypatch):
    from photobox.sharing import views

    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    c = owner_client
    token = make_share(c, lib, album_id=lib["album"])
    a = anon(c)
    first = a.get(f"/s/{token}")
    soup = BeautifulSoup(first.text, "html.parser")
    more = soup.select_one("div.more")["hx-get"]
    assert more.startswith(f"/s/{token}?before=") and len(tiles(first.text)) == 3
    rest = a.get(more, headers={"hx-request": "true"})
    assert rest.status_code == 200 and "<html" not in rest.text
    seen = tiles(first.text) + tiles(rest.text)
    assert len(seen) == len(set(seen)) == 4 and not BeautifulSoup(rest.text, "html.parser").select("div.more")
    # Deleting the album ends its links.
    c.post(f"/albums/{lib['album']}/delete", data={"csrf_token": lib["csrf"]})
    assert a.get(f"/s/{token}").status_code == 404


def test_a_resumed_download_of_a_cleaned_original_never_splices_two_versions(owner_client, lib):
    """A cleaned original (metadata renamed in place) has no ETag: a client resuming a download
    it began while the link showed metadata (``If-Range`` with that version's ETag) gets the
    whole cleaned file, never cleaned bytes spliced onto the raw ones (served through
    ``photobox.web.files.serve_file`` like every file)."""
    c = owner_client
    ids, raw = lib["ids"], lib["raw"]
    token = make_share(c, lib, album_id=lib["album"], allow_download="1")
    a = anon(c)
    url = f"/s/{token}/a/{ids['clip.mov']}/original"
    whole = a.get(url)
    assert whole.status_code == 200 and "etag" not in whole.headers and whole.headers["accept-ranges"] == "bytes"
    raw_etag = f'"{hashlib.sha1(raw["clip.mov"]).hexdigest()}"'
    resumed = a.get(url, headers={"range": "bytes=1000-", "if-range": raw_etag})
    assert resumed.status_code == 200 and resumed.content == whole.content
    part = a.get(url, headers={"range": "bytes=10-19"})  # without If-Range, ranges still line up
    assert part.status_code == 206 and part.content == whole.content[10:20]
