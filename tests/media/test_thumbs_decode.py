"""photobox.media.decode: orientation, colour, odd modes, bombs, truncation, RAW."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photobox.media.decode import (
    DecodeError,
    ImageTooLarge,
    TruncatedImage,
    UnsupportedImage,
    decode_image,
    open_image,
)

try:
    from . import _gen
except ImportError:  # tests/media is not a package: pytest put it on sys.path
    import _gen

RED, BLUE = _gen.MARKER, _gen.BACKGROUND


def _is_red(px) -> bool:
    return px[0] > 180 and px[1] < 80 and px[2] < 80


def _corner_with_marker(im: Image.Image) -> str:
    w, h = im.size
    corners = {
        "top-left": (2, 2),
        "top-right": (w - 3, 2),
        "bottom-left": (2, h - 3),
        "bottom-right": (w - 3, h - 3),
    }
    hits = [name for name, xy in corners.items() if _is_red(im.getpixel(xy))]
    assert len(hits) == 1, hits
    return hits[0]


# Where the stored top-left pixel appears on screen, straight from the EXIF
# spec's row/column description for each Orientation value.
EXPECTED_CORNER = {
    1: "top-left",
    2: "top-right",
    3: "bottom-right",
    4: "bottom-left",
    5: "top-left",
    6: "top-right",
    7: "bottom-right",
    8: "bottom-left",
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(tmp_path, orientation):
    path = _gen.jpeg_with_orientation(tmp_path / f"o{orientation}.jpg", orientation)
    d = decode_image(path)
    expected_size = (40, 60) if orientation >= 5 else (60, 40)
    assert d.image.size == expected_size
    assert (d.source_width, d.source_height) == expected_size
    assert _corner_with_marker(d.image) == EXPECTED_CORNER[orientation]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_with_draft_target(tmp_path, orientation):
    path = tmp_path / "big.jpg"
    _gen.marker_image(1200, 800).save(path, quality=90, exif=_gen.exif_bytes(orientation))
    d = decode_image(path, target=(200, 200))
    w, h = d.image.size
    assert min(w, h) >= 200 and max(w, h) <= 600  # drafted to 1/4
    assert (d.source_width, d.source_height) == ((800, 1200) if orientation >= 5 else (1200, 800))
    assert _corner_with_marker(d.image) == EXPECTED_CORNER[orientation]


@pytest.mark.parametrize("orientation", [6, 3])
def test_heic_orientation_not_applied_twice(tmp_path, orientation):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = tmp_path / "o.heic"
    # pillow-heif turns EXIF orientation into irot/imir on save; libheif applies
    # those on decode and EXIF says 1 afterwards.
    _gen.marker_image(64, 48).save(path, "HEIF", quality=90, exif=_gen.exif_bytes(orientation))
    d = decode_image(path)
    assert d.format == "HEIF"
    assert d.image.size == ((48, 64) if orientation == 6 else (64, 48))
    assert _corner_with_marker(d.image) == EXPECTED_CORNER[orientation]


def test_heic_plain_and_truncated(tmp_path):
    pytest.importorskip("pillow_heif")
    path = tmp_path / "p.heic"
    _gen.noisy_photo(640, 480).save(path, "HEIF", quality=70)
    d = decode_image(path)
    assert d.image.size == (640, 480) and d.image.mode == "RGB"
    cut = tmp_path / "cut.heic"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(TruncatedImage):
        decode_image(cut)
    # Best effort skips our box check; this libheif then notices the iloc
    # extent past EOF itself (for grid images it may render grey tiles instead).
    with pytest.raises(TruncatedImage):
        decode_image(cut, allow_truncated=True)


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    # Pure cyan ink in CMYK.
    Image.new("CMYK", (32, 32), (255, 0, 0, 0)).save(path, "JPEG", quality=95)
    im = open_image(path)
    assert im.mode == "RGB"
    r, g, b = im.getpixel((16, 16))
    assert r < 40 and g > 200 and b > 200


def test_png_alpha_composited_on_white_or_kept(tmp_path):
    path = tmp_path / "a.png"
    im = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 10, 20))
    im.save(path)
    flat = open_image(path)
    assert flat.mode == "RGB"
    assert flat.getpixel((15, 5)) == (255, 255, 255)
    assert flat.getpixel((5, 5)) == (0, 0, 255)
    kept = open_image(path, keep_alpha=True)
    assert kept.mode == "RGBA" and kept.getpixel((15, 5))[3] == 0


def test_opaque_alpha_is_dropped(tmp_path):
    path = tmp_path / "opaque.png"
    Image.new("RGBA", (8, 8), (10, 20, 30, 255)).save(path)
    assert open_image(path, keep_alpha=True).mode == "RGB"


def test_palette_with_transparency(tmp_path):
    path = tmp_path / "p.gif"
    im = Image.new("P", (10, 10), 0)
    im.putpalette([0, 255, 0] + [255, 0, 0] * 255)
    im.paste(1, (0, 0, 5, 10))
    im.save(path, transparency=0)
    out = open_image(path)
    assert out.getpixel((2, 2)) == (255, 0, 0)
    assert out.getpixel((8, 2)) == (255, 255, 255)


def test_16bit_grey_png_is_not_white(tmp_path):
    arr = np.full((16, 16), 32768, np.uint16)  # mid grey in 16 bit
    arr[:, :8] = 65535
    im = open_image(_gen.png_16bit(tmp_path / "g16.png", arr))
    assert im.mode == "RGB"
    assert abs(im.getpixel((12, 4))[0] - 128) <= 1
    assert im.getpixel((2, 4)) == (255, 255, 255)


def test_16bit_rgb_png(tmp_path):
    arr = np.zeros((8, 8, 3), np.uint16)
    arr[..., 0] = 65535
    arr[..., 2] = 16384
    px = open_image(_gen.png_16bit(tmp_path / "rgb16.png", arr)).getpixel((3, 3))
    assert px[0] == 255 and px[1] == 0 and abs(px[2] - 64) <= 1


@pytest.mark.parametrize("mode", ["1", "L", "LA", "I;16", "I", "F"])
def test_odd_modes(tmp_path, mode):
    path = tmp_path / f"m.{'tif' if mode in ('I;16', 'I', 'F') else 'png'}"
    base = Image.new(mode, (8, 8))
    if mode == "LA":
        base = Image.new("LA", (8, 8), (128, 255))
    base.save(path)
    im = open_image(path)
    assert im.mode == "RGB" and im.size == (8, 8)


def test_adobe_rgb_icc_is_converted_to_srgb(tmp_path):
    icc = _gen.adobe_rgb_icc()
    colours = [(200, 60, 60), (60, 160, 80), (128, 128, 128), (30, 60, 200)]
    im = Image.new("RGB", (40, 10))
    for i, c in enumerate(colours):
        im.paste(c, (i * 10, 0, i * 10 + 10, 10))
    path = tmp_path / "adobe.png"  # PNG: lossless, so the only change is the ICC
    im.save(path, icc_profile=icc)
    out = open_image(path)
    for i, c in enumerate(colours):
        got = np.array(out.getpixel((i * 10 + 5, 5)), dtype=float)
        want = _gen.adobe_to_srgb(c)
        assert np.abs(got - want).max() <= 3, (c, got, want)
    # A saturated Adobe RGB green must really change (not a no-op transform).
    assert out.getpixel((15, 5))[0] < 60 - 20


def test_adobe_rgb_icc_jpeg(tmp_path):
    path = tmp_path / "adobe.jpg"
    Image.new("RGB", (16, 16), (60, 160, 80)).save(path, quality=100, icc_profile=_gen.adobe_rgb_icc())
    got = np.array(open_image(path).getpixel((8, 8)), dtype=float)
    assert np.abs(got - _gen.adobe_to_srgb((60, 160, 80))).max() <= 5


def test_broken_icc_profile_is_ignored(tmp_path):
    path = tmp_path / "bad_icc.jpg"
    Image.new("RGB", (16, 16), (10, 200, 30)).save(path, icc_profile=b"\0" * 200 + b"garbage")
    r, g, b = open_image(path).getpixel((8, 8))
    assert g > 180 and r < 40


def test_draft_decodes_12mp_jpeg_at_reduced_size(tmp_path):
    path = tmp_path / "12mp.jpg"
    _gen.noisy_photo(4000, 3000).save(path, quality=90)
    t = time.perf_counter()
    d = decode_image(path, target=(1440, 1440))
    drafted = time.perf_counter() - t
    assert d.image.size == (2000, 1500)  # DCT scaling 1/2, not 4000x3000
    assert (d.source_width, d.source_height) == (4000, 3000)
    t = time.perf_counter()
    with Image.open(path) as full:
        full.load()
    plain = time.perf_counter() - t
    assert drafted < plain * 0.9 + 0.05


def _declared_bomb_probe(path: Path) -> float:
    """Decode in a fresh interpreter; return the peak RSS growth in MiB."""
    code = textwrap.dedent(
        f"""
        import resource, sys
        from photobox.media.decode import decode_image, ImageTooLarge
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            decode_image({str(path)!r})
        except ImageTooLarge:
            pass
        else:
            sys.exit("no error")
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("maker", [_gen.png_header_bomb, _gen.gif_header_bomb])
def test_decompression_bomb_rejected_fast(tmp_path, maker):
    path = maker(tmp_path / "bomb", 60000, 60000)
    t = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="too large"):
        decode_image(path)
    assert time.perf_counter() - t < 1.0
    assert _declared_bomb_probe(path) < 50


def test_bomb_between_our_limit_and_pillows(tmp_path):
    path = _gen.png_header_bomb(tmp_path / "b.png", 12000, 10000)  # 120 MP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLarge, match=r"image too large: 12000x10000 px \(limit 100 MP\)"):
            decode_image(path)
        with pytest.raises(ImageTooLarge):
            decode_image(path, max_pixels=50_000_000)


def test_truncated_jpeg_is_shown_and_marked_png_refused(tmp_path):
    src = tmp_path / "full.jpg"
    _gen.noisy_photo(400, 300).save(src, quality=90)
    whole = decode_image(src)
    assert not whole.truncated
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    shown = decode_image(cut)
    assert shown.truncated and shown.image.size == (400, 300)
    # The first rows are the photo's own; the missing end is filled in by libjpeg.
    top = np.asarray(shown.image)[:40].astype(int)
    assert np.abs(top - np.asarray(whole.image)[:40].astype(int)).mean() < 3
    with pytest.raises(TruncatedImage, match="truncated JPEG: the file ends before its image data does"):
        decode_image(cut, allow_truncated=False)

    png = tmp_path / "full.png"
    _gen.noisy_photo(200, 150).save(png)
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    with pytest.raises(TruncatedImage):
        decode_image(cut_png)


def test_zero_byte_garbage_and_missing(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(DecodeError, match=r"the file is empty \(0 bytes\)"):
        decode_image(empty)
    text = tmp_path / "notes.jpg"
    text.write_text("<html>not an image</html>")
    with pytest.raises(UnsupportedImage):
        decode_image(text)
    with pytest.raises(DecodeError):
        decode_image(tmp_path / "missing.jpg")


def test_video_file_is_not_an_image(tmp_path):
    pytest.importorskip("av")
    path = _gen.make_video(tmp_path / "v.mp4", seconds=0.2, audio=None)
    with pytest.raises(UnsupportedImage, match="video"):
        decode_image(path)


def test_wrong_extension_is_sniffed(tmp_path):
    path = tmp_path / "photo.png"
    _gen.marker_image().save(path, "JPEG")
    assert decode_image(path).format == "JPEG"


@pytest.mark.parametrize("orientation", [1, 6])
def test_raw_dng_uses_embedded_preview_and_ifd0_orientation(tmp_path, orientation):
    preview = _gen.jpeg_bytes(_gen.marker_image(300, 200), quality=90)
    path = _gen.dng_like(tmp_path / "shot.dng", preview, orientation=orientation)
    d = decode_image(path)
    assert d.from_raw_preview and d.format == "JPEG"
    assert d.image.size == ((200, 300) if orientation == 6 else (300, 200))
    assert _corner_with_marker(d.image) == EXPECTED_CORNER[orientation]


def test_raw_raf_preview_keeps_its_exif_orientation(tmp_path):
    preview = _gen.jpeg_bytes(_gen.marker_image(300, 200), quality=90, exif=_gen.exif_bytes(8))
    d = decode_image(_gen.raf_like(tmp_path / "shot.raf", preview))
    assert d.image.size == (200, 300)
    assert _corner_with_marker(d.image) == EXPECTED_CORNER[8]


def test_raw_without_preview(tmp_path):
    path = tmp_path / "empty.nef"
    path.write_bytes(b"II*\0\x08\0\0\0" + b"\0" * 64)
    with pytest.raises(UnsupportedImage, match="RAW"):
        decode_image(path)


def test_unknown_raw_found_by_scanning(tmp_path):
    preview = _gen.jpeg_bytes(_gen.marker_image(120, 80))
    path = tmp_path / "x.crw"
    path.write_bytes(b"II\x1a\0\0\0HEAPCCDR" + b"\0" * 500 + preview + b"\0" * 100)
    d = decode_image(path)
    assert d.from_raw_preview and d.image.size == (120, 80)


def test_phone_jpeg_missing_its_last_bytes_is_shown(tmp_path):
    """The issue's case: a phone JPEG missing its last 33 bytes (an interrupted copy)."""
    src = tmp_path / "IMG_0001.jpg"
    _gen.noisy_photo(1600, 1200).save(src, quality=92, exif=_gen.exif_bytes(6))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(src.read_bytes()[:-33])
    d = decode_image(cut, target=(400, 400))
    assert d.truncated and (d.source_width, d.source_height) == (1200, 1600)  # orientation still applied
    assert d.image.size == (600, 800)  # DCT scaling still used (draft)


def test_progressive_jpeg_cut_short_is_shown_whole_but_coarse(tmp_path):
    src = tmp_path / "p.jpg"
    _gen.noisy_photo(400, 300).save(src, quality=90, progressive=True)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    d = decode_image(cut)
    assert d.truncated and d.image.size == (400, 300)
    bottom = np.asarray(d.image)[-20:].astype(int)
    assert bottom.std() > 5  # the first scans cover the whole picture: not a flat grey band


def test_jpeg_without_any_image_data_is_refused(tmp_path):
    src = tmp_path / "full.jpg"
    _gen.noisy_photo(300, 200).save(src, quality=90)
    data = src.read_bytes()
    sos = data.index(b"\xff\xda")
    for name, end in (("header-only.jpg", sos + 14), ("mid-header.jpg", sos // 2)):
        cut = tmp_path / name
        cut.write_bytes(data[:end])
        with pytest.raises(TruncatedImage, match="truncated JPEG"):
            decode_image(cut)
