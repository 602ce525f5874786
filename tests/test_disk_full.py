"""Disk full, for real: the data folder's ``tmp/`` and ``library/`` live on a small tmpfs, the
real server takes uploads until the disk is full, and every refused upload gets HTTP 507 with a
clear message, keeps no partial file, and leaves the database consistent; after space is freed,
uploads work again.

Needs root with CAP_SYS_ADMIN to ``mount -t tmpfs`` (CI runs as root in a container like this
one); skipped with the reason otherwise. The database stays on the normal disk, as on a Pi whose
SSD holds the library while the SD card holds the system.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.gen import jpeg_bytes
from tests.resil import api_key_for, check_data_folder, raw_upload
from tests.server import Server

pytestmark = pytest.mark.e2e

MiB = 1 << 20
#: The ``disk_reserve_mb`` the servers here run with (the default is 256; the rule is the same).
RESERVE = 32 * MiB
ENV = {"PHOTOBOX_DISK_RESERVE_MB": str(RESERVE // MiB)}
#: The reserve plus room for a few uploads; tmpfs only uses memory for what is written.
DISK_SIZE = RESERVE + 24 * MiB


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("disk-full test needs root to mount a tmpfs (CI runs as root)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); no disk-full test")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path, leave: int) -> None:
    """Write a filler file until only ``leave`` bytes are free on ``path``'s filesystem."""
    free = shutil.disk_usage(path.parent).free
    with open(path, "wb") as f:
        todo = max(0, free - leave)
        block = b"\0" * MiB
        try:
            while todo > 0:
                todo -= f.write(block[:min(MiB, todo)])
        except OSError:  # ENOSPC: as full as it gets
            pass


def _library_on(disk: Path, data: Path) -> tuple[Path, str, Server]:
    """A data folder whose ``tmp/`` and ``library/`` live on ``disk`` (the database does not,
    as on a Pi whose SSD holds the library), with an API key and its server started."""
    data.mkdir()
    for sub in ("tmp", "library"):
        (disk / sub).mkdir()
        (data / sub).symlink_to(disk / sub)
    Server(data, env=ENV).start().stop()
    key = api_key_for(data)
    return data, key, Server(data, env=ENV).start()


def test_uploads_on_a_full_disk_get_507_and_keep_nothing(tmp_path, small_disk):
    data, key, server = _library_on(small_disk, tmp_path / "data")
    try:
        photo = jpeg_bytes(seed=1)
        status, body = raw_upload(server.port, key, "ok.jpg", photo, chunked=False)
        assert status == 201, body

        # 1. Less than the reserve left: an upload that says its size is refused before a byte is stored.
        _fill(small_disk / "filler", leave=8 * MiB)
        status, body = raw_upload(server.port, key, "early.jpg", jpeg_bytes(seed=2), chunked=False)
        assert status == 507 and "not enough free space" in body and "nothing was stored" in body, body

        # 2. A streaming upload (no Content-Length) cannot be refused up front: it is stopped
        #    before it writes into the reserve, with 507, and kept nowhere.
        answers = []
        for i in range(6):
            big = jpeg_bytes(seed=10 + i) + os.urandom(3 * MiB)
            answers.append(raw_upload(server.port, key, f"big{i}.jpg", big))
            assert not list((data / "tmp").glob("*.part")), "a refused upload left its temp file"
        statuses = [s for s, _ in answers]
        assert 507 in statuses, answers
        assert set(statuses) <= {201, 507}, answers
        for status, body in answers:
            if status == 507:
                assert "not enough free space" in body and "not kept" in body, body
        created = statuses.count(201)

        # 3. The resumable upload is refused up front too.
        r = httpx.post(server.url + "/api/uploads", json={"name": "x.jpg", "size": 2 * MiB},
                       headers={"x-api-key": key})
        assert r.status_code == 507, r.text

        report = check_data_folder(data)
        report.assert_ok()
        assert report.assets == 1 + created

        # 4. Space freed: uploads work again, without a restart.
        (small_disk / "filler").unlink()
        status, body = raw_upload(server.port, key, "after.jpg", jpeg_bytes(seed=3), chunked=False)
        assert status == 201, body
        status, body = raw_upload(server.port, key, "after-stream.jpg", jpeg_bytes(seed=4) + os.urandom(MiB))
        assert status == 201, body
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        assert server.stop() == 0
    report = check_data_folder(data)
    report.assert_ok()
    assert report.assets == 3 + created
    log = server.log.read_text()
    assert "Traceback" not in log, log[-3000:]


def _login(url: str) -> httpx.Response:
    with httpx.Client(base_url=url) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return client.post("/login", data={"username": "owner", "password": "correct horse battery",
                                           "csrf_token": token}, headers={"accept": "application/json"})


def test_whole_data_folder_on_a_full_disk_answers_507_not_500(tmp_path, small_disk):
    """The usual Pi: database, library and tmp on one disk. When it is full, pages still show,
    and every change (an upload, a login that must save a session) is refused with 507 and a
    clear message instead of an internal error; freeing space heals it without a restart."""
    data = small_disk / "data"
    Server(data, env=ENV).start().stop()
    key = api_key_for(data)
    server = Server(data, env=ENV).start()
    try:
        for i in range(3):
            assert raw_upload(server.port, key, f"a{i}.jpg", jpeg_bytes(seed=i))[0] == 201
        assert _login(server.url).status_code in (200, 303)
        _fill(small_disk / "filler", leave=0)
        assert httpx.get(server.url + "/api/assets/1", headers={"x-api-key": key}).status_code == 200
        status, body = raw_upload(server.port, key, "full.jpg", jpeg_bytes(seed=9) + os.urandom(MiB))
        assert status == 507 and "not enough free space" in body and "Errno" not in body, body
        # Sessions are rows: a login must save one, which needs room in the WAL, and gets 507.
        for _ in range(10):
            r = _login(server.url)
            assert r.status_code in (200, 303, 507), (r.status_code, r.text)
            if r.status_code == 507:
                break
        assert r.status_code == 507 and "disk is full" in r.text, r.text
        (small_disk / "filler").unlink()
        assert _login(server.url).status_code in (200, 303)
        assert raw_upload(server.port, key, "after.jpg", jpeg_bytes(seed=10))[0] == 201
    finally:
        assert server.stop() == 0
    report = check_data_folder(data)
    report.assert_ok()
    assert report.assets == 4
    assert "Traceback" not in server.log.read_text()


def _free(path: Path) -> int:
    return shutil.disk_usage(path).free


def _multipart(field: str, name: str, payload: bytes) -> tuple[bytes, str]:
    boundary = "reserveb0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _ways_in(server: Server, key: str, name: str, payload: bytes, *, chunked: bool) -> dict[str, httpx.Response]:
    """The same file through every way in: multipart upload, resumable upload, WebDAV PUT,
    and the phone share target; ``chunked`` sends the bodies without a Content-Length."""
    def body(data: bytes):
        return (data[i:i + 256 * 1024] for i in range(0, len(data), 256 * 1024)) if chunked else data

    answers = {}
    with httpx.Client(base_url=server.url, headers={"x-api-key": key}, timeout=60) as c:
        content, ctype = _multipart("file", f"up-{name}", payload)
        answers["upload"] = c.post("/api/assets", content=body(content), headers={"content-type": ctype})
        r = c.post("/api/uploads", json={"name": f"res-{name}", "size": len(payload)})
        if r.status_code == 201:
            r = c.patch(f"/api/uploads/{r.json()['id']}", content=payload, headers={"upload-offset": "0"})
        answers["resumable"] = r
        answers["webdav"] = c.put(f"/dav/upload/dav-{name}", content=body(payload), auth=("phone", key))
        content, ctype = _multipart("media", f"share-{name}", payload)
        answers["share"] = c.post("/share", content=body(content), headers={"content-type": ctype})
    return answers


def test_every_way_in_keeps_the_reserve_and_says_what_is_needed(tmp_path, small_disk):
    """One rule for the four ways in, sized or streamed: an upload that would leave less than
    the reserve free is refused (507) before it eats into it, the answer says how much is
    free and how much is kept; with space back above the reserve, every way in works again."""
    data, key, server = _library_on(small_disk, tmp_path / "data")
    try:
        _fill(small_disk / "filler", leave=RESERVE + 6 * MiB)
        big = jpeg_bytes(seed=20) + os.urandom(8 * MiB)  # fits on the disk, not beside the reserve
        for chunked in (False, True):
            answers = _ways_in(server, key, f"big-{chunked}.jpg", big, chunked=chunked)
            for way, r in answers.items():
                assert r.status_code == 507, (way, chunked, r.status_code, r.text[:300])
                assert "MiB free" in r.text and f"{RESERVE // MiB} MiB kept in reserve" in r.text, (way, r.text)
                assert _free(small_disk) >= RESERVE, f"{way} (chunked={chunked}) ate into the reserve"
            assert not list((data / "tmp").glob("*.part")), "a refused upload left its temp file"

        # A resumable upload accepted while there was room is stopped chunk by chunk once there is not.
        r = httpx.post(server.url + "/api/uploads", json={"name": "late.jpg", "size": 3 * MiB},
                       headers={"x-api-key": key})
        assert r.status_code == 201, r.text
        _fill(small_disk / "filler2", leave=RESERVE + MiB)
        chunk = httpx.patch(f"{server.url}/api/uploads/{r.json()['id']}", content=os.urandom(2 * MiB),
                            headers={"x-api-key": key, "upload-offset": "0"})
        assert chunk.status_code == 507 and "kept in reserve" in chunk.text, chunk.text
        assert _free(small_disk) >= RESERVE

        # Space back above the reserve: sized and streamed uploads work on every way in.
        (small_disk / "filler").unlink()
        (small_disk / "filler2").unlink()
        _fill(small_disk / "filler", leave=RESERVE + 16 * MiB)
        for chunked in (False, True):
            photo = jpeg_bytes(seed=30 + chunked) + os.urandom(MiB)
            for way, r in _ways_in(server, key, f"ok-{chunked}.jpg", photo, chunked=chunked).items():
                assert r.status_code in (200, 201, 303), (way, chunked, r.status_code, r.text[:300])
    finally:
        assert server.stop() == 0
    report = check_data_folder(data)
    report.assert_ok()
    assert "Traceback" not in server.log.read_text()
