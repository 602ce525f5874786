"""Pixel normalisation for decoded images: 8-bit modes and sRGB colour.

Used by `decode` after Pillow has loaded an image: odd modes (16-bit,
float, palette with transparency, 1-bit) become 8-bit L/RGB(A), alpha is kept
or composited on white, and an embedded ICC profile is converted to sRGB
through a cached, thread-safe lcms2 transform.
"""

from __future__ import annotations

import functools
import io
import logging
import threading

import numpy as np
from PIL import Image, ImageCms

log = logging.getLogger(__name__)


class UnsupportedMode(ValueError):
    """A pixel mode that cannot be brought to RGB (``decode`` reports it as unsupported)."""


def normalize_mode(im: Image.Image) -> Image.Image:
    """Bring odd modes to 8 bits per channel: L, LA, RGB, RGBA or CMYK (or
    whatever exotic mode remains, e.g. LAB, for the final convert to handle)."""
    im = to_8bit(im)
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("PA", "La", "RGBa"):
        return im.convert("RGBA")
    if im.mode == "1":
        return im.convert("L")
    return im


def to_srgb(im: Image.Image, info: dict, *, keep_alpha: bool) -> Image.Image:
    """Composite or keep alpha, convert the ICC colour space to sRGB, end in RGB(A)."""
    alpha = None
    if im.mode in ("RGBA", "LA"):
        alpha = im.getchannel("A")
        if alpha.getextrema()[0] == 255:
            alpha = None  # an alpha channel that is fully opaque is just overhead
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
        if alpha is not None and not keep_alpha:
            # Composite on white *before* the colour transform: white is white in
            # every RGB space, and it saves a second pass over the alpha.
            bg = Image.new(im.mode, im.size, 255 if im.mode == "L" else (255, 255, 255))
            bg.paste(im, mask=alpha)
            im, alpha = bg, None

    icc = info.get("icc_profile")
    if icc:
        im = apply_icc(im, icc)
    if im.mode != "RGB":
        try:
            im = im.convert("RGB")
        except ValueError as exc:
            raise UnsupportedMode(f"unsupported pixel mode {im.mode}") from exc
    if alpha is not None:
        im.putalpha(alpha)
    return im


def to_8bit(im: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float modes to 8-bit ``L``.

    Pillow's own ``convert("L")`` clips I;16 values at 255, turning every
    16-bit greyscale photo white, so scale explicitly.
    """
    if im.mode not in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return im
    arr = np.asarray(im)
    if im.mode == "F":
        arr = np.nan_to_num(arr.astype(np.float32))
        hi = float(arr.max(initial=0.0))
        scale = 255.0 if hi <= 1.0 else (255.0 / 65535.0 if hi > 255 else 1.0)
        out = np.clip(arr * scale, 0, 255).astype(np.uint8)
    else:
        arr = arr.astype(np.int64, copy=False)
        hi = int(arr.max(initial=0))
        # 16-bit data (PNG, TIFF) is stored as 0..65535; 8-bit-range data in an
        # "I" image (some TIFFs) must not be divided.
        out = (np.clip(arr, 0, 65535) >> 8) if hi > 255 else np.clip(arr, 0, 255)
        out = out.astype(np.uint8)
    return Image.fromarray(out, "L")


_SRGB = ImageCms.createProfile("sRGB")
_transform_lock = threading.Lock()


@functools.lru_cache(maxsize=32)
def _icc_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Build (and cache) a transform from ``icc`` to sRGB, or None to skip.

    Cached per profile: photos from one camera share one, and building a
    transform costs far more than applying it to a preview-sized image.
    ``NOCACHE`` is needed because lcms2's one-pixel cache makes a shared
    transform unsafe to use from several worker threads at once.
    """
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError):
        log.debug("ignoring unreadable ICC profile (%d bytes)", len(icc))
        return None
    try:
        desc = (ImageCms.getProfileDescription(src) or "").strip()
    except (ImageCms.PyCMSError, OSError, UnicodeDecodeError):
        desc = ""
    if desc.startswith("sRGB") or desc == "sRGB built-in":
        return None  # already sRGB: a transform would only cost time
    space = src.profile.xcolor_space.strip()
    wanted = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}.get(mode)
    if wanted is None or space != wanted:
        # e.g. an RGB profile on a greyscale JPEG: the profile cannot apply.
        return None
    try:
        return ImageCms.buildTransform(
            src,
            _SRGB,
            mode,
            "RGB",
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            flags=ImageCms.Flags.NOCACHE,
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        log.debug("cannot build ICC transform for %r", desc)
        return None


def apply_icc(im: Image.Image, icc: bytes) -> Image.Image:
    if not isinstance(icc, bytes) or len(icc) < 128:
        return im
    with _transform_lock:  # lru_cache itself is thread-safe; this avoids duplicate builds
        transform = _icc_transform(icc, im.mode)
    if transform is None:
        return im
    try:
        return ImageCms.applyTransform(im, transform)
    except (ImageCms.PyCMSError, ValueError, OSError):
        return im  # a profile lcms accepted but cannot apply: show unconverted
