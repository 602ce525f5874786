"""Per-format readers feeding a `Work` collector (used by `metadata.extract`).

Readers only gather facts; choosing between competing values (date
precedence, GPS validation, display size) happens in `metadata`.  Every
reader runs under `metadata.extract`'s catch-all, but also guards its own
optional steps so one bad block (say, a corrupt XMP) does not cost the rest.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from . import _avprobe, _dates, _exif, _quicktime, _sniff, _stills, _xmp, motion
from ._quicktime import Reader

BMFF_VIDEOS = {"video/mp4", "video/quicktime", "video/3gpp", "video/3gpp2"}
HEIF_MIMES = {"image/heic", "image/heif", "image/avif"}
TIFF_MIMES = {"image/tiff", "image/x-canon-cr2", "image/x-panasonic-rw2",
              "image/x-olympus-orf"}
_EXIF_SCAN = 1024 * 1024          # bytes searched for embedded EXIF (X3F...)
_ISO6709_RE = re.compile(r"^\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")
_XMP_COORD_RE = re.compile(
    r"^\s*(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?\s*([NSEW])\s*$", re.IGNORECASE)
MAX_WARNINGS = 20


class Work:
    """Collects facts for one file; ``md`` is the Metadata being filled."""

    def __init__(self, md: Any):
        self.md = md
        self.dates: dict[str, _dates.Stamp] = {}
        self.gps: list[tuple[str, float | None, float | None, float | None]] = []
        self.orientation_raw: float | None = None
        self.display: tuple[int, int] | None = None   # when the reader knows it

    def put(self, field: str, value: Any) -> None:
        """Set a Metadata field unless an earlier (higher priority) source did."""
        if value is not None and getattr(self.md, field) is None:
            setattr(self.md, field, value)

    def date(self, rank: str, stamp: _dates.Stamp | None) -> None:
        """Offer a date candidate under a precedence rank (see metadata)."""
        if stamp is not None and rank not in self.dates:
            self.dates[rank] = stamp

    def warn(self, message: str) -> None:
        """Record a warning (deduplicated, capped)."""
        warnings = self.md.warnings
        if message not in warnings and len(warnings) < MAX_WARNINGS:
            warnings.append(message)

    def fail(self, message: str) -> None:
        """Record the file's error (the first one wins)."""
        if self.md.error is None:
            self.md.error = message

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Run one optional step; a failure becomes a warning, not a lost file."""
        try:
            yield
        except _quicktime.BudgetExceeded:
            self.warn(f"{what}: read budget exceeded")
        except Exception as exc:  # hostile input can trip any parser
            self.warn(f"{what} unreadable ({type(exc).__name__})")


# --------------------------------------------------------------------------
# Dispatch


def read(path: Path, f: BinaryIO, size: int, work: Work) -> None:
    """Sniff ``f`` and run the matching reader."""
    r = Reader(f, size)
    head = r.read(0, _sniff.HEAD_SIZE)
    mime, kind, label = _sniff.sniff(head)
    md = work.md
    md.mime, md.kind = mime, kind
    if mime is None:
        work.fail("unrecognised file format")
        return
    if kind is None:
        work.fail(f"not a media file ({label})")
        if label == "XMP sidecar":
            apply_xmp(work, _xmp.parse(r.read(0, _xmp.MAX_PACKET)))
        return
    if mime == "image/jpeg":
        read_jpeg(r, work)
    elif mime in HEIF_MIMES:
        read_heif(r, work)
    elif mime == "image/png":
        read_simple(r, work, _stills.read_png(r), "PNG")
    elif mime == "image/webp":
        read_simple(r, work, _stills.read_webp(r), "WebP")
    elif mime == "image/gif":
        gif = _stills.read_gif(r)
        gif.xmp = scan_xmp(r)     # GIF keeps XMP in an application extension
        read_simple(r, work, gif, "GIF")
    elif mime == "image/bmp":
        read_simple(r, work, _stills.read_bmp(r), "BMP")
    elif mime in TIFF_MIMES:
        read_tiff(f, r, work, path.suffix[1:])
    elif mime == "image/x-fuji-raf":
        read_raf(r, work)
    elif mime == "image/x-canon-crw":
        read_crw(r, work)
    elif mime == "image/x-sigma-x3f":
        read_x3f(r, work)
    elif mime == "image/x-canon-cr3":
        read_cr3(r, work)
    elif kind == _sniff.VIDEO:
        read_video(path, r, work)


# --------------------------------------------------------------------------
# Shared appliers


def scan_xmp(r: Reader, window: int = 256 * 1024) -> bytes | None:
    """Look for an XMP packet in the first and last ``window`` bytes.

    For containers where we do not parse the exact XMP location.
    """
    found = _xmp.scan(r.read(0, window))
    if found is None and r.size > window:
        found = _xmp.scan(r.read(max(window, r.size - window), window))
    return found


def apply_exif(work: Work, tags: _exif.Tags | None) -> dict[str, Any] | None:
    """Copy normalised EXIF facts into ``work``; returns the summary."""
    if tags is None:
        return None
    summary = _exif.summarize(tags)
    for field in ("make", "model", "lens", "exposure_time", "f_number", "iso",
                  "focal_length", "focal_length_35mm"):
        work.put(field, summary[field])
    if work.orientation_raw is None:
        work.orientation_raw = summary["orientation_raw"]
    for rank, stamp in summary["dates"]:
        work.date(rank, stamp)
    work.gps.append(("EXIF", *summary["gps"]))
    work.put("live_photo_id", _exif.apple_content_identifier(summary["makernote"]))
    for problem in tags.problems[:3]:
        work.warn(f"EXIF: {problem}")
    return summary


def apply_xmp(work: Work, xmp: _xmp.Xmp | None) -> None:
    """Copy XMP facts into ``work`` (lower priority than EXIF for each field)."""
    if xmp is None:
        return
    if xmp.dangerous:
        work.warn("XMP packet rejected: it declares a DOCTYPE/ENTITY")
        return
    if xmp.broken:
        work.warn("XMP packet is malformed; read what could be recovered")
    for rank, ns, name in (("xmp_original", _xmp.NS_EXIF, "DateTimeOriginal"),
                           ("xmp_created", _xmp.NS_PS, "DateCreated"),
                           ("xmp_create", _xmp.NS_XMP, "CreateDate")):
        work.date(rank, _dates.parse_datetime(xmp.get(ns, name)))
    work.put("make", xmp.get(_xmp.NS_TIFF, "Make"))
    work.put("model", xmp.get(_xmp.NS_TIFF, "Model"))
    work.put("lens", xmp.get(_xmp.NS_EXIFEX, "LensModel") or xmp.get(_xmp.NS_AUX, "Lens"))
    if work.orientation_raw is None:
        work.orientation_raw = _exif.number(xmp.get(_xmp.NS_TIFF, "Orientation"))
    lat = _xmp_coord(xmp.get(_xmp.NS_EXIF, "GPSLatitude"))
    lon = _xmp_coord(xmp.get(_xmp.NS_EXIF, "GPSLongitude"))
    alt = _ratio(xmp.get(_xmp.NS_EXIF, "GPSAltitude"))
    if alt is not None and xmp.get(_xmp.NS_EXIF, "GPSAltitudeRef") == "1":
        alt = -alt
    work.gps.append(("XMP", lat, lon, alt))


def _xmp_coord(text: str | None) -> float | None:
    # XMP writes GPS as "DDD,MM.mmmk" or "DDD,MM,SSk" (k = N/S/E/W).
    if not text:
        return None
    match = _XMP_COORD_RE.match(text)
    if not match:
        return None
    value = float(match[1]) + float(match[2]) / 60 + float(match[3] or 0) / 3600
    return -value if match[4].upper() in "SW" else value


def _ratio(text: str | None) -> float | None:
    if not text:
        return None
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def iso6709(text: Any) -> tuple[float | None, float | None, float | None]:
    """Parse an ISO 6709 string such as ``+52.2097-000.8955+103.640/``.

    Degrees may also be written as DDMM.mm or DDMMSS.ss (the number of integer
    digits tells which), as the standard allows.
    """
    if not isinstance(text, str):
        return None, None, None
    match = _ISO6709_RE.match(text)
    if not match:
        return None, None, None
    lat = _iso_angle(match[1], 2)
    lon = _iso_angle(match[2], 3)
    alt = float(match[3]) if match[3] else None
    return lat, lon, alt


def _iso_angle(text: str, deg_digits: int) -> float | None:
    sign = -1 if text[0] == "-" else 1
    body = text[1:]
    whole = body.split(".")[0]
    value = float(body)
    if len(whole) == deg_digits + 2:        # DDMM.mm
        value = int(value / 100) + (value % 100) / 60
    elif len(whole) == deg_digits + 4:      # DDMMSS.ss
        value = int(value / 10000) + int(value / 100 % 100) / 60 + (value % 100) / 3600
    elif len(whole) > deg_digits + 4:
        return None
    return sign * value


# --------------------------------------------------------------------------
# Still images


def read_jpeg(r: Reader, work: Work) -> None:
    """JPEG: size from SOF, EXIF/XMP/IPTC from APP segments, motion video."""
    still = _stills.read_jpeg(r)
    work.put("width", still.width)
    work.put("height", still.height)
    with work.guard("EXIF"):
        apply_exif(work, _exif.from_blob(still.exif))
    xmp = None
    with work.guard("XMP"):
        xmp = _xmp.parse(still.xmp)
        if xmp is not None and still.xmp_ext:
            guid = xmp.get(_xmp.NS_NOTE, "HasExtendedXMP")
            extended = _xmp.parse(_xmp.join_extended(still.xmp_ext, guid))
            if extended is not None and not extended.dangerous:
                xmp.merge(extended)
        apply_xmp(work, xmp)
    with work.guard("IPTC"):
        work.date("iptc", _stills.iptc_date(still.iptc))
    for problem in still.problems:
        work.warn(problem)
    found = motion.Motion()
    with work.guard("motion photo"):
        found = motion.locate(r, xmp, still.data_start or 0)
        _apply_motion(work, found)
    # A JPEG ends with FFD9; look for it before any trailer we know about
    # (the motion video, even a cut one), else near EOF (cameras pad or
    # append maker data).
    end = found.start if found.start is not None else r.size
    if still.truncated or still.data_start is None:
        work.fail("truncated JPEG: no image data follows its header (the file was cut off or is damaged)")
    elif not _stills.jpeg_has_end(r, end):
        work.fail("truncated JPEG: the file ends before its image data does (it was cut off, "
                  "e.g. by an interrupted copy)")


def _apply_motion(work: Work, found: motion.Motion) -> None:
    if found.offset is not None:
        work.md.motion_video_offset = found.offset
        work.md.motion_video_length = found.length
    elif found.problem:
        work.warn(found.problem)


def read_heif(r: Reader, work: Work) -> None:
    """HEIF/AVIF: our own box parse for sizes/items, no libheif involved.

    pillow-heif would read the whole file into memory and run libheif on it;
    the primary item's properties and its Exif/XMP items are all we need.
    The displayed size is libheif's: clean aperture and irot applied, EXIF
    orientation ignored (the HEIF spec says irot/imir are authoritative).
    """
    heif = _quicktime.read_heif(r)
    if not heif.has_meta:
        work.fail("corrupt HEIF (no readable 'meta' box)")
        return
    work.put("width", heif.width)
    work.put("height", heif.height)
    work.display = heif.display
    with work.guard("EXIF"):
        blob = _quicktime.read_extents(r, heif.exif, 4 * 1024 * 1024) if heif.exif else b""
        if len(blob) >= 4:
            # The Exif item starts with a u32 offset to the TIFF header.
            skip = int.from_bytes(blob[:4], "big")
            apply_exif(work, _exif.from_blob(blob[4 + skip:] if skip < len(blob) else blob[4:]))
    xmp = None
    with work.guard("XMP"):
        if heif.xmp:
            xmp = _xmp.parse(_quicktime.read_extents(r, heif.xmp, _xmp.MAX_PACKET))
        apply_xmp(work, xmp)
    with work.guard("motion photo"):
        _apply_motion(work, motion.locate(r, xmp, 0, heif.mpvd))
    # libheif happily decodes a HEIF whose image data was cut off (the
    # missing tiles come out grey), so check the structure ourselves.
    if heif.truncated or (heif.data_end is not None and heif.data_end > r.size):
        work.fail("truncated HEIF")
    if heif.width is None:
        work.fail("corrupt HEIF (no primary image size)")


def read_simple(r: Reader, work: Work, still: _stills.Still, name: str) -> None:
    """PNG, WebP, GIF, BMP: size plus optional EXIF/XMP chunks."""
    work.put("width", still.width)
    work.put("height", still.height)
    with work.guard("EXIF"):
        apply_exif(work, _exif.from_blob(still.exif))
    with work.guard("XMP"):
        apply_xmp(work, _xmp.parse(still.xmp))
    if still.truncated:
        work.fail(f"truncated {name}")
    elif still.width is None:
        work.fail(f"corrupt {name} (no image size)")


def read_tiff(f: BinaryIO, r: Reader, work: Work, ext: str) -> None:
    """TIFF and TIFF-based RAWs (DNG, CR2, NEF, ARW, RW2, ORF, PEF...)."""
    tags = _exif.from_tiff_file(f, r.size)
    summary = apply_exif(work, tags)
    md = work.md
    ifd0 = tags.ifd0 if tags else {}
    md.mime = _sniff.refine_tiff_mime(md.mime, ext, summary and summary["make"],
                                      bool(summary and summary["dng"]))
    if md.mime == "image/x-panasonic-rw2":
        work.put("iso", _int(ifd0.get(0x17)))   # Panasonic keeps ISO in IFD0
    width, height = _tiff_size(md.mime, tags)
    work.put("width", width)
    work.put("height", height)
    xmp_blob = ifd0.get(700)      # XMLPacket tag
    if isinstance(xmp_blob, (bytes, str)):
        with work.guard("XMP"):
            apply_xmp(work, _xmp.parse(xmp_blob))
    if not ifd0:
        work.fail("corrupt TIFF (no readable IFD)")
    elif md.width is None:
        work.fail("corrupt TIFF (no image size)")


def _tiff_size(mime: str, tags: _exif.Tags | None) -> tuple[int | None, int | None]:
    # exiftool's ImageSize for RAWs is the sensor image, not IFD0 (which is
    # often a thumbnail): CR2 keeps it in ExifImageWidth/Height, RW2 as
    # sensor borders, NEF/DNG/ARW in the SubIFD flagged as full resolution.
    if tags is None:
        return None, None
    ifd0 = tags.ifd0
    if mime == "image/x-canon-cr2":
        width, height = _int(tags.exif.get(0xA002)), _int(tags.exif.get(0xA003))
        if width and height:
            return width, height
    if mime == "image/x-panasonic-rw2":
        top, left, bottom, right = (_int(ifd0.get(t)) for t in (4, 5, 6, 7))
        if None not in (top, left, bottom, right) and right > left and bottom > top:
            return right - left, bottom - top
    best = None
    for ifd in [ifd0, *tags.subifds]:
        width, height = _int(ifd.get(256)), _int(ifd.get(257))
        if not width or not height:
            continue
        full_size = (_int(ifd.get(254)) or 0) == 0     # NewSubfileType 0 = main image
        if full_size and (best is None or width * height > best[0] * best[1]):
            best = (width, height)
    if best is None:
        best = (_int(ifd0.get(256)), _int(ifd0.get(257)))
    return best


def _int(value: Any) -> int | None:
    if isinstance(value, tuple):
        value = value[0] if value else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def read_raf(r: Reader, work: Work) -> None:
    """Fuji RAF: EXIF lives in the embedded preview JPEG."""
    raf = _stills.read_raf(r)
    if raf.jpeg is not None:
        start, length = raf.jpeg
        preview = _stills.read_jpeg(r, start, start + length)
        with work.guard("EXIF"):
            apply_exif(work, _exif.from_blob(preview.exif))
        with work.guard("XMP"):
            apply_xmp(work, _xmp.parse(preview.xmp))
    work.put("width", raf.width)
    work.put("height", raf.height)
    if work.md.width is None and not work.dates:
        work.fail("corrupt RAF")


def read_crw(r: Reader, work: Work) -> None:
    """Canon CRW (CIFF heap format)."""
    crw = _stills.read_crw(r)
    for field in ("make", "model", "width", "height"):
        work.put(field, getattr(crw, field))
    # CRW stores a rotation angle, not an EXIF orientation: only a real
    # rotation becomes one (exiftool reports no Orientation for CRW).
    if crw.orientation not in (None, 1):
        work.orientation_raw = crw.orientation
    work.date("exif_original", crw.taken)
    with work.guard("XMP"):
        apply_xmp(work, _xmp.parse(scan_xmp(r)))
    if crw.make is None and crw.width is None:
        work.fail("corrupt CRW")


def read_x3f(r: Reader, work: Work) -> None:
    """Sigma X3F: an EXIF block sits in the first part of the file."""
    blob = _stills.find_exif(r.read(0, _EXIF_SCAN))
    tags = _exif.from_blob(blob)
    with work.guard("EXIF"):
        apply_exif(work, tags)
    with work.guard("XMP"):
        apply_xmp(work, _xmp.parse(scan_xmp(r)))
    width = height = None
    if tags is not None:
        width, height = _int(tags.exif.get(0xA002)), _int(tags.exif.get(0xA003))
    if not width or not height:
        width, height = _stills.x3f_size(r)
    work.put("width", width)
    work.put("height", height)


def read_cr3(r: Reader, work: Work) -> None:
    """Canon CR3: ISO-BMFF whose moov/uuid holds TIFF blocks CMT1..CMT4."""
    movie = _quicktime.read_movie(r)
    blocks = {name: _exif.from_blob(data) for name, data in movie.cr3.items() if data}
    ifd0 = blocks.get("CMT1")
    exif = blocks.get("CMT2")
    gps = blocks.get("CMT4")
    tags = _exif.Tags(ifd0.ifd0 if ifd0 else {}, exif.ifd0 if exif else {},
                      gps.ifd0 if gps else {})
    with work.guard("EXIF"):
        apply_exif(work, tags)
    width, height = _int(tags.exif.get(0xA002)), _int(tags.exif.get(0xA003))
    if not width:
        width, height = _int(tags.ifd0.get(256)), _int(tags.ifd0.get(257))
    work.put("width", width)
    work.put("height", height)
    if not movie.cr3:
        work.fail("corrupt CR3 (no metadata blocks)")


# --------------------------------------------------------------------------
# Videos


def read_video(path: Path, r: Reader, work: Work) -> None:
    """Videos: our box parser for QuickTime/MP4 facts, PyAV for the rest."""
    md = work.md
    movie = None
    if md.mime in BMFF_VIDEOS:
        with work.guard("QuickTime metadata"):
            movie = _quicktime.read_movie(r)
            _apply_movie(work, movie)
        if movie is not None and not movie.has_moov:
            # Without a complete moov there is no sample table: unplayable,
            # typically a copy interrupted before the camera wrote it.
            work.fail("truncated video (no complete 'moov' box)" if movie.truncated
                      else "not a playable video (no 'moov' box)")
    av = _avprobe.probe(path, read_mdpm=md.mime == "video/mp2t")
    if av.error:
        work.fail(f"unreadable video ({av.error.split(':')[0]})")
        return
    work.put("video_codec", av.video_codec)
    work.put("audio_codec", av.audio_codec)
    work.put("fps", av.fps)
    work.put("duration", round(av.duration, 3) if av.duration else None)
    work.put("width", av.width)
    work.put("height", av.height)
    mdpm = av.mdpm
    work.date("video", mdpm.get("taken"))
    work.put("make", mdpm.get("make") or av.tags.get("make"))
    work.put("model", mdpm.get("model") or av.tags.get("model"))
    work.put("exposure_time", mdpm.get("exposure_time"))
    work.put("f_number", mdpm.get("f_number"))
    if movie is None:
        # For BMFF files ffmpeg's creation_time is the mvhd value already read.
        work.date("video", _dates.parse_datetime(av.tags.get("creation_time")))
        work.gps.append(("container", *iso6709(av.tags.get("location"))))
    if md.width is None:
        work.fail("video without a picture stream")


def _apply_movie(work: Work, movie: _quicktime.Movie) -> None:
    md = work.md
    keys = movie.keys
    # Apple's keyed creationdate is the local wall clock with its offset;
    # mvhd is UTC by spec, so it only ranks below.
    work.date("qt_keys", _dates.parse_datetime(keys.get("com.apple.quicktime.creationdate")))
    work.date("qt_keys", _dates.parse_datetime(movie.udta.get("\xa9day")))
    work.date("qt_keys", _dates.parse_datetime(movie.udta.get("date")))
    if movie.creation is not None:
        work.date("qt_mvhd", _dates.from_utc(movie.creation))
    work.gps.append(("QuickTime", *iso6709(keys.get("com.apple.quicktime.location.ISO6709"))))
    work.gps.append(("QuickTime", *iso6709(movie.udta.get("\xa9xyz"))))
    if movie.loci is not None:
        work.gps.append(("3GPP", *movie.loci))
    for field, key, udta in (("make", "com.apple.quicktime.make", "\xa9mak"),
                             ("model", "com.apple.quicktime.model", "\xa9mod")):
        value = keys.get(key) or movie.udta.get(udta)
        work.put(field, value.strip() if isinstance(value, str) and value.strip() else None)
    ident = keys.get("com.apple.quicktime.content.identifier")
    work.put("live_photo_id", ident if isinstance(ident, str) and ident else None)
    apply_xmp(work, _xmp.parse(movie.xmp))
    work.put("duration", round(movie.duration, 3) if movie.duration else None)
    track = movie.video_track()
    if track is not None:
        if track.width and track.height:
            work.put("width", int(round(track.width)))
            work.put("height", int(round(track.height)))
        work.put("width", track.sample_width or None)
        work.put("height", track.sample_height or None)
    md.video_rotation = movie.rotation()
    if "mdat" in movie.truncated:
        work.warn("video data ('mdat') runs past the end of the file: truncated copy?")
