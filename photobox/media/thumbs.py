"""Thumbnail + preview generation for the timeline and the lightbox.

One call per photo/video: :func:`make_thumbnails` decodes the source once at
roughly the preview's size, writes the preview, derives the grid thumbnail from
the preview (never from the full image again) and computes a ThumbHash
placeholder from the thumbnail. Pure function: no database, no web; safe to run
in worker threads (Pillow, libjpeg, libwebp and libheif release the GIL).

Output formats, chosen by measurement (x86 numbers, a Pi 4 is ~4-6x slower;
1920x1440 preview of a 12 MP photo):

* preview JPEG q85: ~7 ms to encode, ~500 KB; WebP method 0: ~60 ms, ~310 KB;
  WebP method 4: ~220 ms. JPEG wins on a Pi that has 100k photos to chew
  through; pass a ``.webp`` preview path to trade CPU for ~40 % less disk.
* thumbnail WebP q80 method 4: ~9 ms, ~25 KB at 333x250 -- it is small, so the
  better codec costs little and the timeline loads hundreds of these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from photobox.media.decode import DEFAULT_MAX_PIXELS, DecodeError, decode_image
from photobox.media.placeholder import image_to_thumbhash

__all__ = ["DecodeError", "ThumbResult", "fit_size", "make_thumbnails"]

#: Longest side may be at most this many times the short side before the
#: short side is allowed to shrink (panoramas would otherwise be enormous).
DEFAULT_MAX_ASPECT = 3.0


@dataclass(frozen=True, slots=True)
class ThumbResult:
    """What :func:`make_thumbnails` produced.

    Attributes:
        thumb_width: Thumbnail width in pixels.
        thumb_height: Thumbnail height in pixels.
        preview_width: Preview width in pixels.
        preview_height: Preview height in pixels.
        source_width: Full-size width in display orientation (for a RAW file,
            of its embedded preview; for a video, of the poster frame as shown,
            i.e. after rotation and pixel aspect ratio).
        source_height: Full-size height in display orientation.
        placeholder: ThumbHash bytes (about 25).
        placeholder_kind: Always ``"thumbhash"`` for now; stored so the format
            can change later without guessing.
        dominant_color: Average colour as ``"#rrggbb"`` (grid background while
            the thumbnail loads), or None.
        preview_format: ``"jpeg"`` or ``"webp"``.
        has_alpha: True when the outputs keep transparency (WebP preview only).
        truncated: The photo's file ends before its image data does: the outputs
            show what is there (see :attr:`photobox.media.decode.DecodedImage.truncated`).
    """

    thumb_width: int
    thumb_height: int
    preview_width: int
    preview_height: int
    source_width: int
    source_height: int
    placeholder: bytes
    placeholder_kind: str = "thumbhash"
    dominant_color: str | None = None
    preview_format: str = "jpeg"
    has_alpha: bool = False
    truncated: bool = False


def fit_size(
    width: int, height: int, short_side: int, max_aspect: float = DEFAULT_MAX_ASPECT
) -> tuple[int, int]:
    """Size that gives ``short_side`` on the short side, keeping the aspect ratio.

    The long side is capped at ``short_side * max_aspect`` (so a 10:1 panorama
    gets a shorter short side instead of a huge long one) and the result never
    exceeds the source (no upscaling).

    Args:
        width: Source width.
        height: Source height.
        short_side: Wanted length of the shorter side.
        max_aspect: Cap for the long side, as a multiple of ``short_side``.

    Returns:
        ``(width, height)``, each at least 1.
    """
    scale = min(
        short_side / min(width, height),
        short_side * max_aspect / max(width, height),
        1.0,
    )
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_thumbnails(
    src: Path,
    thumb_path: Path,
    preview_path: Path,
    *,
    kind: str = "image",
    thumb_size: int = 250,
    preview_size: int = 1440,
    quality: int = 80,
    preview_quality: int = 85,
    max_aspect: float = DEFAULT_MAX_ASPECT,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fsync: bool = False,
) -> ThumbResult:
    """Write a WebP grid thumbnail and a preview for one photo or video.

    The preview format follows ``preview_path``'s suffix: ``.webp`` gives WebP
    (and keeps transparency), anything else JPEG (transparent images are
    composited on white). Both files are written atomically (temp file in the
    same folder, then ``os.replace``) so a crash never leaves a half file that
    the web app would serve, and EXIF/GPS is never copied into them.

    Args:
        src: Photo or video file.
        thumb_path: Where the WebP thumbnail goes (parent folders are created).
        preview_path: Where the preview goes.
        kind: ``"image"`` or ``"video"`` (the poster frame is used).
        thumb_size: Short side of the thumbnail in px (long side <= ``max_aspect`` x).
        preview_size: Short side of the preview (never upscaled).
        quality: WebP quality of the thumbnail.
        preview_quality: JPEG/WebP quality of the preview.
        max_aspect: Long-side cap factor, see :func:`fit_size`.
        max_pixels: Decompression-bomb limit passed to the decoder.
        fsync: fsync each file before the rename. Off by default: thumbnails
            can be regenerated, and fsync is slow and wears SD cards.

    Returns:
        A :class:`ThumbResult`.

    Raises:
        DecodeError: The source cannot be decoded (including
            :class:`photobox.media.video.VideoError`). Nothing is written then.
        OSError: Writing the outputs failed.
    """
    src, thumb_path, preview_path = Path(src), Path(thumb_path), Path(preview_path)
    if thumb_path == preview_path:
        raise ValueError("thumb_path and preview_path must differ")
    webp_preview = preview_path.suffix.lower() == ".webp"
    truncated = False

    if kind == "video":
        # Imported lazily: PyAV is heavy and photo-only workers never need it.
        from photobox.media.video import extract_poster

        poster = extract_poster(src, max_short_side=preview_size)
        base = poster.image
        source_w, source_h = poster.display_width, poster.display_height
        if base.mode != "RGB":
            base = base.convert("RGB")
    elif kind == "image":
        # Ask for >= preview_size on both axes: enough for the short-side rule,
        # and lets libjpeg/libheif/reduce() skip most of the pixels.
        decoded = decode_image(
            src,
            max_pixels=max_pixels,
            target=(preview_size, preview_size),
            keep_alpha=webp_preview,
        )
        base = decoded.image
        source_w, source_h = decoded.source_width, decoded.source_height
        truncated = decoded.truncated
    else:
        raise ValueError(f"unknown kind {kind!r}")

    try:
        # base is at least preview-sized (or the whole source when smaller), so
        # fitting into it never upscales.
        pw, ph = fit_size(*base.size, preview_size, max_aspect)
        bw, bh = base.size
        if min(bw, bh) <= preview_size * 1.15 and abs(pw / ph - bw / bh) < 0.01:
            # The draft decode landed just above the target (2000x1500 for 1440): a 4 %
            # resample would cost as much as the decode itself (scripts/bench ingest), so
            # keep the decoded size; the preview is a little larger, never smaller.
            pw, ph = bw, bh
        preview = base
        if (pw, ph) != base.size:
            # BICUBIC rather than LANCZOS: the draft already did the big step, the
            # remaining <2x reduction looks the same and costs ~30 % less.
            preview = base.resize((pw, ph), Image.Resampling.BICUBIC, reducing_gap=3.0)
        has_alpha = preview.mode == "RGBA"

        tw, th = fit_size(pw, ph, thumb_size, max_aspect)
        thumb = preview.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=2.0)

        if webp_preview:
            _atomic_save(preview, preview_path, "WEBP", fsync,
                         quality=preview_quality, method=2)
        else:
            _atomic_save(preview, preview_path, "JPEG", fsync,
                         quality=preview_quality, optimize=False, progressive=False)
        _atomic_save(thumb, thumb_path, "WEBP", fsync, quality=quality, method=4)

        placeholder = image_to_thumbhash(thumb)
        color = _mean_color(thumb)
    finally:
        base.close()

    return ThumbResult(
        thumb_width=tw,
        thumb_height=th,
        preview_width=pw,
        preview_height=ph,
        source_width=source_w,
        source_height=source_h,
        placeholder=placeholder,
        dominant_color=color,
        preview_format="webp" if webp_preview else "jpeg",
        has_alpha=has_alpha,
        truncated=truncated,
    )


def _mean_color(im: Image.Image) -> str:
    small = im.reduce(max(1, min(im.size) // 16)) if min(im.size) >= 32 else im
    arr = np.asarray(small.convert("RGBA"), dtype=np.float64)
    alpha = arr[..., 3:4] / 255.0
    total = float(alpha.sum())
    rgb = (arr[..., :3] * alpha).sum(axis=(0, 1)) / total if total else np.full(3, 255.0)
    r, g, b = (int(round(v)) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _atomic_save(im: Image.Image, path: Path, fmt: str, fsync: bool, **params) -> None:
    """Save to a unique temp name in the target folder, then rename over ``path`` (see :func:`replacing`)."""
    from photobox.media._stale import replacing

    with replacing(path) as tmp, open(tmp, "wb") as fh:
        im.save(fh, fmt, **params)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
