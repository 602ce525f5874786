"""Upload latency while `photobox places install --force` runs in another process.

A real server (granian, 127.0.0.1) on a fresh data folder with a gazetteer of realistic size
(144,561 towns, as GeoNames cities1000; generated like `scripts/bench places` does) already
installed. One client uploads small JPEGs through `POST /api/assets`, one after another, for
a few seconds (the baseline), then `photobox places install --force --from CSV` runs in
another process while the uploads go on. Prints the install's duration, upload latency
percentiles before and during it, failed uploads, and ERROR and "database is locked" lines
in the server's log.

`--root DIR` runs the server and the CLI from another checkout of photobox (e.g. main, to
compare before and after a change); the bench itself always runs from here.

Usage: scripts/bench places_install [--towns 144561] [--baseline-seconds 8] [--root DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def percentiles(values: list[float]) -> str:
    if not values:
        return "no uploads"
    ms = sorted(v * 1000 for v in values)
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return (f"n={len(ms)} p50={statistics.median(ms):.0f} ms p95={p(0.95):.0f} ms p99={p(0.99):.0f} ms "
            f"max={ms[-1]:.0f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--towns", type=int, default=144_561)
    ap.add_argument("--baseline-seconds", type=float, default=8.0)
    ap.add_argument("--root", type=Path, default=HERE.parent, help="the photobox checkout to run")
    args = ap.parse_args()
    root = args.root.resolve()
    sys.path[:0] = [str(root), str(HERE)]
    from bench_places import make_cities, write_csv  # noqa: E402 - the same town generator

    from photobox import auth  # noqa: E402 - from --root (before bench_places puts this tree first)
    from photobox.core import Photobox  # noqa: E402
    from photobox.settings import load_settings  # noqa: E402
    from tests.gen import jpeg_bytes  # noqa: E402
    from tests.server import Server  # noqa: E402

    work = Path(tempfile.mkdtemp(prefix="bench-places-install-"))
    data = work / "data"
    csv = work / "towns.csv"
    sha = write_csv(csv, make_cities(args.towns, random.Random(1)))
    env = {**os.environ, "PYTHONPATH": str(root)}
    cli = [sys.executable, "-m", "photobox", "--data-dir", str(data)]
    box = Photobox(load_settings({"data_dir": data}, env={})).open()
    with box.db.transaction() as conn:
        auth.set_password(conn, "bench", auth.hash_password("bench password"))
        _, key = auth.create_api_key(conn, "bench")
    box.close()
    subprocess.run([*cli, "places", "install", "--from", str(csv), "--sha256", sha, "--no-wait"], cwd=root, env=env,
                   check=True, capture_output=True)
    photos = [jpeg_bytes(seed=i, gps=(48.85 + i / 1000, 2.29)) for i in range(600)]
    server = Server(data).start()
    results: list[tuple[float, float, int]] = []  # (started, seconds, status)
    stop = threading.Event()

    def upload() -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
            for i, body in enumerate(photos):
                if stop.is_set():
                    return
                t0 = time.monotonic()
                try:
                    status = c.post("/api/assets", files={"file": (f"IMG_{i:04d}.jpg", body, "image/jpeg")},
                                    headers={"X-Checksum-SHA1": hashlib.sha1(body).hexdigest()}).status_code
                except httpx.HTTPError:
                    status = 0
                results.append((t0, time.monotonic() - t0, status))
                time.sleep(0.1)

    try:
        uploader = threading.Thread(target=upload)
        uploader.start()
        time.sleep(args.baseline_seconds)
        t_install = time.monotonic()
        r = subprocess.run([*cli, "places", "install", "--force", "--from", str(csv), "--sha256", sha, "--no-wait"],
                           cwd=root, env=env, capture_output=True, text=True)
        t_done = time.monotonic()
        time.sleep(3)
        stop.set()
        uploader.join()
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    before = [s for t, s, _ in results if t < t_install]
    during = [s for t, s, _ in results if t_install <= t < t_done]
    after = [s for t, s, _ in results if t >= t_done]
    failed = [st for _, _, st in results if st not in (200, 201)]
    print(f"photobox from {root}")
    print(f"places install --force ({args.towns} towns): {t_done - t_install:.1f} s, exit {r.returncode}")
    print(f"uploads before the install:  {percentiles(before)}")
    print(f"uploads during the install:  {percentiles(during)}")
    print(f"uploads in the 3 s after it: {percentiles(after)}")
    lines = log.splitlines()
    print(f"failed uploads: {len(failed)} {sorted(set(failed))}; server log: "
          f"{sum('ERROR' in line for line in lines)} ERROR lines, "
          f"{sum('database is locked' in line for line in lines)} 'database is locked' lines")
    return 0 if r.returncode == 0 and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
