"""WebDAV numbers on a real granian server: memory while a large PUT streams, PROPFIND speed.

Usage (from the repo root): ``PYTHONPATH=$PWD MB=400 python scripts/bench_webdav.py``. The machine
is usually busy: compare numbers from the same run only.
"""
import os
import pathlib
import re
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import httpx

from photobox import auth
from photobox.db import connect
from tests import gen
from tests.conftest import PASSWORD
from tests.server import Server

tmp = pathlib.Path(tempfile.mkdtemp())
srv = Server(tmp / "data").start()
try:
    with httpx.Client(base_url=srv.url) as c:
        t = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/setup").text).group(1)
        c.post("/setup", data={"username": "alice", "password": PASSWORD, "password2": PASSWORD, "csrf_token": t})
    conn = connect(srv.data_dir / "photobox.db")
    with conn:
        _, key = auth.create_api_key(conn, "bench")
    conn.close()
    video = gen.mp4_file(tmp / "v.mp4", seconds=1).read_bytes()
    MB = int(os.environ.get("MB", "400"))
    block = os.urandom(1 << 20)
    def body():
        yield video
        for _ in range(MB):
            yield block
    size = len(video) + MB * (1 << 20)
    peak = [0]; stop = False
    def sample():
        while not stop:
            peak[0] = max(peak[0], sum(srv.rss_kib().values())); time.sleep(0.05)
    base = sum(srv.rss_kib().values())
    th = threading.Thread(target=sample); th.start()
    t0 = time.monotonic()
    r = httpx.put(srv.url + "/dav/upload/big.mp4", content=body(), auth=("phone", key),
                  headers={"Content-Length": str(size)}, timeout=600)
    dt = time.monotonic() - t0
    stop = True; th.join()
    print(f"status {r.status_code} {r.text[:100]!r}; {size/2**20:.0f} MiB in {dt:.1f}s = {size/2**20/dt:.0f} MiB/s; "
          f"server RSS (all processes) before {base/1024:.0f} MiB, peak during {peak[0]/1024:.0f} MiB")

    conn = connect(srv.data_dir / "photobox.db")
    with conn:  # 2000 listed files in one folder (rows only; they point at the one asset)
        aid = conn.execute("SELECT id FROM assets").fetchone()[0]
        conn.execute("INSERT INTO dav_entries (parent, name, is_dir, mtime, created_at) VALUES ('upload', 'many', 1, 0, 0)")
        for i in range(2000):
            conn.execute("INSERT INTO dav_entries (parent, name, asset_id, size, checksum, mtime, created_at) VALUES ('upload/many', ?, ?, 123, ?, 0, 0)", (f"IMG_{i:05d}.jpg", aid, os.urandom(20)))
    conn.close()
    for label, creds in (("API key", ("phone", key)), ("owner password (cached)", ("alice", PASSWORD))):
        with httpx.Client(auth=creds) as cl:
            for depth, path, n in (("0", "/dav/upload/", 50), ("1", "/dav/upload/many/", 10)):
                cl.request("PROPFIND", srv.url + path, headers={"Depth": depth})
                t0 = time.monotonic()
                for _ in range(n):
                    r = cl.request("PROPFIND", srv.url + path, headers={"Depth": depth})
                print(f"PROPFIND Depth {depth} {path} ({label}): {(time.monotonic()-t0)/n*1000:.1f} ms each, {len(r.content)//1024} KiB")
finally:
    srv.stop()
