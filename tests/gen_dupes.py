"""Generated near-duplicate cases: textured "photos", their copies, and burst frames.

A scene is multi-scale noise (sky-to-ground gradient, blotches, fine grain) with a few
shapes, so hashes see photo-like structure, not flat colours. From each scene:

* copies (must be grouped with the original): resized to half, recompressed at quality 30,
  cropped (up to 10 % off the edges), brightness/contrast edited, converted to HEIC
  (EXIF kept) and to PNG (no EXIF), and a "messaging app" copy (long side 1280, or 3/4 of a
  smaller original, quality 70, EXIF stripped);
* burst frames (must NOT be grouped with each other): the same scene seconds apart from the
  same camera, with the camera drifting by 0.5-2 % of the frame and an object moving.

Used by ``tests/test_duplicates_quality.py`` (a modest set) and ``scripts/bench dupes``
(a bigger one).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import piexif
from PIL import Image, ImageDraw, ImageEnhance

COPY_KINDS = ("resized", "recompressed", "cropped", "edited", "heic", "png", "messaging")


@dataclass(frozen=True, slots=True)
class Case:
    name: str          # file name
    data: bytes
    scene: str         # which scene it shows
    moment: str        # which moment: copies share the original's, burst frames have their own
    copy_of: str | None = None  # the original's file name, for a copy


def _noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w, 3), dtype=np.float64)
    for cells, weight in ((3, 70.0), (7, 45.0), (17, 25.0), (41, 12.0)):
        small = rng.normal(0, 1, (cells, int(cells * w / h) + 1, 3))
        layer = Image.fromarray(np.uint8(np.clip(small * 40 + 128, 0, 255))).resize((w, h), Image.Resampling.BICUBIC)
        out += (np.asarray(layer, dtype=np.float64) - 128) / 40 * weight
    return out


def scene_canvas(seed: int, size=(1400, 1050)) -> tuple[Image.Image, list]:
    """A scene somewhat larger than a frame (so the camera can move) and its shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.linspace(rng.uniform(60, 200), rng.uniform(40, 180), h)[:, None, None] * np.ones((1, w, 3))
    base = base * rng.uniform(0.6, 1.2, 3) + _noise(rng, h, w)
    base += rng.normal(0, 6, (h, w, 3))
    im = Image.fromarray(np.uint8(np.clip(base, 0, 255)))
    draw = ImageDraw.Draw(im)
    shapes = []
    for _ in range(rng.integers(3, 7)):
        x, y = rng.uniform(0.05, 0.8) * w, rng.uniform(0.05, 0.8) * h
        s = rng.uniform(0.06, 0.22) * w
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        box = (x, y, x + s, y + s * rng.uniform(0.5, 1.5))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        shapes.append(box)
    return im, shapes


def _exif(taken: datetime | None, make: str = "Pixelcam", model: str = "PC-1") -> bytes:
    exif = {}
    if taken is not None:
        exif[piexif.ExifIFD.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S").encode()
        exif[0x9011] = b"+01:00"
    return piexif.dump({"0th": {piexif.ImageIFD.Make: make.encode(), piexif.ImageIFD.Model: model.encode()},
                        "Exif": exif, "GPS": {}, "1st": {}, "thumbnail": None})


def _jpeg(im: Image.Image, quality: int = 90, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buf.getvalue()


def frame(canvas: Image.Image, shapes: list, seed: int, t: int, frame_size=(1200, 900)) -> Image.Image:
    """Burst frame ``t`` of a scene: the camera drifts, one object moves, the sensor noise differs."""
    rng = np.random.default_rng(seed * 1000 + t)
    fw, fh = frame_size
    cw, ch = canvas.size
    cx, cy = (cw - fw) // 2, (ch - fh) // 2
    if t:
        drift = rng.uniform(0.005, 0.02) * fw
        angle = rng.uniform(0, 2 * np.pi)
        cx += int(drift * np.cos(angle))
        cy += int(drift * np.sin(angle))
    im = canvas.copy()
    if shapes and t:
        x1, y1, x2, y2 = shapes[0]
        move = rng.uniform(0.03, 0.08) * fw * t
        patch = canvas.crop((int(x1), int(y1), int(x2), int(y2)))
        im.paste(patch, (int(x1 + move), int(y1 + rng.uniform(-0.02, 0.02) * fh)))
    im = im.crop((cx, cy, cx + fw, cy + fh))
    arr = np.asarray(im, dtype=np.int16) + rng.normal(0, 3, (fh, fw, 3)).astype(np.int16)
    return Image.fromarray(np.uint8(np.clip(arr, 0, 255)))


def copies_of(name: str, im: Image.Image, taken: datetime, rng: np.random.Generator) -> dict[str, bytes]:
    """Every copy kind of one original (bytes per kind)."""
    exif = _exif(taken)
    w, h = im.size
    out: dict[str, bytes] = {}
    out["resized"] = _jpeg(im.resize((w // 2, h // 2), Image.Resampling.LANCZOS), 88, exif)
    out["recompressed"] = _jpeg(im, 30, exif)
    fx, fy = rng.uniform(0.02, 0.10, 2)
    left, top = int(w * fx * rng.uniform(0, 1)), int(h * fy * rng.uniform(0, 1))
    out["cropped"] = _jpeg(im.crop((left, top, left + int(w * (1 - fx)), top + int(h * (1 - fy)))), 90, exif)
    edited = ImageEnhance.Brightness(im).enhance(rng.uniform(0.8, 1.25))
    out["edited"] = _jpeg(ImageEnhance.Contrast(edited).enhance(rng.uniform(0.8, 1.25)), 90, exif)
    import pillow_heif

    heif = pillow_heif.from_pillow(im)
    buf = io.BytesIO()
    heif.save(buf, quality=60, exif=exif)
    out["heic"] = buf.getvalue()
    buf = io.BytesIO()
    im.save(buf, "PNG")
    out["png"] = buf.getvalue()
    scale = 1280 / max(w, h) if max(w, h) > 1280 / 0.75 else 0.75  # apps never upscale
    out["messaging"] = _jpeg(im.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR), 70)
    return out


def cases(n_scenes: int, n_bursts: int, *, burst_frames: int = 3, seed: int = 0,
          copy_kinds=COPY_KINDS, frame_size=(1200, 900), burst_copies: bool = False,
          burst_gap=(1, 4)) -> list[Case]:
    """Originals with their copies (``n_scenes``), and burst sequences (``n_bursts``) whose
    frames are ``burst_gap`` seconds apart (low inclusive, high exclusive; (0, 1): all in one
    second, which EXIF without sub-seconds cannot tell apart)."""
    out: list[Case] = []
    fw, fh = frame_size
    canvas_size = (fw + fw // 6, fh + fh // 6)
    start = datetime(2019, 6, 1, 10, 0, 0)
    for s in range(n_scenes):
        rng = np.random.default_rng(seed * 7919 + s)
        canvas, shapes = scene_canvas(seed * 7919 + s, canvas_size)
        im = frame(canvas, shapes, seed * 7919 + s, 0, frame_size)
        taken = start + timedelta(hours=5 * s)
        scene = f"s{seed}-{s}"
        out.append(Case(f"{scene}.jpg", _jpeg(im, 92, _exif(taken)), scene, scene))
        for kind, data in copies_of(scene, im, taken, rng).items():
            if kind in copy_kinds:
                ext = {"heic": "heic", "png": "png"}.get(kind, "jpg")
                out.append(Case(f"{scene}-{kind}.{ext}", data, scene, scene, f"{scene}.jpg"))
    for b in range(n_bursts):
        bseed = 10_000 + seed * 7919 + b
        rng = np.random.default_rng(bseed)
        canvas, shapes = scene_canvas(bseed, canvas_size)
        taken = start + timedelta(days=3, hours=5 * b)
        scene = f"b{seed}-{b}"
        at = taken
        for t in range(burst_frames):
            at += timedelta(seconds=int(rng.integers(*burst_gap)) if t else 0)
            im = frame(canvas, shapes, bseed, t, frame_size)
            out.append(Case(f"{scene}-f{t}.jpg", _jpeg(im, 92, _exif(at)), scene, f"{scene}-f{t}"))
            if burst_copies and t == 1:
                # A messaging copy of one frame: must join that frame, not chain the burst.
                scale = 0.75
                small = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR)
                out.append(Case(f"{scene}-f{t}-messaging.jpg", _jpeg(small, 70), scene, f"{scene}-f{t}",
                                f"{scene}-f{t}.jpg"))
    return out


def score(cases_: list[Case], groups: list[list[int]]) -> dict[str, float]:
    """For ``groups`` of indexes into ``cases_``: recall of copies (grouped with their
    original, overall and per kind), the burst false positive rate (pairs of different
    moments of one burst put in one group) and pair precision (pairs in one group that are
    one moment)."""
    where = {i: g for g, members in enumerate(groups) for i in members}
    together = lambda i, j: i in where and where.get(i) == where.get(j)  # noqa: E731
    index = {c.name: i for i, c in enumerate(cases_)}
    copies = [(i, index[c.copy_of]) for i, c in enumerate(cases_) if c.copy_of]
    by_kind: dict[str, list[int]] = {}
    for i, o in copies:
        kind = cases_[i].name.rsplit("-", 1)[1].split(".")[0]
        if cases_[o].scene != cases_[o].moment:
            kind = "burst_frame_" + kind
        by_kind.setdefault(kind, []).append(int(together(i, o)))
    frames: dict[str, list[int]] = {}
    for i, c in enumerate(cases_):
        if c.scene != c.moment:
            frames.setdefault(c.scene, []).append(i)
    burst_pairs = [(i, j) for fs in frames.values() for n, i in enumerate(fs) for j in fs[n + 1:]
                   if cases_[i].moment != cases_[j].moment]
    false = sum(together(i, j) for i, j in burst_pairs)
    predicted = [(i, j) for g in groups for n, i in enumerate(g) for j in g[n + 1:]]
    right = sum(cases_[i].moment == cases_[j].moment for i, j in predicted)
    found = sum(together(i, o) for i, o in copies)
    return {
        "recall": found / len(copies) if copies else 1.0,
        "burst_fpr": false / len(burst_pairs) if burst_pairs else 0.0,
        "precision": right / len(predicted) if predicted else 1.0,
        "copies": len(copies), "burst_pairs": len(burst_pairs), "groups": len(groups),
        **{f"recall_{k}": sum(v) / len(v) for k, v in sorted(by_kind.items())},
    }


def lookalikes(n: int, seed: int = 0, size=(64, 48)) -> list[Image.Image]:
    """``n`` near-identical thumbnails (one textured picture, each with its own faint noise),
    as screenshots of one app screen or scans of one form are: every pair is a duplicate to
    the pixels, and none carries a camera time."""
    rng = np.random.default_rng(seed)
    base = np.asarray(scene_canvas(seed, size=size)[0], dtype=np.int16)
    return [Image.fromarray(np.uint8(np.clip(base + rng.integers(-2, 3, base.shape), 0, 255))) for _ in range(n)]


def insert_photos(conn, photos: list[dict], *, thumb_version: int = 1) -> list[int]:
    """Asset rows for photos put straight into a library (no ingest): each dict may give
    ``sort_ts``, ``taken_at`` and ``taken_at_source``. Returns their ids, in order."""
    ids = []
    for n, p in enumerate(photos):
        ts = p.get("sort_ts", 1_650_000_000.0 + n)
        conn.execute(
            "INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, mime, sort_ts, "
            "taken_at, taken_at_source, thumb_version, width, height, created_at, updated_at) "
            "VALUES (1, 'gen/' || hex(randomblob(12)) || '.jpg', ?, randomblob(20), 1000, ?, 'image', 'image/jpeg', "
            "?, ?, ?, ?, 640, 480, 0, 0)",
            (f"{n}.jpg", ts, ts, p.get("taken_at"), p.get("taken_at_source", "mtime"), thumb_version))
        ids.append(conn.last_insert_rowid())
    return ids
