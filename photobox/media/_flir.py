"""The FLIR record of a thermal camera's JPEG: capture time and lens.

FLIR cameras store an FFF file in APP1 segments starting ``FLIR\\0``; byte 6
is the chunk number, byte 7 the number of chunks minus one, and the chunks'
payloads (from byte 8) concatenate to the FFF data (exiftool FLIR.pm):

* a 64-byte header: ``FFF\\0``, creator, a u32 version (100..199, which also
  tells the byte order), the record directory's offset and entry count;
* 32-byte directory entries: u16 record type, ..., u32 offset, u32 length;
* record 0x20, CameraInfo: a u16 of 2 at 0 (else the record is in the other
  byte order), LensModel at 0x170, and at 0x384 DateTimeOriginal as u32 Unix
  time, u32 milliseconds (low 16 bits) and s16 minutes *west* of UTC.

Many thermal JPEGs keep their date only here.  Only the directory and that
record are read, wherever the chunk boundaries fall.
"""

from __future__ import annotations

import datetime as dt
import struct

from . import _dates
from ._collect import Work
from ._quicktime import Reader

MAX_CHUNKS = 256
MAX_RECORDS = 256
CAMERA_INFO = 0x20


class _Joined:
    """Reads across the FLIR chunks as if they were one byte string."""

    def __init__(self, r: Reader, parts: list[tuple[int, int]]) -> None:
        self.r, self.parts = r, parts

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray()
        start = 0
        for pos, size in self.parts:
            if length <= 0:
                break
            if offset < start + size:
                skip = max(0, offset - start)
                take = min(size - skip, length)
                data = self.r.read(pos + skip, take)
                out += data
                if len(data) < take:
                    break
                offset += take
                length -= take
            start += size
        return bytes(out)


def apply(work: Work, r: Reader, spans: list[tuple[int, int]]) -> None:
    """Offer the FLIR capture time and lens model found in ``spans`` (APP1 payloads)."""
    info = _camera_info(r, spans)
    if info is None:
        return
    data, order = info
    if len(data) >= 0x170 + 32:
        lens = data[0x170:0x190].split(b"\x00", 1)[0].decode("latin-1").strip()
        work.put("lens", lens or None)
    if len(data) >= 0x384 + 10:
        seconds, millis, west = struct.unpack(order + "IIh", data[0x384:0x38E])
        if seconds and abs(west) <= 14 * 60:
            when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds - west * 60,
                                                          milliseconds=millis & 0xFFFF)
            work.date("exif_original", _dates.Stamp(when, -west, True))


def _camera_info(r: Reader, spans: list[tuple[int, int]]) -> tuple[bytes, str] | None:
    chunks = []
    for pos, length in spans[:MAX_CHUNKS]:
        head = r.read(pos, 8)
        if len(head) == 8 and length > 8:
            chunks.append((head[6], pos + 8, length - 8))
    chunks.sort(key=lambda c: c[0])
    fff = _Joined(r, [(pos, size) for _, pos, size in chunks])
    header = fff.read(0, 0x40)
    if len(header) < 0x40 or header[:4] not in (b"FFF\x00", b"AFF\x00"):
        return None
    for order in (">", "<"):
        version, dir_pos, count = struct.unpack(order + "III", header[0x14:0x20])
        if 100 <= version < 200:
            break
    else:
        return None
    table = fff.read(dir_pos, min(count, MAX_RECORDS) * 0x20)
    for i in range(len(table) // 0x20):
        entry = table[i * 0x20:(i + 1) * 0x20]
        kind = struct.unpack(order + "H", entry[:2])[0]
        if kind != CAMERA_INFO:
            continue
        rec_pos, rec_len = struct.unpack(order + "II", entry[0x0C:0x14])
        data = fff.read(rec_pos, min(rec_len, 0x1000))
        if len(data) < 2:
            return None
        if struct.unpack(order + "H", data[:2])[0] >= 0x100:
            order = "<" if order == ">" else ">"
        return data, order
    return None
