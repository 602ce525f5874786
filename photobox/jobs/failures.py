"""Failed jobs as a person reads them: a name for every job kind, the file a failure is
about, and its reason in one short sentence.

The Processing page, the viewer and ``photobox jobs`` all show failures through this
module, so they say the same thing. The full error text stays on the job row (the page
shows it under the short reason); :func:`reason` only makes its first line readable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import apsw

__all__ = ["Failure", "asset_failure", "list_failures", "reason"]

_FORMATS = {"image/jpeg": "JPEG", "image/heic": "HEIC", "image/heif": "HEIF", "image/avif": "AVIF",
            "image/png": "PNG", "image/webp": "WebP", "image/gif": "GIF", "image/tiff": "TIFF", "image/bmp": "BMP"}

# The stage's own prefix says what failed, which the page already says (the kind's name).
_PREFIXES = ("cannot make a thumbnail: ", "cannot show this file: ", "cannot read this video: ",
             "cannot convert this video for the browser: ", "cannot convert this video: ")

# (pattern on the first line without its prefix, short sentence); {fmt} is the file format,
# {m[N]} a group of the match.
_KNOWN: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), s) for p, s in (
    (r"^(TruncatedImage: )?truncated image", "truncated {fmt}"),
    (r"^(TruncatedImage: )?truncated ([A-Z][A-Za-z0-9]*)\b", "truncated {m[2]}"),
    (r"^(DecodeError: )?corrupt image", "damaged {fmt} data"),
    (r"^(DecodeError: )?not a supported image format", "not an image format photobox can read"),
    (r"^(VideoError: )?not a readable video", "not a readable video (damaged, or not a video)"),
    (r"^(VideoError: )?no video stream", "the video has no picture"),
    (r"^(VideoError: )?no decodable video frame", "no frame of the video could be decoded"),
    (r"^(VideoError: )?too many decode errors", "the video is too damaged to decode"),
    (r"^(DecodeError: |VideoError: )?empty file", "the file is empty"),
    (r"^RAW file has no usable embedded preview", "this RAW file has no preview photobox can show"),
    (r"^(DecoderCrashed: )?the decoder crashed", "the decoder crashed on this file"),
    (r"^(DecoderCrashed: )?the decoder process", "the decoder crashed on this file"),
    (r"^the original is missing", "the original file is missing"),
    (r"^photobox stopped while running this job",
     "photobox stopped while working on it more than once, so it is not tried again by itself"),
))
_AS_IS = re.compile(r"^(DecoderOutOfMemory|DecoderTimeout|DecodeError|VideoError): ")


def reason(error: str | None, mime: str | None = None) -> str:
    """The first line of a job's error as a short sentence: known decoder and pipeline
    errors mapped (``truncated JPEG``), anything else as it is."""
    line = (error or "").strip().splitlines()[0].strip() if (error or "").strip() else ""
    # The stage's prefix, and anything before it (a job may name its file first).
    found = [(line.find(p), p) for p in _PREFIXES if p in line]
    if found:
        at, prefix = min(found)
        line = line[at + len(prefix):]
    fmt = _FORMATS.get(mime or "", "video" if (mime or "").startswith("video/") else "image")
    for pattern, sentence in _KNOWN:
        match = pattern.search(line)
        if match:
            return sentence.format(fmt=fmt, m=match)
    return _AS_IS.sub("", line) or "unknown error"


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed job, with the file it is about when it is about one."""

    job_id: int
    kind: str
    target: str
    attempts: int
    error: str
    updated_at: float
    asset_id: int | None
    file_name: str | None
    mime: str | None

    @property
    def reason(self) -> str:
        return reason(self.error, self.mime)

    @property
    def first_line(self) -> str:
        return (self.error or "").strip().splitlines()[0] if (self.error or "").strip() else ""


_FAILURE_SQL = (
    "SELECT j.id, j.kind, j.target, j.attempts, coalesce(j.error, ''), j.updated_at, a.id, "
    "coalesce(a.original_name, lf.rel_path), a.mime FROM jobs j "
    "LEFT JOIN assets a ON j.kind IN (SELECT value FROM json_each(:asset_kinds)) "
    "AND a.id = CAST(j.target AS INTEGER) "
    "LEFT JOIN library_files lf ON j.kind = 'ingest.file' AND lf.id = CAST(j.target AS INTEGER) "
)


def list_failures(conn: apsw.Connection, asset_kinds: Sequence[str], *, kind: str | None = None, after_id: int = 0,
                  limit: int = 50) -> list[Failure]:
    """Failed jobs (optionally of one ``kind``), oldest first, keyset-paginated by job id.

    ``asset_kinds`` are the kinds whose target is an asset id (``box.pipeline.asset_kinds``):
    their failures name the asset's file.
    """
    rows: list[Any] = conn.execute(
        _FAILURE_SQL + "WHERE j.state = 'failed' AND (:kind IS NULL OR j.kind = :kind) AND j.id > :after "
        "ORDER BY j.id LIMIT :limit",
        {"asset_kinds": json.dumps(list(asset_kinds)), "kind": kind, "after": after_id, "limit": limit},
    ).fetchall()
    return [Failure(*r) for r in rows]


def asset_failure(conn: apsw.Connection, asset_id: int, kind: str = "thumbs") -> Failure | None:
    """The failed ``kind`` job of one asset (by default its thumbnails), if it failed for good."""
    row = conn.execute(
        _FAILURE_SQL + "WHERE j.kind = :kind AND j.target = :target AND j.state = 'failed'",
        {"asset_kinds": json.dumps([kind]), "kind": kind, "target": str(int(asset_id))},
    ).fetchone()
    return Failure(*row) if row else None
