"""Load test: the real server (granian, its own process) with a generated library whose
metadata/thumbnail jobs are still running, driven from THIS process on 127.0.0.1 by concurrent
clients for a bounded time: timeline pages (full page + HTMX keyset pages), viewers and
thumbnails, filter searches (no models needed) and uploads of new photos.

Reports requests/second and p50/p95/p99 per kind, error counts, "database is locked" in
responses and in the server log (must be 0), and checks that every upload answered 2xx is an
asset with the right SHA-1 (and the data folder is consistent, see tests/resil.py). Then runs
the baseline in the same run: the same browsing clients alone, with no uploads and no jobs.

    scripts/bench load [--seconds 30] [--assets 300] [--browsers 4] [--uploaders 2]

The client shares the machine's cores with the server, so absolute numbers are pessimistic;
compare the two phases.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gen import jpeg_bytes  # noqa: E402
from tests.resil import api_key_for, check_data_folder  # noqa: E402
from tests.server import Server  # noqa: E402

PASSWORD = "correct horse battery"


@dataclass
class Stats:
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    locked: int = 0
    uploads: dict[int, str] = field(default_factory=dict)  # asset id -> sha1 hex of the bytes sent
    seconds: float = 0.0

    def add(self, kind: str, started: float, response: httpx.Response | None, error: str | None = None) -> None:
        self.times[kind].append(time.monotonic() - started)
        if response is not None and "database is locked" in response.text[:20000]:
            self.locked += 1
        if error is None and response is not None and response.status_code >= 400:
            error = f"HTTP {response.status_code}: {response.text[:120]}"
        if error:
            self.errors[kind].append(error)

    def total(self) -> int:
        return sum(len(v) for v in self.times.values())

    def report(self, title: str) -> dict:
        print(f"\n{title}: {self.total()} requests in {self.seconds:.1f} s = {self.total() / self.seconds:.1f} req/s; "
              f"errors {sum(len(v) for v in self.errors.values())}; 'database is locked' in responses: {self.locked}")
        print(f"  {'kind':10} {'count':>6} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}")
        summary = {}
        pages = sorted(t for k in ("timeline", "grid-page", "viewer", "search") for t in self.times.get(k, []))
        if len(pages) > 1:
            q = statistics.quantiles(pages, n=100, method="inclusive")
            summary["pages"] = {"count": len(pages), "p50": q[49], "p95": q[94], "p99": q[98]}
            print(f"  HTML pages (timeline, grid pages, viewer, search): p50 {q[49] * 1000:.0f} ms, "
                  f"p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms")
        for kind in sorted(self.times):
            t = sorted(self.times[kind])
            q = statistics.quantiles(t, n=100, method="inclusive") if len(t) > 1 else [t[0]] * 99
            summary[kind] = {"count": len(t), "p50": q[49], "p95": q[94], "p99": q[98],
                             "errors": len(self.errors[kind])}
            print(f"  {kind:10} {len(t):6d} {len(t) / self.seconds:7.1f} {q[49] * 1000:8.1f} {q[94] * 1000:8.1f} "
                  f"{q[98] * 1000:8.1f} {len(self.errors[kind]):6d}")
            for e in sorted(set(self.errors[kind]))[:3]:
                print(f"      e.g. {e}")
        return summary


def make_library(folder: Path, n: int, size: tuple[int, int]) -> None:
    """``n`` distinct JPEGs over a few years (many days, so the timeline has many groups)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    cameras = [("Pixelcam", "PC-1"), ("Canon", "EOS R6"), ("Apple", "iPhone 15")]
    for i in range(n):
        y, m, d = rng.randint(2019, 2024), rng.randint(1, 12), rng.randint(1, 28)
        make, model = cameras[i % 3]
        (folder / f"IMG_{i:05d}.jpg").write_bytes(jpeg_bytes(seed=i, size=size, taken=f"{y}:{m:02d}:{d:02d} 12:00:00",
                                                             make=make, model=model))


async def login(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = await client.post("/login", data={"username": "owner", "password": PASSWORD, "csrf_token": token})
    if r.status_code >= 400 or "/login" in str(r.url):
        raise SystemExit(f"login failed: {r.status_code} {r.text[:300]}")


async def browser(client: httpx.AsyncClient, stats: Stats, end: float, ids: list[int], rng: random.Random) -> None:
    """A person scrolling the timeline, opening photos and searching."""
    while time.monotonic() < end:
        choice = rng.random()
        started = time.monotonic()
        try:
            if choice < 0.35:
                r = await client.get("/")
                stats.add("timeline", started, r)
                more = re.search(r'hx-get="(/grid\?[^"]+)"', r.text)
                for _ in range(2):  # scroll: HTMX keyset pages
                    if not more or time.monotonic() >= end:
                        break
                    started = time.monotonic()
                    r = await client.get(more.group(1).replace("&amp;", "&"), headers={"HX-Request": "true"})
                    stats.add("grid-page", started, r)
                    more = re.search(r'hx-get="(/grid\?[^"]+)"', r.text)
            elif choice < 0.6:
                asset = rng.choice(ids)
                r = await client.get(f"/photos/{asset}")
                stats.add("viewer", started, r)
                started = time.monotonic()
                r = await client.get(f"/api/assets/{asset}/preview")
                stats.add("preview", started, r if r.status_code != 404 else None)  # 404: not made yet
            elif choice < 0.85:
                for asset in rng.sample(ids, min(6, len(ids))):
                    started = time.monotonic()
                    r = await client.get(f"/api/assets/{asset}/thumbnail")
                    stats.add("thumbnail", started, r if r.status_code != 404 else None)
            else:
                year = rng.randint(2019, 2024)
                params = rng.choice([{"from": f"{year}-01-01", "to": f"{year}-06-30"}, {"camera": "Canon"},
                                     {"type": "image", "from": f"{year}-03-01"}, {"q": "", "fav": "1"}])
                r = await client.get("/search", params=params)
                stats.add("search", started, r)
        except httpx.HTTPError as exc:
            stats.add("transport", started, None, f"{type(exc).__name__}: {exc}")


async def uploader(client: httpx.AsyncClient, stats: Stats, end: float, seed0: int, key: str) -> None:
    i = 0
    while time.monotonic() < end:
        data = jpeg_bytes(seed=seed0 + i, size=(1024, 768), taken="2025:05:05 10:00:00")
        i += 1
        started = time.monotonic()
        try:
            r = await client.post("/api/assets", files={"file": (f"load_{seed0 + i}.jpg", data, "image/jpeg")},
                                  headers={"x-api-key": key})
        except httpx.HTTPError as exc:
            stats.add("upload", started, None, f"{type(exc).__name__}: {exc}")
            continue
        stats.add("upload", started, r)
        if r.status_code in (200, 201):
            stats.uploads[r.json()["id"]] = hashlib.sha1(data).hexdigest()


async def run_phase(url: str, key: str, ids: list[int], seconds: float, browsers: int, uploaders: int,
                    seed0: int) -> Stats:
    stats = Stats()
    limits = httpx.Limits(max_connections=browsers + uploaders + 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, follow_redirects=True) as session, \
            httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as api:
        await login(session)
        started = time.monotonic()
        end = started + seconds
        rng = random.Random(seed0)
        tasks = [browser(session, stats, end, ids, random.Random(rng.random())) for _ in range(browsers)]
        tasks += [uploader(api, stats, end, seed0 + 100_000 * (u + 1), key) for u in range(uploaders)]
        await asyncio.gather(*tasks)
        stats.seconds = time.monotonic() - started
    return stats


def _jobs_pending(url: str, data: Path) -> int:
    from photobox.db import connect

    conn = connect(data / "photobox.db", readonly=True)
    try:
        return conn.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()[0]
    finally:
        conn.close()


def _verify_uploads(url: str, key: str, uploads: dict[int, str]) -> list[str]:
    problems = []
    with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60) as c:
        for asset_id, sha in uploads.items():
            r = c.get(f"/api/assets/{asset_id}")
            if r.status_code != 200:
                problems.append(f"upload {asset_id}: HTTP {r.status_code}")
            elif r.json()["checksum"] != sha:
                problems.append(f"upload {asset_id}: checksum {r.json()['checksum']} != sent {sha}")
    return problems


def run(seconds: float, n_assets: int, browsers: int, uploaders: int, image_size=(1600, 1200),
        baseline: bool = True, work: Path | None = None) -> dict:
    """The whole benchmark; returns a summary (used by the smoke test)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(work or tmp)
        data, src = root / "data", root / "src"
        t0 = time.monotonic()
        make_library(src, n_assets, image_size)
        Server(data).start().stop()
        key = api_key_for(data)
        subprocess.run([sys.executable, "-m", "photobox", "import", "--no-wait", "--data-dir", str(data), str(src)],
                       cwd=ROOT, check=True, capture_output=True)
        print(f"library: {n_assets} JPEGs {image_size[0]}x{image_size[1]} imported in {time.monotonic() - t0:.1f} s; "
              f"metadata/thumbnail jobs left for the server")
        server = Server(data).start()
        try:
            from photobox.db import connect

            conn = connect(data / "photobox.db", readonly=True)
            ids = [r[0] for r in conn.execute("SELECT id FROM assets ORDER BY id")]
            conn.close()
            pending_before = _jobs_pending(server.url, data)
            loaded = asyncio.run(run_phase(server.url, key, ids, seconds, browsers, uploaders, seed0=1))
            pending_after = _jobs_pending(server.url, data)
            summary = {"load": loaded.report(f"LOAD ({browsers} browsing + {uploaders} uploading clients, "
                                             f"jobs queued/running: {pending_before} at start, {pending_after} at end)"),
                       "uploads": len(loaded.uploads), "locked": loaded.locked,
                       "errors": sum(len(v) for v in loaded.errors.values()),
                       "rps": loaded.total() / loaded.seconds, "pending_before": pending_before}
            problems = _verify_uploads(server.url, key, loaded.uploads)
            print(f"uploads answered 2xx: {len(loaded.uploads)}; verified by checksum: "
                  f"{len(loaded.uploads) - len(problems)}; problems: {problems[:5]}")
            summary["upload_problems"] = problems
            if baseline:
                deadline = time.monotonic() + 600
                while _jobs_pending(server.url, data) and time.monotonic() < deadline:
                    time.sleep(0.5)
                base = asyncio.run(run_phase(server.url, key, ids, seconds, browsers, 0, seed0=1))
                summary["baseline"] = base.report(f"BASELINE (same {browsers} browsing clients, no uploads, "
                                                  f"no jobs running)")
                summary["baseline_rps"] = base.total() / base.seconds
                summary["locked"] += base.locked
                summary["errors"] += sum(len(v) for v in base.errors.values())
        finally:
            server.stop()
        log = server.log.read_text()
        summary["log_locked"] = log.count("database is locked")
        summary["log_tracebacks"] = log.count("Traceback")
        report = check_data_folder(data)
        summary["folder_problems"] = report.problems
        print(f"server log: 'database is locked' x{summary['log_locked']}, tracebacks x{summary['log_tracebacks']}; "
              f"data folder: {report.assets} assets, {report.library_files} files, problems: {report.problems[:5]}")
        return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--browsers", type=int, default=4)
    parser.add_argument("--uploaders", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    summary = run(args.seconds, args.assets, args.browsers, args.uploaders, baseline=not args.no_baseline)
    bad = summary["locked"] or summary["log_locked"] or summary["errors"] or summary["upload_problems"] \
        or summary["folder_problems"] or summary["log_tracebacks"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
