#!/usr/bin/env python
"""Run: PYTHONPATH=. python scripts/bench_share.py [N]. Share pages at N (100k) assets: page 1, a deep page, contains(), neighbors(), count — album vs selection."""
import statistics
import sys
import tempfile
import time
from pathlib import Path

from photobox.core import Photobox
from photobox.settings import load_settings
from photobox.sharing import store

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
tmp = Path(tempfile.mkdtemp())
box = Photobox(load_settings({"data_dir": tmp / "data", "workers": 1}, env={})).open()
t0 = time.perf_counter()
with box.db.transaction() as c:
    c.executemany("INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, sort_ts, created_at, updated_at) "
                  "VALUES (1, ?, ?, ?, 1, 0, 'image', ?, 0, 0)",
                  ((f"x/{i}.jpg", f"{i}.jpg", i.to_bytes(20, 'big'), 1.6e9 + i * 37.0) for i in range(N)))
    c.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('big', 0, 0)")
    c.execute("INSERT INTO album_assets (album_id, asset_id, sort_ts, added_at) SELECT 1, id, sort_ts, 0 FROM assets")
    album, _ = store.create_share(c, album_id=1)
    sel, _ = store.create_share(c, asset_ids=range(1, min(N, store.MAX_SELECTION) + 1))
print(f"setup {N} assets + 2 shares: {time.perf_counter() - t0:.1f}s")

def bench(label, fn, reps=30):
    times = []
    with box.db.reader() as conn:
        for _ in range(reps):
            t = time.perf_counter(); fn(conn); times.append((time.perf_counter() - t) * 1000)
    print(f"{label:40s} median {statistics.median(times):7.2f} ms  p90 {sorted(times)[int(reps*.9)]:7.2f} ms")

for share in (album, sel):
    k = share.kind
    bench(f"{k}: page 1 (120 tiles)", lambda c, share=share: store.page(c, share, limit=120))
    with box.db.reader() as c:
        cur = store.page(c, share, limit=20_000)[-1].cursor
    bench(f"{k}: page at the middle (120 tiles)", lambda c, share=share, cur=cur: store.page(c, share, before=cur, limit=120))
    bench(f"{k}: contains() x100", lambda c, share=share: [store.contains(c, share, i) for i in range(1, N, N // 100)])
    bench(f"{k}: neighbors()", lambda c, share=share: store.neighbors(c, share, 20_000))
    bench(f"{k}: count", lambda c, share=share: store.count(c, share), reps=5)
    with box.db.reader() as c:
        plan = c.execute("EXPLAIN QUERY PLAN SELECT 1 " + store._SOURCES[k][0] + " AND x.asset_id = :asset",
                         {"album": 1, "share": share.id, "asset": 5}).fetchall()
    print("   plan contains:", "; ".join(r[-1] for r in plan))
box.close()
