"""Ingest through the real app: upload API, duplicates, checksums, bad input, resumable uploads."""

from __future__ import annotations

import hashlib
import time

import pytest

from photobox.library import assets
from photobox.library.paths import derived_path
from tests.gen import jpeg_bytes, mp4_file, png_bytes, sha1


def wait_idle(box, timeout: float = 60.0) -> dict:
    """Wait until the scheduler has no queued or running job; return {kind: {state: n}}."""
    from photobox.jobs import store

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with box.db.reader() as conn:
            counts = store.counts(conn)
        if not any(s.get("queued") or s.get("running") for s in counts.values()):
            return counts
        time.sleep(0.02)
    raise AssertionError(f"jobs still pending after {timeout}s: {counts}")


def api_key(client) -> dict:
    box = client.app.state.photobox
    from photobox import auth

    with box.db.transaction() as conn:
        _, secret = auth.create_api_key(conn, "test")
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def api(owner_client):
    owner_client.headers.update(api_key(owner_client))
    return owner_client


def test_upload_jpeg_runs_pipeline(api):
    data = jpeg_bytes(gps=(48.8584, 2.2945))
    r = api.post("/api/assets", files={"file": ("IMG_1234.JPG", data, "image/jpeg")},
                 headers={"X-Checksum-SHA1": sha1(data)})
    assert r.status_code == 201, r.text
    asset_id = r.json()["id"]
    box = api.app.state.photobox
    counts = wait_idle(box)
    assert counts["thumbs"] == {"done": 1}
    with box.db.reader() as conn:
        a = assets.get_asset(conn, asset_id)
        lat, lon = conn.execute("SELECT latitude, longitude FROM assets WHERE id = ?", (asset_id,)).fetchone()
    assert a.taken_at == "2021-07-14T15:30:00" and a.tz_offset_min == 120 and a.taken_at_source == "exif"
    assert a.local_date == "2021-07-14"
    assert abs(lat - 48.8584) < 1e-3 and abs(lon - 2.2945) < 1e-3
    # Stored by the storage template, byte for byte.
    assert a.rel_path == "2021/07/IMG_1234.JPG"
    assert (box.path("library") / a.rel_path).read_bytes() == data
    assert a.thumb_version == 1
    assert derived_path(box, "thumb", asset_id).exists() and derived_path(box, "preview", asset_id).exists()
    info = api.get(f"/api/assets/{asset_id}").json()
    assert info["checksum"] == sha1(data) and info["kind"] == "image"
    thumb = api.get(f"/api/assets/{asset_id}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert "immutable" in thumb.headers["cache-control"]
    original = api.get(f"/api/assets/{asset_id}/original")
    assert original.content == data


def test_duplicate_answered_before_body_and_after(api):
    data = jpeg_bytes(seed=3)
    first = api.post("/api/assets", files={"file": ("a.jpg", data, "image/jpeg")})
    assert first.status_code == 201
    # Announced checksum: answered "duplicate" without storing anything.
    again = api.post("/api/assets", files={"file": ("b.jpg", data, "image/jpeg")},
                     headers={"X-Checksum-SHA1": sha1(data)})
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "id": first.json()["id"],
                                                         "trashed": False, "warning": None}
    # Without a checksum: found after hashing, and the second copy is not kept.
    third = api.post("/api/assets", files={"file": ("c.jpg", data, "image/jpeg")})
    assert third.json()["status"] == "duplicate"
    box = api.app.state.photobox
    assert sorted(p.name for p in box.path("library").rglob("*.jpg")) == ["a.jpg"]
    assert not list(box.path("tmp").glob("*.part"))


def test_checksum_check_batch(api):
    data = png_bytes()
    created = api.post("/api/assets", files={"file": ("x.png", data, "image/png")}).json()
    import base64

    other = hashlib.sha1(b"nope").digest()
    r = api.post("/api/assets/check", json={"checksums": [sha1(data), base64.b64encode(other).decode()]})
    assert r.status_code == 200
    assert r.json()["results"] == [
        {"checksum": sha1(data), "status": "duplicate", "id": created["id"]},
        {"checksum": base64.b64encode(other).decode(), "status": "new", "id": None},
    ]


def test_checksum_mismatch_keeps_nothing(api):
    data = jpeg_bytes(seed=5)
    r = api.post("/api/assets", files={"file": ("a.jpg", data, "image/jpeg")},
                 headers={"X-Checksum-SHA1": sha1(b"something else")})
    assert r.status_code == 400 and "does not match" in r.json()["detail"]
    box = api.app.state.photobox
    assert not list(box.path("library").rglob("*.*")) and not list(box.path("tmp").glob("*.part"))


@pytest.mark.parametrize("name,payload,reason", [
    ("empty.jpg", b"", "empty"),
    ("page.jpg", b"<!doctype html><html><body>not a photo</body></html>", "not a photo or video"),
    ("random.heic", bytes(range(256)) * 40, "not a photo or video"),
])
def test_bad_files_are_refused_clearly(api, name, payload, reason):
    r = api.post("/api/assets", files={"file": (name, payload, "application/octet-stream")})
    assert r.status_code == 415, r.text
    assert reason in r.json()["detail"]
    box = api.app.state.photobox
    assert not list(box.path("library").rglob("*.*")) and not list(box.path("tmp").glob("*.part"))


def test_truncated_jpeg_is_shown_and_marked(api):
    """A phone JPEG missing its last 33 bytes: kept, thumbnailed (in a decoder child), and marked."""
    data = jpeg_bytes(seed=9, size=(640, 480))[:-33]
    r = api.post("/api/assets", files={"file": ("IMG_0009.JPG", data, "image/jpeg")})
    assert r.status_code == 201, r.text
    box = api.app.state.photobox
    assert box.settings.isolate_decoders
    counts = wait_idle(box)
    assert counts["thumbs"] == {"done": 1}
    asset_id = r.json()["id"]
    with box.db.reader() as conn:
        a = assets.get_asset(conn, asset_id)
    assert a.error.startswith("truncated file: it ends before its image data does") and "shows what is there" in a.error
    assert (a.display_width, a.display_height) == (640, 480) and a.taken_at == "2021-07-14T15:30:00"
    assert derived_path(box, "thumb", asset_id).stat().st_size > 0
    assert derived_path(box, "preview", asset_id).stat().st_size > 0
    assert api.get(f"/api/assets/{asset_id}").json()["error"] == a.error


def test_jpeg_with_no_image_data_is_kept_with_a_clear_error(api):
    data = jpeg_bytes(seed=10, size=(640, 480))
    data = data[:data.index(b"\xff\xda")]  # cut before its first scan: nothing to show
    r = api.post("/api/assets", files={"file": ("cut.jpg", data, "image/jpeg")})
    assert r.status_code == 201  # the bytes are the user's: keep them, say what is wrong
    box = api.app.state.photobox
    counts = wait_idle(box)
    assert counts["thumbs"] == {"failed": 1}
    with box.db.reader() as conn:
        a = assets.get_asset(conn, r.json()["id"])
        err = conn.execute("SELECT error FROM jobs WHERE kind='thumbs'").fetchone()[0]
    assert a.error.startswith("cannot show this file: truncated JPEG")
    assert err.startswith("cut.jpg: cannot make a thumbnail: truncated JPEG") and "Error:" not in err


def test_broken_video_jobs_fail_in_words(api, tmp_path):
    """Job failure texts name the file and say what was expected and found: no bare
    ``ValueError: missing format`` (the transcode) and no traceback."""
    from tests.gen import mjpeg_without_pictures

    data = mjpeg_without_pictures(tmp_path / "MVI_0042.MOV").read_bytes()
    r = api.post("/api/assets", files={"file": ("MVI_0042.MOV", data, "video/quicktime")})
    assert r.status_code == 201, r.text
    box = api.app.state.photobox
    counts = wait_idle(box)
    assert counts["video"] == {"failed": 1} and counts["thumbs"] == {"failed": 1}
    with box.db.reader() as conn:
        errors = dict(conn.execute("SELECT kind, error FROM jobs WHERE kind IN ('video', 'thumbs')").fetchall())
        a = assets.get_asset(conn, r.json()["id"])
    picture = "no picture could be decoded from its mjpeg video stream (expected at least one frame"
    assert errors["video"].startswith(f"MVI_0042.MOV: cannot convert this video for the browser: {picture}")
    assert errors["thumbs"].startswith(f"MVI_0042.MOV: cannot make a thumbnail: {picture}")
    for text in (*errors.values(), a.error):
        assert "Error:" not in text and "Traceback" not in text and "missing format" not in text, text


def test_gps_time_dates_a_photo_without_an_exif_date(api):
    """Not the copy time: the GPS fix's UTC time, stored with offset +00:00 and said in the viewer."""
    data = jpeg_bytes(taken=None, offset=None, gps=(48.8584, 2.2945), gps_fix=("2018:08:04", (17, 5, 9)), seed=4)
    r = api.post("/api/assets", files={"file": ("photo.jpg", data, "image/jpeg")})
    assert r.status_code == 201, r.text
    box = api.app.state.photobox
    wait_idle(box)
    with box.db.reader() as conn:
        a = assets.get_asset(conn, r.json()["id"])
    assert (a.taken_at, a.tz_offset_min, a.taken_at_source, a.local_date) == ("2018-08-04T17:05:09", 0, "gps",
                                                                             "2018-08-04")
    assert a.rel_path == "2018/08/photo.jpg"
    assert "2018-08-04 17:05:09 UTC+00:00 (from gps)" in api.get(f"/photos/{a.id}").text


def test_path_traversal_in_upload_name(api):
    data = jpeg_bytes(seed=11, taken=None, offset=None)
    r = api.post("/api/assets", files={"file": ("../../../etc/evil.jpg", data, "image/jpeg")})
    assert r.status_code == 201
    box = api.app.state.photobox
    placed = [p for p in box.path("library").rglob("*") if p.is_file()]
    assert [p.name for p in placed] == ["evil.jpg"]
    assert placed[0].resolve().is_relative_to(box.path("library").resolve())


def test_same_name_never_overwrites(api):
    a, b = jpeg_bytes(seed=1), jpeg_bytes(seed=2)
    for data in (a, b):
        assert api.post("/api/assets", files={"file": ("IMG.jpg", data, "image/jpeg")}).status_code == 201
    box = api.app.state.photobox
    files = sorted(p.name for p in (box.path("library") / "2021" / "07").iterdir())
    assert files == ["IMG (1).jpg", "IMG.jpg"]


def test_video_upload_gets_poster_and_no_needless_rendition(api, tmp_path):
    path = mp4_file(tmp_path / "clip.mp4")
    r = api.post("/api/assets", files={"file": ("clip.mp4", path.read_bytes(), "video/mp4")})
    assert r.status_code == 201, r.text
    box = api.app.state.photobox
    counts = wait_idle(box)
    assert counts["thumbs"] == {"done": 1}, counts
    assert counts["video"] == {"done": 1}, counts
    with box.db.reader() as conn:
        a = assets.get_asset(conn, r.json()["id"])
        rendition = conn.execute("SELECT rendition FROM assets WHERE id=?", (a.id,)).fetchone()[0]
    assert a.kind == "video" and a.duration == pytest.approx(1.0, abs=0.2)
    assert derived_path(box, "thumb", a.id).exists()
    assert rendition in ("none", "ready")


def test_resumable_upload_survives_a_dropped_chunk(api):
    data = jpeg_bytes(seed=21, size=(1200, 900))
    r = api.post("/api/uploads", json={"name": "big.jpg", "size": len(data), "checksum": sha1(data),
                                       "mtime": 1600000000000})
    assert r.status_code == 201
    upload_id = r.json()["id"]
    half = len(data) // 2
    r = api.patch(f"/api/uploads/{upload_id}", content=data[:half], headers={"Upload-Offset": "0"})
    assert r.json()["offset"] == half
    # A retry of an old chunk at the wrong offset is told where to continue.
    r = api.patch(f"/api/uploads/{upload_id}", content=data[:100], headers={"Upload-Offset": "0"})
    assert r.status_code == 409 and r.headers["upload-offset"] == str(half)
    assert api.head(f"/api/uploads/{upload_id}").headers["upload-offset"] == str(half)
    r = api.patch(f"/api/uploads/{upload_id}", content=data[half:], headers={"Upload-Offset": str(half)})
    assert r.status_code == 201 and r.json()["status"] == "created"
    box = api.app.state.photobox
    with box.db.reader() as conn:
        a = assets.get_asset(conn, r.json()["asset_id"])
    assert a.checksum.hex() == sha1(data) and a.mtime == 1600000000.0
    assert api.head(f"/api/uploads/{upload_id}").status_code == 404
    # Announcing a known checksum short-cuts the whole upload.
    r = api.post("/api/uploads", json={"name": "big.jpg", "size": len(data), "checksum": sha1(data)})
    assert r.status_code == 200 and r.json()["status"] == "duplicate"


def test_upload_requires_auth_and_csrf_for_browsers(client):
    data = png_bytes()
    assert client.post("/api/assets", files={"file": ("x.png", data, "image/png")}).status_code == 401
    from tests.conftest import do_setup

    do_setup(client)
    # Logged in by cookie but without the CSRF header: refused (a foreign page could post).
    r = client.post("/api/assets", files={"file": ("x.png", data, "image/png")})
    assert r.status_code == 403


def test_interrupted_multipart_upload_keeps_nothing(api):
    data = jpeg_bytes(seed=31, size=(800, 600))
    boundary = "pbxboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data[: len(data) // 2]  # connection dropped here
    r = api.post("/api/assets", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 400 and "cut short" in r.json()["detail"]
    box = api.app.state.photobox
    assert not list(box.path("tmp").glob("*.part")) and not list(box.path("library").rglob("*.*"))
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM assets").fetchone() == (0,)


def test_disk_full_is_a_clear_error_and_keeps_nothing(api, monkeypatch):
    from photobox.datadir import storage

    monkeypatch.setattr(storage.TempWriter, "finish_sync", lambda self: (_ for _ in ()).throw(
        storage.DiskFullError(28, "the disk is full: the upload was not kept")))
    r = api.post("/api/assets", files={"file": ("x.jpg", jpeg_bytes(seed=40), "image/jpeg")})
    assert r.status_code == 507 and "disk is full" in r.json()["detail"]
    box = api.app.state.photobox
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM assets").fetchone() == (0,)
    assert not list(box.path("tmp").glob("*.part"))
