"""ThumbHash encoder/decoder: reference vectors and round trips."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from photobox.media.placeholder import (
    image_to_thumbhash,
    rgba_to_thumbhash,
    thumbhash_aspect_ratio,
    thumbhash_average_rgba,
    thumbhash_to_data_url,
    thumbhash_to_image,
    thumbhash_to_rgba,
)


def _pattern(w: int, h: int, alpha: bool) -> np.ndarray:
    """Deterministic, asymmetric test pattern (no RNG, no exact DCT ties)."""
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.zeros((h, w, 4), np.uint8)
    arr[..., 0] = (xx * 7 + yy * 3) % 256
    arr[..., 1] = (xx * xx + yy * 11) % 256
    arr[..., 2] = (200 - yy * 2) % 256
    arr[..., 3] = ((xx * 5 + yy) % 256) if alpha else 255
    return arr


# Produced by the reference implementation (npm "thumbhash" 0.1.1,
# rgbaToThumbHash / thumbHashToRGBA) for _pattern(w, h, alpha): the hash and the
# first 12 bytes of the decoded RGBA.
REFERENCE = [
    (40, 30, False, "a2f6092d9006798759988566678787880652767095", (32, 23), "004dc1ff004fc2ff0052c4ff"),
    (30, 50, False, "621706340a14c7a05798764586784640567150", (18, 32), "0061c7ff0062c7ff0163c6ff"),
    (64, 64, True, "a0e7811d022799587f257786789980f88f6907986797777877", (32, 32), "7d7493257c7493247c749323"),
    (100, 17, False, "24f605198276659078767687656007a2cb", (32, 5), "454ebbff4a52bfff525ac6ff"),
]


@pytest.mark.parametrize("w,h,alpha,expected,size,first", REFERENCE)
def test_encoder_matches_reference(w, h, alpha, expected, size, first):
    assert rgba_to_thumbhash(_pattern(w, h, alpha)).hex() == expected


@pytest.mark.parametrize("w,h,alpha,expected,size,first", REFERENCE)
def test_decoder_matches_reference(w, h, alpha, expected, size, first):
    rgba = thumbhash_to_rgba(bytes.fromhex(expected))
    assert (rgba.shape[1], rgba.shape[0]) == size
    assert rgba.reshape(-1)[:12].tobytes().hex() == first


def test_round_trip_average_colour_and_aspect():
    im = Image.new("RGB", (90, 60), (200, 120, 40))
    im.paste((40, 90, 200), (0, 0, 45, 60))  # left half blue, right half orange
    h = image_to_thumbhash(im)
    assert 5 <= len(h) <= 25
    avg = np.array(thumbhash_average_rgba(h)[:3]) * 255
    true_avg = np.asarray(im, dtype=float).reshape(-1, 3).mean(axis=0)
    assert np.abs(avg - true_avg).max() < 12
    decoded = np.asarray(thumbhash_to_image(h), dtype=float)
    assert np.abs(decoded.reshape(-1, 3).mean(axis=0) - true_avg).max() < 12
    # Left stays blue-ish, right orange-ish.
    assert decoded[:, :5, 2].mean() > decoded[:, :5, 0].mean()
    assert decoded[:, -5:, 0].mean() > decoded[:, -5:, 2].mean()
    assert thumbhash_aspect_ratio(h) == pytest.approx(1.5, rel=0.1)


def test_alpha_round_trip():
    im = Image.new("RGBA", (50, 50), (255, 0, 0, 0))
    im.paste((0, 255, 0, 255), (0, 0, 25, 50))
    h = image_to_thumbhash(im)
    out = thumbhash_to_image(h)
    assert out.mode == "RGBA"
    a = np.asarray(out)[..., 3]
    assert a[:, :4].mean() > 200 and a[:, -4:].mean() < 60


def test_large_image_is_shrunk_and_raw_encoder_refuses():
    big = Image.new("RGB", (400, 300), (10, 20, 30))
    assert len(image_to_thumbhash(big)) > 5
    with pytest.raises(ValueError):
        rgba_to_thumbhash(np.zeros((101, 50, 4), np.uint8))


def test_data_url_is_a_small_png():
    h = image_to_thumbhash(Image.new("RGB", (80, 40), (120, 60, 30)))
    url = thumbhash_to_data_url(h)
    assert url.startswith("data:image/png;base64,")
    png = base64.b64decode(url.split(",", 1)[1])
    with Image.open(io.BytesIO(png)) as im:
        # The hash stores the aspect ratio coarsely (7:4 here, not 2:1).
        assert im.format == "PNG" and im.width == 32 and 14 <= im.height <= 20
        r, g, b = im.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert abs(r - 120) < 15 and abs(g - 60) < 15 and abs(b - 30) < 15
    assert len(url) < 2000
    assert len(thumbhash_to_data_url(h, max_side=16)) < len(url)


def test_garbage_hash_is_rejected():
    with pytest.raises(ValueError):
        thumbhash_to_rgba(b"\x01\x02")
