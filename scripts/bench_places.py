"""Reverse-geocoding speed: the R*Tree lookup vs brute force, in the same run.

Builds a gazetteer of realistic size (150,000 towns by default, clustered like real
settlements: dense around 3,000 centres, sparse elsewhere, some at the poles and on the
antimeridian), loads it through the real loader into a fresh photobox data folder, then
times lookups of photo-like positions (near towns) and of random positions on the globe
(mostly sea: the worst case, the search widens to MAX_KM). The baseline computes the
haversine distance to every town with numpy for each lookup. Both must agree.

Usage: scripts/bench places [--cities 150000] [--lookups 5000] [--from rg_cities1000.csv]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photobox.core import Photobox  # noqa: E402
from photobox.places.geocoder import EARTH_RADIUS_KM, MAX_KM, nearest  # noqa: E402
from photobox.places.jobs import install  # noqa: E402
from photobox.settings import load_settings  # noqa: E402


def make_cities(n: int, rng: random.Random) -> list[tuple[float, float]]:
    centres = []
    for _ in range(3000):
        lat = math.degrees(math.asin(rng.uniform(-0.85, 0.95)))
        centres.append((lat, rng.uniform(-180, 180), rng.uniform(0.05, 1.5)))
    out = []
    for i in range(n):
        if i % 50 == 0:  # sparse: anywhere, incl. the poles and the antimeridian
            out.append((math.degrees(math.asin(rng.uniform(-1, 1))), rng.uniform(-180, 180)))
            continue
        lat0, lon0, spread = rng.choice(centres)
        lat = max(-90.0, min(90.0, rng.gauss(lat0, spread)))
        lon = (rng.gauss(lon0, spread / max(0.1, math.cos(math.radians(lat)))) + 180) % 360 - 180
        out.append((round(lat, 5), round(lon, 5)))
    return out


def write_csv(path: Path, cities: list[tuple[float, float]]) -> str:
    with open(path, "w") as f:
        f.write("lat,lon,name,admin1,admin2,cc\n")
        for i, (lat, lon) in enumerate(cities):
            f.write(f"{lat},{lon},Town {i},Region {i % 97},,XX\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def brute(lats: np.ndarray, lons: np.ndarray, lat: float, lon: float) -> tuple[int, float]:
    p1, p2 = math.radians(lat), np.radians(lats)
    h = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(np.radians(lons - lon) / 2) ** 2
    d = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(1.0, h)))
    i = int(np.argmin(d))
    return i, float(d[i])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cities", type=int, default=150_000)
    ap.add_argument("--lookups", type=int, default=5000)
    ap.add_argument("--brute-lookups", type=int, default=500)
    ap.add_argument("--from", dest="source", type=Path, default=None,
                    help="a real cities CSV (lat,lon,name,admin1,admin2,cc) instead of generated towns")
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="bench-places-") as tmp:
        tmp = Path(tmp)
        csv_path = tmp / "cities.csv"
        if args.source:
            import csv

            with open(args.source, newline="", encoding="utf-8") as f:
                cities = [(float(r["lat"]), float(r["lon"])) for r in csv.DictReader(f)]
            csv_path.write_bytes(args.source.read_bytes())
            sha = hashlib.sha256(csv_path.read_bytes()).hexdigest()
        else:
            cities = make_cities(args.cities, rng)
            sha = write_csv(csv_path, cities)
        box = Photobox(load_settings({"data_dir": tmp / "data", "workers": 1}, env={})).open()
        try:
            t0 = time.perf_counter()
            info = install(box, path=csv_path, sha256=sha)
            load_s = time.perf_counter() - t0
            print(f"gazetteer: {info['cities']} towns loaded in {load_s:.2f} s "
                  f"({info['cities'] / load_s:,.0f} rows/s), database {(tmp / 'data' / 'photobox.db').stat().st_size / 1e6:.1f} MB")
            lats = np.array([c[0] for c in cities])
            lons = np.array([c[1] for c in cities])
            photo_like = []
            for _ in range(args.lookups):
                lat, lon = rng.choice(cities)
                photo_like.append((max(-90.0, min(90.0, lat + rng.gauss(0, 0.05))), lon + rng.gauss(0, 0.05)))
            anywhere = [(math.degrees(math.asin(rng.uniform(-1, 1))), rng.uniform(-180, 180)) for _ in range(args.lookups)]
            with box.db.reader() as conn:
                for label, queries in (("photo-like (near towns)", photo_like), ("anywhere on the globe", anywhere)):
                    t0 = time.perf_counter()
                    hits = [nearest(conn, lat, lon) for lat, lon in queries]
                    rtree_s = time.perf_counter() - t0
                    sample = queries[: args.brute_lookups]
                    t0 = time.perf_counter()
                    base = [brute(lats, lons, lat, lon) for lat, lon in sample]
                    brute_s = time.perf_counter() - t0
                    mismatches = 0
                    for hit, (_i, d) in zip(hits, base):
                        expect_none = d > MAX_KM
                        if expect_none != (hit is None) or (hit is not None and abs(hit.distance_km - d) > 1e-6):
                            mismatches += 1
                    found = sum(h is not None for h in hits)
                    rtree_rate = len(queries) / rtree_s
                    brute_rate = len(sample) / brute_s
                    print(f"{label}: R*Tree {rtree_rate:,.0f} lookups/s ({rtree_s / len(queries) * 1e6:.0f} µs each, "
                          f"{found}/{len(queries)} with a town ≤ {MAX_KM:.0f} km); brute force (numpy over all "
                          f"{len(cities)}) {brute_rate:,.0f} lookups/s; speed-up {rtree_rate / brute_rate:.0f}×; "
                          f"disagreements {mismatches}/{len(sample)}")
        finally:
            box.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
