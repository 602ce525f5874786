"""Fuji RAF and Canon CRW (CIFF) headers: where their metadata lives.

* RAF: ``FUJIFILMCCD-RAW``, then at byte 84 big-endian offset/length of a
  full JPEG (which carries the EXIF) and of a metadata directory of
  tag/size records (0x100 RawImageFullSize, 0x111 RawImageCroppedSize).
* CRW: Canon's CIFF heap: ``II``, u32 header length, ``HEAPCCDR``; each heap
  ends with a u32 offset to its table of 10-byte records (tag, size,
  offset); records of type 0x28xx/0x30xx are heaps themselves.  Besides the
  size and date records, 0x102A (ShotInfo), 0x102D (CameraSettings) and
  0x1029 (FocalLength) hold the same arrays as a Canon MakerNote; 0x101C is
  BaseISO.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct

from . import _dates
from ._quicktime import Reader

# CIFF records kept whole for the Canon MakerNote decoder (`_maker_facts`).
CANON_RECORDS = {0x101C, 0x1029, 0x102A, 0x102D}


@dataclasses.dataclass(slots=True)
class Raf:
    """Fuji RAF: the embedded preview JPEG carries the EXIF."""

    jpeg: tuple[int, int] | None = None
    width: int | None = None
    height: int | None = None


def read_raf(r: Reader) -> Raf:
    """Read the RAF header and its metadata directory."""
    raf = Raf()
    head = r.read(84, 16)
    if len(head) < 16:
        return raf
    jpeg_off, jpeg_len, meta_off, meta_len = struct.unpack(">IIII", head)
    if 0 < jpeg_off < r.size and jpeg_len:
        raf.jpeg = (jpeg_off, min(jpeg_len, r.size - jpeg_off))
    meta = r.read(meta_off, min(meta_len, 64 * 1024)) if meta_off else b""
    if len(meta) >= 4:
        count, pos = struct.unpack(">I", meta[:4])[0], 4
        tags: dict[int, bytes] = {}
        for _ in range(min(count, 256)):
            if pos + 4 > len(meta):
                break
            tag, size = struct.unpack(">HH", meta[pos:pos + 4])
            tags[tag] = meta[pos + 4:pos + 4 + size]
            pos += 4 + size
        # exiftool reports RawImageCroppedSize (0x111), else RawImageFullSize.
        for tag in (0x111, 0x100):
            if len(tags.get(tag, b"")) >= 4:
                raf.height, raf.width = struct.unpack(">HH", tags[tag][:4])
                break
    return raf


@dataclasses.dataclass(slots=True)
class Crw:
    """Canon CRW (CIFF) facts."""

    make: str | None = None
    model: str | None = None
    taken: _dates.Stamp | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    records: dict[int, bytes] = dataclasses.field(default_factory=dict)


def read_crw(r: Reader) -> Crw:
    """Walk the CIFF heaps of a Canon CRW (bounded depth)."""
    crw = Crw()
    header = r.read(0, 14)
    if len(header) < 14 or header[:2] != b"II":
        return crw
    start = struct.unpack("<I", header[2:6])[0]
    _ciff_heap(r, start, r.size, crw, 0)
    return crw


def _ciff_heap(r: Reader, start: int, end: int, crw: Crw, depth: int) -> None:
    if depth > 4 or end - start < 6:
        return
    table = struct.unpack("<I", r.read(end - 4, 4).ljust(4, b"\0"))[0] + start
    count_raw = r.read(table, 2)
    if len(count_raw) < 2:
        return
    count = struct.unpack("<H", count_raw)[0]
    entries = r.read(table + 2, min(count, 512) * 10)
    for i in range(len(entries) // 10):
        tag, size, offset = struct.unpack("<HII", entries[i * 10:i * 10 + 10])
        kind = tag & 0x3FFF
        if tag & 0x4000:       # data stored in the entry itself
            value = entries[i * 10 + 2:i * 10 + 10]
        elif kind & 0x3800 in (0x2800, 0x3000):   # sub-heap
            if offset + size <= end - start:
                _ciff_heap(r, start + offset, start + offset + size, crw, depth + 1)
            continue
        elif size <= 4096:
            value = r.read(start + offset, size)
        else:
            continue
        _ciff_tag(kind, value, crw)


def _ciff_tag(kind: int, value: bytes, crw: Crw) -> None:
    if kind in CANON_RECORDS:
        crw.records.setdefault(kind, value)
    if kind == 0x080A:      # "Make\0Model\0"
        parts = value.split(b"\x00")
        crw.make = (parts[0].decode("latin-1").strip() or None) if parts else None
        crw.model = (parts[1].decode("latin-1").strip() or None) if len(parts) > 1 else None
    elif kind == 0x180E and len(value) >= 4:   # TimeStamp: local time as Unix secs
        seconds = struct.unpack("<I", value[:4])[0]
        if seconds:
            when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
            crw.taken = _dates.Stamp(when, None, True)
    elif kind == 0x1810 and len(value) >= 16:   # ImageInfo
        width, height, _, rotation = struct.unpack("<IIfi", value[:16])
        crw.width, crw.height = width, height
        crw.orientation = {0: 1, 90: 6, 180: 3, 270: 8}.get(rotation % 360)
