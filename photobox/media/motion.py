"""Locate and extract the MP4 embedded in Motion Photos.

Formats handled:

* Google Motion Photo v1 (``GCamera:MotionPhoto`` + ``Container:Directory``
  with a ``MotionPhoto`` item whose ``Item:Length`` counts back from EOF),
* legacy Google/Samsung MicroVideo (``GCamera:MicroVideo`` +
  ``MicroVideoOffset``, also counted back from EOF),
* Samsung JPEG trailers (``MotionPhoto_Data`` record in the SEF directory at
  the end of the file) and Samsung HEIC ``mpvd`` boxes.

XMP is only a hint: declared lengths can be wrong (one Samsung HEIC in the
test corpus declares 80 bytes for a 2 MB video), so every candidate position
is verified by finding a real ``ftyp`` box there, and if none verifies we scan
a bounded window at the end of the file.  Ultra HDR JPEGs also carry a
Container directory, but with a ``GainMap`` item and no MotionPhoto item: they
are not motion photos and are never scanned.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

from . import _heif, _quicktime, _sniff, _stills, _xmp
from ._quicktime import Reader

# How much of a file's tail the fallback scan may read.
SCAN_WINDOW = 16 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
# Brands a phone's embedded clip uses; a HEIC/AVIF brand would be an image.
_VIDEO_BRANDS = {b"mp41", b"mp42", b"isom", b"iso2", b"iso4", b"iso5", b"iso6",
                 b"avc1", b"qt  ", b"3gp4", b"3gp5", b"M4V ", b"msnv", b"MSNV",
                 b"hvc1", b"dby1", b"mp4v"}

__all__ = ["find_motion_video", "extract_motion_video"]


@dataclasses.dataclass(slots=True)
class Motion:
    """Result of `locate`."""

    declared: bool = False
    offset: int | None = None
    length: int | None = None
    problem: str | None = None
    start: int | None = None   # where an ftyp was found, even if the video is cut


def locate(r: Reader, xmp: _xmp.Xmp | None, still_end: int,
           mpvd: tuple[int, int] | None = None) -> Motion:
    """Find the embedded video of a (possible) motion photo.

    Args:
        r: Reader over the whole file.
        xmp: Parsed XMP of the still, if any.
        still_end: First offset where the video may start (after the still's
            headers); the tail scan never looks before it.
        mpvd: Samsung HEIC ``mpvd`` box payload (offset, length), if present.

    Returns:
        Motion with ``offset``/``length`` set when a complete MP4 was found;
        ``declared`` tells whether the file claims to be a motion photo.
    """
    result = Motion()
    candidates: list[int] = []
    if xmp is not None:
        camera = lambda name: xmp.get(_xmp.NS_GCAMERA, name)  # noqa: E731
        items = [i for i in xmp.items if (i.semantic or "").lower() == "motionphoto"]
        if camera("MotionPhoto") == "1" or camera("MicroVideo") == "1" or items:
            result.declared = True
        offset = _int(camera("MicroVideoOffset"))
        if offset:
            candidates.append(r.size - offset)
        if items:
            # Items are stored in directory order, so the video starts where
            # the lengths of it and every later item, counted from EOF, end.
            index = xmp.items.index(items[0])
            tail = sum((i.length or 0) + (i.padding or 0) for i in xmp.items[index:])
            if tail:
                candidates.append(r.size - tail)
    if mpvd is not None:
        result.declared = True
        candidates.append(mpvd[0])
    sef = _samsung_video(r)
    if sef is not None:
        result.declared = True
        candidates.append(sef)
    if not result.declared:
        return result
    start = next((c for c in candidates if still_end <= c and _is_ftyp(r, c)), None)
    if start is None:
        start = _scan_tail(r, still_end)
    if start is None:
        result.problem = "motion photo declared but no embedded video found"
        return result
    result.start = start
    end, complete = _quicktime.mp4_extent(r, start)
    if not complete:
        result.problem = "motion photo video is truncated"
        return result
    result.offset, result.length = start, end - start
    return result


def _is_ftyp(r: Reader, pos: int) -> bool:
    head = r.read(pos, 12)
    if len(head) < 12 or head[4:8] != b"ftyp":
        return False
    size = struct.unpack(">I", head[:4])[0]
    return 16 <= size <= 4096 and head[8:12] in _VIDEO_BRANDS


def _scan_tail(r: Reader, still_end: int) -> int | None:
    """First verified ``ftyp`` box in the last SCAN_WINDOW bytes (1 MiB reads)."""
    pos = max(still_end, r.size - SCAN_WINDOW)
    while pos < r.size:
        # Overlap chunks by 8 bytes so a box header split across reads is seen.
        data = r.read(pos, COPY_CHUNK + 8)
        hit = data.find(b"ftyp", 4)
        while hit >= 0:
            if _is_ftyp(r, pos + hit - 4):
                return pos + hit - 4
            hit = data.find(b"ftyp", hit + 1)
        pos += COPY_CHUNK
    return None


def _samsung_video(r: Reader) -> int | None:
    """Offset of the MP4 in a Samsung ``MotionPhoto_Data`` SEF record."""
    footer = r.read(r.size - 8, 8)
    if len(footer) < 8 or footer[4:] != b"SEFT":
        return None
    dir_size = struct.unpack("<I", footer[:4])[0]
    sefh = r.size - 8 - dir_size
    if dir_size < 12 or dir_size > 65536 or sefh < 0:
        return None
    directory = r.read(sefh, dir_size)
    if directory[:4] != b"SEFH":
        return None
    count = struct.unpack("<I", directory[8:12])[0]
    for i in range(min(count, 256)):
        entry = directory[12 + 12 * i:24 + 12 * i]
        if len(entry) < 12:
            break
        back, size = struct.unpack("<II", entry[4:12])
        record = sefh - back
        head = r.read(record, 8 + 32)
        if len(head) < 8:
            continue
        name_len = struct.unpack("<I", head[4:8])[0]
        if head[8:8 + name_len] == b"MotionPhoto_Data":
            return record + 8 + name_len
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _probe(path: Path) -> Motion:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        r = Reader(f, size)
        mime, _, _ = _sniff.sniff(r.read(0, _sniff.HEAD_SIZE))
        if mime == "image/jpeg":
            still = _stills.read_jpeg(r)
            xmp = _xmp.parse(still.xmp)
            return locate(r, xmp, still.data_start or 0)
        if mime in ("image/heic", "image/heif", "image/avif"):
            heif = _heif.read_heif(r)
            xmp = _xmp.parse(_heif.read_extents(r, heif.xmp, _xmp.MAX_PACKET))
            return locate(r, xmp, heif.data_end or 0, heif.mpvd)
    return Motion()


def find_motion_video(path: Path) -> tuple[int, int] | None:
    """Find the MP4 embedded in a Motion Photo.

    Args:
        path: A JPEG or HEIC file.

    Returns:
        ``(offset, length)`` of the embedded MP4, or None when the file is not
        a motion photo, the video is missing/truncated, or the file is
        unreadable.
    """
    try:
        motion = _probe(Path(path))
    except Exception:  # unreadable or hostile file: simply not a motion photo
        return None
    if motion.offset is None or motion.length is None:
        return None
    return motion.offset, motion.length


def extract_motion_video(path: Path, dst_path: Path) -> bool:
    """Copy the embedded MP4 of a Motion Photo to ``dst_path``.

    The copy is streamed in 1 MiB chunks into a temporary file next to
    ``dst_path`` which is renamed into place, so a crash never leaves a
    half-written video under the final name.

    Args:
        path: The motion photo.
        dst_path: Where to write the MP4.

    Returns:
        True when a video was written, False when there is none.
    """
    found = find_motion_video(path)
    if found is None:
        return False
    offset, length = found
    dst_path = Path(dst_path)
    tmp = dst_path.with_name(dst_path.name + ".part")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            src.seek(offset)
            remaining = length
            while remaining > 0:
                chunk = src.read(min(COPY_CHUNK, remaining))
                if not chunk:
                    raise OSError("source shrank while copying")
                dst.write(chunk)
                remaining -= len(chunk)
        os.replace(tmp, dst_path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True
