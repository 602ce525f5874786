"""WebDAV against the real granian server, driven by a real WebDAV client library (webdav4).

One server for the module (starting granian costs seconds on a busy box); each test works
in its own folder under /dav/upload/.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import re
import time
from pathlib import Path

import httpx
import pytest

from photobox import auth
from photobox.db import connect
from tests import gen
from tests.conftest import PASSWORD
from tests.server import Server

webdav4 = pytest.importorskip("webdav4.client")
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("dav") / "data").start()
    try:
        with httpx.Client(base_url=srv.url, follow_redirects=True) as c:
            page = c.get("/setup")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = c.post("/setup", data={"username": "alice", "password": PASSWORD, "password2": PASSWORD,
                                       "csrf_token": token})
            assert r.status_code == 200
        conn = connect(srv.data_dir / "photobox.db")
        with conn:
            _, secret = auth.create_api_key(conn, "phone")
        conn.close()
        srv.api_key = secret
        yield srv
    finally:
        assert srv.stop() == 0
        log = srv.log.read_text()
        assert "Traceback" not in log, log[-3000:]


@pytest.fixture
def dav(server):
    client = webdav4.Client(server.url + "/dav/", auth=("phone", server.api_key), timeout=30)
    yield client
    client.http.close()


def _db(server, sql, args=()):
    conn = connect(server.data_dir / "photobox.db", readonly=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _heic_bytes() -> bytes:
    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 40, 90)).save(buf, "HEIF")
    return buf.getvalue()


def _wait_for(fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail("condition not reached in time")


def test_phone_backup_roundtrip(server, dav, tmp_path):
    dav.mkdir("upload/Camera Roll")
    files = {
        "Ferien Zürich 01.jpg": gen.jpeg_bytes(seed=1),
        "IMG_0002.HEIC": _heic_bytes(),
        "clip 03.mp4": gen.mp4_file(tmp_path / "clip.mp4").read_bytes(),
    }
    for name, data in files.items():
        src = tmp_path / f"src-{hashlib.sha1(name.encode()).hexdigest()}"
        src.write_bytes(data)
        dav.upload_file(src, f"upload/Camera Roll/{name}")

    listing = {Path(item["name"]).name: item for item in dav.ls("upload/Camera Roll", detail=True)}
    assert set(listing) == set(files)
    for name, data in files.items():
        assert listing[name]["content_length"] == len(data)
        assert listing[name]["type"] == "file"
        assert dav.etag(f"upload/Camera Roll/{name}").strip('"') == hashlib.sha1(data).hexdigest()
    assert dav.isdir("upload/Camera Roll") and dav.exists("upload/Camera Roll/Ferien Zürich 01.jpg")
    assert [Path(i["name"]).name for i in dav.ls("", detail=True)] == ["upload"]

    # They are assets now, with the pipeline's jobs queued (and run) for each.
    rows = _db(server, "SELECT a.id, a.original_name, a.kind FROM assets a JOIN dav_entries d ON d.asset_id = a.id "
                       "WHERE d.parent = 'upload/Camera Roll'")
    assert sorted(r[1] for r in rows) == sorted(files)
    assert {r[2] for r in rows} == {"image", "video"}
    for asset_id, _, _ in rows:
        kinds = {k for (k,) in _db(server, "SELECT kind FROM jobs WHERE target = ?", (str(asset_id),))}
        assert {"thumbs"} <= kinds, kinds
    _wait_for(lambda: _db(server, "SELECT count(*) FROM jobs WHERE kind = 'thumbs' AND state = 'done'")[0][0] >= 3)

    # Downloading gives the original bytes back.
    out = io.BytesIO()
    dav.download_fileobj("upload/Camera Roll/Ferien Zürich 01.jpg", out)
    assert out.getvalue() == files["Ferien Zürich 01.jpg"]


def test_reupload_is_not_a_duplicate_asset(server, dav, tmp_path):
    dav.mkdir("upload/again")
    data = gen.jpeg_bytes(seed=7)
    src = tmp_path / "a.jpg"
    src.write_bytes(data)
    before = _db(server, "SELECT count(*) FROM assets")[0][0]
    dav.upload_file(src, "upload/again/a.jpg")
    dav.upload_file(src, "upload/again/a.jpg", overwrite=True)  # same name again: 204
    dav.upload_file(src, "upload/again/copy of a.jpg")  # another name, same bytes: 201, same asset
    assert _db(server, "SELECT count(*) FROM assets")[0][0] == before + 1
    ids = {r[0] for r in _db(server, "SELECT asset_id FROM dav_entries WHERE parent = 'upload/again'")}
    assert len(ids) == 1
    with pytest.raises(webdav4.ResourceAlreadyExists):
        dav.upload_file(src, "upload/again/a.jpg")  # the client's own "skip existing" check


def test_move_copy_and_delete(server, dav, tmp_path):
    dav.mkdir("upload/mv")
    dav.mkdir("upload/mv/sub")
    data = gen.jpeg_bytes(seed=11)
    src = tmp_path / "b.jpg"
    src.write_bytes(data)
    # Many apps upload to a temporary name and rename it when the upload completed.
    dav.upload_file(src, "upload/mv/IMG_0011.JPG.tmp")
    dav.upload_file(src, "upload/mv/IMG_0011.JPG.tmp", overwrite=True)  # a retry: still "its" asset
    dav.move("upload/mv/IMG_0011.JPG.tmp", "upload/mv/sub/IMG_0011.JPG")
    assert not dav.exists("upload/mv/IMG_0011.JPG.tmp")
    assert dav.content_length("upload/mv/sub/IMG_0011.JPG") == len(data)
    (name,) = _db(server, "SELECT a.original_name FROM assets a JOIN dav_entries d ON d.asset_id = a.id "
                          "WHERE d.parent = 'upload/mv/sub'")[0]
    assert name == "IMG_0011.JPG"
    # Moving a folder carries its contents; copying shares the asset.
    dav.move("upload/mv/sub", "upload/mv/renamed")
    assert dav.exists("upload/mv/renamed/IMG_0011.JPG") and not dav.exists("upload/mv/sub")
    dav.copy("upload/mv/renamed", "upload/mv/copied")
    assert dav.content_length("upload/mv/copied/IMG_0011.JPG") == len(data)
    assets_before = _db(server, "SELECT count(*) FROM assets WHERE trashed_at IS NULL")[0][0]
    # Deleting forgets the listing only: the photo stays in photobox.
    dav.remove("upload/mv/renamed")
    assert not dav.exists("upload/mv/renamed/IMG_0011.JPG")
    assert _db(server, "SELECT count(*) FROM assets WHERE trashed_at IS NULL")[0][0] == assets_before


def test_chunked_put_without_length(server, dav):
    """Some apps stream without Content-Length (Transfer-Encoding: chunked)."""
    data = gen.jpeg_bytes(seed=12)

    def body():
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    r = httpx.put(server.url + "/dav/upload/chunked.jpg", content=body(), auth=("phone", server.api_key))
    assert r.status_code == 201 and "content-length" not in r.request.headers
    assert dav.content_length("upload/chunked.jpg") == len(data)


def test_bad_auth_gets_a_basic_challenge(server):
    for creds in (None, ("phone", "pbk_wrong"), ("alice", "not the password")):
        r = httpx.request("PROPFIND", server.url + "/dav/upload/", auth=creds, headers={"Depth": "0"})
        assert r.status_code == 401, creds
        assert r.headers["www-authenticate"].startswith("Basic ")
    client = webdav4.Client(server.url + "/dav/", auth=("phone", "pbk_wrong"))
    with pytest.raises(Exception):  # noqa: B017 - webdav4 raises its own error types for a 401
        client.ls("upload")
    # The owner's name and password work too (verified once, then cached briefly).
    ok = webdav4.Client(server.url + "/dav/", auth=("alice", PASSWORD))
    assert [Path(i["name"]).name for i in ok.ls("", detail=True)] == ["upload"]


def _raw(server, method: str, path: str, headers: dict | None = None) -> int:
    """A request with the path sent exactly as written (httpx would normalise ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        import base64

        token = base64.b64encode(f"phone:{server.api_key}".encode()).decode()
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in {"Authorization": f"Basic {token}", "Content-Length": "0", **(headers or {})}.items():
            conn.putheader(k, v)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_traversal_refused(server, dav, tmp_path):
    dav.mkdir("upload/safe")
    for path in ("/dav/upload/../../../etc/passwd", "/dav/upload/%2e%2e/%2e%2e/x.jpg", "/dav/upload/a%2Fb.jpg",
                 "/dav/upload/a%00b.jpg", "/dav/upload/..%5c..%5cx.jpg"):
        assert _raw(server, "PUT", path) in (400, 404), path
        assert _raw(server, "PROPFIND", path, {"Depth": "0"}) in (400, 404), path
    for dest in ("/dav/upload/../x", "/dav/upload/%2e%2e/x", "/etc/passwd", "/dav/../../x", "/dav/x",
                 f"http://127.0.0.1:{server.port}/etc/x", f"//127.0.0.1:{server.port}/dav/../etc"):
        assert _raw(server, "MOVE", "/dav/upload/safe", {"Destination": dest}) in (400, 403), dest
    for dest in ("http://evil.example/etc/x", "//evil.example/dav/../etc"):  # another server: RFC 4918 9.9.4
        assert _raw(server, "MOVE", "/dav/upload/safe", {"Destination": dest}) == 502, dest
    assert _raw(server, "PUT", "/dav/outside.jpg") == 403
    assert dav.isdir("upload/safe")
    assert not any(p.name in ("passwd", "x.jpg") for p in (server.data_dir / "library").rglob("*"))


def test_rclone_sync_twice_uploads_once(server, tmp_path):
    """rclone (Debian's package) as a second real client: copy a folder, then copy again."""
    import os
    import shutil
    import subprocess

    rclone = shutil.which("rclone")
    if not rclone:
        pytest.skip("rclone is not installed (apt-get install rclone)")
    src = tmp_path / "phone"
    (src / "DCIM").mkdir(parents=True)
    for i in range(3):
        (src / "DCIM" / f"IMG_{i:04d}.jpg").write_bytes(gen.jpeg_bytes(seed=100 + i))
    obscured = subprocess.run([rclone, "obscure", server.api_key], capture_output=True, text=True, check=True).stdout
    env = {**os.environ, "RCLONE_CONFIG": str(tmp_path / "none.conf"), "RCLONE_CONFIG_PB_TYPE": "webdav",
           "RCLONE_CONFIG_PB_URL": server.url + "/dav/", "RCLONE_CONFIG_PB_VENDOR": "other",
           "RCLONE_CONFIG_PB_USER": "phone", "RCLONE_CONFIG_PB_PASS": obscured.strip()}

    def run(*args: str) -> str:
        done = subprocess.run([rclone, *args, "--stats-one-line", "-v"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stderr

    first = run("copy", str(src), "pb:upload/rclone")
    assert first.count("Copied (new)") == 3, first
    second = run("copy", str(src), "pb:upload/rclone")
    assert "Copied" not in second, second  # same names and sizes: nothing to send again
    out = subprocess.run([rclone, "lsf", "-R", "pb:upload/rclone"], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["DCIM/", "DCIM/IMG_0000.jpg", "DCIM/IMG_0001.jpg", "DCIM/IMG_0002.jpg"]
    run("moveto", "pb:upload/rclone/DCIM/IMG_0000.jpg", "pb:upload/rclone/IMG_0000.jpg")
    run("check", str(src / "DCIM"), "pb:upload/rclone/DCIM", "--size-only", "--one-way", "--exclude", "IMG_0000.jpg")
    names = {r[0] for r in _db(server, "SELECT a.original_name FROM assets a JOIN dav_entries d ON d.asset_id = a.id "
                                       "WHERE d.parent LIKE 'upload/rclone%'")}
    assert names == {"IMG_0000.jpg", "IMG_0001.jpg", "IMG_0002.jpg"}
