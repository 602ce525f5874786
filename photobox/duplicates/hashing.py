"""Perceptual hashes of a photo, made from its grid thumbnail (already decoded, upright and
in sRGB, ~250 px: hashing costs a few milliseconds, never a decode of the original).

* ``phash``: 64-bit DCT hash (the low 8×8 frequencies of a 32×32 grey image, each bit "above
  the median"). Robust to resizing, recompression, format changes, brightness/contrast
  edits and small crops; two copies of one photo are within a few bits.
* ``dhash``: 64-bit gradient hash (is each pixel of a 9×8 grey image brighter than its right
  neighbour). A second, differently-built opinion: the pair rule sums both distances, which
  separates copies from merely similar photos better than either alone (measured in
  ``scripts/bench dupes``).

Hashes are stored as signed 64-bit integers (SQLite's INTEGER); :func:`hamming` works on
numpy arrays of them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Hashes", "hash_file", "hash_image", "hamming", "to_signed"]


@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed integer SQLite stores."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _bits_to_int(bits: np.ndarray) -> int:
    out = 0
    for b in bits.ravel():
        out = (out << 1) | int(b)
    return to_signed(out)


class Hashes(tuple):
    """``(phash, dhash)`` as signed 64-bit integers."""

    __slots__ = ()

    @property
    def phash(self) -> int:
        return self[0]

    @property
    def dhash(self) -> int:
        return self[1]


def _grey(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        base.alpha_composite(rgba)
        image = base
    return image.convert("L")


def hash_image(image: Image.Image) -> Hashes:
    """Both hashes of an image (any mode; transparency is composited on white)."""
    grey = _grey(image)
    small = np.asarray(grey.resize((32, 32), Image.Resampling.BOX if min(grey.size) >= 64
                                   else Image.Resampling.BILINEAR), dtype=np.float64)
    m = _dct_matrix(32)
    low = (m @ small @ m.T)[:8, :8]
    med = np.median(low.ravel()[1:])  # the DC term only says how bright: leave it out of the median
    phash = _bits_to_int(low > med)
    d = np.asarray(grey.resize((9, 8), Image.Resampling.BOX if min(grey.size) >= 32
                               else Image.Resampling.BILINEAR), dtype=np.int16)
    dhash = _bits_to_int(d[:, 1:] > d[:, :-1])
    return Hashes((phash, dhash))


def hash_file(path: Path) -> Hashes:
    """Hashes of an image file (the thumbnail); raises OSError when it cannot be read."""
    with Image.open(path) as im:
        im.draft("L", (64, 64))
        return hash_image(im)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance between signed 64-bit hashes (broadcasting)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return np.bitwise_count(x.view(np.uint64))
