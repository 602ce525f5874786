"""photobox.media.thumbs.make_thumbnails: sizes, formats, atomic writes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image

from photobox.media.decode import DecodeError, TruncatedImage
from photobox.media.placeholder import thumbhash_average_rgba
from photobox.media.thumbs import ThumbResult, fit_size, make_thumbnails

try:
    from . import _gen
except ImportError:  # tests/media is not a package: pytest put it on sys.path
    import _gen


def _outputs(tmp_path: Path, preview_ext: str = "jpg") -> tuple[Path, Path]:
    return tmp_path / "out" / "t.webp", tmp_path / "out" / f"p.{preview_ext}"


@pytest.mark.parametrize(
    "src,short,expected",
    [
        ((4000, 3000), 250, (333, 250)),
        ((3000, 4000), 250, (250, 333)),
        ((100, 80), 250, (100, 80)),  # never upscale
        ((10000, 1000), 250, (750, 75)),  # panorama: long side capped at 3x
        ((1000, 10000), 250, (75, 750)),
        ((4032, 3024), 1440, (1920, 1440)),
    ],
)
def test_fit_size(src, short, expected):
    assert fit_size(*src, short) == expected


def test_make_thumbnails_jpeg(tmp_path):
    src = tmp_path / "photo.jpg"
    _gen.noisy_photo(4000, 3000).save(src, quality=90, exif=_gen.exif_bytes(6))
    thumb, preview = _outputs(tmp_path)
    res = make_thumbnails(src, thumb, preview)
    assert isinstance(res, ThumbResult)
    assert (res.source_width, res.source_height) == (3000, 4000)
    # The half-size draft decode (1500x2000) is within 15 % of 1440: kept as is, not resampled.
    assert (res.preview_width, res.preview_height) == (1500, 2000)
    assert (res.thumb_width, res.thumb_height) == (250, 333)
    with Image.open(thumb) as t:
        assert t.format == "WEBP" and t.size == (250, 333)
        assert not t.getexif()  # no EXIF/GPS leaks into served files
    with Image.open(preview) as p:
        assert p.format == "JPEG" and p.size == (1500, 2000)
        assert "exif" not in p.info and "icc_profile" not in p.info
    assert res.placeholder_kind == "thumbhash" and 5 < len(res.placeholder) <= 25
    assert res.dominant_color is not None and res.dominant_color.startswith("#")
    assert res.preview_format == "jpeg" and not res.has_alpha
    assert sorted(p.name for p in thumb.parent.iterdir()) == ["p.jpg", "t.webp"]  # no temp files


def test_thumbnail_orientation_marker(tmp_path):
    src = _gen.jpeg_with_orientation(tmp_path / "o6.jpg", 6, size=(600, 400))
    thumb, preview = _outputs(tmp_path)
    res = make_thumbnails(src, thumb, preview, thumb_size=100)
    assert (res.thumb_width, res.thumb_height) == (100, 150)
    with Image.open(thumb) as t:
        r, g, b = t.convert("RGB").getpixel((t.width - 5, 5))
        assert r > 180 and b < 80  # red marker ended up top-right


def test_small_image_not_upscaled(tmp_path):
    src = tmp_path / "small.png"
    Image.new("RGB", (120, 90), (10, 200, 10)).save(src)
    thumb, preview = _outputs(tmp_path)
    res = make_thumbnails(src, thumb, preview)
    assert (res.preview_width, res.preview_height) == (120, 90)
    assert (res.thumb_width, res.thumb_height) == (120, 90)
    assert res.dominant_color == "#0ac80a"
    r, g, b, _ = thumbhash_average_rgba(res.placeholder)
    assert g > 0.6 and r < 0.2


def test_transparent_png_webp_preview_keeps_alpha(tmp_path):
    src = tmp_path / "logo.png"
    im = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (100, 100, 300, 300))
    im.save(src)
    thumb, preview = _outputs(tmp_path, "webp")
    res = make_thumbnails(src, thumb, preview)
    assert res.has_alpha and res.preview_format == "webp"
    with Image.open(preview) as p:
        assert p.format == "WEBP" and p.mode == "RGBA" and p.getpixel((5, 5))[3] == 0
    # JPEG preview: composited on white.
    thumb2, preview2 = tmp_path / "t2.webp", tmp_path / "p2.jpg"
    res2 = make_thumbnails(src, thumb2, preview2)
    assert not res2.has_alpha
    with Image.open(preview2) as p:
        assert min(p.convert("RGB").getpixel((5, 5))) > 245


def test_heic_thumbnails(tmp_path):
    pytest.importorskip("pillow_heif")
    src = tmp_path / "p.heic"
    _gen.noisy_photo(1600, 1200).save(src, "HEIF", quality=60, exif=_gen.exif_bytes(6))
    thumb, preview = _outputs(tmp_path)
    res = make_thumbnails(src, thumb, preview, preview_size=600)
    assert (res.source_width, res.source_height) == (1200, 1600)
    assert (res.preview_width, res.preview_height) == (600, 800)


def test_failure_writes_nothing(tmp_path):
    src = tmp_path / "cut.jpg"
    full = tmp_path / "full.jpg"
    _gen.noisy_photo(300, 200).save(full)
    src.write_bytes(full.read_bytes()[:300])  # cut in its header: nothing to show
    thumb, preview = _outputs(tmp_path)
    with pytest.raises(TruncatedImage):
        make_thumbnails(src, thumb, preview)
    assert not thumb.parent.exists() or not any(thumb.parent.iterdir())


def test_truncated_jpeg_gets_thumbnails_and_is_marked(tmp_path):
    src = tmp_path / "cut.jpg"
    full = tmp_path / "full.jpg"
    _gen.noisy_photo(800, 600).save(full, quality=90)
    src.write_bytes(full.read_bytes()[:-33])
    thumb, preview = _outputs(tmp_path)
    res = make_thumbnails(src, thumb, preview, preview_size=300)
    assert res.truncated and (res.source_width, res.source_height) == (800, 600)
    assert thumb.stat().st_size > 0 and preview.stat().st_size > 0
    assert not make_thumbnails(full, thumb, preview, preview_size=300).truncated


def test_existing_outputs_are_replaced_atomically(tmp_path):
    src = tmp_path / "a.png"
    Image.new("RGB", (300, 300), (255, 255, 0)).save(src)
    thumb, preview = _outputs(tmp_path)
    thumb.parent.mkdir()
    thumb.write_bytes(b"old")
    preview.write_bytes(b"old")
    make_thumbnails(src, thumb, preview)
    assert thumb.read_bytes()[:4] == b"RIFF"
    assert preview.read_bytes()[:2] == b"\xff\xd8"


def test_video_poster_thumbnails(tmp_path):
    pytest.importorskip("av")
    src = _gen.make_video(tmp_path / "v.mp4", width=320, height=180, rotation_exif=90, seconds=2)
    thumb, preview = _outputs(tmp_path)
    res = make_thumbnails(src, thumb, preview, kind="video")
    assert (res.source_width, res.source_height) == (180, 320)
    assert (res.thumb_width, res.thumb_height) == (180, 320)  # smaller than 250: kept
    with Image.open(thumb) as t:
        r, g, b = t.convert("RGB").getpixel((t.width - 4, 4))
        assert r > 180 and b < 80  # not the black first frame, rotated clockwise


def test_bad_kind(tmp_path):
    with pytest.raises(ValueError):
        make_thumbnails(tmp_path / "x", tmp_path / "a.webp", tmp_path / "b.jpg", kind="audio")


def test_parallel_workers(tmp_path):
    sources = []
    for i in range(6):
        p = tmp_path / f"s{i}.jpg"
        _gen.noisy_photo(800, 600, seed=i).save(p)
        sources.append(p)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            make_thumbnails(sources[i], tmp_path / f"t{i}.webp", tmp_path / f"p{i}.jpg", preview_size=300)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(list(tmp_path.glob("t*.webp"))) == 6


def test_decode_error_is_exported():
    from photobox.media import thumbs

    assert thumbs.DecodeError is DecodeError
