"""ThumbHash placeholders: a ~25-byte blurry preview stored per photo.

This is a numpy port of Evan Wallace's public ThumbHash algorithm
(https://evanw.github.io/thumbhash/, reference ``thumbhash.js``). The decoder
matches the reference byte for byte and the encoder does too, except where a
coefficient is an exact tie (then either neighbouring nibble is as right), so
hashes can also be decoded by the JS library if the frontend ever wants to. :func:`thumbhash_to_data_url` renders a
hash server-side into a tiny PNG ``data:`` URL, so the timeline can show
placeholders without any JavaScript.

Rounding notes (they matter for bit-compatibility): JS ``Math.round`` rounds
halves up (Python's ``round`` rounds them to even), and the reference writes
decoded floats into a ``Uint8Array``, which truncates.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image

__all__ = [
    "MAX_ENCODE_SIZE",
    "image_to_thumbhash",
    "rgba_to_thumbhash",
    "thumbhash_aspect_ratio",
    "thumbhash_average_rgba",
    "thumbhash_to_image",
    "thumbhash_to_data_url",
    "thumbhash_to_rgba",
]

#: The encoder refuses larger inputs: more pixels cost time and add nothing.
MAX_ENCODE_SIZE = 100


def _js_round(x: float) -> int:
    return math.floor(x + 0.5)


def _dct_order(nx: int, ny: int) -> list[tuple[int, int]]:
    """(cy, cx) pairs in the reference's order, DC term first."""
    return [(cy, cx) for cy in range(ny) for cx in range(nx) if cx * ny < nx * (ny - cy)]


def _encode_channel(ch: np.ndarray, nx: int, ny: int) -> tuple[float, list[float], float]:
    h, w = ch.shape
    fx = np.cos(np.pi / w * np.outer(np.arange(nx), np.arange(w) + 0.5))  # (nx, w)
    fy = np.cos(np.pi / h * np.outer(np.arange(ny), np.arange(h) + 0.5))  # (ny, h)
    coeffs = fy @ ch @ fx.T / (w * h)  # coeffs[cy, cx]
    # Coefficients that are zero in exact arithmetic (symmetric images) come out
    # as +-1e-17 noise whose sign depends on summation order (BLAS, CPU). Snap
    # them so the same image hashes the same on x86 and on the Pi.
    coeffs[np.abs(coeffs) < 1e-9] = 0.0
    order = _dct_order(nx, ny)
    dc = float(coeffs[0, 0])
    ac = [float(coeffs[cy, cx]) for cy, cx in order[1:]]
    scale = max((abs(f) for f in ac), default=0.0)
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return dc, ac, scale


def rgba_to_thumbhash(rgba: np.ndarray) -> bytes:
    """Encode an RGBA image (not premultiplied) into a ThumbHash.

    Args:
        rgba: ``uint8`` array of shape ``(height, width, 4)``; both sides must be
            at most :data:`MAX_ENCODE_SIZE` pixels.

    Returns:
        The hash (5-25 bytes; about 25 for a photo).

    Raises:
        ValueError: If the array has the wrong shape or is too large.
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected an (h, w, 4) array, got {rgba.shape}")
    h, w = rgba.shape[:2]
    if not (0 < w <= MAX_ENCODE_SIZE and 0 < h <= MAX_ENCODE_SIZE):
        raise ValueError(f"{w}x{h} doesn't fit in {MAX_ENCODE_SIZE}x{MAX_ENCODE_SIZE}")
    px = rgba.astype(np.float64) / 255.0
    alpha = px[..., 3]
    rgb = px[..., :3]

    total_a = float(alpha.sum())
    avg = (rgb * alpha[..., None]).sum(axis=(0, 1)) / total_a if total_a else np.zeros(3)
    has_alpha = total_a < w * h
    l_limit = 5 if has_alpha else 7  # fewer luminance terms when alpha needs room
    lx = max(1, _js_round(l_limit * w / max(w, h)))
    ly = max(1, _js_round(l_limit * h / max(w, h)))

    # Composite on the average colour, then RGB -> LPQ (luma, yellow-blue, red-green).
    comp = avg * (1.0 - alpha[..., None]) + rgb * alpha[..., None]
    r, g, b = comp[..., 0], comp[..., 1], comp[..., 2]
    l_dc, l_ac, l_scale = _encode_channel((r + g + b) / 3, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _encode_channel((r + g) / 2 - b, 3, 3)
    q_dc, q_ac, q_scale = _encode_channel(r - g, 3, 3)

    is_landscape = w > h
    header24 = (
        _js_round(63 * l_dc)
        | (_js_round(31.5 + 31.5 * p_dc) << 6)
        | (_js_round(31.5 + 31.5 * q_dc) << 12)
        | (_js_round(31 * l_scale) << 18)
        | (int(has_alpha) << 23)
    )
    header16 = (
        (ly if is_landscape else lx)
        | (_js_round(63 * p_scale) << 3)
        | (_js_round(63 * q_scale) << 9)
        | (int(is_landscape) << 15)
    )
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    channels = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = _encode_channel(alpha, 5, 5)
        out.append(_js_round(15 * a_dc) | (_js_round(15 * a_scale) << 4))
        channels.append(a_ac)
    start = len(out)
    factors = [f for ac in channels for f in ac]
    out.extend([0] * ((len(factors) + 1) // 2))
    for i, f in enumerate(factors):
        out[start + (i >> 1)] |= _js_round(15 * f) << ((i & 1) << 2)
    return bytes(v & 255 for v in out)


def image_to_thumbhash(im: Image.Image) -> bytes:
    """Encode a Pillow image, shrinking it to fit 100x100 first if needed.

    Args:
        im: Any-mode image (typically the ~250 px thumbnail).

    Returns:
        The ThumbHash bytes.
    """
    small = im if im.mode == "RGBA" else im.convert("RGBA")
    if max(small.size) > MAX_ENCODE_SIZE:
        small = small.copy() if small is im else small
        # BOX is the right filter for a big downscale to a blur anyway, and cheap.
        small.thumbnail((MAX_ENCODE_SIZE, MAX_ENCODE_SIZE), Image.Resampling.BOX)
    return rgba_to_thumbhash(np.asarray(small))


def _header(hash_: bytes) -> tuple[int, int, bool, bool]:
    if len(hash_) < 5:
        raise ValueError("thumbhash too short")
    header24 = hash_[0] | (hash_[1] << 8) | (hash_[2] << 16)
    header16 = hash_[3] | (hash_[4] << 8)
    has_alpha = bool(header24 >> 23)
    if has_alpha and len(hash_) < 6:
        raise ValueError("thumbhash too short")
    return header24, header16, has_alpha, bool(header16 >> 15)


def thumbhash_aspect_ratio(hash_: bytes) -> float:
    """Approximate width/height ratio stored in the hash (coarse: 1/7 steps)."""
    _, header16, has_alpha, is_landscape = _header(hash_)
    lx = (5 if has_alpha else 7) if is_landscape else header16 & 7
    ly = header16 & 7 if is_landscape else (5 if has_alpha else 7)
    return lx / ly if ly else 1.0


def thumbhash_average_rgba(hash_: bytes) -> tuple[float, float, float, float]:
    """Average colour encoded in the hash, each channel in ``0..1``."""
    header24, _, has_alpha, _ = _header(hash_)
    lum = (header24 & 63) / 63
    p = ((header24 >> 6) & 63) / 31.5 - 1
    q = ((header24 >> 12) & 63) / 31.5 - 1
    a = (hash_[5] & 15) / 15 if has_alpha else 1.0
    b = lum - 2 / 3 * p
    r = (3 * lum - b + q) / 2
    g = r - q
    return (min(1.0, max(0.0, r)), min(1.0, max(0.0, g)), min(1.0, max(0.0, b)), a)


def thumbhash_to_rgba(hash_: bytes, *, max_side: int = 32) -> np.ndarray:
    """Render a hash to an RGBA ``uint8`` array of shape ``(h, w, 4)``.

    Args:
        hash_: ThumbHash bytes.
        max_side: Length of the longer side of the result (the reference uses 32).

    Returns:
        The rendered placeholder, aspect ratio from the hash.

    Raises:
        ValueError: If the hash is too short to be valid.
    """
    header24, header16, has_alpha, is_landscape = _header(hash_)
    l_dc = (header24 & 63) / 63
    p_dc = ((header24 >> 6) & 63) / 31.5 - 1
    q_dc = ((header24 >> 12) & 63) / 31.5 - 1
    l_scale = ((header24 >> 18) & 31) / 31
    p_scale = ((header16 >> 3) & 63) / 63
    q_scale = ((header16 >> 9) & 63) / 63
    lx = max(3, (5 if has_alpha else 7) if is_landscape else header16 & 7)
    ly = max(3, header16 & 7 if is_landscape else (5 if has_alpha else 7))
    a_dc = (hash_[5] & 15) / 15 if has_alpha else 1.0
    a_scale = (hash_[5] >> 4) / 15 if has_alpha else 0.0

    start = 6 if has_alpha else 5
    index = 0

    def channel(nx: int, ny: int, scale: float) -> np.ndarray:
        # Coefficient matrix C[cy, cx] (DC left at 0), doubled as in the reference.
        nonlocal index
        coeffs = np.zeros((ny, nx))
        for cy, cx in _dct_order(nx, ny)[1:]:
            pos = start + (index >> 1)
            nibble = (hash_[pos] >> ((index & 1) << 2)) & 15 if pos < len(hash_) else 0
            coeffs[cy, cx] = (nibble / 7.5 - 1) * scale * 2
            index += 1
        return coeffs

    # Saturation boosted by 1.25 to compensate for quantisation (as reference).
    l_c = channel(lx, ly, l_scale)
    p_c = channel(3, 3, p_scale * 1.25)
    q_c = channel(3, 3, q_scale * 1.25)
    a_c = channel(5, 5, a_scale) if has_alpha else None

    ratio = thumbhash_aspect_ratio(hash_)
    w = _js_round(max_side if ratio > 1 else max_side * ratio)
    h = _js_round(max_side / ratio if ratio > 1 else max_side)
    w, h = max(1, w), max(1, h)

    def render(coeffs: np.ndarray, dc: float) -> np.ndarray:
        ny, nx = coeffs.shape
        fx = np.cos(np.pi / w * np.outer(np.arange(nx), np.arange(w) + 0.5))
        fy = np.cos(np.pi / h * np.outer(np.arange(ny), np.arange(h) + 0.5))
        return dc + fy.T @ coeffs @ fx  # (h, w)

    lum = render(l_c, l_dc)
    p = render(p_c, p_dc)
    q = render(q_c, q_dc)
    alpha = render(a_c, a_dc) if a_c is not None else np.full((h, w), 1.0)
    b = lum - 2 / 3 * p
    r = (3 * lum - b + q) / 2
    g = r - q
    out = np.stack([r, g, b, alpha], axis=-1)
    # Uint8Array assignment in the reference truncates toward zero.
    return np.trunc(np.clip(out * 255, 0, 255)).astype(np.uint8)


def thumbhash_to_image(hash_: bytes, *, max_side: int = 32) -> Image.Image:
    """Render a hash to a Pillow image (``RGB`` unless the hash has alpha)."""
    rgba = thumbhash_to_rgba(hash_, max_side=max_side)
    im = Image.fromarray(rgba, "RGBA")
    return im if _header(hash_)[2] else im.convert("RGB")


def thumbhash_to_data_url(hash_: bytes, *, max_side: int = 32) -> str:
    """Render a hash to a ``data:image/png;base64,...`` URL.

    Meant for ``<img src>`` or CSS ``background-image`` so placeholders show
    without JavaScript; the browser's smooth upscaling does the blurring, so a
    ``max_side`` of 16 already looks fine and halves the HTML weight.

    Args:
        hash_: ThumbHash bytes.
        max_side: Longer side of the embedded PNG in pixels.

    Returns:
        The data URL string.
    """
    im = thumbhash_to_image(hash_, max_side=max_side)
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
