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

from photobox.web.api.assets import DISK_RESERVE_BYTES
from tests.gen import jpeg_bytes
from tests.resil import api_key_for, check_data_folder, raw_upload
from tests.server import Server

pytestmark = pytest.mark.e2e

MiB = 1 << 20
#: The upload reserve plus room for a few uploads; tmpfs only uses memory for what is written.
DISK_SIZE = DISK_RESERVE_BYTES + 24 * MiB


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


def test_uploads_on_a_full_disk_get_507_and_keep_nothing(tmp_path, small_disk):
    data = tmp_path / "data"
    data.mkdir()
    for sub in ("tmp", "library"):
        (small_disk / sub).mkdir()
        (data / sub).symlink_to(small_disk / sub)
    Server(data).start().stop()
    key = api_key_for(data)
    server = Server(data).start()
    try:
        photo = jpeg_bytes(seed=1)
        status, body = raw_upload(server.port, key, "ok.jpg", photo, chunked=False)
        assert status == 201, body

        # 1. Less than the reserve left: an upload that says its size is refused before a byte is stored.
        _fill(small_disk / "filler", leave=8 * MiB)
        status, body = raw_upload(server.port, key, "early.jpg", jpeg_bytes(seed=2), chunked=False)
        assert status == 507 and "not enough free space" in body and "nothing was stored" in body, body

        # 2. A streaming upload (no Content-Length) cannot be refused up front: it runs into
        #    ENOSPC while being written. Each one that does is refused with 507 and kept nowhere.
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
                assert "disk is full" in body and "not kept" in body, body
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
    Server(data).start().stop()
    key = api_key_for(data)
    server = Server(data).start()
    try:
        for i in range(3):
            assert raw_upload(server.port, key, f"a{i}.jpg", jpeg_bytes(seed=i))[0] == 201
        assert _login(server.url).status_code in (200, 303)
        _fill(small_disk / "filler", leave=0)
        assert httpx.get(server.url + "/api/assets/1", headers={"x-api-key": key}).status_code == 200
        status, body = raw_upload(server.port, key, "full.jpg", jpeg_bytes(seed=9) + os.urandom(MiB))
        assert status == 507 and body.count("disk is full") == 1 and "Errno" not in body, body
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
