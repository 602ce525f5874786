"""Resumable uploads under concurrent PATCHes, against the real server (granian on 127.0.0.1).

A client retrying a chunk while its first attempt still runs (a proxy timed out) sends the
same PATCH twice at once; a confused one sends different bodies at the same offset. Each
upload must still end exactly once: no 5xx, no valid photo lost, one asset per upload, and
every asset's recorded SHA-1 matching the bytes on disk.
"""

from __future__ import annotations

import hashlib
import os
import threading

import httpx
import pytest

from tests.gen import jpeg_bytes
from tests.resil import api_key_for, check_data_folder
from tests.server import Server

pytestmark = pytest.mark.e2e

TRIALS = 6


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "data"
    Server(data).start().stop()
    key = api_key_for(data)
    server = Server(data).start()
    server.key = key
    try:
        yield server
    finally:
        assert server.stop() == 0
        report = check_data_folder(data)
        report.assert_ok()
        log = server.log.read_text()
        assert "Traceback" not in log, log[-3000:]


def _at_once(server, upload_id: str, sends: list[tuple[int, bytes]]) -> list[httpx.Response]:
    """PATCH every (offset, body) of ``sends`` to one upload at the same moment."""
    out: list[httpx.Response | None] = [None] * len(sends)
    barrier = threading.Barrier(len(sends))

    def send(i: int) -> None:
        offset, body = sends[i]
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            out[i] = c.patch(f"{server.url}/api/uploads/{upload_id}", content=body,
                             headers={"x-api-key": server.key, "upload-offset": str(offset)})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sends))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out  # type: ignore[return-value]


def _start(server, name: str, size: int) -> str:
    r = httpx.post(server.url + "/api/uploads", json={"name": name, "size": size}, headers={"x-api-key": server.key})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _asset(server, asset_id: int) -> dict:
    return httpx.get(f"{server.url}/api/assets/{asset_id}", headers={"x-api-key": server.key}).json()


def test_the_same_last_chunk_twice_at_once_creates_the_photo_once(server):
    for trial in range(TRIALS):
        photo = jpeg_bytes(seed=100 + trial)
        upload_id = _start(server, f"retry{trial}.jpg", len(photo))
        half = len(photo) // 2
        r = httpx.patch(f"{server.url}/api/uploads/{upload_id}", content=photo[:half],
                        headers={"x-api-key": server.key, "upload-offset": "0"})
        assert r.status_code == 200, r.text
        answers = _at_once(server, upload_id, [(half, photo[half:]), (half, photo[half:])])
        statuses = sorted(a.status_code for a in answers)
        # The retry gets the answer of the request that finished the upload.
        assert statuses == [201, 201], [(a.status_code, a.text) for a in answers]
        ids = {a.json()["asset_id"] for a in answers}
        assert len(ids) == 1, answers
        info = _asset(server, ids.pop())
        assert info["checksum"] == hashlib.sha1(photo).hexdigest()


def test_different_bodies_at_once_finish_one_upload_with_a_true_checksum(server):
    for trial in range(TRIALS):
        a, b = jpeg_bytes(seed=200 + trial), jpeg_bytes(seed=300 + trial)
        n = min(len(a), len(b))
        a, b = a[:n - 2] + b"\xff\xd9", b[:n - 2] + b"\xff\xd9"
        upload_id = _start(server, f"clash{trial}.jpg", n)
        answers = _at_once(server, upload_id, [(0, a), (0, b)])
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [201, 409], [(r.status_code, r.text) for r in answers]
        created = next(r for r in answers if r.status_code == 201).json()
        loser = next(r for r in answers if r.status_code == 409)
        assert loser.headers["upload-offset"] == str(n), loser.text
        info = _asset(server, created["asset_id"])
        assert info["checksum"] in (hashlib.sha1(a).hexdigest(), hashlib.sha1(b).hexdigest())


def test_different_first_chunks_at_once_keep_the_checksum_true(server):
    """Two first chunks race; the client goes on with its second half. Whatever bytes end up
    in the file, the recorded SHA-1 is theirs (it was not, when two running hashes mixed)."""
    photo = jpeg_bytes(seed=400)
    for trial in range(TRIALS):
        a, b = photo + os.urandom(4096), photo + os.urandom(4096)
        cut = len(photo) + 2048
        upload_id = _start(server, f"mixed{trial}.jpg", len(a))
        answers = _at_once(server, upload_id, [(0, a[:cut]), (0, b[:cut])])
        assert sorted(r.status_code for r in answers) == [200, 409], [(r.status_code, r.text) for r in answers]
        assert all(r.headers["upload-offset"] == str(cut) for r in answers)
        r = httpx.patch(f"{server.url}/api/uploads/{upload_id}", content=a[cut:],
                        headers={"x-api-key": server.key, "upload-offset": str(cut)})
        assert r.status_code in (200, 201), r.text
        expected = {hashlib.sha1(a).hexdigest(), hashlib.sha1(b[:cut] + a[cut:]).hexdigest()}
        assert _asset(server, r.json()["asset_id"])["checksum"] in expected
