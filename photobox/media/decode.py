"""Safe, fast decoding of still images into display-ready RGB Pillow images.

Everything that turns a file on disk into pixels for thumbnails goes through
:func:`decode_image` (or its thin wrapper :func:`open_image`). It is written for
a Raspberry Pi working through 100k photos in worker threads, so it:

* checks the declared pixel count *before* any pixel is decoded (bombs);
* lets libjpeg decode at 1/2, 1/4 or 1/8 size (``Image.draft``) and reduces other
  formats with a cheap integer box filter before any further work;
* applies the EXIF orientation exactly once (HEIF and TIFF arrive already
  oriented from their decoders; see ``_decode_opened``);
* converts embedded ICC profiles to sRGB and normalises odd modes (CMYK, 16-bit,
  palette + transparency, 1-bit, LA, I;16) to 8-bit RGB (or RGBA);
* renders a JPEG that was cut off as far as its data goes and says so
  (:attr:`DecodedImage.truncated`); refuses a file with no image data left, and a
  truncated HEIF (libheif would silently fill grey tiles we cannot tell apart);
* reads camera RAW files through their embedded JPEG preview (best effort).

Every failure surfaces as :class:`DecodeError` (or a subclass) so callers have
one thing to catch; the original exception is chained for logs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError
from PIL import features as _features

from . import _colour, _raw_preview, _stills
from ._quicktime import Reader
from ._window import FileWindow

try:  # HEIC/HEIF support is optional at import time but expected in production.
    import pillow_heif
except ImportError:  # pragma: no cover - depends on the environment
    pillow_heif = None

if pillow_heif is not None:
    # Registering is idempotent. pillow-heif applies irot/imir/clap while decoding
    # and resets EXIF Orientation to 1, which is why HEIF images must never be
    # transposed again here.
    pillow_heif.register_heif_opener()
    if not _features.check("avif"):  # pragma: no cover - Pillow < 11.2 only
        # Older Pillow has no AVIF plugin; older pillow-heif builds can decode it.
        _register_avif = getattr(pillow_heif, "register_avif_opener", None)
        if _register_avif is not None:
            try:
                _register_avif()
            except Exception:  # noqa: BLE001 - AVIF is best effort
                pass

__all__ = [
    "DecodeError",
    "DecodedImage",
    "ImageTooLarge",
    "TruncatedImage",
    "UnsupportedImage",
    "RAW_EXTENSIONS",
    "decode_image",
    "open_image",
]

DEFAULT_MAX_PIXELS = 100_000_000

#: File extensions treated as camera RAW (decoded through the embedded preview) even
#: when the content does not show sensor data (metadata-only RAWs).
RAW_EXTENSIONS = frozenset(
    {
        ".3fr", ".ari", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf",
        ".fff", ".iiq", ".k25", ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw",
        ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw",
        ".x3f",
    }
)

# Only these Pillow plugins may open a file. Pillow ships readers for many
# obscure formats (EPS would even run Ghostscript); a photo library needs none
# of them, and each one is attack surface for hostile uploads.
Image.init()  # Image.open(formats=...) only accepts plugins that are already loaded
_PIL_FORMATS = tuple(
    f
    for f in ("JPEG", "MPO", "PNG", "TIFF", "WEBP", "AVIF", "GIF", "BMP", "HEIF")
    if f in Image.OPEN
)

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_QUARTER_TURNS = frozenset(
    {
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_270,
    }
)


class DecodeError(Exception):
    """The file cannot be turned into an image (corrupt, unsupported, hostile)."""


class ImageTooLarge(DecodeError):
    """The declared pixel count exceeds the limit (decompression-bomb guard)."""


class TruncatedImage(DecodeError):
    """The file ends before the image data does."""


class UnsupportedImage(DecodeError):
    """Not an image format we decode (or a RAW file without a usable preview)."""


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """Result of :func:`decode_image`.

    Attributes:
        image: Display-oriented, sRGB, 8-bit ``RGB`` image (``RGBA`` only when
            ``keep_alpha`` was requested and the image really is transparent).
        source_width: Full-resolution width in display orientation (before any
            draft/reduce scaling done for speed).
        source_height: Full-resolution height in display orientation.
        format: Pillow format name of the decoded data (``"JPEG"`` for a RAW
            file's preview).
        from_raw_preview: True when the pixels come from a RAW file's embedded
            JPEG rather than the sensor data.
        truncated: True when the file ends before its image data does (a JPEG cut
            off by an interrupted copy): the pixels that are there were decoded and
            the missing part is grey (or, for a progressive JPEG, blurred).
    """

    image: Image.Image
    source_width: int
    source_height: int
    format: str
    from_raw_preview: bool = False
    truncated: bool = False


def open_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target: tuple[int, int] | None = None,
    keep_alpha: bool = False,
    allow_truncated: bool = True,
) -> Image.Image:
    """Open an image file as a display-ready sRGB Pillow image.

    Thin wrapper around :func:`decode_image` for callers that only want pixels.

    Args:
        path: File to decode. The content decides the format, not the extension
            (except that RAW extensions route TIFF-like files to the preview path).
        max_pixels: Refuse images whose declared width*height exceeds this.
            (Pillow's own process-wide guard, ``2 * Image.MAX_IMAGE_PIXELS`` =
            179 MP by default, still applies above that.)
        target: Smallest ``(width, height)`` the caller needs, in display
            orientation. The decoder may then decode or reduce to a smaller size
            (JPEG DCT scaling, HEIF thumbnails, integer box reduction) but never
            below ``target`` on either axis (unless the source itself is smaller).
            ``None`` decodes at full resolution.
        keep_alpha: Return ``RGBA`` for transparent images instead of compositing
            them on white.
        allow_truncated: Best effort (the default): decode a JPEG that was cut off
            after its image data began as far as the data goes (the rest grey) and
            mark it (:attr:`DecodedImage.truncated`). False refuses it with
            :class:`TruncatedImage`. A truncated HEIF is refused either way.

    Returns:
        An ``RGB`` (or ``RGBA``) image in sRGB, EXIF orientation applied.

    Raises:
        DecodeError: For any file that cannot be decoded; subclasses tell
            :class:`ImageTooLarge`, :class:`TruncatedImage` and
            :class:`UnsupportedImage` apart.
    """
    return decode_image(
        path,
        max_pixels=max_pixels,
        target=target,
        keep_alpha=keep_alpha,
        allow_truncated=allow_truncated,
    ).image


def decode_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target: tuple[int, int] | None = None,
    keep_alpha: bool = False,
    allow_truncated: bool = True,
) -> DecodedImage:
    """Decode an image file; like :func:`open_image` but with size information.

    Args:
        path: File to decode.
        max_pixels: Refuse images whose declared width*height exceeds this.
        target: See :func:`open_image`.
        keep_alpha: See :func:`open_image`.
        allow_truncated: See :func:`open_image`.

    Returns:
        A :class:`DecodedImage`.

    Raises:
        DecodeError: See :func:`open_image`.
    """
    path = Path(path)
    opts = _Opts(max_pixels, target, keep_alpha, allow_truncated)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError(f"cannot read the file ({exc.strerror or exc})") from exc
    if size == 0:
        raise DecodeError("the file is empty (0 bytes), there is no image in it")
    kind = "image"
    try:
        with path.open("rb") as fp:
            head = fp.read(64)
            kind = _sniff(head, path.suffix.lower())
            if kind == "video":
                raise UnsupportedImage("file is a video, not a still image")
            if kind == "tiff" and _raw_preview.is_raw_tiff(fp, size):
                kind = "raw"  # NEF, ARW, PEF, IIQ... named or not: sensor data inside
            if kind == "raw":
                return _decode_raw(fp, size, head, opts)
            if kind == "isobmff":
                # libheif happily decodes a HEIC whose mdat is cut off and returns
                # grey tiles without any error, so check the box layout first.
                _check_isobmff_complete(fp, size)
            fp.seek(0)
            return _decode_pillow(fp, opts)
    except DecodeError:
        raise
    except MemoryError as exc:
        raise ImageTooLarge("the decoder ran out of memory on this image") from exc
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        name = _KIND_NAMES.get(kind, "image")
        if "end of file" in text.lower() or "truncated" in text.lower():  # libheif's, Pillow's wording
            raise TruncatedImage(f"truncated {name}: {_CUT_OFF}") from exc
        # Pillow and its plugins raise a zoo of exception types on hostile input
        # (ValueError, struct.error, IndexError, ZeroDivisionError, ...). The job
        # pipeline must only ever see DecodeError; the cause stays chained.
        raise DecodeError(f"damaged {name}: {_decoder_words(text)}") from exc


#: Why a file is "truncated", in words (the same sentence for every format).
_CUT_OFF = "the file ends before its image data does (it was cut off, e.g. by an interrupted copy)"
_KIND_NAMES = {"jpeg": "JPEG", "isobmff": "HEIF", "tiff": "TIFF", "raw": "RAW file"}
# Pillow's ImageFile.ERRORS: "decoder error -2" tells a user nothing.
_PIL_DECODER_ERRORS = {
    -1: "the image data overruns its declared size", -2: "the image data is damaged",
    -3: "the image data could not be decoded", -8: "the image declares a layout the decoder cannot use",
    -9: "the decoder ran out of memory",
}


def _decoder_words(text: str) -> str:
    """Pillow's message about bad pixel data, as a phrase a user can read."""
    match = re.search(r"(?:decoder|encoder) error (-?\d+)", text)
    if match:
        return _PIL_DECODER_ERRORS.get(int(match[1]), "the image data could not be decoded")
    return f"the image data could not be read ({text.rstrip('.') or 'no details'})"


@dataclass(frozen=True, slots=True)
class _Opts:
    max_pixels: int
    target: tuple[int, int] | None
    keep_alpha: bool
    allow_truncated: bool


# --------------------------------------------------------------------------- sniffing

_HEIF_BRANDS = {
    b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
    b"mif1", b"msf1", b"mif2", b"avif", b"avis", b"avio",
}


def _sniff(head: bytes, ext: str) -> str:
    """Classify a file by its first bytes (the extension is only a hint)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"  # includes "RAW" files that are really JPEGs
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "raw"
    if head[6:14] == b"HEAPCCDR" or head.startswith(b"FOVb") or head[:4] in (b"\x00MRM", b"\x00MRI"):
        return "raw"  # Canon CRW (CIFF), Sigma X3F, Minolta MRW
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00"):
        return "raw"  # Olympus ORF, Panasonic RW2: TIFF with another magic number
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        if head[8:10] == b"CR" or ext in RAW_EXTENSIONS:
            return "raw"
        return "tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"crx ":
            return "raw"  # Canon CR3
        compat = {head[i : i + 4] for i in range(16, min(len(head), 40), 4)}
        if brand in _HEIF_BRANDS or compat & _HEIF_BRANDS:
            return "isobmff"
        return "video"
    return "other"


def _check_isobmff_complete(fp: BinaryIO, size: int) -> None:
    """Raise TruncatedImage when a top-level ISO-BMFF box runs past EOF."""
    pos = 0
    for _ in range(10_000):
        if pos >= size:
            return
        fp.seek(pos)
        hdr = fp.read(16)
        if len(hdr) < 8:
            raise TruncatedImage(f"truncated HEIF: {_CUT_OFF}")
        box_size = struct.unpack(">I", hdr[:4])[0]
        if box_size == 1:
            if len(hdr) < 16:
                raise TruncatedImage(f"truncated HEIF: {_CUT_OFF}")
            box_size = struct.unpack(">Q", hdr[8:16])[0]
        elif box_size == 0:
            return  # "extends to end of file": nothing to compare against
        if box_size < 8:
            raise DecodeError(f"damaged HEIF: a box at byte {pos} declares {box_size} bytes, "
                              "less than its own 8-byte header")
        if pos + box_size > size:
            raise TruncatedImage(f"truncated HEIF: {_CUT_OFF} (a box at byte {pos} needs "
                                 f"{box_size} bytes, the file has {size - pos} left)")
        pos += box_size
    raise DecodeError("damaged HEIF: more than 10000 boxes at the top level")


# --------------------------------------------------------------------------- Pillow path


def _decode_pillow(
    fp: BinaryIO,
    opts: _Opts,
    *,
    orientation: int | None = None,
    formats: tuple[str, ...] = _PIL_FORMATS,
    from_raw: bool = False,
) -> DecodedImage:
    """Decode with Pillow; ``orientation`` overrides the file's EXIF value."""
    try:
        im = Image.open(fp, formats=formats)
    except Image.DecompressionBombError as exc:
        # Pillow's own guard (2x Image.MAX_IMAGE_PIXELS) fired while parsing the
        # header; nothing has been decoded yet. It does not say the dimensions.
        match = re.search(r"\((\d+) pixels\)", str(exc))
        what = f"{int(match[1]) / 1e6:,.0f} MP" if match else "declared size"
        raise ImageTooLarge(
            f"image too large: {what} (limit {opts.max_pixels / 1e6:g} MP)"
        ) from exc
    except UnidentifiedImageError as exc:
        expected = ", ".join("HEIC" if f == "HEIF" else f for f in formats)
        raise UnsupportedImage(f"not an image photobox can decode: the content is none of {expected}") from exc
    result = None
    try:
        result = _decode_opened(im, fp, opts, orientation=orientation, from_raw=from_raw)
        return result
    finally:
        # Free the decoded full-size pixels as soon as we are done with them --
        # unless no conversion was needed and the opened image *is* the result.
        if result is None or result.image is not im:
            im.close()


def _decode_opened(
    im: Image.Image,
    fp: BinaryIO,
    opts: _Opts,
    *,
    orientation: int | None,
    from_raw: bool,
) -> DecodedImage:
    full_w, full_h = im.size
    if full_w <= 0 or full_h <= 0:
        raise DecodeError(f"damaged {im.format or 'image'}: it declares a size of {full_w}x{full_h} pixels")
    if full_w * full_h > opts.max_pixels:
        raise ImageTooLarge(
            f"image too large: {full_w}x{full_h} px (limit {opts.max_pixels / 1e6:g} MP)"
        )
    fmt = im.format or "?"
    is_heif = fmt == "HEIF"

    # Orientation as read *before* load: needed to express the target in stored
    # orientation for draft(). TIFF is the exception: Pillow already reports the
    # display size and rotates the pixels itself during load().
    pre_orientation = orientation if orientation is not None else _exif_orientation(im)
    swap = pre_orientation in (5, 6, 7, 8) and fmt not in ("TIFF", "HEIF")
    stored_target = None
    if opts.target is not None:
        tw, th = (max(1, int(v)) for v in opts.target)
        stored_target = (th, tw) if swap else (tw, th)
        # JPEG: libjpeg DCT scaling (1/2, 1/4, 1/8) -- by far the biggest win.
        # HEIF: pillow-heif picks an embedded thumbnail not smaller than target.
        # Other plugins ignore draft().
        im.draft("RGB", stored_target)

    try:
        im.load()
    except OSError as exc:
        jpeg = fmt in ("JPEG", "MPO") and not from_raw
        if jpeg and not _has_scan_data(fp):
            raise TruncatedImage("truncated JPEG: the file ends before any of its image data "
                                 "(only the header is there)") from exc
        if "truncated" in str(exc):
            # A RAW file's preview stays strict: a complete smaller preview beats a cut one.
            if opts.allow_truncated and jpeg:
                return _decode_truncated_jpeg(fp, opts)
            raise TruncatedImage(f"truncated {fmt}: {_CUT_OFF}") from exc
        raise DecodeError(f"damaged {fmt}: {_decoder_words(str(exc))}") from exc
    except EOFError as exc:
        raise TruncatedImage(f"truncated {fmt}: {_CUT_OFF}") from exc

    # HEIF: libheif already applied irot/imir/clap and pillow-heif reset the EXIF
    # tag to 1 -- applying the original EXIF value again would double-rotate.
    # TIFF: Pillow applied (and removed) the tag during load, so reading it again
    # now yields nothing. Everything else still needs the transpose.
    post_orientation = 1 if is_heif else (
        orientation if orientation is not None else _exif_orientation(im)
    )

    out = _colour.normalize_mode(im)
    # Cheap integer box reduction for formats without DCT scaling (PNG, HEIF,
    # WebP, TIFF...), done before the transpose and colour work so those touch
    # fewer pixels.
    if stored_target is not None:
        factor = min(out.width // stored_target[0], out.height // stored_target[1])
        if factor >= 2:
            try:
                out = out.reduce(factor)
            except ValueError:
                pass  # a mode reduce() does not support (e.g. LAB): full size then

    method = _TRANSPOSE.get(post_orientation or 1)
    if method is not None:
        out = out.transpose(method)

    try:
        out = _colour.to_srgb(out, im.info, keep_alpha=opts.keep_alpha)
    except _colour.UnsupportedMode as exc:
        raise UnsupportedImage(str(exc)) from exc

    # Full-resolution display size: the size Pillow reported before draft()
    # (draft keeps the aspect ratio), swapped when we turned the image by 90
    # degrees here. TIFF already reports its display size (see above).
    sw, sh = full_w, full_h
    if method in _QUARTER_TURNS:
        sw, sh = sh, sw
    return DecodedImage(out, sw, sh, fmt, from_raw)


def _has_scan_data(fp: BinaryIO) -> bool:
    """Whether a JPEG holds any entropy-coded bytes after its first start-of-scan header."""
    size = fp.seek(0, os.SEEK_END)
    still = _stills.read_jpeg(Reader(fp, size))
    return still.data_start is not None and still.data_start < size


def _decode_truncated_jpeg(fp: BinaryIO, opts: _Opts) -> DecodedImage:
    """Best effort for a cut-off JPEG: show libjpeg an end-of-image marker after the last byte.

    libjpeg then pads the missing blocks (grey, or the coarse scans of a progressive
    JPEG). That is ``ImageFile.LOAD_TRUNCATED_IMAGES``, which is a process-wide flag:
    flipping it from one worker thread would change behaviour for all. The file is
    streamed through a :class:`FileWindow`, never read into memory. (A file that ends
    before its first scan's data was refused by the caller: nothing to show.)
    """
    size = fp.seek(0, os.SEEK_END)
    strict = _Opts(opts.max_pixels, opts.target, opts.keep_alpha, False)
    padded = FileWindow(fp, 0, size, tail=b"\xff\xd9")
    decoded = _decode_pillow(padded, strict, formats=("JPEG", "MPO"))  # type: ignore[arg-type]
    return dataclasses.replace(decoded, truncated=True)


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF must not break decoding
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# --------------------------------------------------------------------------- RAW previews


def _decode_raw(fp: BinaryIO, size: int, head: bytes, opts: _Opts) -> DecodedImage:
    """Decode a RAW file through its largest embedded JPEG preview.

    Order: previews the container declares (``_raw_preview.find``) plus, when
    none or only a thumbnail is declared, JPEGs found by scanning; then, for
    TIFF-based files, Pillow's reading of IFD0 (an RGB thumbnail in DNG, NEF,
    IIQ); then an uncompressed RGB preview (Sigma SD9/SD10).
    """
    found = _raw_preview.find(fp, size, head)
    previews = list(found.previews)
    if _raw_preview.wants_scan(found):
        known = {p.offset for p in previews}
        previews += [p for p in _raw_preview.scan(fp, size, found.tiles()) if p.offset not in known]
    errors: list[str] = []

    result = None
    for pv in sorted(previews, key=lambda p: p.width * p.height, reverse=True):
        if pv.width * pv.height > opts.max_pixels:
            continue
        try:
            result = _decode_pillow(
                FileWindow(fp, pv.offset, pv.length),  # type: ignore[arg-type]
                opts,
                orientation=found.orientation,
                formats=("JPEG",),
                from_raw=True,
            )
            break
        except DecodeError as exc:
            errors.append(str(exc))
    if result is None and found.tiff:
        try:
            fp.seek(0)
            result = _decode_pillow(fp, opts, formats=("TIFF",), from_raw=True)
        except DecodeError as exc:
            errors.append(str(exc))
    if result is None and found.rgb is not None:
        result = _decode_rgb_preview(fp, found, opts)
    if result is not None:
        return result
    detail = f" ({errors[0]})" if errors else ""
    raise UnsupportedImage(f"RAW file has no usable embedded preview{detail}")


def _decode_rgb_preview(fp: BinaryIO, found: _raw_preview.Found, opts: _Opts) -> DecodedImage | None:
    image = found.rgb
    assert image is not None
    pixels = _raw_preview.read_rgb(fp, image, opts.max_pixels)
    if pixels is None:
        return None
    im = Image.frombytes("RGB", (image.columns, image.rows), pixels)
    return _decode_opened(im, fp, opts, orientation=1, from_raw=True)
