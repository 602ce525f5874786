"""Opt-in speed comparison (PHOTOBOX_BENCH=1): make_thumbnails vs a naive loop.

Not a regular test: timings depend on the machine. Prints ms per photo for a
12 MP JPEG and a 12 MP HEIC, each through

* ``make_thumbnails`` (draft decode, one resize chain, WebP thumb, JPEG preview,
  ThumbHash), and
* the naive ``Image.open(...).convert("RGB").resize(...)`` (preview size only,
  nothing saved), plus a naive full job (transpose, both resizes, both saves).
"""

from __future__ import annotations

import io
import os
import time

import pytest
from PIL import Image, ImageOps

from photobox.media.thumbs import make_thumbnails

try:
    from . import _gen
except ImportError:  # tests/media is not a package: pytest put it on sys.path
    import _gen

pytestmark = pytest.mark.skipif(not os.environ.get("PHOTOBOX_BENCH"), reason="set PHOTOBOX_BENCH=1")


def _ms(fn, n: int = 5) -> float:
    fn()  # warm-up (page cache, lazy plugin imports)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000


def _naive_resize(path):
    return Image.open(path).convert("RGB").resize((1920, 1440))


def _naive_job(path):
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    preview = im.resize((1920, 1440), Image.Resampling.LANCZOS)
    preview.save(io.BytesIO(), "JPEG", quality=85)
    preview.resize((333, 250), Image.Resampling.LANCZOS).save(io.BytesIO(), "WEBP", quality=80)


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF"])
def test_bench(tmp_path, fmt, capsys):
    if fmt == "HEIF":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.register_heif_opener()
    src = tmp_path / f"12mp.{'jpg' if fmt == 'JPEG' else 'heic'}"
    _gen.noisy_photo(4000, 3000).save(src, fmt, quality=90 if fmt == "JPEG" else 60)
    ours = _ms(lambda: make_thumbnails(src, tmp_path / "t.webp", tmp_path / "p.jpg"))
    naive = _ms(lambda: _naive_resize(src))
    job = _ms(lambda: _naive_job(src))
    with capsys.disabled():
        print(
            f"\n{fmt} 4000x3000 ({src.stat().st_size / 1e6:.1f} MB): make_thumbnails {ours:.0f} ms, "
            f"open+convert+resize {naive:.0f} ms, naive full job {job:.0f} ms"
        )
