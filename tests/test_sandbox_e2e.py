"""The real server survives a decoder that segfaults: the thumbs job for that file fails with
a one-line error (after its normal retries), the next upload gets its thumbnails, and the
server process never restarts. The crash comes from a test plugin (tests/plugins/crashy_decoders.py)
that makes the ``thumbs`` decoder SIGSEGV on files named ``*CRASH*``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from photobox.db import connect
from tests.gen import jpeg_bytes
from tests.resil import api_key_for, wait_for
from tests.server import Server

pytestmark = pytest.mark.e2e


def _rows(db: Path, sql: str, params=()) -> list[tuple]:
    conn = connect(db, readonly=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_segfaulting_decoder_fails_one_job_and_the_server_lives_on(tmp_path):
    data = tmp_path / "data"
    env = {"PHOTOBOX_PLUGINS": "tests.plugins.crashy_decoders", "PHOTOBOX_CRASHY_THUMBS": "1",
           "PHOTOBOX_JOB_MAX_ATTEMPTS": "2", "PHOTOBOX_JOB_BACKOFF_SECONDS": "0.2"}
    Server(data, env=env).start().stop()
    key = api_key_for(data)
    server = Server(data, env=env).start()
    db = data / "photobox.db"
    try:
        pid = server.proc.pid

        def upload(name: str, seed: int) -> int:
            r = httpx.post(server.url + "/api/assets", headers={"x-api-key": key}, timeout=60,
                           files={"file": (name, jpeg_bytes(seed=seed), "image/jpeg")})
            assert r.status_code == 201, r.text
            return r.json()["id"]

        bad = upload("IMG_CRASH.jpg", 1)
        wait_for(lambda: _rows(db, "SELECT state FROM jobs WHERE kind = 'thumbs' AND target = ?",
                               (str(bad),)) == [("failed",)], 120, "the crashing thumbs job to fail")
        good = upload("IMG_0002.jpg", 2)
        wait_for(lambda: _rows(db, "SELECT state FROM jobs WHERE kind = 'thumbs' AND target = ?",
                               (str(good),)) == [("done",)], 120, "the next thumbs job to finish")
        (error, attempts), = _rows(db, "SELECT error, attempts FROM jobs WHERE kind = 'thumbs' AND target = ?",
                                   (str(bad),))
        assert error.splitlines()[0].startswith("DecoderCrashed: the decoder crashed with SIGSEGV"), error
        assert attempts == 2
        assert server.proc.poll() is None and server.proc.pid == pid
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        thumb = httpx.get(f"{server.url}/api/assets/{good}/thumbnail", headers={"x-api-key": key}, timeout=10)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        children = [p for p in server.pids() if p != pid]
        assert children, "the decoder children run in the server's process group"
    finally:
        assert server.stop() == 0
    from photobox.procs import process_alive

    wait_for(lambda: not any(process_alive(p) for p in children), 10, "the decoder children to exit")
