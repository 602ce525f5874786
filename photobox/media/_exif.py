"""Read EXIF (TIFF IFDs) with Pillow, falling back to piexif, and summarise it.

Pillow's `Image.Exif` parses a blob (JPEG APP1, HEIF Exif item, PNG eXIf...)
or a TIFF-structured file in place; we never ask Pillow to open the image
itself, so no pixel data is touched and Pillow's global decompression-bomb
limit plays no part here.  `summarize` turns the raw tags into photobox's
normalised fields; range checks on GPS/dates happen in `metadata`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import struct
import warnings
from typing import Any, BinaryIO

from PIL import Image, TiffImagePlugin

from . import _dates
from ._window import FileWindow

# Pillow reports EXIF damage ("Tag data larger than file. Skipping tag 42"...)
# through the warnings module, one distinct message per tag number: over a
# large library that floods stderr.  They are silenced once, at import, for
# that module only; warnings.catch_warnings() per call is not an option because
# it swaps process-global state and is unsafe when threads extract or decode
# concurrently.  (DecompressionBombWarning comes from PIL.Image: untouched.)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")

# Total bytes Pillow may pull from a TIFF/RAW file while walking its IFDs: a
# hostile IFD can declare huge counts pointing back at the whole file.
TIFF_READ_BUDGET = 8 * 1024 * 1024

IFD_EXIF = 0x8769
IFD_GPS = 0x8825
TAG_SUBIFDS = 0x014A
TAG_MAKERNOTE = 0x927C


@dataclasses.dataclass(slots=True)
class Tags:
    """Raw tag dictionaries of one EXIF structure."""

    ifd0: dict[int, Any]
    exif: dict[int, Any]
    gps: dict[int, Any]
    subifds: list[dict[int, Any]] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)


def from_blob(blob: bytes | None) -> Tags | None:
    """Parse an EXIF blob (optionally prefixed with ``Exif\\0\\0``).

    Args:
        blob: TIFF-structured bytes.

    Returns:
        Tags, or None when neither Pillow nor piexif can make sense of it.
    """
    if not blob:
        return None
    tiff = blob[6:] if blob.startswith(b"Exif\x00\x00") else blob
    if tiff[:2] not in (b"II", b"MM"):
        # Without a byte-order mark every value would be a guess (piexif would
        # read it big-endian); exiftool drops such a segment too.
        return Tags({}, {}, {}, problems=["invalid byte-order mark: EXIF ignored"])
    exif = Image.Exif()
    problems: list[str] = []
    try:
        exif.load(blob)
        tags = _collect(exif)
    except Exception as exc:  # Pillow raises many types on junk; try piexif
        problems.append(f"Pillow EXIF: {type(exc).__name__}: {exc}"[:160])
        tags = _from_piexif(blob, problems)
    if tags is not None:
        tags.problems = problems
    return tags


def from_tiff_file(f: BinaryIO, size: int, base: int = 0) -> Tags:
    """Walk the IFDs of a TIFF-structured file (TIFF, BigTIFF, DNG, NEF, RW2...).

    Pillow's IFD reader is used directly on the (budgeted) file, so IFDs are
    read where they are instead of loading the file into memory.

    Args:
        f: Binary file positioned anywhere.
        size: File size.
        base: Offset of the TIFF header inside the file.

    Returns:
        Tags (empty dictionaries when the header or IFD0 is unreadable).
    """
    f.seek(base)
    head = f.read(16)
    magic = None
    if head[:4] in (b"IIU\x00", b"IIRO", b"IIRS"):
        magic = b"II*\x00"
    elif head[:4] == b"MMOR":
        magic = b"MM\x00*"
    if magic:
        head = magic + head[4:]
    if head[2:4] not in (b"+\x00", b"\x00+"):
        head = head[:8]          # classic TIFF header; BigTIFF's is 16 bytes
    view = FileWindow(f, base, size - base, budget=TIFF_READ_BUDGET, magic=magic)
    problems: list[str] = []
    try:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(head)
        view.seek(ifd.next)
        ifd.load(view)
        ifd0 = dict(ifd)
    except Exception as exc:
        problems.append(f"TIFF: {type(exc).__name__}: {exc}"[:160])
        ifd0 = {}
    tags = Tags(ifd0, _load_ifd(view, head, ifd0.get(IFD_EXIF)),
                _load_ifd(view, head, ifd0.get(IFD_GPS)), problems=problems)
    offsets = ifd0.get(TAG_SUBIFDS)
    if offsets is not None:
        if not isinstance(offsets, tuple):
            offsets = (offsets,)
        tags.subifds = [_load_ifd(view, head, o) for o in offsets[:8]]
    return tags


def _collect(exif: Image.Exif) -> Tags:
    ifd0 = dict(exif)
    sub_exif = _safe_ifd(exif, IFD_EXIF)
    sub_gps = _safe_ifd(exif, IFD_GPS) if IFD_GPS in ifd0 else {}
    return Tags(ifd0, sub_exif, sub_gps)


def _safe_ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # wrong type/offset for the pointer tag
        return {}


def _load_ifd(fp: Any, head: bytes, offset: Any) -> dict[int, Any]:
    if offset is None:
        return {}
    try:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(head)
        fp.seek(int(offset))
        ifd.load(fp)
        return dict(ifd)
    except Exception:
        return {}


def _from_piexif(blob: bytes, problems: list[str]) -> Tags | None:
    try:
        import piexif
        data = piexif.load(blob if blob.startswith(b"Exif") else b"Exif\x00\x00" + blob)
    except Exception as exc:
        problems.append(f"piexif: {type(exc).__name__}"[:80])
        return None

    def convert(ifd_name: str) -> dict[int, Any]:
        out = {}
        for tag, value in (data.get(ifd_name) or {}).items():
            kind = piexif.TAGS.get(ifd_name, {}).get(tag, {}).get("type")
            out[tag] = _piexif_value(value, kind)
        return out

    return Tags(convert("0th"), convert("Exif"), convert("GPS"))


def _piexif_value(value: Any, kind: int | None) -> Any:
    # piexif gives ASCII as bytes and rationals as (num, den) pairs; make them
    # look like Pillow's str / float values.
    if kind == 2 and isinstance(value, bytes):
        return value.decode("latin-1")
    if kind in (5, 10) and isinstance(value, tuple):
        if value and isinstance(value[0], tuple):
            return tuple(_ratio(*v) for v in value)
        if len(value) == 2:
            return _ratio(*value)
    if isinstance(value, tuple) and len(value) == 1:
        return value[0]
    return value


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


# --------------------------------------------------------------------------
# Summaries


def text(value: Any) -> str | None:
    """Clean an ASCII tag: strip NULs/whitespace, None when empty."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (tuple, list)):
        value = value[0] if value else ""
    value = str(value).split("\x00", 1)[0].strip()
    return value or None


def number(value: Any) -> float | None:
    """A finite float from a tag value (first element of a tuple)."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        result = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return result if math.isfinite(result) else None


def degrees(value: Any) -> float | None:
    """Degrees from an EXIF (deg, min, sec) triple or a plain number.

    Nikon and others write decimal minutes with seconds as 0/0; such an
    undefined minutes/seconds part counts as zero (exiftool instead drops the
    whole position).  Undefined degrees mean there is no position.
    """
    if isinstance(value, (tuple, list)):
        parts = [number(v) for v in value[:3]]
        if not parts or parts[0] is None:
            return None
        parts = [p or 0.0 for p in parts] + [0.0] * (3 - len(parts))
        return parts[0] + parts[1] / 60 + parts[2] / 3600
    return number(value)


def summarize(tags: Tags) -> dict[str, Any]:
    """Normalise EXIF tags into photobox fields.

    Returns:
        A dict with Metadata field names plus ``dates`` (list of
        ``(rank_name, Stamp)``), ``gps`` (lat, lon, alt or Nones),
        ``makernote`` bytes, ``dng`` flag and ``orientation_raw``.
    """
    ifd0, exif, gps = tags.ifd0, tags.exif, tags.gps
    out: dict[str, Any] = {
        "make": text(ifd0.get(0x010F)),
        "model": text(ifd0.get(0x0110)),
        "lens": text(exif.get(0xA434)),
        "exposure_time": number(exif.get(0x829A)),
        "f_number": number(exif.get(0x829D)),
        "iso": number(exif.get(0x8827) or exif.get(0x8833)),
        "focal_length": number(exif.get(0x920A)),
        "focal_length_35mm": number(exif.get(0xA405)) or None,   # 0 = unknown
        "makernote": exif.get(TAG_MAKERNOTE),
        "dng": 0xC612 in ifd0,
        "orientation_raw": number(ifd0.get(0x0112)),
    }
    # Zero means "unknown" for these (manual lenses, unset fields).
    for key in ("exposure_time", "f_number", "iso", "focal_length"):
        if out[key] is not None and out[key] <= 0:
            out[key] = None
    if out["iso"] is not None:
        out["iso"] = int(out["iso"])
    # Some writers put DateTimeOriginal/CreateDate in IFD0 instead of the Exif
    # IFD; exiftool reads them there too.
    offset = exif.get(0x9010)
    dates = []
    dto = _dates.parse_datetime(exif.get(0x9003) or ifd0.get(0x9003),
                                subsec=exif.get(0x9291),
                                offset=exif.get(0x9011) or offset)
    if dto:
        dates.append(("exif_original", dto))
    created = _dates.parse_datetime(exif.get(0x9004) or ifd0.get(0x9004),
                                    subsec=exif.get(0x9292),
                                    offset=exif.get(0x9012) or offset)
    if created:
        dates.append(("exif_digitized", created))
    maker = reconyx_datetime(exif.get(TAG_MAKERNOTE))
    if maker:
        dates.append(("exif_makernote", maker))
    if gps:
        # GPSDateStamp + GPSTimeStamp: when the fix was taken, in UTC. Only a fallback:
        # it has no local time of day, and a receiver may hold an old fix.
        fix = _dates.from_gps(gps.get(0x001D), gps.get(0x0007))
        if fix:
            dates.append(("exif_gps", fix))
    out["dates"] = dates
    out["gps"] = _gps(gps)
    return out


def _gps(gps: dict[int, Any]) -> tuple[float | None, float | None, float | None]:
    if not gps:
        return None, None, None
    lat, lon = degrees(gps.get(2)), degrees(gps.get(4))
    if lat is not None and (text(gps.get(1)) or "N").upper().startswith("S"):
        lat = -lat
    if lon is not None and (text(gps.get(3)) or "E").upper().startswith("W"):
        lon = -lon
    alt = number(gps.get(6))
    ref = gps.get(5)
    if alt is not None and ref in (1, b"\x01", "\x01"):
        alt = -alt
    return lat, lon, alt


def apple_content_identifier(makernote: Any) -> str | None:
    """Read ContentIdentifier (tag 0x11) from an Apple MakerNote.

    The Apple MakerNote is a bare IFD after a 14-byte header
    (``Apple iOS\\0``, u16 version, byte order mark), with value offsets
    counted from the start of the MakerNote.

    Args:
        makernote: The raw MakerNote bytes (EXIF tag 0x927C).

    Returns:
        The Live Photo content identifier (a UUID string), or None.
    """
    if not isinstance(makernote, bytes) or not makernote.startswith(b"Apple iOS\x00"):
        return None
    if len(makernote) < 16:
        return None
    order = "<" if makernote[12:14] == b"II" else ">"
    count = struct.unpack(order + "H", makernote[14:16])[0]
    for i in range(min(count, 512)):
        entry = makernote[16 + 12 * i:28 + 12 * i]
        if len(entry) < 12:
            break
        tag, kind, length, value = struct.unpack(order + "HHII", entry)
        if tag != 0x11 or kind != 2:
            continue
        data = entry[8:8 + length] if length <= 4 else makernote[value:value + length]
        ident = data.split(b"\x00", 1)[0].decode("ascii", "replace").strip()
        return ident or None
    return None


def reconyx_datetime(makernote: Any) -> _dates.Stamp | None:
    """DateTimeOriginal from a Reconyx HyperFire trail-camera MakerNote.

    These cameras leave EXIF DateTimeOriginal empty and keep the capture time
    in their MakerNote: version word 0xF101, then at word 11 six little-endian
    words (second, minute, hour, month, day, year), per exiftool's Reconyx
    module.
    """
    if not isinstance(makernote, bytes) or not makernote.startswith(b"\x01\xf1"):
        return None
    if len(makernote) < 34:
        return None
    sec, minute, hour, month, day, year = struct.unpack("<6H", makernote[22:34])
    try:
        return _dates.Stamp(dt.datetime(year, month, day, hour, minute, sec), None, True)
    except ValueError:
        return None
