"""Reading numbers, ids, times and JSON from client input: the rules, without any web framework.

Python's own parsers accept more than a client should ever send, and each surplus used to
end in a 500: ``"²".isdigit()`` is true but ``int("²")`` raises; ``int("١٢")`` is 12;
``float()`` takes ``nan``, ``inf`` and ``1e400``; an integer of any size parses, but SQLite
cannot bind one beyond 64 bits (``OverflowError``); ``os.utime`` and ``time.gmtime`` refuse
a time 10^17 seconds away; a JSON body nested 100 000 deep exhausts the decoder's
recursion. Every way in reads client values through these functions (directly, or through
:mod:`photobox.web.params`, which turns their refusals into 4xx answers).
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["INT64_MAX", "MAX_TIME", "MIN_TIME", "int_or_none", "json_depth_exceeds", "parse_networks", "parse_time"]

#: The largest integer SQLite stores (and binds): anything larger cannot be an id or a size.
INT64_MAX = 2**63 - 1

#: File times outside these years are refused: nothing was made before 1900, a time after
#: 2100 is a wrong unit or a wrong clock, and both ends stay inside every platform's time_t
#: range that photobox meets (os.utime, time.gmtime).
MIN_TIME = -2_208_988_800.0  # 1900-01-01T00:00:00Z
MAX_TIME = 4_102_444_800.0   # 2100-01-01T00:00:00Z
#: A number this large is milliseconds (JavaScript's lastModified), not seconds: 10^11
#: seconds is in the year 5138, 10^11 milliseconds is 1973.
_MILLIS_ABOVE = 1e11

_INT = re.compile(r"[+-]?[0-9]{1,19}")  # ASCII digits only: never str.isdigit()
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_INNERMOST = re.compile(rb"\[\]|\{\}")  # one level per pass: matches never overlap
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def int_or_none(text: str | None, *, lo: int = 0, hi: int = INT64_MAX) -> int | None:
    """An integer written in ASCII digits (an optional sign, surrounding spaces allowed)
    within ``lo``..``hi``; None for anything else."""
    value = (text or "").strip()
    if _INT.fullmatch(value) and lo <= int(value) <= hi:
        return int(value)
    return None


def _in_range(seconds: float, name: str, *, maybe_millis: bool = False) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number")
    if maybe_millis and abs(seconds) > _MILLIS_ABOVE:
        seconds /= 1000
    if not MIN_TIME <= seconds < MAX_TIME:
        raise ValueError(f"{name} must be a time between 1900 and 2100 (seconds or milliseconds since 1970, "
                         f"or ISO 8601)")
    return seconds


def parse_time(value: Any, *, name: str = "mtime") -> float | None:
    """Unix seconds from a number of seconds or milliseconds, ISO 8601 or an HTTP date; None
    when ``value`` is absent or empty. A date without a UTC offset is read as UTC (the
    server's time zone says nothing about the client's).

    Raises:
        ValueError: present but unreadable, not finite, or outside 1900..2100; the message
            names ``name`` and says what is accepted.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a time, not true/false")
    if isinstance(value, (int, float)):
        return _in_range(float(value), name, maybe_millis=True)
    text = str(value).strip()
    if _NUMBER.fullmatch(text):
        return _in_range(float(text), name, maybe_millis=True)
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            pass
    if parsed is None:
        raise ValueError(f"{name} is not a time photobox can read: send seconds or milliseconds since 1970, "
                         f"or ISO 8601")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        seconds = parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        seconds = math.inf
    return _in_range(seconds, name)


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether JSON ``body`` nests arrays/objects deeper than ``limit``.

    Strings are blanked first (brackets inside them do not count); then every pass removes
    the innermost ``[]``/``{}`` pairs, all in C. A
    body whose brackets do not pair up is left to the decoder to call malformed.
    """
    if body.count(b"[") + body.count(b"{") <= limit:  # the usual body: too few brackets to nest deeper
        return False
    skeleton = _JSON_STRING.sub(b"", body).translate(None, delete=_NOT_BRACKETS)
    if re.search(rb"[\[{]{%d}" % (limit + 1), skeleton):  # a run of openers: the usual attack, seen at once
        return True
    for _ in range(limit):
        if not skeleton:
            return False
        shorter = _INNERMOST.sub(b"", skeleton)
        if shorter == skeleton:
            return False
        skeleton = shorter
    return bool(skeleton) and _INNERMOST.sub(b"", skeleton) != skeleton


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The addresses and networks of a ``trusted_proxies`` value (``"127.0.0.1, 10.0.0.0/8"``).

    Raises ValueError naming the entry that is neither.
    """
    networks = []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)") from None
    return tuple(networks)
