"""Server time of the key pages on a generated library, at 10k and 100k assets.

Builds a library of N asset rows spread over 2005–2026 (with tiny real WebP thumbnails
shared through hard links, so the data folder looks real), an album of 5% of them, then
starts the real server (granian) and reads the ``Server-Timing`` header of:
the first timeline page, a deep page (the timeline jumped to June 2015), the next page
after that (keyset cursor), an album page, and a viewer page. Goal on a 2-core machine:
median under 50 ms, and no more than 2x growth from 10k to 100k.

    scripts/bench web [--sizes 10000 100000] [--requests 30]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from photobox import auth  # noqa: E402
from photobox.core import Photobox  # noqa: E402
from photobox.library.paths import derived_path  # noqa: E402
from photobox.settings import load_settings  # noqa: E402
from tests.server import Server  # noqa: E402

START = time.mktime((2005, 1, 1, 0, 0, 0, 0, 0, 0))
END = time.mktime((2026, 11, 1, 0, 0, 0, 0, 0, 0))


def build(data: Path, n: int, *, thumbs: bool) -> None:
    settings = load_settings({"data_dir": data}, env={})
    box = Photobox(settings).open()
    rng = random.Random(n)
    placeholder = bytes.fromhex("1a08060d80a6b6789f87779877887788877705")  # any thumbhash-sized blob
    with box.db.transaction() as conn:
        owner = auth.get_owner(conn)
        if owner is None:
            auth.create_owner(conn, "bench", auth.hash_password("bench password"))
        now = time.time()
        rows = []
        for i in range(n):
            ts = rng.uniform(START, END)
            local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
            w, h = rng.choice([(4032, 3024), (3024, 4032), (1920, 1080), (4000, 3000)])
            kind = "video" if rng.random() < 0.05 else "image"
            rows.append((1, f"{local[:4]}/{local[5:7]}/IMG_{i:07d}.jpg", f"IMG_{i:07d}.jpg",
                         os.urandom(20), rng.randint(500_000, 6_000_000), ts, kind, "image/jpeg", local, 60,
                         "exif", ts, local[:10], w, h, w, h, 12.0 if kind == "video" else None, 1,
                         placeholder, rng.random() < 0.02, now, now))
        conn.executemany(
            "INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, mime, taken_at, "
            "tz_offset_min, taken_at_source, sort_ts, local_date, width, height, display_width, display_height, "
            "duration, thumb_version, placeholder, favorite, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('Bench album', ?, ?)", (now, now))
        album_id = conn.last_insert_rowid()
        conn.execute("INSERT INTO album_assets (album_id, asset_id, sort_ts, added_at) "
                     "SELECT ?, id, sort_ts, ? FROM assets WHERE id % 20 = 0", (album_id, now))
        conn.execute("ANALYZE")
    if thumbs:
        from PIL import Image

        with box.db.reader() as conn:
            ids = [i for (i,) in conn.execute("SELECT id FROM assets")]
        for k, asset_id in enumerate(ids):
            sample = box.path("tmp", f"sample{k // 50_000}.webp")  # a file takes at most ~65k hard links
            if not sample.exists():
                Image.new("RGB", (8, 6), (90, 120, 160)).save(sample, "WEBP")
            p = derived_path(box, "thumb", asset_id)
            p.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(sample, p)
            except FileExistsError:
                pass
    box.close()


def timings(client: httpx.Client, url: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        r = client.get(url)
        r.raise_for_status()
        out.append(float(re.search(r"dur=([\d.]+)", r.headers["server-timing"]).group(1)))
    return out


def measure(n: int, requests: int, thumbs: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.monotonic()
        build(data, n, thumbs=thumbs)
        print(f"  built {n} assets in {time.monotonic() - t0:.1f} s", flush=True)
        server = Server(data).start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                login = c.get("/login")
                token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
                c.post("/login", data={"username": "bench", "password": "bench password", "csrf_token": token})
                deep = c.get("/?at=2015-06").text
                more = re.search(r'hx-get="(/grid\?[^"]+)"', deep).group(1).replace("&amp;", "&")
                first_id = re.search(r'data-id="(\d+)"', deep).group(1)
                album_id = re.search(r"/albums/(\d+)", c.get("/albums").text).group(1)
                urls = {
                    "timeline first page": "/",
                    "timeline deep (2015-06)": "/?at=2015-06",
                    "next page (keyset)": more,
                    "album page": f"/albums/{album_id}",
                    "viewer": f"/photos/{first_id}?in=timeline",
                }
                for url in urls.values():  # warm caches (the month index, page cache)
                    timings(c, url, 2)
                return {name: statistics.median(timings(c, url, requests)) for name, url in urls.items()}
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--no-thumbs", action="store_true", help="skip writing thumbnail files (faster build)")
    args = parser.parse_args()
    results = {}
    for n in args.sizes:
        print(f"library of {n} assets:", flush=True)
        results[n] = measure(n, args.requests, not args.no_thumbs)
        for name, ms in results[n].items():
            print(f"  {name:26} median {ms:6.2f} ms")
    if len(args.sizes) >= 2:
        small, large = args.sizes[0], args.sizes[-1]
        print(f"growth {small} → {large}:")
        ok = True
        for name in results[small]:
            ratio = results[large][name] / max(results[small][name], 0.01)
            good = results[large][name] < 50 and ratio <= 2
            ok &= good
            print(f"  {name:26} x{ratio:4.2f}  {'ok' if good else 'OVER GOAL'} (goal < 50 ms and ≤ 2x)")
        print("all goals met" if ok else "some goals missed")


if __name__ == "__main__":
    main()
