"""Metadata cleaning for share links against the real camera corpus (../shared/corpus):
every JPEG loses its GPS/XMP while its pixels, orientation and colour profile stay identical;
every video loses its location while still playing; hostile files fail cleanly."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image

from photobox.sharing.redact import heif_patches, jpeg_clean, mp4_patches, read_patched
from tests.conftest import CORPUS as _DEFAULT

# ``PHOTOBOX_CORPUS`` points at the corpus from a git worktree, where ``../shared`` is elsewhere.
CORPUS = Path(os.environ.get("PHOTOBOX_CORPUS") or _DEFAULT)

pytestmark = pytest.mark.skipif(not (CORPUS / "expected.json").exists(),
                                reason="the real-file corpus (../shared/corpus) is not present")


def _files() -> dict:
    return json.loads((CORPUS / "expected.json").read_text())["files"]


def test_jpegs_lose_gps_and_keep_pixels_orientation_and_colour():
    cleaned = with_gps = 0
    for rel, expected in _files().items():
        if not rel.lower().endswith((".jpg", ".jpeg")):
            continue
        path = CORPUS / rel
        try:
            out = b"".join(jpeg_clean(path))
        except ValueError:
            assert rel.startswith("hostile/"), rel  # "not a JPEG" / damaged header: refused, not served
            continue
        assert b"http://ns.adobe.com/xap/1.0/" not in out, rel
        try:
            assert piexif.load(out)["GPS"] == {}, rel
        except (ValueError, piexif.InvalidImageDataError):
            pass  # no EXIF at all
        with_gps += bool(expected.get("gps"))
        try:
            original = Image.open(path)
            original.load()
        except Exception:
            continue  # hostile: nothing to compare
        clean = Image.open(io.BytesIO(out))
        clean.load()
        assert clean.size == original.size and np.array_equal(np.asarray(clean), np.asarray(original)), rel
        assert (clean.getexif().get(0x0112) or 1) == (original.getexif().get(0x0112) or 1), rel
        assert clean.info.get("icc_profile") == original.info.get("icc_profile"), rel
        if (expected.get("motion_photo") or {}).get("is_motion_photo"):
            assert b"ftyp" not in out[-64:] and out.endswith(b"\xff\xd9"), rel  # the embedded video is gone
        cleaned += 1
    assert cleaned >= 100 and with_gps >= 30, (cleaned, with_gps)


def _frames(source) -> int:
    import av

    try:
        with av.open(source) as container:
            n = 0
            for _ in container.decode(video=0):
                n += 1
                if n >= 3:
                    break
            return n
    except (av.error.FFmpegError, IndexError, ValueError):
        return -1


def test_videos_lose_location_and_still_play():
    import av

    checked = 0
    for rel, expected in _files().items():
        if expected.get("mime") not in ("video/mp4", "video/quicktime", "video/3gpp"):
            continue
        path = CORPUS / rel
        size = path.stat().st_size
        data = b"".join(read_patched(path, 0, size, mp4_patches(path)))
        assert len(data) == size, rel  # same length: byte ranges stay valid
        gps = expected.get("gps")
        if gps and (gps["lat"] or gps["lon"]):
            assert f"{gps['lat']:+.4f}"[:7].encode() not in data, rel
        before = _frames(str(path))
        assert _frames(io.BytesIO(data)) == before, rel
        if before > 0:
            with av.open(io.BytesIO(data)) as container:
                assert not [k for k in container.metadata if "location" in k.lower()], rel
            checked += 1
    assert checked >= 8


def test_ranges_of_a_patched_video_line_up():
    path = CORPUS / "video" / "elo__video.mov"
    if not path.exists():
        pytest.skip("corpus file missing")
    size = path.stat().st_size
    patches = mp4_patches(path)
    whole = b"".join(read_patched(path, 0, size, patches))
    for start, length in ((0, 100), (size // 2, 4096), (size - 777, 777), (1, size - 1)):
        assert b"".join(read_patched(path, start, length, patches)) == whole[start:start + length]
    for start, end, data in patches:  # box types renamed to "free", contents zeroed
        assert whole[start:end] == (data if data is not None else bytes(end - start))


def test_heif_lose_exif_and_xmp_and_keep_pixels():
    import pillow_heif

    pillow_heif.register_heif_opener()
    cleaned = with_gps = 0
    for rel, expected in _files().items():
        if not rel.lower().endswith((".heic", ".heif", ".hif", ".avif")):
            continue
        path = CORPUS / rel
        try:
            patches = heif_patches(path)
        except ValueError:
            assert rel.startswith("hostile/"), rel  # unreadable item tables: the original is refused
            continue
        data = b"".join(read_patched(path, 0, path.stat().st_size, patches))
        assert b"<x:xmpmeta" not in data and b"http://ns.adobe.com/xap/1.0/" not in data, rel
        try:
            original = Image.open(path)
            original.load()
        except Exception:
            continue
        clean = Image.open(io.BytesIO(data))
        clean.load()
        assert np.array_equal(np.asarray(clean), np.asarray(original)), rel
        assert not clean.getexif().get_ifd(0x8825) and not clean.info.get("xmp"), rel
        with_gps += bool(expected.get("gps"))
        cleaned += 1
    assert cleaned >= 20 and with_gps >= 8, (cleaned, with_gps)
