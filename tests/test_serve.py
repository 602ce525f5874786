"""`photobox serve` refuses to start next to another server: the data folder's server lock
or the port taken (granian listens with SO_REUSEPORT, so a second server used to share the
port silently, two libraries answering in turn). Real processes throughout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from photobox.core import Photobox
from photobox.datadir import restore
from photobox.db import connect
from photobox.safety import backups
from photobox.settings import load_settings
from tests.server import Server, free_port

ROOT = Path(__file__).resolve().parents[1]


def serve(data: Path, port: int) -> subprocess.CompletedProcess:
    """Run a second `photobox serve`; one that starts after all is stopped and reported."""
    proc = subprocess.Popen([sys.executable, "-m", "photobox", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(data)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the second server started and kept running:\n{out}\n{err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_second_server_is_refused_on_a_held_folder_or_a_taken_port(tmp_path):
    first = Server(tmp_path / "one").start()
    try:
        # The same data folder on another port: its lock is held.
        r = serve(first.data_dir, free_port())
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "already using the data folder" in lines[0], r.stderr
        assert f"pid {first.proc.pid}" in lines[0]
        # Another data folder on the same port.
        other = tmp_path / "two"
        other.mkdir()
        r = serve(other, first.port)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{first.port}" in lines[0], r.stderr
        assert not (other / "photobox.db").exists(), "refused before opening anything"
        # A port taken by any other program.
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            r = serve(other, listener.getsockname()[1])
        assert r.returncode == 2 and "cannot listen on" in r.stderr
        assert httpx.get(first.url + "/healthz", timeout=5).status_code == 200
        # The CLI still sees the server, and a restore staged now waits for its next start.
        settings = load_settings({"data_dir": first.data_dir}, env={})
        assert restore.server_running(first.data_dir)
        box = Photobox(settings).open()
        try:
            with box.db.transaction() as conn:
                conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('before', 0, 0)")
            backup = backups.make_backup(box, tmp_path / "b.db", sidecar=False)
            with box.db.transaction() as conn:
                conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('after', 0, 0)")
        finally:
            box.close()
        restore.stage_restore(first.data_dir, backup)
    finally:
        first.stop()
    assert not restore.server_running(first.data_dir), "the lock goes with the server"
    # The restarted server's worker applies the staged restore under its parent's lock.
    again = Server(first.data_dir).start()
    try:
        assert not (first.data_dir / restore.STAGED_NAME).exists()
        assert list((first.data_dir / "backups").glob("pre-restore-*.db"))
    finally:
        again.stop()
    conn = connect(first.data_dir / "photobox.db", readonly=True)
    assert [n for (n,) in conn.execute("SELECT name FROM albums")] == ["before"]
    conn.close()
