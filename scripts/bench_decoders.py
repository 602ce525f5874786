"""Memory of a decoder child process (photobox/media/sandbox.py): RSS after real work.

Usage: scripts/bench decoders [--folder DIR] [--rounds N]

Makes (once, seeded, cached in --folder) a 12 MP JPEG (4000x3000), a 12 MP HEIC and a
1080p H.264 video like the ones ``scripts/bench ingest`` uses, then for each file starts a
fresh decoder child (the same ``DecoderPool`` the server uses, one child) and reads the
child's VmRSS and VmHWM (peak) from /proc after: its start, reading the metadata, making
the thumbnail and preview. A last run does all three in one child, in a row, as the
server's children do. Prints MiB; the largest "after thumbs" RSS is the number the README
quotes. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def _status_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def ensure_files(folder: Path) -> dict[str, Path]:
    from bench_ingest import _gen_image, _gen_video

    folder.mkdir(parents=True, exist_ok=True)
    wanted = {"jpeg": folder / "IMG_0001.jpg", "heic": folder / "IMG_0002.HEIC", "video": folder / "VID_0001.mp4"}
    if not wanted["jpeg"].is_file():
        _gen_image(str(folder), 7, 0, "jpeg")
    if not wanted["heic"].is_file():
        _gen_image(str(folder), 7, 1, "heic")
    if not wanted["video"].is_file():
        _gen_video(str(folder), 7, 0)
    return wanted


def measure(paths: list[tuple[str, Path]], tmp: Path) -> list[tuple[str, float, float]]:
    """One fresh child: metadata then thumbs of each path; (step, RSS, peak) after each."""
    from photobox.media.sandbox import DecoderPool

    pool = DecoderPool(1, memory_mb=1024, timeout=300)
    rows = []
    try:
        tiny = tmp / "tiny.png"
        if not tiny.exists():
            from PIL import Image

            Image.new("RGB", (8, 8)).save(tiny)
        # The child starts on the first call: a metadata read of an 8x8 PNG is the smallest one.
        pool.call("metadata", tiny, mtime=None)
        pid = pool.pids()[0]
        rows.append(("started", *_status_mib(pid)))
        for label, path in paths:
            pool.call("metadata", path, mtime=None)
            rows.append((f"{label} metadata", *_status_mib(pid)))
            kind = "video" if label == "video" else "image"
            pool.call("thumbs", path, tmp / f"{label}.thumb.webp", tmp / f"{label}.preview.webp", kind=kind)
            rows.append((f"{label} thumbs", *_status_mib(pid)))
    finally:
        pool.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "photobox-bench-decoders",
                        help="where the generated files are kept between runs")
    parser.add_argument("--rounds", type=int, default=3, help="runs per case; the smallest peak is shown")
    args = parser.parse_args(argv)
    files = ensure_files(args.folder)
    mixed = [(label, files[label]) for label in ("jpeg", "heic", "jpeg", "video", "heic", "jpeg") * 2]
    cases = [[("jpeg", files["jpeg"])], [("heic", files["heic"])], [("video", files["video"])],
             [("jpeg", files["jpeg"]), ("heic", files["heic"]), ("video", files["video"])], mixed]
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="photobox-bench-") as tmp:
        print(f"{'case':28} {'step':16} {'RSS MiB':>8} {'peak MiB':>9}")
        for case in cases:
            name = " + ".join(label for label, _ in case) if len(case) <= 3 else f"{len(case)} files mixed"
            runs = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                runs.append((measure(case, Path(tmp)), time.perf_counter() - t0))
            rows, _ = min(runs, key=lambda r: r[0][-1][2])
            if len(case) > 3:  # a server's child in steady state: the largest RSS between calls
                rss, peak = max(r[1] for r in rows if r[0].endswith("thumbs")), rows[-1][2]
                rows = [("largest after", rss, peak)]
            for step, rss, peak in rows:
                print(f"{name:28} {step:16} {rss:8.1f} {peak:9.1f}")
                if step.endswith(("thumbs", "largest after")):
                    worst = max(worst, rss)
    print(f"largest RSS of a decoder child after a thumbnail: {worst:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
