"""RAW containers that are not TIFF files: Minolta MRW and Sigma/Foveon X3F.

Layouts as exiftool documents them (MinoltaRaw.pm, SigmaRaw.pm):

* MRW: ``\\0MRM`` (big-endian; ``\\0MRI`` little-endian), a u32 length of
  the metadata area, then blocks of a 4-byte tag and a u32 length: ``\\0PRD``
  (sensor and image size: ImageHeight at byte 12, ImageWidth at 14), ``\\0TTW``
  (a complete TIFF structure with IFD0, Exif IFD and the Minolta MakerNote),
  ``\\0WBG``, ``\\0RIF``.
* X3F: ``FOVb``, a u32 version (major << 16 | minor), a header holding the
  image width, height and rotation (u32s at 28/32/36 before version 4, at
  40/44/48 from 4.0: the Quattro generation), and a section directory whose
  offset is the file's last u32: ``SECd``, version, entry count, then entries
  of offset, length and type.  ``PROP`` sections (``SECp``) hold a property
  list of UTF-16 name/value pairs (CAMMANUF, CAMMODEL, TIME, SHUTTER...: all
  the SD9/SD10 generation has); ``IMAG``/``IMA2`` sections (``SECi``: version,
  type, format, columns, rows, row size, then data) hold previews: format 18
  is a JPEG (with EXIF in the DP/SD14-and-later generation), 3 uncompressed
  RGB and 11 Huffman-coded RGB (SD9/SD10).
"""

from __future__ import annotations

import dataclasses
import struct

from ._quicktime import Reader

MAX_BLOCKS = 64
PROP_CAP = 256 * 1024
X3F_JPEG, X3F_RGB, X3F_HUFFMAN = 18, 3, 11


@dataclasses.dataclass(slots=True)
class Mrw:
    """What an MRW header holds."""

    tiff_base: int | None = None      # where the TTW block's TIFF header starts
    width: int | None = None
    height: int | None = None
    problems: list[str] = dataclasses.field(default_factory=list)


def read_mrw(r: Reader) -> Mrw:
    """Walk the MRW metadata blocks."""
    mrw = Mrw()
    head = r.read(0, 8)
    if len(head) < 8 or head[:3] != b"\x00MR" or head[3:4] not in (b"M", b"I"):
        mrw.problems.append("not an MRW header")
        return mrw
    order = ">" if head[3:4] == b"M" else "<"
    end = min(8 + struct.unpack(order + "I", head[4:8])[0], r.size)
    pos = 8
    for _ in range(MAX_BLOCKS):
        if pos + 8 > end:
            break
        block = r.read(pos, 8)
        tag, length = block[:4], struct.unpack(order + "I", block[4:8])[0]
        body = pos + 8
        if body + length > end:
            mrw.problems.append("MRW block runs past the metadata area")
            length = end - body
        if tag == b"\x00PRD":
            prd = r.read(body, min(length, 24))
            if len(prd) >= 16:
                mrw.height, mrw.width = struct.unpack(order + "HH", prd[12:16])
        elif tag == b"\x00TTW" and mrw.tiff_base is None:
            mrw.tiff_base = body
        pos = body + length
    return mrw


@dataclasses.dataclass(slots=True)
class X3fImage:
    """One image section (``SECi``): a preview or the sensor data."""

    offset: int           # first data byte (after the 28-byte section header)
    length: int
    kind: int             # 2 = processed for preview, 1/3 = sensor data
    format: int           # 18 JPEG, 3 RGB, 11 Huffman RGB, others sensor data
    columns: int
    rows: int
    row_size: int


@dataclasses.dataclass(slots=True)
class X3f:
    """What an X3F header and section directory hold."""

    version: int = 0
    width: int | None = None
    height: int | None = None
    rotation: int | None = None
    props: dict[str, str] = dataclasses.field(default_factory=dict)
    images: list[X3fImage] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    def jpegs(self) -> list[X3fImage]:
        """The JPEG previews, largest first."""
        found = [i for i in self.images if i.format == X3F_JPEG]
        return sorted(found, key=lambda i: i.columns * i.rows, reverse=True)


def read_x3f(r: Reader) -> X3f:
    """Read the X3F header, its section directory and property lists."""
    x3f = X3f()
    head = r.read(0, 52)
    if len(head) < 40 or not head.startswith(b"FOVb"):
        x3f.problems.append("not an X3F header")
        return x3f
    x3f.version = struct.unpack("<I", head[4:8])[0]
    at = 28 if x3f.version >> 16 < 4 else 40
    if len(head) >= at + 12:
        x3f.width, x3f.height, x3f.rotation = struct.unpack("<3I", head[at:at + 12])
    tail = r.read(r.size - 4, 4)
    if len(tail) < 4:
        return x3f
    dir_pos = struct.unpack("<I", tail)[0]
    dir_head = r.read(dir_pos, 12)
    if len(dir_head) < 12 or not dir_head.startswith(b"SECd"):
        x3f.problems.append("X3F section directory missing")
        return x3f
    count = struct.unpack("<I", dir_head[8:12])[0]
    if not 0 < count <= MAX_BLOCKS:
        x3f.problems.append(f"X3F directory with {count} entries")
        return x3f
    table = r.read(dir_pos + 12, count * 12)
    for i in range(len(table) // 12):
        offset, length, kind = struct.unpack("<II4s", table[i * 12:i * 12 + 12])
        if offset + length > r.size:
            x3f.problems.append(f"X3F {kind!r} section runs past the end of the file")
            continue
        if kind == b"PROP" and length <= PROP_CAP:
            for name, value in _properties(r.read(offset, length)):
                x3f.props.setdefault(name, value)
        elif kind in (b"IMAG", b"IMA2") and length > 28:
            sec = r.read(offset, 28)
            if sec.startswith(b"SECi"):
                kind_, fmt, cols, rows, row_size = struct.unpack("<5I", sec[8:28])
                x3f.images.append(X3fImage(offset + 28, length - 28, kind_, fmt, cols, rows,
                                           row_size))
    return x3f


def _properties(data: bytes) -> list[tuple[str, str]]:
    """Name/value pairs of a ``SECp`` property list (UTF-16LE, NUL-terminated)."""
    if len(data) < 24 or not data.startswith(b"SECp"):
        return []
    entries, fmt, chars = struct.unpack("<II4xI", data[8:24])
    if fmt != 0 or entries > 4096:
        return []
    text_at = 24 + 8 * entries
    text = data[text_at:text_at + 2 * chars]
    out = []
    for i in range(entries):
        pair = data[24 + 8 * i:32 + 8 * i]
        if len(pair) < 8:
            break
        name_pos, value_pos = struct.unpack("<II", pair)
        name, value = _utf16_at(text, name_pos), _utf16_at(text, value_pos)
        if name:
            out.append((name, value))
    return out


def _utf16_at(text: bytes, index: int) -> str:
    start = 2 * index
    end = start
    while end + 1 < len(text) and text[end:end + 2] != b"\x00\x00":
        end += 2
    return text[start:end].decode("utf-16-le", "replace").strip()
