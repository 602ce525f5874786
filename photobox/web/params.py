"""Reading numbers, ids, times and JSON from client input: one set of rules for every way in.

Python's own parsers accept more than a client should ever send, and each surplus used to
end in a 500: ``"²".isdigit()`` is true but ``int("²")`` raises; ``float()`` takes ``nan``,
``inf`` and ``1e400``; an integer of any size parses but SQLite cannot bind one beyond 64
bits (``OverflowError``); ``os.utime`` and ``time.gmtime`` refuse a time 10^17 seconds away;
a JSON body nested 100 000 deep exhausts the decoder's recursion. The helpers here refuse
all of that with a 4xx that names the value, so clients learn what to fix instead of
retrying a 5xx forever.

* :data:`Id` / :data:`Count` / :data:`OptionalId`: the type of every id or count a handler declares (path,
  query, form or JSON field): a non-negative SQLite integer.
* :func:`bounded_path_ids`: an app-wide guard, so an id in a path beyond SQLite's range is
  a 404 on every route, including routes added later.
* :func:`parse_int`, :func:`query_int`, :func:`content_length`: integers read by hand from
  text (query strings, headers): ASCII digits only, within bounds.
* :func:`parse_time`: a file time from seconds, milliseconds, ISO 8601 or an HTTP date,
  finite and between 1900 and 2100.
* :class:`PhotoboxRequest`: the app's request class; its ``json()`` refuses bodies larger
  than :data:`MAX_JSON_BYTES` or nested deeper than :data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Request
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import Parameter
from msgspec import Meta

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers import BaseRouteHandler

__all__ = ["Count", "INT64_MAX", "Id", "OptionalId", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "PhotoboxRequest", "bounded_path_ids",
           "content_length", "parse_int", "parse_time", "query_int"]

#: The largest integer SQLite stores (and binds): anything larger cannot be an id or a size.
INT64_MAX = 2**63 - 1
#: An id of a row (asset, album, person, face…): what SQLite can hold, never negative. The
#: bounds are stated twice because msgspec checks ``Meta`` (form and JSON fields) while
#: Litestar checks ``Parameter`` (query and path parameters).
Id = Annotated[int, Meta(ge=0, le=INT64_MAX), Parameter(ge=0, le=INT64_MAX)]
#: An optional id in a query string (Litestar drops the bounds of ``Id | None`` there).
OptionalId = Annotated[int | None, Parameter(ge=0, le=INT64_MAX)]
#: A size, count or offset sent by a client: the same bounds as an id.
Count = Id

#: File times outside these years are refused: nothing was made before 1900, a time after
#: 2100 is a wrong unit or a wrong clock, and both ends stay inside every platform's time_t
#: range that photobox meets (os.utime, time.gmtime).
MIN_TIME = -2_208_988_800.0  # 1900-01-01T00:00:00Z
MAX_TIME = 4_102_444_800.0   # 2100-01-01T00:00:00Z
#: A number this large is milliseconds (JavaScript's lastModified), not seconds: 10^11
#: seconds is in the year 5138, 10^11 milliseconds is 1973.
_MILLIS_ABOVE = 1e11

_INT = re.compile(r"[+-]?[0-9]{1,19}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")

#: JSON request bodies photobox takes are small (5000 checksums is about 250 kB).
MAX_JSON_BYTES = 1 << 20
#: Deeper than any JSON photobox reads; far below the decoder's recursion limit.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_INNERMOST = re.compile(rb"\[\]|\{\}")  # one level per pass: matches never overlap
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def parse_int(text: str | None, *, name: str, lo: int = 0, hi: int = INT64_MAX) -> int:
    """An integer written in ASCII digits, within ``lo``..``hi``.

    Raises:
        ClientException: absent, not a plain integer (Unicode digits, exponents, spaces
            inside) or out of range; the message names ``name`` and the bounds.
    """
    value = (text or "").strip()
    if not _INT.fullmatch(value) or not lo <= int(value) <= hi:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise ClientException(f"{name} must be a whole number from {lo} to {hi} (got {shown!r})")
    return int(value)


def query_int(request: Request, name: str, default: int, *, lo: int = 0, hi: int = INT64_MAX) -> int:
    """The query parameter ``name`` as an integer (see :func:`parse_int`); ``default`` when absent or empty."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    return parse_int(text, name=name, lo=lo, hi=hi)


def content_length(headers: Any, default: int | None = None) -> int | None:
    """The request's Content-Length, or ``default`` when absent.

    Raises:
        ClientException: present but not a plain non-negative integer.
    """
    text = headers.get("content-length")
    if text is None or text == "":
        return default
    return parse_int(text, name="Content-Length")


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
    server's time zone is nobody's business).

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


async def bounded_path_ids(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """App-wide guard: an integer path parameter SQLite cannot hold names nothing (404)."""
    for name, value in connection.path_params.items():
        if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise NotFoundException(f"nothing has this {name}: ids are at most {INT64_MAX}")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether JSON ``body`` nests arrays/objects deeper than ``limit``.

    Strings are blanked first (brackets inside them do not count); then every pass removes
    the innermost ``[]``/``{}`` pairs, all in C. A body whose brackets do not pair up is
    left to the decoder to call malformed.
    """
    skeleton = _JSON_STRING.sub(b"", body).translate(None, delete=_NOT_BRACKETS)
    for _ in range(limit):
        if not skeleton:
            return False
        shorter = _INNERMOST.sub(b"", skeleton)
        if shorter == skeleton:
            return False
        skeleton = shorter
    return bool(skeleton) and _INNERMOST.sub(b"", skeleton) != skeleton


class PhotoboxRequest(Request):
    """The app's request class: JSON bodies are bounded in size and depth before decoding."""

    async def json(self) -> Any:
        body = await self.body()
        if len(body) > MAX_JSON_BYTES:
            raise HTTPException(status_code=413, detail=f"the JSON body is larger than {MAX_JSON_BYTES} bytes")
        if json_depth_exceeds(body, MAX_JSON_DEPTH):
            raise ClientException(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        return await super().json()
