"""WebDAV protocol details, in process: status codes, XML, auth rules, limits.

The round trip with a real WebDAV client against granian is ``tests/test_webdav_e2e.py``.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest
from litestar.testing import TestClient

from photobox import auth
from photobox.dav import views as dav_module
from photobox.web.app import create_app
from tests import gen
from tests.conftest import PASSWORD, do_setup

NS = {"d": "DAV:"}


@pytest.fixture
def app_and_key(settings):
    """(app, client, API key, the owner's session cookies). The client starts with no cookies and
    Basic auth with the API key, as phone apps do."""
    app = create_app(settings)
    with TestClient(app=app) as client:
        assert do_setup(client).status_code == 303  # the owner, and a browser session
        session = dict(client.cookies)
        client.cookies.clear()
        box = app.state.photobox
        with box.db.transaction() as conn:
            _, key = auth.create_api_key(conn, "phone")
        client.auth = ("phone", key)
        yield app, client, key, session


@pytest.fixture
def c(app_and_key):
    return app_and_key[1]


def _hrefs(xml_text: str) -> list[str]:
    return [h.text for h in ET.fromstring(xml_text).findall("d:response/d:href", NS)]


def test_options_advertise_dav(c):
    r = c.options("/dav/upload/")
    assert r.status_code == 200
    assert r.headers["dav"].startswith("1, 2") and "PROPFIND" in r.headers["allow"]


def test_propfind_depths_and_props(c):
    assert c.request("MKCOL", "/dav/upload/Camera/").status_code == 201
    data = gen.jpeg_bytes(seed=3)
    r = c.put("/dav/upload/Camera/IMG 1.jpg", content=data, headers={"X-OC-Mtime": "1600000000"})
    assert r.status_code == 201 and r.headers["x-oc-mtime"] == "accepted"
    assert r.headers["etag"] == f'"{hashlib.sha1(data).hexdigest()}"'

    r = c.request("PROPFIND", "/dav/upload/Camera/", headers={"Depth": "1"})
    assert r.status_code == 207 and r.headers["content-type"].startswith("application/xml")
    assert _hrefs(r.text) == ["/dav/upload/Camera/", "/dav/upload/Camera/IMG%201.jpg"]
    doc = ET.fromstring(r.text)
    file_props = doc.findall("d:response", NS)[1].find("d:propstat/d:prop", NS)
    assert file_props.find("d:getcontentlength", NS).text == str(len(data))
    assert file_props.find("d:getlastmodified", NS).text == "Sun, 13 Sep 2020 12:26:40 GMT"
    assert file_props.find("d:getcontenttype", NS).text == "image/jpeg"
    assert file_props.find("d:resourcetype", NS).find("d:collection", NS) is None

    r = c.request("PROPFIND", "/dav/upload/Camera/", headers={"Depth": "0"})
    assert _hrefs(r.text) == ["/dav/upload/Camera/"]
    r = c.request("PROPFIND", "/dav/upload/Camera/", headers={"Depth": "infinity"})
    assert r.status_code == 403 and "propfind-finite-depth" in r.text
    assert c.request("PROPFIND", "/dav/upload/nope/", headers={"Depth": "0"}).status_code == 404

    # Named properties: known ones 200, unknown ones 404, quotas on collections.
    body = ('<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:x="urn:x"><d:prop><d:getetag/>'
            '<d:quota-available-bytes/><d:quota-used-bytes/><x:color/></d:prop></d:propfind>')
    r = c.request("PROPFIND", "/dav/upload/", content=body, headers={"Depth": "0"})
    stats = {ps.find("d:status", NS).text: [p.tag for p in ps.find("d:prop", NS)]
             for ps in ET.fromstring(r.text).findall("d:response/d:propstat", NS)}
    assert stats["HTTP/1.1 200 OK"] == ["{DAV:}quota-available-bytes", "{DAV:}quota-used-bytes"]
    assert set(stats["HTTP/1.1 404 Not Found"]) == {"{DAV:}getetag", "{urn:x}color"}
    r = c.request("PROPFIND", "/dav/upload/", content='<d:propfind xmlns:d="DAV:"><d:propname/></d:propfind>',
                  headers={"Depth": "0"})
    assert "quota-used-bytes" in r.text and r.status_code == 207
    assert c.request("PROPFIND", "/dav/upload/", content="<not xml", headers={"Depth": "0"}).status_code == 400


def test_listing_pages_through_many_entries(c, monkeypatch):
    monkeypatch.setattr(dav_module, "_PAGE", 3)
    c.request("MKCOL", "/dav/upload/many/")
    for i in range(8):
        assert c.request("MKCOL", f"/dav/upload/many/d{i}/").status_code == 201
    r = c.request("PROPFIND", "/dav/upload/many/", headers={"Depth": "1"})
    assert _hrefs(r.text) == ["/dav/upload/many/"] + [f"/dav/upload/many/d{i}/" for i in range(8)]


def test_put_status_codes(app_and_key, c, monkeypatch):
    data = gen.jpeg_bytes(seed=4)
    assert c.put("/dav/upload/missing/a.jpg", content=data).status_code == 409  # parent missing
    assert c.put("/dav/a.jpg", content=data).status_code == 403  # outside upload/
    assert c.put("/dav/upload/a.jpg", content=data).status_code == 201
    assert c.put("/dav/upload/a.jpg", content=data).status_code == 204  # replaced
    assert c.put("/dav/upload/a.jpg", content=data, headers={"If-None-Match": "*"}).status_code == 412
    assert c.put("/dav/upload/a.jpg", content=data, headers={"If-Match": '"nope"'}).status_code == 412
    r = c.put("/dav/upload/notes.txt", content=b"hello, not a photo")
    assert r.status_code == 415 and "not a photo or video" in r.text
    assert c.request("PROPFIND", "/dav/upload/notes.txt", headers={"Depth": "0"}).status_code == 404
    # An empty file is a placeholder (davfs2/Finder create, then write): listed, no asset.
    assert c.put("/dav/upload/empty.jpg", content=b"").status_code == 201
    r = c.request("PROPFIND", "/dav/upload/empty.jpg", headers={"Depth": "0"})
    assert "<d:getcontentlength>0</d:getcontentlength>" in r.text
    assert c.get("/dav/upload/empty.jpg").content == b""
    assert c.put("/dav/upload/empty.jpg", content=data).status_code == 204
    assert c.get("/dav/upload/empty.jpg").content == data
    r = c.put("/dav/upload/b.jpg", content=data, headers={"OC-Checksum": "SHA1:" + "0" * 40})
    assert r.status_code == 400 and "does not match" in r.text
    r = c.put("/dav/upload/b.jpg", content=data, headers={"OC-Checksum": "SHA1:" + hashlib.sha1(data).hexdigest()})
    assert r.status_code == 201
    assert c.put("/dav/upload/c.jpg", content=data, headers={"Content-Range": "bytes 0-9/100"}).status_code == 400
    c.request("MKCOL", "/dav/upload/dir/")
    assert c.put("/dav/upload/dir", content=data).status_code == 405
    # The disk is (pretend) full: refused before the body is read, nothing kept.
    settings = app_and_key[0].state.photobox.settings
    monkeypatch.setattr(settings, "disk_reserve_mb", 1 << 40)  # a reserve no disk has
    r = c.put("/dav/upload/big.jpg", content=gen.jpeg_bytes(seed=5))
    assert r.status_code == 507 and "free space" in r.text and "kept in reserve" in r.text


def test_put_streams_to_disk_and_keeps_nothing_on_refusal(app_and_key, c):
    app = app_and_key[0]
    box = app.state.photobox
    c.put("/dav/upload/x.bin", content=b"\x00" * 5000)
    assert not list(box.path("tmp").glob("*.part"))


def test_mkcol_delete_move_codes(app_and_key, c):
    app = app_and_key[0]
    box = app.state.photobox
    assert c.request("MKCOL", "/dav/upload/").status_code == 405
    assert c.request("MKCOL", "/dav/other/").status_code == 403
    assert c.request("MKCOL", "/dav/upload/a/b/").status_code == 409
    assert c.request("MKCOL", "/dav/upload/a/").status_code == 201
    assert c.request("MKCOL", "/dav/upload/a/").status_code == 405
    assert c.request("MKCOL", "/dav/upload/x/", content=b"<x/>").status_code == 415
    data = gen.jpeg_bytes(seed=6)
    c.put("/dav/upload/a/p.jpg", content=data)
    c.put("/dav/upload/q.jpg", content=gen.jpeg_bytes(seed=8))
    move = lambda src, dst, **h: c.request("MOVE", src, headers={"Destination": dst, **h})  # noqa: E731
    assert move("/dav/upload/a/p.jpg", "/dav/upload/q.jpg", Overwrite="F").status_code == 412
    assert move("/dav/upload/a/p.jpg", "/dav/upload/zz/p.jpg").status_code == 409
    assert move("/dav/upload/a/", "/dav/upload/a/inner/").status_code == 409
    assert move("/dav/upload/nope.jpg", "/dav/upload/n.jpg").status_code == 404
    assert move("/dav/upload/", "/dav/upload2/").status_code == 403
    assert move("/dav/upload/a/p.jpg", "http://testserver.local/etc/x.jpg").status_code == 400
    # Overwrite (default T) replaces the entry: 204, and the replaced photo stays an asset.
    assert move("/dav/upload/a/p.jpg", "http://testserver.local/dav/upload/q.jpg").status_code == 204
    assert c.request("DELETE", "/dav/upload/").status_code == 403
    assert c.request("DELETE", "/dav/upload/nope").status_code == 404
    assert c.request("DELETE", "/dav/upload/a/").status_code == 204
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM assets WHERE trashed_at IS NULL").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM dav_entries").fetchone()[0] == 1


def test_destination_on_another_server_is_502(c):
    """RFC 4918 9.9.4: a MOVE/COPY to another server answers 502 and changes nothing. The scheme
    may differ (https at a reverse proxy, http here), and a path-only Destination is this server."""
    c.put("/dav/upload/src.jpg", content=gen.jpeg_bytes(seed=15))
    for method in ("MOVE", "COPY"):
        for elsewhere in ("http://elsewhere.example/dav/upload/x.jpg", "https://testserver.local.evil/dav/upload/x.jpg",
                          "//elsewhere.example/dav/upload/x.jpg", "ftp://testserver.local/dav/upload/x.jpg",
                          "http://testserver.local:8443/dav/upload/x.jpg"):
            r = c.request(method, "/dav/upload/src.jpg", headers={"Destination": elsewhere})
            assert r.status_code == 502, (method, elsewhere, r.status_code)
    bad_port = c.request("MOVE", "/dav/upload/src.jpg", headers={"Destination": "http://testserver.local:x/a.jpg"})
    assert bad_port.status_code == 400
    listed = c.request("PROPFIND", "/dav/upload/", headers={"Depth": "1"}).text
    assert _hrefs(listed) == ["/dav/upload/", "/dav/upload/src.jpg"]
    assert c.request("COPY", "/dav/upload/src.jpg",
                     headers={"Destination": "https://TestServer.local/dav/upload/c.jpg"}).status_code == 201
    assert c.request("MOVE", "/dav/upload/c.jpg", headers={"Destination": "/dav/upload/m.jpg"}).status_code == 201


def test_paths_unicode_and_refusals(c):
    c.request("MKCOL", "/dav/upload/Fotos%20M%C3%BCnchen/")
    # macOS sends NFD ("u" + combining diaeresis): the same folder.
    r = c.request("PROPFIND", "/dav/upload/Fotos%20Mu%CC%88nchen/", headers={"Depth": "0"})
    assert r.status_code == 207 and _hrefs(r.text) == ["/dav/upload/Fotos%20M%C3%BCnchen/"]
    for bad in ("/dav/upload/a%2Fb/", "/dav/upload/%2e%2e/", "/dav/upload/a%00/", "/dav/upload/a%5Cb/",
                "/dav/upload/%FF/", "/dav/upload/" + "x" * 256 + "/"):
        assert c.request("MKCOL", bad).status_code == 400, bad
    assert c.request("MKCOL", "/dav/upload/" + "d/" * 40).status_code == 400
    # A Destination in raw UTF-8 (not percent-encoded) means the same name.
    c.put("/dav/upload/Fotos%20M%C3%BCnchen/1.jpg", content=gen.jpeg_bytes(seed=14))
    r = c.request("MOVE", "/dav/upload/Fotos%20M%C3%BCnchen/1.jpg",
                  headers={"Destination": "/dav/upload/Fotos München/2.jpg".encode()})
    assert r.status_code == 201
    assert c.request("PROPFIND", "/dav/upload/Fotos%20M%C3%BCnchen/2.jpg", headers={"Depth": "0"}).status_code == 207


def test_proppatch_sets_the_time(c):
    c.put("/dav/upload/t.jpg", content=gen.jpeg_bytes(seed=9))
    body = ('<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:z="urn:schemas-microsoft-com:">'
            '<d:set><d:prop><z:Win32LastModifiedTime>Wed, 01 Jan 2020 10:00:00 GMT</z:Win32LastModifiedTime>'
            '</d:prop></d:set></d:propertyupdate>')
    r = c.request("PROPPATCH", "/dav/upload/t.jpg", content=body)
    assert r.status_code == 207 and "200 OK" in r.text
    r = c.request("PROPFIND", "/dav/upload/t.jpg", headers={"Depth": "0"})
    assert "Wed, 01 Jan 2020 10:00:00 GMT" in r.text
    body = body.replace("z:Win32LastModifiedTime", "d:displayname")
    r = c.request("PROPPATCH", "/dav/upload/t.jpg", content=body)
    assert r.status_code == 207 and "403 Forbidden" in r.text


def test_lock_and_unlock_are_answered(c):
    body = ('<?xml version="1.0"?><d:lockinfo xmlns:d="DAV:"><d:lockscope><d:exclusive/></d:lockscope>'
            '<d:locktype><d:write/></d:locktype><d:owner><d:href>me</d:href></d:owner></d:lockinfo>')
    r = c.request("LOCK", "/dav/upload/new.jpg", content=body, headers={"Timeout": "Second-60"})
    assert r.status_code == 200 and r.headers["lock-token"].startswith("<opaquelocktoken:")
    assert "<d:href>me</d:href>" in r.text
    assert c.request("UNLOCK", "/dav/upload/new.jpg", headers={"Lock-Token": r.headers["lock-token"]}).status_code == 204


def test_get_and_head_serve_the_original(c):
    data = gen.jpeg_bytes(seed=10)
    c.put("/dav/upload/g.jpg", content=data)
    r = c.get("/dav/upload/g.jpg")
    assert r.status_code == 200 and r.content == data and r.headers["etag"] == f'"{hashlib.sha1(data).hexdigest()}"'
    r = c.head("/dav/upload/g.jpg")
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(data) and not r.content
    r = c.get("/dav/upload/g.jpg", headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == data[:10]
    assert c.get("/dav/upload/").status_code == 200 and c.head("/dav/upload/").status_code == 200
    assert c.head("/dav/upload/none.jpg").status_code == 404
    assert c.get("/dav/upload/none.jpg").status_code == 404
    assert c.post("/dav/upload/g.jpg", content=b"x").status_code == 405


def test_auth_rules(app_and_key):
    app, c, key, session = app_and_key
    # Basic is only for /dav: the JSON API does not take it (a browser would replay it cross-site).
    assert c.get("/api/server").status_code == 401
    # A Bearer API key works on /dav too.
    r = c.request("PROPFIND", "/dav/", headers={"Depth": "0", "Authorization": f"Bearer {key}"})
    assert r.status_code == 207
    # A browser session must not write to /dav without its CSRF token.
    c.auth = None
    c.cookies.update(session)
    assert c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 403
    assert c.request("MKCOL", "/dav/upload/from-browser/").status_code == 403
    c.cookies.clear()
    # The owner's password works (and is then cached), a wrong one is throttled like logins.
    c.auth = ("alice", PASSWORD)
    assert c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 207
    assert c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 207
    c.auth = ("alice", "wrong password")
    codes = [c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code for _ in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    c.auth = ("x", key)  # a correct API key is never throttled
    assert c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 207
    # A revoked key stops working at once.
    with app.state.photobox.db.transaction() as conn:
        for k in auth.list_api_keys(conn):
            auth.revoke_api_key(conn, k.id)
    r = c.request("PROPFIND", "/dav/", headers={"Depth": "0"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")


def test_purged_photo_stays_listed_so_the_phone_does_not_send_it_again(app_and_key, c):
    from photobox.library.actions import purge

    box = app_and_key[0].state.photobox
    data = gen.jpeg_bytes(seed=13)
    assert c.put("/dav/upload/gone.jpg", content=data).status_code == 201
    with box.db.transaction() as conn:
        (asset_id,) = conn.execute("SELECT asset_id FROM dav_entries WHERE name = 'gone.jpg'").fetchone()
        conn.execute("UPDATE assets SET trashed_at = 1 WHERE id = ?", (asset_id,))
    assert purge(box, [asset_id]) == 1
    r = c.request("PROPFIND", "/dav/upload/gone.jpg", headers={"Depth": "0"})
    assert r.status_code == 207 and f"<d:getcontentlength>{len(data)}</d:getcontentlength>" in r.text
    r = c.get("/dav/upload/gone.jpg")
    assert r.status_code == 404 and "deleted from photobox" in r.text


def test_settings_page_shows_the_webdav_address(owner_client):
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(owner_client.get("/settings").text, "html.parser")
    assert "http://testserver.local/dav/upload/" in soup.find(id="webdav-hint").text
