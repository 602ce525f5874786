"""The `Work` collector the metadata readers fill, and the appliers they share.

Readers (`_readers` for common formats, `_raw_readers` for camera RAWs) only
gather facts into a `Work`; choosing between competing values (date
precedence, GPS validation, display size) happens in `metadata`.  The
appliers here turn one metadata block (EXIF, XMP) into facts, lower-priority
sources never overriding what a better one already said.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any, Iterator

from . import _dates, _exif, _quicktime, _xmp
from ._quicktime import Reader

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
