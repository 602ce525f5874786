"""Capture dates encoded in file names by phones, cameras and chat apps.

Used only when a file carries no usable embedded date.  Recognised shapes
include ``IMG_20190526_103320``, ``PXL_20210101_123456789``, ``VID_...``,
``20190526_103320``, ``Screenshot_2019-05-26-10-33-20``,
``Screenshot 2019-05-26 at 10.33.20 PM``, ``signal-2019-05-26-103320``,
``2019-05-26 10.33.20`` (Dropbox), ``2018-04-12_19_24_49``,
WhatsApp ``IMG-20190526-WA0001`` (date only) and ``FB_IMG_<epoch ms>`` (UTC).
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["date_from_filename"]

# Date, then optionally a time.  Separators are optional so that both
# 20190526_103320 and 2019-05-26-10-33-20 match; (?<!\d)/(?!\d) stop us from
# picking a "date" out of the middle of a longer number such as a serial.
_DATE_TIME_RE = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d\d)[-_.]?(?P<mo>0[1-9]|1[0-2])[-_.]?"
    r"(?P<d>0[1-9]|[12]\d|3[01])"
    r"(?:(?:[ _T.\-]+|[ _]at[ _])"
    r"(?P<h>[01]\d|2[0-3])[-_.:h]?(?P<mi>[0-5]\d)[-_.:m]?(?P<s>[0-5]\d)"
    r"(?:[-_.]?(?P<ms>\d{3}))?(?:[ _]?(?P<ampm>[AaPp][Mm]))?)?"
    r"(?!\d)"
)
# Facebook/Messenger saves pictures as FB_IMG_<unix epoch in ms>.
_EPOCH_RE = re.compile(r"^(?:FB_IMG_|received_)(?P<ms>1\d{12})(?!\d)")
# Cameras did not write dated file names before this year.
_MIN_YEAR = 1990


def date_from_filename(name: str, *, now: dt.datetime | None = None
                       ) -> tuple[dt.datetime, int | None, bool] | None:
    """Find a capture date in a file name.

    Args:
        name: The file name (directories are ignored by the caller).
        now: Current UTC time (naive); dates over a day after it are rejected.

    Returns:
        ``(when, tz_offset_min, has_time)`` where ``when`` is the naive wall
        clock time, ``tz_offset_min`` is 0 for UTC-based names and None when
        the zone is unknown, and ``has_time`` is False for date-only names
        (``when`` is then midnight).  None when nothing plausible is found.
    """
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    limit = now + dt.timedelta(days=1)
    stem = name.rsplit("/", 1)[-1]
    match = _EPOCH_RE.match(stem)
    if match:
        when = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(match["ms"]))
        if dt.datetime(2004, 1, 1) <= when <= limit:
            return when, 0, True
    for match in _DATE_TIME_RE.finditer(stem):
        when, has_time = _build(match)
        if when is not None and when.year >= _MIN_YEAR and when <= limit:
            return when, None, has_time
    return None


def _build(match: re.Match[str]) -> tuple[dt.datetime | None, bool]:
    try:
        day = dt.datetime(int(match["y"]), int(match["mo"]), int(match["d"]))
    except ValueError:  # e.g. 2019-02-30
        return None, False
    if match["h"] is None:
        return day, False
    hour = int(match["h"])
    ampm = (match["ampm"] or "").lower()
    if ampm and hour <= 12:
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    micro = int(match["ms"]) * 1000 if match["ms"] else 0
    return day.replace(hour=hour, minute=int(match["mi"]), second=int(match["s"]),
                       microsecond=micro), True
