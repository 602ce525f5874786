"""Power-cut tests: SIGKILL the real server (or the CLI) in the middle of an upload, an import
and a face re-cluster, start again, and prove with recomputed SHA-1s that every committed
asset and original is intact, nothing in ``library/`` is an orphan, no partial file is left,
SQLite is sound, and interrupted jobs resume and finish.

The moment of the kill is found by polling what the process leaves behind (the upload's
``.part`` file, the asset count, the job's state), never by a blind sleep.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from photobox.db import connect
from photobox.jobs import store
from tests.gen import jpeg_bytes
from tests.resil import api_key_for, check_data_folder, seed_faces, slow_upload, wait_for
from tests.server import ROOT, Server

pytestmark = pytest.mark.e2e


def _count(db: Path, sql: str, params=()) -> int:
    conn = connect(db, readonly=True)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def _upload(server: Server, key: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(server.url + "/api/assets", files={"file": (name, data, "image/jpeg")},
                      headers={"x-api-key": key}, timeout=60)


def test_kill_mid_upload_keeps_committed_assets_and_no_partial_file(tmp_path):
    data = tmp_path / "data"
    Server(data).start().stop()  # create and migrate the data folder
    key = api_key_for(data)
    server = Server(data).start()
    committed = {}
    try:
        for i in range(3):
            body = jpeg_bytes(seed=i)
            r = _upload(server, key, f"before{i}.jpg", body)
            assert r.status_code == 201, r.text
            committed[r.json()["id"]] = body
        # A slow client streams 6 MiB; the server flushes its temp file every MiB. Kill once
        # the .part file holds bytes and the body is not complete.
        big = jpeg_bytes(seed=99) + os.urandom(6 << 20)

        def part_has_bytes(_sent: int) -> bool:
            return any(p.stat().st_size > 0 for p in (data / "tmp").glob("*.part"))

        sock, _, _ = slow_upload(server.port, key, "big.jpg", big, chunk=128 * 1024, pause=0.005,
                                 on_sent=part_has_bytes)
        parts = list((data / "tmp").glob("*.part"))
        assert parts and parts[0].stat().st_size < len(big), "the kill did not land mid-upload"
    finally:
        server.kill()
    sock.close()
    assert list((data / "tmp").glob("*.part")), "a crash mid-upload leaves its .part (removed at start-up)"
    assert not any(p.name == "big.jpg" for p in (data / "library").rglob("*")), "a partial file reached the library"

    server = Server(data, port=server.port).start()
    try:
        assert not list((data / "tmp").glob("*.part")), "start-up removes the partial upload"
        # Committed uploads are served byte for byte; the same big upload now goes through.
        for asset_id, body in committed.items():
            assert httpx.get(f"{server.url}/api/assets/{asset_id}/original", headers={"x-api-key": key}).content == body
        r = _upload(server, key, "big.jpg", big)
        assert r.status_code == 201, r.text
        wait_for(lambda: _count(data / "photobox.db", "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
                 == 0, 60, "the thumbnail jobs to finish")
    finally:
        assert server.stop() == 0
    report = check_data_folder(data)
    report.assert_ok()
    assert report.assets == 4 and report.library_files == 4
    assert "Traceback" not in server.log.read_text()


def _import(data: Path, folder: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "photobox", "import", "--no-wait", "--data-dir", str(data),
                             str(folder)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def test_kill_mid_import_then_import_again_finishes_exactly_once(tmp_path):
    data = tmp_path / "data"
    src = tmp_path / "src"
    src.mkdir()
    n = 120
    for i in range(n):
        (src / f"IMG_{i:04d}.jpg").write_bytes(jpeg_bytes(seed=i, size=(480, 360)))
    db = data / "photobox.db"
    Server(data).start().stop()
    # Three power cuts at different moments of the same import, then a full run.
    for kill_at in (5, 35, 70):
        proc = _import(data, src, tmp_path / "import.log")
        try:
            wait_for(lambda kill_at=kill_at: _count(db, "SELECT count(*) FROM assets") >= kill_at, 120,
                     f"{kill_at} imported assets")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        mid = check_data_folder(data, expect_tmp_empty=False)
        mid.assert_ok()  # committed assets are intact even before any clean-up
        assert mid.assets < n, "the kill came too late to test anything"
    proc = _import(data, src, tmp_path / "import.log")
    assert proc.wait(300) == 0, (tmp_path / "import.log").read_text()[-3000:]
    # The server starts on the folder (cleans tmp/) and runs the queued thumbnail jobs.
    server = Server(data).start()
    try:
        wait_for(lambda: _count(db, "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')") == 0, 120,
                 "the queued jobs to finish")
    finally:
        assert server.stop() == 0
    report = check_data_folder(data)
    report.assert_ok()
    assert report.assets == n and report.library_files == n
    assert _count(db, "SELECT count(*) FROM jobs WHERE state = 'failed'") == 0
    assert _count(db, "SELECT count(DISTINCT original_name) FROM assets") == n, "a file was imported twice"


def _job_state(db: Path, kind: str) -> str | None:
    conn = connect(db, readonly=True)
    try:
        row = conn.execute("SELECT state FROM jobs WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def _people_snapshot(db: Path) -> dict:
    conn = connect(db, readonly=True)
    try:
        return {
            "orphan_faces": conn.execute("SELECT count(*) FROM faces f WHERE f.person_id IS NOT NULL AND NOT EXISTS "
                                         "(SELECT 1 FROM people p WHERE p.id = f.person_id)").fetchone()[0],
            "assigned": conn.execute("SELECT count(*) FROM faces WHERE person_id IS NOT NULL").fetchone()[0],
            "people": conn.execute("SELECT count(*) FROM people").fetchone()[0],
            "reclustered": conn.execute("SELECT value FROM meta WHERE key = 'faces_reclustered_at'").fetchone(),
            "fk": conn.execute("PRAGMA foreign_key_check").fetchall(),
            "integrity": conn.execute("PRAGMA integrity_check").fetchone()[0],
        }
    finally:
        conn.close()


def _corrections_hold(db: Path, seeded: dict) -> None:
    conn = connect(db, readonly=True)
    try:
        ada = seeded["ada"]
        assert conn.execute("SELECT name FROM people WHERE id = ?", (ada,)).fetchone() == ("Ada",)
        for face in seeded["ada_faces"]:
            assert conn.execute("SELECT person_id, assigned_by FROM faces WHERE id = ?", (face,)).fetchone() == (ada, "user")
        assert conn.execute("SELECT person_id FROM faces WHERE id = ?", (seeded["not_ada"],)).fetchone()[0] != ada
        broken = conn.execute("SELECT count(*) FROM face_constraints c JOIN faces f ON f.id = c.face_id "
                              "WHERE c.kind = 'cannot' AND f.person_id = c.person_id").fetchone()[0]
        assert broken == 0, "a face sits with a person the user said it is not"
    finally:
        conn.close()


def test_kill_mid_recluster_then_the_job_resumes_and_keeps_corrections(tmp_path):
    data = tmp_path / "data"
    db = data / "photobox.db"
    Server(data).start().stop()
    # 20k faces without stored neighbour lists: the first re-cluster builds them (seconds here).
    n_people = 1000
    seeded = seed_faces(data, n_people=n_people, per_person=20)
    before = _people_snapshot(db)
    server = Server(data).start()
    try:
        conn = connect(db)
        with conn:
            store.enqueue(conn, "people.recluster", "", {}, now=time.time())
        conn.close()
        wait_for(lambda: _job_state(db, "people.recluster") == "running", 30, "the re-cluster to start")
        time.sleep(0.3)  # well inside a run of seconds: reading faces and asking sqlite-vec for neighbours
        assert _job_state(db, "people.recluster") == "running", "the re-cluster finished before the kill"
    finally:
        server.kill()
    mid = _people_snapshot(db)
    assert mid["integrity"] == "ok" and not mid["fk"] and mid["orphan_faces"] == 0
    assert mid["reclustered"] is None and mid["assigned"] == before["assigned"], "half a re-cluster was committed"
    _corrections_hold(db, seeded)

    server = Server(data, port=server.port).start()
    try:
        wait_for(lambda: _job_state(db, "people.recluster") == "done", 120, "the re-cluster to resume and finish",
                 interval=0.2)
    finally:
        assert server.stop() == 0
    after = _people_snapshot(db)
    assert after["integrity"] == "ok" and not after["fk"] and after["orphan_faces"] == 0
    assert after["reclustered"] is not None
    assert after["assigned"] >= seeded["faces"] * 0.95, after
    assert 0.96 * n_people <= after["people"] <= 1.08 * n_people, after
    _corrections_hold(db, seeded)


def test_kill_mid_resumable_upload_then_resume_after_restart(tmp_path):
    """The browser's way: a chunk in flight when the server dies is lost, the bytes before it
    are not; after the restart HEAD says where to go on, and the finished file is intact."""
    data = tmp_path / "data"
    Server(data).start().stop()
    key = api_key_for(data)
    body = jpeg_bytes(seed=5) + os.urandom(3 << 20)
    chunk = 1 << 20
    headers = {"x-api-key": key}
    server = Server(data).start()
    try:
        r = httpx.post(server.url + "/api/uploads", json={"name": "resumed.jpg", "size": len(body)}, headers=headers)
        assert r.status_code == 201, r.text
        upload_id = r.json()["id"]
        r = httpx.patch(f"{server.url}/api/uploads/{upload_id}", content=body[:chunk],
                        headers={**headers, "Upload-Offset": "0"})
        assert r.status_code == 200 and r.json()["offset"] == chunk, r.text
        # The second chunk is half sent when the power goes.
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall((f"PATCH /api/uploads/{upload_id} HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\n"
                      f"Upload-Offset: {chunk}\r\nContent-Length: {chunk}\r\n\r\n").encode() + body[chunk:chunk + chunk // 2])
    finally:
        server.kill()
    sock.close()
    server = Server(data, port=server.port).start()
    try:
        r = httpx.head(f"{server.url}/api/uploads/{upload_id}", headers=headers)
        offset = int(r.headers["upload-offset"])
        assert offset == chunk, "the committed chunk survived, the one in flight did not count"
        while offset < len(body):
            r = httpx.patch(f"{server.url}/api/uploads/{upload_id}", content=body[offset:offset + chunk],
                            headers={**headers, "Upload-Offset": str(offset)}, timeout=60)
            assert r.status_code in (200, 201), r.text
            offset = r.json()["offset"]
        assert r.status_code == 201 and r.json()["status"] == "created"
        info = httpx.get(f"{server.url}/api/assets/{r.json()['asset_id']}", headers=headers).json()
        assert info["checksum"] == hashlib.sha1(body).hexdigest()
    finally:
        assert server.stop() == 0
    report = check_data_folder(data)
    report.assert_ok()
    assert report.assets == 1
    assert not list((data / "tmp" / "resumable").glob("*.part"))


def test_cli_start_does_not_delete_an_upload_the_server_is_receiving(tmp_path):
    """Start-up clean-up removes partial files of dead processes only: the CLI opening the data
    folder while the server streams an upload must leave that upload alone."""
    data = tmp_path / "data"
    Server(data).start().stop()
    key = api_key_for(data)
    server = Server(data).start()
    try:
        body = jpeg_bytes(seed=6) + os.urandom(3 << 20)
        sock, _, rest = slow_upload(server.port, key, "busy.jpg", body, chunk=256 * 1024, pause=0.01,
                                    on_sent=lambda _n: any(p.stat().st_size for p in (data / "tmp").glob("*.part")))
        r = subprocess.run([sys.executable, "-m", "photobox", "jobs", "--data-dir", str(data)], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert list((data / "tmp").glob("*.part")), "the CLI removed the server's upload in progress"
        sock.sendall(rest)
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            block = sock.recv(65536)
            if not block:
                break
            response += block
        sock.close()
        assert response.startswith(b"HTTP/1.1 201"), response[:500]
    finally:
        sock.close()
        assert server.stop() == 0
    report = check_data_folder(data)
    report.assert_ok()
    assert report.assets == 1


def test_kill_mid_thumbnails_leaves_no_temp_file_in_the_cache(tmp_path):
    """Derived files are written to a temp name and renamed; a kill mid-write leaves that temp
    name behind. After the restart the re-run job must clean it up, not leak it forever."""
    data = tmp_path / "data"
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"BIG_{i:03d}.jpg").write_bytes(jpeg_bytes(seed=100 + i, size=(2400, 1600)))
    Server(data).start().stop()
    r = subprocess.run([sys.executable, "-m", "photobox", "import", "--no-wait", "--data-dir", str(data), str(src)],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cache = data / "cache"
    db = data / "photobox.db"
    server = Server(data).start()
    polls = 0

    def caught() -> str | bool:
        nonlocal polls
        polls += 1
        if any(cache.rglob(".*.tmp")):
            return "caught"
        # Every 100 polls: give up once no job is left (a machine too fast for 2 ms polling).
        return polls % 100 == 0 and not _count(db, "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")

    try:
        outcome = wait_for(caught, 120, "a derived file being written", interval=0.002)
    finally:
        server.kill()
    leaked = list(cache.rglob(".*.tmp"))
    if outcome != "caught" or not leaked:
        pytest.skip("every thumbnail was written between two polls: the kill never landed mid-write")
    server = Server(data, port=server.port).start()
    try:
        wait_for(lambda: _count(db, "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')") == 0, 120,
                 "the jobs to finish after the restart", interval=0.2)
    finally:
        assert server.stop() == 0
    assert not list(cache.rglob(".*.tmp")), f"temp files leaked: {leaked}"
    assert _count(db, "SELECT count(*) FROM jobs WHERE state = 'failed'") == 0
    check_data_folder(data).assert_ok()
