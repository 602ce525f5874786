"""Extract photo/video metadata from one file: dates, place, camera, size.

`extract` is pure and defensive: it never raises for bad input, reads headers
only (no pixel decoding), bounds every read, and reports problems in
``Metadata.error`` (the file is unusable or damaged) and
``Metadata.warnings`` (something was off but the rest is fine).

Capture time precedence (first plausible value wins):

1. EXIF DateTimeOriginal (+SubSecTimeOriginal, +OffsetTimeOriginal/OffsetTime);
   a FLIR thermal JPEG's own record counts as one (exiftool lets it win)
2. EXIF CreateDate (DateTimeDigitized), then the capture time of a maker's
   record: Reconyx MakerNote, Sigma SD9/SD10 properties, Phase One directory
3. XMP exif:DateTimeOriginal, photoshop:DateCreated, xmp:CreateDate
4. IPTC DateCreated + TimeCreated
5. QuickTime ``com.apple.quicktime.creationdate`` (local time with offset)
6. QuickTime mvhd creation time, which is UTC: reported as UTC with
   ``tz_offset_min == 0`` (exiftool's QuickTime:CreateDate is the same value)
7. Other containers: AVCHD MDPM recording time, AVI/MKV creation time
8. EXIF GPSDateStamp + GPSTimeStamp: when the GPS fix was taken, in UTC, reported
   with ``tz_offset_min == 0`` and source ``gps``. Last of the recorded dates: it
   has no local time of day, and a receiver can hold an old fix.
9. A date in the file name (`filenames.date_from_filename`)
10. The ``mtime`` argument, expressed in the host's local time zone

Dates before 1826 or more than a day in the future are ignored (with a
warning), as are blank and zeroed values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import stat
from pathlib import Path
from typing import Any

from . import _dates, _readers, _sniff, filenames

__all__ = ["Metadata", "extract", "MAX_PIXELS", "TAKEN_AT_SOURCES"]

# Images above this many pixels get a warning: thumbnailers should refuse them
# (Pillow's global limit is left alone; this is our own local check).
MAX_PIXELS = 100_000_000
# Above MAX_PIXELS and with more pixels per file byte than any real photo
# compresses to, the size is a decompression bomb rather than a big photo.
_BOMB_PIXELS_PER_BYTE = 2000
TAKEN_AT_SOURCES = ("exif", "gps", "xmp", "iptc", "quicktime", "video", "filename", "mtime")
# (precedence rank used by the readers, taken_at_source reported)
_DATE_RANKS = (
    ("exif_original", "exif"), ("exif_digitized", "exif"), ("exif_makernote", "exif"),
    ("xmp_original", "xmp"), ("xmp_created", "xmp"), ("xmp_create", "xmp"),
    ("iptc", "iptc"), ("qt_keys", "quicktime"), ("qt_mvhd", "quicktime"),
    ("video", "video"), ("exif_gps", "gps"),
)
_MIN_ALTITUDE, _MAX_ALTITUDE = -1000.0, 100_000.0


@dataclasses.dataclass(slots=True)
class Metadata:
    """Everything photobox knows about one file; None means unknown.

    Attributes:
        mime: Sniffed from the content (e.g. ``image/heic``), not the name.
        kind: ``"image"``, ``"video"``, or None when not a supported medium.
        ext_mismatch: The extension names a different format than the content.
        file_size: Size in bytes.
        width, height: Stored pixel size (HEIF: primary item ispe; RAW: the
            full-resolution image, as exiftool's ImageSize; video: track size
            before rotation).
        display_width, display_height: Size as shown (after EXIF orientation
            for images; libheif's transform for HEIF/AVIF; after rotation for
            videos).
        orientation: EXIF/XMP orientation 1..8 as stored.  For HEIF/AVIF the
            container's irot/imir (not this tag) drive the display size.
        taken_at: Local wall-clock ``YYYY-MM-DDTHH:MM:SS[.fff]``.
        tz_offset_min: UTC offset of ``taken_at`` in minutes, when known.
        taken_at_source: One of `TAKEN_AT_SOURCES`.
        latitude, longitude: Signed decimal degrees.  altitude: metres.
        make, model, lens: Camera strings, trimmed.
        exposure_time: Seconds.  f_number, iso, focal_length (mm),
            focal_length_35mm (mm).
        duration: Seconds (videos).  video_rotation: Clockwise degrees as
            exiftool reports it (PyAV's sign is the opposite).
        video_codec, audio_codec, fps: From ffmpeg.
        live_photo_id: Apple ContentIdentifier shared by a Live Photo's still
            and MOV.
        motion_video_offset, motion_video_length: Embedded MP4 of a Motion
            Photo.
        error: Short reason when the file is corrupt, truncated or not media.
        warnings: Lesser problems.
    """

    mime: str | None = None
    kind: str | None = None
    ext_mismatch: bool = False
    file_size: int | None = None
    width: int | None = None
    height: int | None = None
    display_width: int | None = None
    display_height: int | None = None
    orientation: int | None = None
    taken_at: str | None = None
    tz_offset_min: int | None = None
    taken_at_source: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length: float | None = None
    focal_length_35mm: float | None = None
    duration: float | None = None
    video_rotation: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    fps: float | None = None
    live_photo_id: str | None = None
    motion_video_offset: int | None = None
    motion_video_length: int | None = None
    error: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (JSON-serialisable)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["warnings"] = list(self.warnings)
        return out


def extract(path: Path, *, mtime: float | None = None) -> Metadata:
    """Read a media file's metadata without decoding it.

    Args:
        path: The file.
        mtime: The file's modification time (POSIX seconds), used as the last
            resort for ``taken_at``; pass None to disable the fallback.

    Returns:
        A Metadata; never raises for unreadable, hostile or non-media files
        (``error`` says what is wrong and the fields hold what was readable).
    """
    md = Metadata()
    work = _readers.Work(md)
    path = Path(path)
    try:
        _read(path, work)
    except Exception as exc:  # last line of defence: report, never raise
        work.fail(f"unreadable file ({type(exc).__name__})")
        work.warn(f"{type(exc).__name__}: {exc}"[:200])
    try:
        _finish(path, work, mtime)
    except Exception as exc:  # pragma: no cover - defensive
        work.warn(f"post-processing failed: {type(exc).__name__}: {exc}"[:200])
    return md


def _read(path: Path, work: _readers.Work) -> None:
    md = work.md
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            work.fail("not a file")
            return
        if not stat.S_ISREG(mode):
            # Opening a FIFO or device could block forever.
            work.fail("not a regular file")
            return
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            md.file_size = st.st_size
            if st.st_size == 0:
                work.fail("zero-byte file")
                return
            _readers.read(path, f, st.st_size, work)
    except OSError as exc:
        work.fail(f"cannot read file ({exc.strerror or type(exc).__name__})")
        return
    finally:
        if md.file_size:
            md.ext_mismatch = _sniff.ext_mismatch(path.suffix[1:], md.mime)


def _finish(path: Path, work: _readers.Work, mtime: float | None) -> None:
    md = work.md
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    _choose_date(path, work, mtime, now)
    _choose_gps(work)
    raw = work.orientation_raw
    if raw is not None:
        if math.isfinite(raw) and raw == int(raw) and 1 <= raw <= 8:
            md.orientation = int(raw)
        else:
            work.warn(f"invalid orientation {raw:g} ignored")
    _display_size(work)
    _check_pixels(work)


def _choose_date(path: Path, work: _readers.Work, mtime: float | None,
                 now: dt.datetime) -> None:
    md = work.md
    usable = []
    for rank, source in _DATE_RANKS:
        stamp = work.dates.get(rank)
        if stamp is None:
            continue
        if _dates.plausible(stamp, now):
            usable.append((stamp, source))
        else:
            work.warn(f"implausible {source} date {stamp.iso()} ignored")
    # A date without a time of day (IPTC/XMP "2003-08-31") only wins when no
    # source has a full timestamp.
    usable.sort(key=lambda item: not item[0].has_time)
    if usable:
        stamp, source = usable[0]
        offset = stamp.offset_min
        if offset is None:
            # Another field recording the same wall-clock second may carry the
            # zone (EXIF without OffsetTime + XMP/IPTC with one).
            offset = next((s.offset_min for s, _ in usable[1:] if s.offset_min is not None
                           and s.when.replace(microsecond=0) == stamp.when.replace(microsecond=0)),
                          None)
        md.taken_at, md.tz_offset_min, md.taken_at_source = stamp.iso(), offset, source
        return
    found = filenames.date_from_filename(path.name, now=now)
    if found is not None:
        when, offset, has_time = found
        md.taken_at = _dates.Stamp(when, offset, has_time).iso()
        md.tz_offset_min, md.taken_at_source = offset, "filename"
        if not has_time:
            work.warn("file name gives a date without a time")
        return
    if mtime is not None and math.isfinite(mtime):
        try:
            local = dt.datetime.fromtimestamp(mtime).astimezone()
        except (OverflowError, OSError, ValueError):
            return
        stamp = _dates.Stamp(local.replace(tzinfo=None, microsecond=0), None, True)
        if _dates.plausible(stamp, now):
            offset = local.utcoffset()
            md.taken_at = stamp.iso()
            md.tz_offset_min = int(offset.total_seconds() // 60) if offset is not None else None
            md.taken_at_source = "mtime"


def _choose_gps(work: _readers.Work) -> None:
    md = work.md
    for source, lat, lon, alt in work.gps:
        if lat is None and lon is None:
            continue
        if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
            work.warn(f"incomplete {source} GPS position ignored")
            continue
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            work.warn(f"out-of-range {source} GPS position ({lat:.6g}, {lon:.6g}) ignored")
            continue
        if lat == 0 and lon == 0:
            # Exactly (0, 0) is a receiver without a fix writing zeros, not a
            # photo taken in the Gulf of Guinea.
            work.warn(f"{source} GPS position (0, 0) ignored")
            continue
        md.latitude, md.longitude = lat, lon
        if alt is not None and math.isfinite(alt):
            if _MIN_ALTITUDE <= alt <= _MAX_ALTITUDE:
                md.altitude = alt
            else:
                # e.g. 4294967284 m: a phone wrote -12 as an unsigned number.
                work.warn(f"implausible GPS altitude {alt:.10g} m ignored")
        return


def _display_size(work: _readers.Work) -> None:
    md = work.md
    if work.display is not None:
        md.display_width, md.display_height = work.display
        return
    if md.width is None or md.height is None:
        return
    swap = False
    if md.kind == "video":
        swap = md.video_rotation in (90, 270)
    elif md.orientation is not None:
        swap = md.orientation >= 5
    md.display_width, md.display_height = (md.height, md.width) if swap else (md.width, md.height)


def _check_pixels(work: _readers.Work) -> None:
    md = work.md
    if md.kind != "image" or not md.width or not md.height:
        return
    pixels = md.width * md.height
    if pixels <= MAX_PIXELS:
        return
    work.warn(f"image is {pixels / 1e6:.0f} MP, over the {MAX_PIXELS // 1_000_000} MP limit")
    if md.file_size and pixels / md.file_size > _BOMB_PIXELS_PER_BYTE:
        work.fail(f"decompression bomb: declares {md.width}x{md.height} pixels "
                  f"in {md.file_size} bytes")
