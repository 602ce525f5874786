"""make_thumbnails over the shared camera corpus and its hostile files.

The corpus lives outside the repository (``../shared/corpus`` from the repo
root; mixed licences, never copied in). Without it these tests skip.

* Hostile files: each must finish within a time budget and either succeed or
  raise a DecodeError subclass -- never another exception, never hang. Some
  have a specific expected outcome (truncated -> TruncatedImage, ...).
* Everything else: every file the oracle (Pillow + pillow-heif / PyAV, see
  ``expected.json`` ``decode``) could decode must give a thumbnail, whose
  full-size dimensions must equal exiftool's display size (orientation
  applied; for HEIF/AVIF the size libheif decodes, per ``rules.display_size``).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from photobox.media.decode import DecodeError, ImageTooLarge, TruncatedImage, UnsupportedImage
from photobox.media.thumbs import make_thumbnails

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"
HOSTILE = CORPUS / "hostile"
CATEGORIES = ("jpeg", "heic", "other", "orientation", "video", "raw", "motion", "live")
VIDEO_EXTS = {".mov", ".mp4", ".m4v", ".avi", ".mts", ".m2ts", ".3gp", ".mkv", ".webm"}
BUDGET_S = 30.0  # generous for slow CI; typical files take well under a second
ABSENT = "shared corpus not found at ../shared/corpus (it is not part of the repository)"


def _list(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(CORPUS)) for p in folder.rglob("*") if p.is_file())


# Pillow warns about every broken TIFF tag and about large declared sizes;
# expected here, and noise in the report.
pytestmark = [
    pytest.mark.corpus,
    pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]

HOSTILE_FILES = _list(HOSTILE)
CORPUS_FILES = [f for c in CATEGORIES for f in _list(CORPUS / c)]


def _expected() -> dict:
    path = CORPUS / "expected.json"
    return json.loads(path.read_text())["files"] if path.exists() else {}


EXPECTED = _expected()

#: Outcome: thumbnails made from what the file holds, and the result says it is truncated.
SHOWN_TRUNCATED = "shown, marked truncated"

# Hostile files whose outcome we pin down (others: success or any DecodeError).
HOSTILE_OUTCOME: dict[str, type[BaseException] | str | None] = {
    # libheif renders a truncated HEIC as grey tiles without error; we refuse it.
    "hostile/truncated__derived__IMG_5195_first300k.HEIC": TruncatedImage,
    "hostile/truncated__pil__truncated_image.png": TruncatedImage,
    # A JPEG cut after its image data began: shown as far as it goes, and marked.
    "hostile/truncated__pil__truncated_jpeg.jpg": SHOWN_TRUNCATED,
    "hostile/truncated__pp__broken.jpg": SHOWN_TRUNCATED,
    "hostile/bomb__pil__reallybig.bmp": ImageTooLarge,
    "hostile/zero-byte__derived__empty.heic": DecodeError,
    "hostile/wrong-ext__et__HTML.jpg": UnsupportedImage,
    # Broken metadata or a broken attached video must not cost the thumbnail.
    "hostile/bad-exif__exr__RangeError_Offset_outside_bounds.jpg": None,
    "hostile/bad-exif__exr__issue-exifr-41-Error_Segment_Unreachable.jpg": None,
    "hostile/bad-exif__mei__Issue_614.jpg": None,
    "hostile/bad-exif__pil__empty_gps_ifd.jpg": None,
    "hostile/bad-exif__pil__exif_gps_typeerror.jpg": None,
    "hostile/bad-exif__pil__invalid-exif.jpg": None,
    "hostile/bad-motion__ly__google_motion_photo_broken.jpg": None,
    "hostile/truncated__derived__pixel-motion-photo_video-cut.jpg": None,
    # Content decides, not the extension.
    "hostile/wrong-ext__lp__normalphoto.jpg": None,
    "hostile/wrong-ext__pp__this-is-a-jpeg.png": None,
    "hostile/wrong-ext__mei__Issue_247-1.nef": None,
}
HOSTILE_VIDEO_OUTCOME: dict[str, type[BaseException] | None] = {
    "hostile/bad-video__exo__sample_mdat_too_long.mp4": None,
    "hostile/zero-byte__pp__2018-04-12_19_24_49.mov": DecodeError,
    "hostile/truncated__derived__with-gps_no-moov.mov": DecodeError,
}


def _kind(rel: str) -> str:
    return "video" if Path(rel).suffix.lower() in VIDEO_EXTS else "image"


def _run(src: Path, out: Path, kind: str) -> dict:
    """Run make_thumbnails in a daemon thread so a hang fails instead of blocking."""
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = make_thumbnails(src, out / "t.webp", out / "p.jpg", kind=kind)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(BUDGET_S)
    if worker.is_alive():
        pytest.fail(f"{src.name} ({kind}) did not finish within {BUDGET_S:.0f}s")
    return box


def _check_success(box: dict, out: Path) -> None:
    res = box["result"]
    assert (out / "t.webp").stat().st_size > 0 and (out / "p.jpg").stat().st_size > 0
    assert res.thumb_width > 0 and res.thumb_height > 0 and res.placeholder


@pytest.mark.parametrize("kind", ["image", "video"])
@pytest.mark.parametrize("rel", HOSTILE_FILES or ["<absent>"])
def test_hostile_file(tmp_path, rel, kind):
    if rel == "<absent>":
        pytest.skip(ABSENT)
    box = _run(CORPUS / rel, tmp_path, kind)
    err = box.get("error")
    if err is not None and not isinstance(err, DecodeError):
        raise AssertionError(f"{rel} ({kind}) raised a non-DecodeError") from err
    table = HOSTILE_OUTCOME if kind == "image" else HOSTILE_VIDEO_OUTCOME
    if kind == _kind(rel) and rel in table:
        want = table[rel]
        if want is None:
            assert err is None, f"{rel}: expected a thumbnail, got {err!r}"
        elif want == SHOWN_TRUNCATED:
            assert err is None and box["result"].truncated, f"{rel}: expected a marked thumbnail, got {box!r}"
        else:
            assert isinstance(err, want), f"{rel}: expected {want.__name__}, got {err!r}"
    if err is None:
        _check_success(box, tmp_path)


def _oracle_decoded(exp: dict, kind: str) -> bool:
    dec = exp.get("decode", {})
    if kind == "video":
        return bool(dec.get("av_ok")) and "av_decode_error" not in dec
    return bool(dec.get("pil_ok"))


@pytest.mark.parametrize("rel", CORPUS_FILES or ["<absent>"])
def test_corpus_file(tmp_path, rel):
    if rel == "<absent>":
        pytest.skip(ABSENT)
    kind = _kind(rel)
    exp = EXPECTED.get(rel, {})
    box = _run(CORPUS / rel, tmp_path, kind)
    err = box.get("error")
    if err is not None:
        if not isinstance(err, DecodeError):
            raise AssertionError(f"{rel} raised a non-DecodeError") from err
        # Only acceptable where the oracle could not decode either (RAW files
        # here are metadata-only; pp__quicktime-jpeg.mov has no decodable frame).
        assert not _oracle_decoded(exp, kind), f"{rel}: oracle decoded it, we raised {err!r}"
        return
    _check_success(box, tmp_path)
    res = box["result"]
    assert not res.truncated, f"{rel}: a whole camera file was marked truncated"
    if rel.startswith("raw/"):
        return  # the embedded preview is smaller than the sensor size exiftool reports
    dw, dh = exp.get("display_width"), exp.get("display_height")
    if not (dw and dh):
        return
    assert (res.source_width, res.source_height) == (dw, dh), "display size (orientation) differs"
    # The thumbnail keeps that orientation and aspect ratio.
    assert abs(res.thumb_width / res.thumb_height - dw / dh) <= 0.02 * dw / dh + 1 / res.thumb_height
