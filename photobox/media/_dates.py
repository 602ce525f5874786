"""Parse and sanity-check the many date spellings found in media metadata.

EXIF writes ``2019:05:26 10:33:20``, XMP ``2019-05-26T10:33:20.12+02:00``,
QuickTime keys ``2019-05-26T10:33:20+0200``, ffmpeg ``2019-05-26T08:33:20.000000Z``
and cameras with an unset clock ``0000:00:00 00:00:00`` or blanks.  Everything
here works on naive wall-clock datetimes plus an optional UTC offset in minutes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

# Photography was invented in 1826: anything earlier is a broken clock.
MIN_YEAR = 1826
# Real offsets run from -12:00 to +14:00.
_MAX_OFFSET_MIN = 14 * 60

_DATE_RE = re.compile(
    r"^\s*(?P<y>\d{4})[:\-/.](?P<mo>\d{1,2})[:\-/.](?P<d>\d{1,2})"
    r"(?:[ T]+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?"
)
_OFFSET_RE = re.compile(r"^\s*(?P<sign>[+-])(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?\s*$")


@dataclasses.dataclass(slots=True, frozen=True)
class Stamp:
    """A wall-clock time with an optional offset and sub-second precision."""

    when: dt.datetime          # naive, local wall clock (UTC when offset == 0)
    offset_min: int | None     # minutes east of UTC, None when unknown
    has_time: bool = True      # False for date-only values (midnight)

    def iso(self) -> str:
        """Return ``YYYY-MM-DDTHH:MM:SS`` plus ``.fff`` when sub-seconds exist."""
        text = self.when.strftime("%Y-%m-%dT%H:%M:%S")
        millis = self.when.microsecond // 1000
        return f"{text}.{millis:03d}" if millis else text


def parse_offset(value: object) -> int | None:
    """Parse an EXIF OffsetTime* value such as ``+09:00`` into minutes.

    Args:
        value: The raw tag value (str or bytes), possibly padded or blank.

    Returns:
        Minutes east of UTC, or None when absent or implausible.
    """
    text = _text(value)
    if not text:
        return None
    match = _OFFSET_RE.match(text)
    if not match:
        return None
    minutes = int(match["h"]) * 60 + int(match["m"] or 0)
    if minutes > _MAX_OFFSET_MIN:
        return None
    return -minutes if match["sign"] == "-" else minutes


def parse_datetime(value: object, *, subsec: object = None,
                   offset: object = None) -> Stamp | None:
    """Parse a date/time string in any of the common metadata spellings.

    Args:
        value: The raw value (str or bytes).
        subsec: Optional EXIF SubSecTime* digits ("84" means 0.84 s).
        offset: Optional EXIF OffsetTime* value, used when ``value`` itself
            carries no zone.

    Returns:
        A Stamp, or None for blank, zeroed or malformed values.  Range checks
        (too old / in the future) are done separately by `plausible`.
    """
    text = _text(value)
    if not text:
        return None
    match = _DATE_RE.match(text)
    if not match:
        return None
    try:
        year, month = int(match["y"]), int(match["mo"])
        day = int(match["d"])
        has_time = match["h"] is not None
        hour = int(match["h"]) if has_time else 0
        minute = int(match["mi"]) if has_time else 0
        second = int(match["s"] or 0)
        if second == 60:  # leap second: keep it in the same minute
            second = 59
        when = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:  # 0000:00:00, month 13, hour 25...
        return None
    fraction = match["f"] or _digits(subsec)
    if fraction:
        when = when.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    tz = match["tz"]
    if tz == "Z":
        offset_min: int | None = 0
    elif tz:
        offset_min = parse_offset(tz)
    else:
        offset_min = parse_offset(offset)
    return Stamp(when, offset_min, has_time)


def plausible(stamp: Stamp | None, now_utc: dt.datetime) -> bool:
    """Reject dates before photography or more than a day in the future.

    Args:
        stamp: The parsed value.
        now_utc: Current time, naive UTC.

    Returns:
        True when the value can be a capture time.
    """
    if stamp is None or stamp.when.year < MIN_YEAR:
        return False
    when = stamp.when
    if stamp.offset_min is not None:
        when = when - dt.timedelta(minutes=stamp.offset_min)
    # A day of slack covers every time zone (a local clock is at most 14 h
    # ahead of UTC) without accepting a camera clock set years ahead.
    return when <= now_utc + dt.timedelta(days=1)


def from_utc(when: dt.datetime) -> Stamp:
    """Wrap a UTC datetime (e.g. QuickTime mvhd creation time)."""
    return Stamp(when.replace(tzinfo=None), 0, True)


def from_gps(datestamp: object, timestamp: object) -> Stamp | None:
    """The UTC time of a GPS fix: EXIF GPSDateStamp (``2019:05:26``) + GPSTimeStamp.

    Args:
        datestamp: GPSDateStamp, ``YYYY:MM:DD`` (str or bytes).
        timestamp: GPSTimeStamp, three numbers (hours, minutes, seconds; the seconds
            may carry a fraction), as rationals or floats.

    Returns:
        A Stamp with offset 0 (the GPS clock is UTC), or None when either part is
        missing or out of range (receivers without a fix write zeros or junk).
    """
    day = parse_datetime(datestamp)
    if day is None or day.has_time:
        return None
    if not isinstance(timestamp, (tuple, list)) or len(timestamp) != 3:
        return None
    try:
        hours, minutes, seconds = (float(part) for part in timestamp)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 61):
        return None
    if hours != int(hours) or minutes != int(minutes):
        return None
    whole = min(int(seconds), 59)  # a leap second stays in its minute
    micro = int(round((seconds - int(seconds)) * 1_000_000)) if seconds < 60 else 0
    when = day.when.replace(hour=int(hours), minute=int(minutes), second=whole, microsecond=min(micro, 999_999))
    return Stamp(when, 0, True)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, (tuple, list)):  # some writers store a 1-tuple
        value = value[0] if value else ""
    return str(value).replace("\x00", "").strip()


def _digits(value: object) -> str:
    text = _text(value)
    match = re.match(r"\d+", text)
    return match.group(0) if match else ""
