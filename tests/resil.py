"""Helpers for the resilience tests and benchmarks (crash, disk full, load, fuzz): check a data
folder after a power cut, seed many faces quickly, stream a slow multipart upload.

The consistency check is the promise of DESIGN.md "keep them safe" written as code: every
asset's original exists with its recorded SHA-1, every file in ``library/`` belongs to an
asset, no partial file survives start-up, and SQLite says the database is sound.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photobox.db import connect

__all__ = ["find_corpus", "Report", "check_data_folder", "seed_faces", "slow_upload", "wait_for", "api_key_for"]


def find_corpus() -> Path | None:
    """``shared/corpus`` next to the checkout or next to a folder above it (a git worktree
    lives deeper than the main checkout); None when absent (test data, not shipped)."""
    here = Path(__file__).resolve().parents[1]
    for parent in here.parents:
        candidate = parent / "shared" / "corpus"
        if candidate.is_dir():
            return candidate
    return None


@dataclass
class Report:
    assets: int = 0
    library_files: int = 0
    problems: list[str] = field(default_factory=list)

    def assert_ok(self) -> None:
        assert not self.problems, "\n".join(self.problems[:30])


def _sha1(path: Path) -> bytes:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.digest()


def check_data_folder(data: Path, *, expect_tmp_empty: bool = True) -> Report:
    """Recompute every checksum and cross-check ``library/`` against the asset rows.

    Run it on a data folder no process is writing to (after a stop, or after a restart once
    start-up cleanup has run).
    """
    report = Report()
    conn = connect(data / "photobox.db", readonly=True)
    try:
        ok = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if ok != ["ok"]:
            report.problems.append(f"integrity_check: {ok[:5]}")
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            report.problems.append(f"foreign_key_check: {fk[:5]}")
        rows = conn.execute("SELECT id, rel_path, checksum, size FROM assets WHERE library_id = 1").fetchall()
        files = {r[0]: r for r in conn.execute(
            "SELECT rel_path, checksum, asset_id FROM library_files WHERE library_id = 1").fetchall()}
    finally:
        conn.close()
    report.assets = len(rows)
    library = data / "library"
    on_disk = {str(p.relative_to(library)) for p in library.rglob("*") if p.is_file()}
    report.library_files = len(on_disk)
    known = set()
    for asset_id, rel, checksum, size in rows:
        known.add(rel)
        path = library / rel
        if not path.is_file():
            report.problems.append(f"asset {asset_id}: original {rel} is missing")
            continue
        if path.stat().st_size != size:
            report.problems.append(f"asset {asset_id}: {rel} has {path.stat().st_size} bytes, recorded {size}")
        if _sha1(path) != checksum:
            report.problems.append(f"asset {asset_id}: {rel} does not match its recorded SHA-1")
        if rel not in files or files[rel][2] != asset_id:
            report.problems.append(f"asset {asset_id}: no library_files row for {rel}")
    # Before a restart, a file placed but not yet recorded is allowed only if a placement
    # journal names it (start-up then removes it).
    journalled = set()
    if not expect_tmp_empty:
        journalled = {p.read_text() for p in (data / "tmp").glob("*.placing")}
    for rel in sorted(on_disk - known - journalled):
        report.problems.append(f"library/{rel} belongs to no asset (an orphan)")
    if expect_tmp_empty:
        # owner-*.lock: a process's claim on its temp files (storage.py); harmless once it exited.
        left = [str(p.relative_to(data)) for p in (data / "tmp").glob("*")
                if p.is_file() and not p.name.startswith("owner-")]
        if left:
            report.problems.append(f"left in tmp/: {left[:5]}")
    return report


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def api_key_for(data: Path, name: str = "resil") -> str:
    """Create the owner and an API key straight in the database (as `photobox set-password`
    would), so HTTP clients in another process need no login dance."""
    from photobox.core import Photobox
    from photobox.settings import load_settings

    box = Photobox(load_settings({"data_dir": data}, env={})).open()
    try:
        from photobox import auth

        with box.db.transaction() as conn:
            if auth.get_owner(conn) is None:
                auth.create_owner(conn, "owner", auth.hash_password("correct horse battery"))
            _, secret = auth.create_api_key(conn, name)
    finally:
        box.close()
    return secret


def slow_upload(port: int, api_key: str, name: str, payload: bytes, *, chunk: int = 64 * 1024,
                pause: float = 0.01, stop_after: int | None = None, on_sent=None) -> tuple[socket.socket, int, bytes]:
    """POST /api/assets over a raw socket, ``chunk`` bytes at a time with ``pause`` between.

    Returns (socket still open, payload bytes sent, what is left to send: the rest of the
    payload and the closing boundary) after ``stop_after`` payload bytes (or all of them);
    ``on_sent(n)`` is called after every chunk and may return True to stop early.
    """
    boundary = "resilboundary7d"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body_len = len(head) + len(payload) + len(tail)
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall((f"POST /api/assets HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {api_key}\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                  f"Content-Length: {body_len}\r\n\r\n").encode() + head)
    sent = 0
    limit = len(payload) if stop_after is None else min(stop_after, len(payload))
    while sent < limit:
        piece = payload[sent:sent + chunk]
        sock.sendall(piece)
        sent += len(piece)
        if on_sent is not None and on_sent(sent):
            return sock, sent, payload[sent:] + tail
        time.sleep(pause)
    if stop_after is None:
        sock.sendall(tail)
        return sock, sent, b""
    return sock, sent, payload[sent:] + tail


def seed_faces(data: Path, n_people: int, per_person: int, dim: int = 64, *, seed: int = 7) -> dict:
    """Write ``n_people`` × ``per_person`` faces (tight clusters of random unit vectors) on
    placeholder assets, with a named person, a user assignment and a cannot-link, straight
    into the database. Returns the ids a test needs to check the corrections survived."""
    from photobox.library import assets as asset_sql
    from photobox.people import store
    from photobox.people.faces_job import ensure_face_table

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim)).astype(np.float32)
    conn = connect(data / "photobox.db")
    now = time.time()
    try:
        with conn:
            table = ensure_face_table(conn, dim)
            face_ids: list[list[int]] = []
            for p in range(n_people):
                ids = []
                for i in range(per_person):
                    asset_id = asset_sql.insert_asset(conn, library_id=1, rel_path=f"seed/{p}/{i}.jpg",
                                                      original_name=f"{i}.jpg", checksum=os.urandom(20), size=1,
                                                      mtime=now, kind="image", now=now)
                    vec = centres[p] + rng.normal(scale=0.08, size=dim).astype(np.float32)
                    vec /= np.linalg.norm(vec)
                    conn.execute("INSERT INTO faces (asset_id, x1, y1, x2, y2, score, model, created_at) "
                                 "VALUES (?, 0.1, 0.1, 0.3, 0.3, 0.99, 'seed@1', ?)", (asset_id, now - 10))
                    fid = conn.last_insert_rowid()
                    conn.execute(f"INSERT INTO {table} (face_id, embedding) VALUES (?, ?)", (fid, vec.tobytes()))
                    ids.append(fid)
                face_ids.append(ids)
            # The user's word: person 0 is named "Ada" with one face assigned by hand, and one of
            # cluster 1's faces is marked "not Ada" after a manual assignment to her.
            ada = store.assign_face(conn, face_ids[0][0], None, new_name="Ada")
            store.assign_face(conn, face_ids[0][1], ada)
            store.not_this_person(conn, face_ids[1][0], ada)
    finally:
        conn.close()
    return {"ada": ada, "ada_faces": face_ids[0][:2], "not_ada": face_ids[1][0], "faces": n_people * per_person}


def raw_upload(port: int, api_key: str, name: str, payload: bytes, *, chunked: bool = True,
               timeout: float = 60) -> tuple[int, str]:
    """POST /api/assets with ``Transfer-Encoding: chunked`` (no Content-Length, as a streaming
    client sends it, so the server cannot refuse it up front by size) or with a Content-Length.
    Returns (status, body); a server that answers early and closes is handled."""
    boundary = "resilboundary7d"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/assets HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {api_key}\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n")
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {len(body)}\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(head.encode())
            step = 256 * 1024
            for i in range(0, len(body), step):
                piece = body[i:i + step]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading everything (refused): read its answer
        response = b""
        try:
            while block := sock.recv(65536):
                response += block
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    head_text, _, rest = response.partition(b"\r\n\r\n")
    status = int(head_text.split()[1]) if head_text else 0
    if b"transfer-encoding: chunked" in head_text.lower():
        out, data = b"", rest
        while data:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line or b"0", 16)
            if size == 0:
                break
            out, data = out + data[:size], data[size + 2:]
        rest = out
    return status, rest.decode(errors="replace")
