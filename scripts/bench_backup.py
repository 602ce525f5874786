"""Benchmark backups (baseline: a plain cp of the DB file), the sidecar export/apply, and the
integrity check's hashing (baseline: sha1sum), on a synthetic 100k-asset database.

Run: PYTHONPATH=. python scripts/bench_backup.py
"""
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from photobox.core import Photobox
from photobox.safety import backups, integrity, sidecar
from photobox.settings import load_settings

d = pathlib.Path(tempfile.mkdtemp(dir="/tmp"))
s = load_settings({"data_dir": d / "data", "workers": 1}, env={})
box = Photobox(s).open()
N = 100_000
with box.db.transaction() as conn:
    conn.executemany("INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, sort_ts, "
                     "created_at, updated_at, favorite, metadata) VALUES (1, ?, ?, ?, 1, 0, 'image', ?, 0, 0, ?, ?)",
                     [(f"2020/{i:06d}.jpg", f"{i}.jpg", hashlib.sha1(str(i).encode()).digest(), i, 1 if i % 5 == 0 else 0,
                       json.dumps({"Make": "Camera", "x": "y" * 200})) for i in range(N)])
    conn.execute("INSERT INTO albums (id, name, created_at, updated_at) VALUES (1, 'big', 0, 0)")
    conn.execute("INSERT INTO album_assets (album_id, asset_id, sort_ts, added_at) SELECT 1, id, sort_ts, 0 FROM assets WHERE id % 10 = 0")
box.db.close(); box = Photobox(s).open()
size = s.db_path.stat().st_size
t = time.perf_counter(); shutil.copyfile(s.db_path, d / "copy.db"); cp = time.perf_counter() - t
t = time.perf_counter(); dest = backups.make_backup(box); bk = time.perf_counter() - t
t = time.perf_counter()
with box.db.reader() as conn: data = sidecar.export(conn)
ex = time.perf_counter() - t
t = time.perf_counter()
with box.db.transaction() as conn: st = sidecar.apply(conn, data, now=0)
ap = time.perf_counter() - t
print(f"DB {size/1048576:.1f} MiB, {N} assets: cp {cp:.2f}s (baseline); make_backup incl. quick_check + sidecar {bk:.2f}s; "
      f"sidecar json {dest.with_suffix('.json').stat().st_size/1048576:.1f} MiB, export {ex:.2f}s, apply {ap:.2f}s ({st['assets']} assets)")
big = d / "big.bin"; big.write_bytes(os.urandom(256 * 1048576))
t = time.perf_counter(); subprocess.run(["sha1sum", str(big)], capture_output=True); base = time.perf_counter() - t
t = time.perf_counter(); integrity._sha1(big); ours = time.perf_counter() - t
print(f"hash 256 MiB: sha1sum {base:.2f}s (baseline), integrity._sha1 {ours:.2f}s")
box.close(); shutil.rmtree(d)
