"""Ingest throughput: files/second for hash + metadata + thumbnails through photobox's real
import pipeline, compared with a plain single-threaded Pillow loop over the same images.

    scripts/bench ingest [--count 40] [--workers W] [--heic-fraction 0.1] [--videos 2]
                         [--keep DIR] [--seed 1] [--rounds 1] [--profile]

The corpus is generated deterministically (seeded): ``--count`` 12 MP JPEGs (4000x3000,
smooth colour regions + shapes with edges + texture + sensor-like noise, quality 90, ~3-4 MB,
EXIF DateTimeOriginal/Make/Model/exposure/some GPS and an EXIF thumbnail via piexif), plus
``--heic-fraction`` x N 12 MP HEIC (pillow-heif, x265) and ``--videos`` 1080p H.264 + AAC
MP4s of 3-5 s (PyAV). It lives in a temp folder for this run, or in ``--keep DIR``, where it
is reused by later runs with the same parameters.

Each phase runs in a fresh subprocess of this script (``--phase photobox|baseline``) so the
peak RSS (``ru_maxrss``) is per phase:

* photobox: a ``Photobox`` on a fresh data folder with ``--workers`` threads (default: CPU
  count); every file goes through ``photobox.library.commands.import_one`` (stream to a TempWriter while
  hashing, fsync, metadata, DB insert, queue stages) in a bounded thread pool exactly like
  ``photobox import``, then the queued jobs run until idle (thumbnail + preview +
  ThumbHash; video posters). Timed wall clock, from the first file to the last thumbnail.
  Stages other than metadata/thumbs/motion (the ``video`` web-rendition stage, later ML
  stages) are held back and run afterwards, timed separately, so they never count in the
  "hash+metadata+thumbnails" number. Three fresh runs: JPEG only, all images (JPEG+HEIC),
  and everything (with the videos).
* baseline: for each image, ``Image.open`` -> ``.convert("RGB")`` -> ``.resize()`` to a
  1440 px short side (Pillow's default filter, bicubic) -> save JPEG q85; one thread.

``--profile`` additionally runs the photobox pipeline on one thread under cProfile (import,
then every queued job in the main thread), prints where the time goes, and replays
``make_thumbnails``' steps one by one on one JPEG and one HEIC.

Besides wall-clock files/s, both phases report CPU ms per file (user + system, all threads),
which other processes on the machine barely affect; the CPU ratio shows how much of the
speed-up is less work per file rather than more threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GEN_VERSION = 3  # bump when the generated corpus changes, so --keep folders regenerate
WIDTH, HEIGHT = 4000, 3000
VIDEO_W, VIDEO_H, VIDEO_FPS = 1920, 1080, 30
PREVIEW_SHORT_SIDE = 1440  # photobox.media.thumbs.make_thumbnails' preview_size
TIMED_KINDS = frozenset({"ingest.file", "metadata", "thumbs", "motion"})
CAMERAS = [(b"Canon", b"Canon EOS R6"), (b"SONY", b"ILCE-7M3"), (b"samsung", b"SM-G991B"),
           (b"Google", b"Pixel 7"), (b"FUJIFILM", b"X-T4")]


# ----------------------------------------------------------------------------- corpus

_NOISE = None  # per process: one seeded noise field, sliced at random offsets per image


def _noise_field(seed: int):
    import numpy as np

    global _NOISE
    if _NOISE is None or _NOISE[0] != seed:
        rng = np.random.default_rng([seed, 7])
        lum = rng.standard_normal((HEIGHT + 64, WIDTH + 64), dtype=np.float32)
        chroma = rng.standard_normal((HEIGHT // 2 + 32, WIDTH // 2 + 32, 3), dtype=np.float32)
        _NOISE = (seed, lum, chroma)
    return _NOISE[1], _NOISE[2]


def _photo(seed: int, index: int):
    """A 4000x3000 photo-like RGB image: sky/ground gradient, soft colour blobs, hard-edged
    shapes (slightly blurred, as through a lens), mid-frequency texture, sensor noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng([seed, index])
    lum, chroma = _noise_field(seed)
    # Muted palette: random colours pulled towards grey, like most real scenes.
    grid = rng.random((6, 8, 3)) * 170 + 40
    grid = 0.55 * grid + 0.45 * grid.mean(axis=2, keepdims=True)
    sky, ground = rng.integers(120, 230, 3), rng.integers(30, 140, 3)
    t = np.linspace(0, 1, 6)[:, None, None]
    grid = 0.5 * grid + 0.5 * (sky * (1 - t) + ground * t)
    base = Image.fromarray(grid.astype(np.uint8)).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(int(rng.integers(10, 24))):
        x0, y0 = int(rng.integers(-200, WIDTH)), int(rng.integers(-200, HEIGHT))
        w, h = int(rng.integers(60, 1400)), int(rng.integers(60, 1100))
        colour = tuple(int(v) for v in (0.6 * rng.integers(15, 240, 3) + 0.4 * rng.integers(60, 180)))
        shape = int(rng.integers(0, 4))
        if shape == 0:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif shape == 1:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        elif shape == 2:
            pts = [(x0 + int(rng.integers(0, w)), y0 + int(rng.integers(0, h))) for _ in range(5)]
            draw.polygon(pts, fill=colour)
        else:
            draw.line([x0, y0, x0 + w, y0 + h], fill=colour, width=int(rng.integers(2, 30)))
    base = base.filter(ImageFilter.BoxBlur(1))
    tex_small = rng.random((HEIGHT // 8, WIDTH // 8), dtype=np.float32) * 255
    tex = Image.fromarray(tex_small.astype(np.uint8)).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    arr = np.asarray(base, dtype=np.float32)
    grain = np.asarray(tex, dtype=np.float32)
    grain -= 127.5
    grain *= 14 / 127.5
    oy, ox = (int(v) for v in rng.integers(0, 64, 2))
    grain += lum[oy:oy + HEIGHT, ox:ox + WIDTH] * 5.5
    arr += grain[..., None]
    cy, cx = (int(v) for v in rng.integers(0, 32, 2))
    arr += np.repeat(np.repeat(chroma[cy:cy + HEIGHT // 2, cx:cx + WIDTH // 2], 2, 0), 2, 1) * 3.0
    np.clip(arr, 0, 255, out=arr)
    return Image.fromarray(arr.astype(np.uint8))


def _taken(index: int) -> dt.datetime:
    return dt.datetime(2023, 5, 1, 9, 0, 0) + dt.timedelta(minutes=7 * index, seconds=13 * index)


def _exif(index: int, make: bytes, model: bytes, thumb: bytes | None) -> bytes:
    import piexif

    when = _taken(index).strftime("%Y:%m:%d %H:%M:%S").encode()
    exif = {
        "0th": {piexif.ImageIFD.Make: make, piexif.ImageIFD.Model: model, piexif.ImageIFD.Orientation: 1,
                piexif.ImageIFD.DateTime: when, piexif.ImageIFD.Software: b"photobox-bench"},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: when, piexif.ExifIFD.DateTimeDigitized: when,
                 piexif.ExifIFD.SubSecTimeOriginal: b"%02d" % (index % 100),
                 piexif.ExifIFD.OffsetTimeOriginal: b"+02:00",
                 piexif.ExifIFD.ExposureTime: (1, 125 + index), piexif.ExifIFD.FNumber: (28, 10),
                 piexif.ExifIFD.ISOSpeedRatings: 100 + 10 * (index % 20), piexif.ExifIFD.FocalLength: (50, 1),
                 piexif.ExifIFD.ColorSpace: 1, piexif.ExifIFD.PixelXDimension: WIDTH,
                 piexif.ExifIFD.PixelYDimension: HEIGHT},
        "GPS": {},
        "1st": {},
        "thumbnail": None,
    }
    if index % 2 == 0:  # half the photos carry a position
        lat, lon = 48.1 + index * 0.001, 11.5 + index * 0.002

        def dms(v: float):
            d, rem = int(v), (v - int(v)) * 60
            return ((d, 1), (int(rem), 1), (int((rem - int(rem)) * 60 * 100), 100))

        exif["GPS"] = {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: dms(lat),
                       piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: dms(lon)}
    if thumb:
        exif["1st"] = {piexif.ImageIFD.Compression: 6, piexif.ImageIFD.XResolution: (72, 1),
                       piexif.ImageIFD.YResolution: (72, 1), piexif.ImageIFD.ResolutionUnit: 2}
        exif["thumbnail"] = thumb
    return piexif.dump(exif)


def _gen_image(folder: str, seed: int, index: int, kind: str) -> dict:
    import pillow_heif
    from PIL import Image

    im = _photo(seed, index)
    if kind == "jpeg":
        make, model = CAMERAS[index % len(CAMERAS)]
        small = im.resize((160, 120), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=75)
        path = Path(folder, f"IMG_{index + 1:04d}.jpg")
        im.save(path, "JPEG", quality=90, exif=_exif(index, make, model, buf.getvalue()))
    else:
        path = Path(folder, f"IMG_{index + 1:04d}.HEIC")
        heif = pillow_heif.from_pillow(im)
        # x265 "ultrafast": ~1.3 s per 12 MP image instead of ~8 s; decoding cost is the same.
        heif.save(path, quality=60, exif=_exif(index, b"Apple", b"iPhone 13 Pro", None),
                  enc_params={"preset": "ultrafast"})
    ts = _taken(index).timestamp()
    os.utime(path, (ts, ts))
    return {"name": path.name, "kind": kind, "size": path.stat().st_size}


def _gen_video(folder: str, seed: int, index: int) -> dict:
    """1080p30 H.264 (yuv420p, High) + AAC stereo in MP4, 3-5 s: a drifting colour field
    with grain and a moving bright block (so the encoder has real motion to code)."""
    import av
    import numpy as np

    rng = np.random.default_rng([seed, 1000 + index])
    seconds = 3 + index % 3
    path = Path(folder, f"VID_{index + 1:04d}.mp4")
    pad_y, pad_x = 240, 480
    yy, xx = np.mgrid[0:VIDEO_H + pad_y, 0:VIDEO_W + pad_x].astype(np.float32)
    ph = rng.random(3) * 6
    canvas = np.stack([128 + 90 * np.sin(xx / 310 + ph[0]), 128 + 90 * np.sin(yy / 190 + ph[1]),
                       128 + 90 * np.cos((xx + yy) / 420 + ph[2])], axis=-1)
    canvas += rng.standard_normal(canvas.shape[:2], dtype=np.float32)[..., None] * 6
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    out = av.open(str(path), "w", options={"movflags": "+faststart"})
    try:
        out.metadata["creation_time"] = _taken(500 + index).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        vs = out.add_stream("libx264", rate=VIDEO_FPS)
        vs.width, vs.height, vs.pix_fmt = VIDEO_W, VIDEO_H, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "21"}
        aus = out.add_stream("aac", rate=48000)
        aus.layout = "stereo"
        frames = seconds * VIDEO_FPS
        for i in range(frames):
            dy, dx = (i * 2) % pad_y, (i * 4) % pad_x
            frame = np.ascontiguousarray(canvas[dy:dy + VIDEO_H, dx:dx + VIDEO_W])
            bx = 200 + i * 12 % (VIDEO_W - 400)
            frame[400:600, bx:bx + 200] = (240, 230, 200)
            for packet in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        rate, size, pts = 48000, 1024, 0
        while pts < seconds * rate:
            t = np.arange(pts, pts + size, dtype=np.float32) / rate
            s = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([s, s]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = rate, pts
            for packet in aus.encode(af):
                out.mux(packet)
            pts += size
        for packet in aus.encode():
            out.mux(packet)
    finally:
        out.close()
    ts = _taken(500 + index).timestamp()
    os.utime(path, (ts, ts))
    return {"name": path.name, "kind": "video", "size": path.stat().st_size}


def _gen_one(task: tuple) -> dict:
    folder, seed, index, kind = task
    return _gen_video(folder, seed, index) if kind == "video" else _gen_image(folder, seed, index, kind)


def ensure_corpus(folder: Path, spec: dict) -> tuple[list[dict], float | None]:
    """Generate the corpus into ``folder`` unless a matching one is there; return
    (files, seconds spent generating or None when reused)."""
    manifest = folder / "corpus.json"
    if manifest.is_file():
        try:
            saved = json.loads(manifest.read_text())
            if saved["spec"] == spec and all((folder / f["name"]).is_file()
                                             and (folder / f["name"]).stat().st_size == f["size"]
                                             for f in saved["files"]):
                return saved["files"], None
        except (ValueError, KeyError, OSError):
            pass
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file() and old.suffix.lower() in {".jpg", ".heic", ".mp4", ".json"}:
            old.unlink()
    n = spec["count"]
    n_heic = round(n * spec["heic_fraction"])
    tasks = [(str(folder), spec["seed"], i, "jpeg") for i in range(n)]
    tasks += [(str(folder), spec["seed"], n + i, "heic") for i in range(n_heic)]
    tasks += [(str(folder), spec["seed"], i, "video") for i in range(spec["videos"])]
    tasks.sort(key=lambda t: t[3] == "jpeg")  # slow ones first: better packing
    t0 = time.perf_counter()
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        files = list(pool.map(_gen_one, tasks))
    files.sort(key=lambda f: f["name"])
    manifest.write_text(json.dumps({"spec": spec, "files": files}, indent=1))
    return files, time.perf_counter() - t0


# ----------------------------------------------------------------------------- phases

def _cpu_s() -> float:
    """CPU seconds (user + system) of this process, all threads: unlike wall time, barely
    affected by other processes competing for the cores."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _OnlyKinds:
    """A view of a JobRegistry whose iteration (what the scheduler claims from) is limited to
    some kinds; lookups still see every kind, so stages are queued as usual."""

    def __init__(self, registry, kinds) -> None:
        self._registry, self._kinds = registry, kinds

    def __iter__(self):
        return (spec for spec in self._registry if spec.kind in self._kinds)

    def __contains__(self, kind: str) -> bool:
        return kind in self._registry

    def get(self, kind: str):
        return self._registry.get(kind)


def _open_box(data: Path, workers: int, isolate: bool = True):
    from photobox.core import Photobox
    from photobox.settings import load_settings

    settings = load_settings({"data_dir": data, "workers": workers, "isolate_decoders": isolate}, env={})
    return Photobox(settings).open()


def _job_stats(box) -> dict:
    """Per kind: count by state, seconds from claim to done (summed) and the most jobs of that
    kind claimed at the same moment (from the started_at/finished_at intervals; a claimed job
    may still wait for a free thread of the CPU pool)."""
    with box.db.reader() as conn:
        rows = conn.execute("SELECT kind, state, started_at, finished_at FROM jobs").fetchall()
    stats: dict = {}
    edges: dict[str, list[tuple[float, int]]] = {}
    for kind, state, started, finished in rows:
        entry = stats.setdefault(kind, {"busy_s": 0.0, "max_parallel": 0})
        entry[state] = entry.get(state, 0) + 1
        if started is not None and finished is not None:
            entry["busy_s"] += finished - started
            edges.setdefault(kind, []).extend([(started, 1), (finished, -1)])
    for kind, points in edges.items():
        running = 0
        for _, step in sorted(points, key=lambda p: (p[0], p[1])):  # an end before a start at the same time
            running += step
            stats[kind]["max_parallel"] = max(stats[kind]["max_parallel"], running)
    return stats


class _TreeSampler:
    """isolate: RSS of this process plus its decoder children (photobox.media.sandbox), summed
    and sampled every 50 ms (ru_maxrss sees one process only), and the children's CPU time."""

    def __init__(self, box) -> None:
        import threading

        self.box, self.peak_kib, self._stop = box, 0, threading.Event()
        self._cpu_gone = 0.0  # CPU of children that exited (recycled) while sampling
        self._last: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss_kib(pid: int | str) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def children_cpu_s(self) -> float:
        """CPU seconds (user + system) of decoder children, live and (as last seen) exited."""
        tick = os.sysconf("SC_CLK_TCK")
        now: dict[int, float] = {}
        for pid in self.box.decoders.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                now[pid] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
        for pid, cpu in list(self._last.items()):
            if pid not in now:
                self._cpu_gone += cpu
                del self._last[pid]
        self._last.update(now)
        return self._cpu_gone + sum(now.values())

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            total = self._rss_kib("self") + sum(self._rss_kib(p) for p in self.box.decoders.pids())
            self.peak_kib = max(self.peak_kib, total)
            self.children_cpu_s()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _pipeline_run(paths: list[Path], data: Path, workers: int, isolate: bool = True) -> dict:
    """One fresh data folder; import ``paths`` like `photobox import`, run the jobs. Timed."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from photobox.library.commands import import_one as _import_one
    from photobox.library.ingest import RejectedFile

    box = _open_box(data, workers, isolate)
    sampler = _TreeSampler(box)
    try:
        counts = {"created": 0, "duplicate": 0, "refused": 0}
        errors: list[str] = []
        n_workers = box.settings.cpu_workers
        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n_workers) as pool:  # the same bounded look-ahead as cmd_import
            pending: list = []

            def drain(limit: int) -> None:
                while len(pending) > limit:
                    src, future = pending.pop(0)
                    try:
                        counts[future.result().status] += 1
                    except (RejectedFile, OSError) as exc:
                        counts["refused"] += 1
                        errors.append(f"{src.name}: {exc}")

            for src in paths:
                pending.append((src, pool.submit(_import_one, box, src)))
                drain(n_workers * 2)
            drain(0)
        t_import = time.perf_counter() - t0

        registry = box.scheduler.registry
        held_back = sorted(spec.kind for spec in registry if spec.kind not in TIMED_KINDS)

        async def run_jobs() -> tuple[float, float, float]:
            try:
                box.scheduler.registry = _OnlyKinds(registry, TIMED_KINDS)
                await box.scheduler.run_until_idle()
                t_jobs = time.perf_counter() - t0 - t_import
                cpu = _cpu_s() - cpu0 + sampler.children_cpu_s()
                box.scheduler.registry = registry
                t1 = time.perf_counter()
                await box.scheduler.run_until_idle()
                return t_jobs, cpu, time.perf_counter() - t1
            finally:
                box.scheduler.registry = registry
                await box.scheduler.stop()

        t_jobs, cpu, t_later = asyncio.run(run_jobs())
        jobs = _job_stats(box)
        with box.db.reader() as conn:
            renditions = dict(conn.execute("SELECT coalesce(rendition, 'null'), count(*) FROM assets "
                                           "WHERE kind = 'video' GROUP BY 1").fetchall())
            asset_errors = [r[0] for r in conn.execute("SELECT error FROM assets WHERE error IS NOT NULL")]
        transcoded = sorted(p.name for p in box.path("cache", "video").rglob("*") if p.is_file())
        return {"files": len(paths), "workers": n_workers, "counts": counts, "refused": errors,
                "import_s": t_import, "jobs_s": t_jobs, "timed_s": t_import + t_jobs,
                "cpu_s": cpu, "held_back_kinds": held_back, "later_s": t_later, "jobs": jobs,
                "renditions": renditions, "transcoded_files": transcoded, "asset_errors": asset_errors,
                "children_started": box.decoders.started, "tree_peak_rss_mib": sampler.peak_kib / 1024}
    finally:
        sampler.stop()
        box.close()


def phase_photobox(corpus: Path, files: list[dict], workers: int, tmp: Path, isolate: bool = True) -> dict:
    # Import lazily loaded modules up front: their import time is start-up, not throughput.
    import photobox.media.metadata  # noqa: F401
    import photobox.media.thumbs  # noqa: F401
    import photobox.media.video  # noqa: F401
    from photobox.library.commands import iter_import_files as _iter_import_files

    start_rss = _peak_rss_mib()
    by_name = {f["name"]: f["kind"] for f in files}
    ordered = [p for p in _iter_import_files([corpus]) if p.name in by_name]  # the CLI's walk order
    selections = {
        "jpeg": [p for p in ordered if by_name[p.name] == "jpeg"],
        "images": [p for p in ordered if by_name[p.name] in ("jpeg", "heic")],
        "all": ordered,
    }
    runs = {}
    for name, paths in selections.items():
        if not paths or (name == "images" and len(paths) == len(selections["jpeg"])) or \
                (name == "all" and len(paths) == len(selections["images"])):
            continue
        data = tmp / f"data-{name}"
        try:
            runs[name] = _pipeline_run(paths, data, workers, isolate)
            runs[name]["peak_rss_after_mib"] = _peak_rss_mib()
        finally:
            shutil.rmtree(data, ignore_errors=True)
    return {"runs": runs, "peak_rss_mib": _peak_rss_mib(), "start_rss_mib": start_rss, "isolate": isolate}


def phase_baseline(corpus: Path, files: list[dict], tmp: Path) -> dict:
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    start_rss = _peak_rss_mib()
    out = tmp / "baseline.jpg"
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    count: dict[str, int] = {}
    for f in files:
        if f["kind"] not in ("jpeg", "heic"):
            continue
        t0, c0 = time.perf_counter(), _cpu_s()
        with Image.open(corpus / f["name"]) as im:
            rgb = im.convert("RGB")
        scale = PREVIEW_SHORT_SIDE / min(rgb.size)
        small = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)))
        small.save(out, "JPEG", quality=85)
        wall[f["kind"]] = wall.get(f["kind"], 0.0) + time.perf_counter() - t0
        cpu[f["kind"]] = cpu.get(f["kind"], 0.0) + _cpu_s() - c0
        count[f["kind"]] = count.get(f["kind"], 0) + 1
    return {"wall_s": wall, "cpu_s": cpu, "n": count, "peak_rss_mib": _peak_rss_mib(), "start_rss_mib": start_rss,
            "heif_decode_threads": getattr(pillow_heif.options, "DECODE_THREADS", None)}


def phase_profile(corpus: Path, files: list[dict], tmp: Path, top: int) -> None:
    """The whole pipeline on ONE thread (the main one) under cProfile, so every stage shows."""
    import cProfile
    import pstats

    import photobox.media.metadata  # noqa: F401
    import photobox.media.thumbs  # noqa: F401
    import photobox.media.video  # noqa: F401
    from photobox.jobs import Job, store
    from photobox.library.commands import import_one as _import_one

    box = _open_box(tmp / "data-profile", 1)
    images = [corpus / f["name"] for f in files if f["kind"] in ("jpeg", "heic")]
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    try:
        prof.enable()
        for p in images:
            _import_one(box, p)
        while True:
            with box.db.transaction() as conn:
                rows = []
                for spec in box.scheduler.registry:
                    if spec.kind in TIMED_KINDS:
                        rows += store.claim(conn, spec.kind, 1000, owner=box.scheduler.owner, now=box.clock(),
                                            lease_seconds=3600)
            if not rows:
                break
            for row in rows:
                box.scheduler.registry.get(row.kind).handler(
                    Job(row.id, row.kind, row.target, row.args, row.attempts, box, box.scheduler))
                with box.db.transaction() as conn:
                    store.complete(conn, row.id, now=box.clock())
        prof.disable()
    finally:
        box.close()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    print(f"\n== cProfile: {len(images)} images through import + jobs on one thread: {wall:.2f} s "
          f"({len(images) / wall:.2f} files/s single-threaded)")
    key_funcs = [
        ("photobox/cli.py", "_import_one", "import: temp copy + SHA-1 + fsync + metadata + DB"),
        ("photobox/datadir/storage.py", "finish_sync", "  TempWriter.finish_sync (flush + fsync)"),
        ("photobox/datadir/storage.py", "_flush", "  TempWriter._flush (SHA-1 + write)"),
        ("photobox/library/ingest.py", "_extract", "  metadata.extract"),
        ("photobox/library/ingest.py", "thumbs_job", "thumbs job"),
        ("photobox/media/decode.py", "decode_image", "  decode_image (open + draft + load + ICC)"),
        ("photobox/media/thumbs.py", "_atomic_save", "  encode + write preview JPEG and thumbnail WebP"),
        ("photobox/media/placeholder.py", "image_to_thumbhash", "  ThumbHash"),
        ("photobox/media/thumbs.py", "_mean_color", "  mean colour"),
    ]
    print(f"{'cumulative s':>12}  {'calls':>6}  stage")
    for file_part, func, label in key_funcs:
        cum = sum(v[3] for k, v in stats.stats.items() if k[0].endswith(file_part) and k[2] == func)
        calls = sum(v[1] for k, v in stats.stats.items() if k[0].endswith(file_part) and k[2] == func)
        print(f"{cum:12.2f}  {calls:6d}  {label}")
    for k, v in sorted(((k, v) for k, v in stats.stats.items() if k[2] in ("resize", "reduce", "save", "load")),
                       key=lambda kv: -kv[1][3])[:6]:
        print(f"{v[3]:12.2f}  {v[1]:6d}  {Path(k[0]).name}:{k[2]}")
    _step_replay(corpus, files)
    print(f"\ntop {top} functions by own time:")
    stats.sort_stats("tottime").print_stats(top)


def _cpu_busy_s() -> float:
    """CPU seconds spent by everything on the machine so far (/proc/stat), for noise checks."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _step_replay(corpus: Path, files: list[dict]) -> None:
    """make_thumbnails' steps one by one (same calls and parameters as in
    photobox/media/thumbs.py, default JPEG preview), best of 3, for one file of each kind."""
    from PIL import Image

    from photobox.media.decode import decode_image
    from photobox.media.placeholder import image_to_thumbhash
    from photobox.media.thumbs import fit_size

    def best(fn, n=3):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times) * 1000, out

    print("\nmake_thumbnails step by step (ms, best of 3, one thread):")
    for kind in ("jpeg", "heic"):
        f = next((f for f in files if f["kind"] == kind), None)
        if f is None:
            continue
        src = corpus / f["name"]
        t_dec, dec = best(lambda src=src: decode_image(src, target=(PREVIEW_SHORT_SIDE, PREVIEW_SHORT_SIDE)))
        base = dec.image
        pw, ph = fit_size(*base.size, PREVIEW_SHORT_SIDE)
        t_prev, preview = best(lambda base=base, pw=pw, ph=ph: base.resize((pw, ph), Image.Resampling.BICUBIC, reducing_gap=3.0)
                               if (pw, ph) != base.size else base)
        tw, th = fit_size(pw, ph, 250)
        t_thumb, thumb = best(lambda preview=preview, tw=tw, th=th: preview.resize((tw, th), Image.Resampling.LANCZOS,
                                                                                  reducing_gap=2.0))
        t_jpeg, _ = best(lambda preview=preview: preview.save(io.BytesIO(), "JPEG", quality=85, optimize=False, progressive=False))
        t_webp, _ = best(lambda thumb=thumb: thumb.save(io.BytesIO(), "WEBP", quality=80, method=4))
        t_hash, _ = best(lambda thumb=thumb: image_to_thumbhash(thumb))
        print(f"  {kind.upper():4}: decode_image -> {base.width}x{base.height} {t_dec:6.1f} | preview resize -> "
              f"{pw}x{ph} {t_prev:5.1f} | thumb resize -> {tw}x{th} {t_thumb:4.1f} | preview JPEG q85 "
              f"{t_jpeg:4.1f} | thumb WebP m4 {t_webp:4.1f} | ThumbHash {t_hash:4.1f}")


def _run_phase(args: argparse.Namespace, phase: str, corpus: Path, tmp: Path, isolate: str = "on") -> dict:
    result = tmp / f"{phase}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--corpus", str(corpus),
           "--result", str(result), "--workers", str(args.workers), "--isolate", isolate]
    busy0, t0 = _cpu_busy_s(), time.perf_counter()
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, cwd=ROOT)
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t0
    own = (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)
    out = json.loads(result.read_text())
    # CPU time other processes took while this phase ran: the numbers are noisy when it is high.
    out["others_cpu_share"] = max(0.0, _cpu_busy_s() - busy0 - own) / (wall * (os.cpu_count() or 1))
    return out


def _best(results: list[dict], phase: str) -> dict:
    """Best of several rounds: the shortest time of each measurement, the highest peak RSS."""
    best = json.loads(json.dumps(results[0]))
    for r in results[1:]:
        if phase == "baseline":
            for kind, seconds in r["wall_s"].items():
                if seconds < best["wall_s"][kind]:
                    best["wall_s"][kind], best["cpu_s"][kind] = seconds, r["cpu_s"][kind]
        else:
            for name, run in r["runs"].items():
                if run["timed_s"] < best["runs"][name]["timed_s"]:
                    best["runs"][name] = run
        best["peak_rss_mib"] = max(best["peak_rss_mib"], r["peak_rss_mib"])
        best["others_cpu_share"] = max(best["others_cpu_share"], r["others_cpu_share"])
    return best


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def report(files: list[dict], pb: dict, base: dict, rounds: int) -> None:
    runs = pb["runs"]
    kinds = {k: sum(1 for f in files if f["kind"] == k) for k in ("jpeg", "heic", "video")}
    labels = {"jpeg": "JPEG only", "images": "JPEG + HEIC", "all": "everything"}
    print(f"\nphotobox pipeline, {runs[next(iter(runs))]['workers']} worker threads (timed: import = temp copy + "
          "SHA-1 + fsync + metadata + DB, then the thumbs jobs = decode + preview + thumbnail + ThumbHash):")
    for name, run in runs.items():
        c = run["counts"]
        print(f"  {labels[name]:12} {run['files']:3d} files: {run['timed_s']:6.2f} s = "
              f"{_rate(run['files'], run['timed_s']):6.2f} files/s, CPU {1000 * run['cpu_s'] / run['files']:4.0f} "
              f"ms/file  (import {run['import_s']:.2f} s + jobs {run['jobs_s']:.2f} s; created {c['created']}, "
              f"duplicate {c['duplicate']}, refused {c['refused']})")
        busy = ", ".join(f"{k} {v['busy_s']:.2f} s (at most {v['max_parallel']} claimed at once)"
                         for k, v in sorted(run["jobs"].items()))
        print(f"  {'':12} job time by kind, claimed -> done, summed: {busy}")
        failed = {k: v.get("failed") for k, v in run["jobs"].items() if v.get("failed")}
        if failed or run["refused"] or run["asset_errors"]:
            print(f"  {'':12} PROBLEMS: failed jobs {failed}, refused {run['refused']}, "
                  f"asset errors {run['asset_errors']}")
        later = [k for k in run["held_back_kinds"] if k in run["jobs"]]
        if later:
            print(f"  {'':12} held back from the timed number: {', '.join(later)} -> ran afterwards in "
                  f"{run['later_s']:.2f} s")
        if "video" in run["jobs"]:
            print(f"  {'':12} video renditions: {run['renditions']}, files in cache/video: "
                  f"{len(run['transcoded_files'])} -> "
                  + ("no transcode (1080p H.264 yuv420p + AAC in MP4 plays as is)"
                     if not run["transcoded_files"] and set(run["renditions"]) == {"none"}
                     else "TRANSCODED (unexpected for H.264 yuv420p MP4)"))

    wall, cpu, n = base["wall_s"], base["cpu_s"], base["n"]
    groups = {"jpeg": ["jpeg"], "heic": ["heic"], "images": ["jpeg", "heic"]}
    bw = {g: sum(wall.get(k, 0.0) for k in ks) for g, ks in groups.items()}
    bc = {g: sum(cpu.get(k, 0.0) for k in ks) for g, ks in groups.items()}
    bn = {g: sum(n.get(k, 0) for k in ks) for g, ks in groups.items()}
    print(f"\nbaseline: plain Pillow open -> convert('RGB') -> resize to a {PREVIEW_SHORT_SIDE} px short side "
          f"(default filter) -> JPEG q85, one thread (pillow-heif decode threads: {base['heif_decode_threads']}):")
    for g, label in (("jpeg", "JPEG only"), ("heic", "HEIC only"), ("images", "JPEG + HEIC")):
        if bn[g] and not (g == "images" and not bn["heic"]):
            print(f"  {label:12} {bn[g]:3d} files: {bw[g]:6.2f} s = {_rate(bn[g], bw[g]):6.2f} files/s, "
                  f"CPU {1000 * bc[g] / bn[g]:4.0f} ms/file")

    print("\nphotobox / baseline (goal: >= 2x the files/s):")
    for name, g in (("jpeg", "jpeg"), ("images", "images")):
        if name not in runs:
            continue
        run = runs[name]
        pbr, br = _rate(run["files"], run["timed_s"]), _rate(bn[g], bw[g])
        ratio = pbr / br
        per_core = (bc[g] / bn[g]) / (run["cpu_s"] / run["files"])
        print(f"  {labels[name]:12} {pbr:6.2f} / {br:6.2f} files/s = {ratio:4.2f}x  "
              + ("meets the goal" if ratio >= 2 else "BELOW the goal")
              + f"   (CPU per file: baseline / photobox = {per_core:.2f}x; the rest is threads)")
    if "all" in runs:
        run = runs["all"]
        print(f"  (everything, with {kinds['video']} video(s): photobox {_rate(run['files'], run['timed_s']):.2f} "
              "files/s; the baseline has no video path)")
    steps = ", ".join(f"{r['peak_rss_after_mib']:.0f} after {labels[k]}" for k, r in runs.items())
    print(f"\npeak RSS (ru_maxrss): photobox phase {pb['peak_rss_mib']:.0f} MiB ({pb['start_rss_mib']:.0f} after "
          f"imports; {steps}), baseline phase {base['peak_rss_mib']:.0f} MiB "
          f"({base['start_rss_mib']:.0f} after imports)")
    others = max(pb["others_cpu_share"], base["others_cpu_share"])
    print(f"{'best of ' + str(rounds) + ' rounds; ' if rounds > 1 else ''}other processes used "
          f"{pb['others_cpu_share']:.0%} (photobox phase) / {base['others_cpu_share']:.0%} (baseline phase) "
          "of the CPUs" + ("  -- WARNING: the machine was busy, wall-clock numbers are noisy (try --rounds 3)"
                           if others > 0.1 else ""))


def report_isolate(pbs: dict) -> None:
    """isolate: decoders in child processes (on) against in-thread (off), same run, same corpus."""
    print("\ndecoders in child processes (isolate_decoders on) vs in the server (off), same run:")
    print(f"  {'run':12} {'files/s on':>10} {'off':>7} {'on/off':>7}   {'CPU ms/file on':>14} {'off':>6}   "
          f"{'peak RSS MiB on (server+children)':>33} {'off':>6}   children started")
    for name in pbs["on"]["runs"]:
        on, off = pbs["on"]["runs"][name], pbs["off"]["runs"][name]
        r_on, r_off = _rate(on["files"], on["timed_s"]), _rate(off["files"], off["timed_s"])
        print(f"  {name:12} {r_on:10.2f} {r_off:7.2f} {r_on / r_off:7.2f}   {1000 * on['cpu_s'] / on['files']:14.0f} "
              f"{1000 * off['cpu_s'] / off['files']:6.0f}   {on['tree_peak_rss_mib']:33.0f} "
              f"{off['tree_peak_rss_mib']:6.0f}   {on['children_started']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40, help="12 MP JPEGs to generate (default 40)")
    parser.add_argument("--heic-fraction", type=float, default=0.1,
                        help="HEIC files, as a fraction of --count (default 0.1)")
    parser.add_argument("--videos", type=int, default=2, help="1080p H.264 videos of 3-5 s (default 2)")
    parser.add_argument("--workers", type=int, default=0, help="photobox worker threads (default: CPU count)")
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this folder and keep it")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run both phases this many times, interleaved, and keep the best (default 1)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the pipeline on one thread (cProfile) and print where time goes")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--isolate", choices=["on", "off", "both"], default="on",
                        help="decoders in child processes (setting isolate_decoders); 'both' runs the photobox "
                             "phase with each, interleaved, and compares (default on)")
    parser.add_argument("--phase", choices=["photobox", "baseline", "profile"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.phase:
        files = json.loads((args.corpus / "corpus.json").read_text())["files"]
        with tempfile.TemporaryDirectory(prefix=f"bench-ingest-{args.phase}-") as tmp:
            if args.phase == "photobox":
                result = phase_photobox(args.corpus, files, args.workers, Path(tmp), args.isolate != "off")
            elif args.phase == "baseline":
                result = phase_baseline(args.corpus, files, Path(tmp))
            else:
                phase_profile(args.corpus, files, Path(tmp), args.profile_top)
                return
        args.result.write_text(json.dumps(result))
        return

    spec = {"version": GEN_VERSION, "count": args.count, "heic_fraction": args.heic_fraction,
            "videos": args.videos, "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        corpus = args.keep if args.keep else Path(tmp) / "corpus"
        files, gen_s = ensure_corpus(corpus, spec)
        mib = {k: [f["size"] / 2**20 for f in files if f["kind"] == k] for k in ("jpeg", "heic", "video")}
        desc = ", ".join(f"{len(v)} {k.upper()} (avg {sum(v) / len(v):.1f} MiB)" for k, v in mib.items() if v)
        how = f"generated in {gen_s:.1f} s" if gen_s is not None else "reused"
        print(f"corpus: {desc}; {how} ({corpus})")
        bases = []
        modes = ["on", "off"] if args.isolate == "both" else [args.isolate]
        pbs: dict[str, list] = {m: [] for m in modes}
        for _ in range(max(1, args.rounds)):  # interleaved, so a noisy moment hits both alike
            bases.append(_run_phase(args, "baseline", corpus, Path(tmp)))
            for mode in modes:
                pbs[mode].append(_run_phase(args, "photobox", corpus, Path(tmp), mode))
        for mode in modes:
            print(f"\n===== isolate_decoders = {mode} =====")
            report(files, _best(pbs[mode], "photobox"), _best(bases, "baseline"), len(pbs[mode]))
        if len(modes) == 2:
            report_isolate({m: _best(pbs[m], "photobox") for m in modes})
        if args.profile:
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--phase", "profile",
                            "--corpus", str(corpus), "--profile-top", str(args.profile_top)], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
