"""Where a camera RAW keeps its embedded previews (used by `decode`).

A RAW's thumbnail comes from the largest JPEG the file carries.  Declared
ones are found through the container: the RAF header, the IFDs and MakerNote
of TIFF-based RAWs (`_raw_tiff`, `_makernotes`), MRW's TIFF block, X3F's image
sections.  When none is declared, or only a small one, the file is scanned
for JPEG start markers (CR3, CRW, unknown MakerNotes); image tiles are
excluded so a tiled DNG's tile is never taken for a preview.  Orientation
comes from the same rule as the metadata (`_tiff_walk.main_value`), so the
thumbnail and the displayed size agree.
"""

from __future__ import annotations

import dataclasses
import io
import mmap
import struct
from typing import BinaryIO

from . import _raw_formats, _raw_tiff
from ._quicktime import BudgetExceeded, Reader

# A declared preview whose long side is below this is a thumbnail: look for a
# bigger JPEG by scanning too.
SCAN_BELOW = 1024
MAX_SCAN_HITS = 64
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC5, 0xC6, 0xC9, 0xCA, 0xCD, 0xCE}
_LOSSLESS_SOF = {0xC3, 0xC7, 0xCB, 0xCF}


@dataclasses.dataclass(frozen=True, slots=True)
class Preview:
    """An embedded JPEG: byte range and pixel size."""

    offset: int
    length: int
    width: int
    height: int


@dataclasses.dataclass(slots=True)
class Found:
    """What the container declares."""

    previews: list[Preview] = dataclasses.field(default_factory=list)
    orientation: int | None = None      # for the previews; None: their own EXIF's
    tiff: bool = False                  # Pillow may decode IFD0 (an RGB thumbnail)
    rgb: _raw_formats.X3fImage | None = None   # X3F uncompressed RGB preview
    layout: _raw_tiff.Layout | None = None      # TIFF structure, when there is one

    def tiles(self) -> set[int]:
        """Offsets of image tiles, which a scan for JPEGs must skip."""
        if self.layout is None:
            return set()
        try:
            return _raw_tiff.tile_offsets(self.layout)
        except BudgetExceeded:       # a hostile tile table: scan without the filter
            return set()


def is_raw_tiff(fp: BinaryIO, size: int) -> bool:
    """Whether a TIFF-structured file is a camera RAW, judged by its content."""
    try:
        layout = _raw_tiff.read_layout(Reader(fp, size))
    except (BudgetExceeded, OSError, ValueError, struct.error):
        return False
    return layout is not None and (layout.raw_mime is not None or layout.sensor_data)


def find(fp: BinaryIO, size: int, head: bytes) -> Found:
    """The previews a RAW file declares, probed, and the orientation to show them with."""
    r = Reader(fp, size)
    found = Found()
    spans: list[tuple[int, int]] = []
    if head.startswith(b"FUJIFILMCCD-RAW"):
        # RAF header: big-endian offset/length of a full JPEG (with its own
        # EXIF, including the orientation) at bytes 84..92.
        if len(head) >= 92:
            spans.append(struct.unpack(">II", head[84:92]))
    elif head.startswith(b"FOVb"):
        x3f = _raw_formats.read_x3f(r)
        spans += [(i.offset, i.length) for i in x3f.jpegs()]
        rgb = [i for i in x3f.images if i.kind == 2 and i.format == _raw_formats.X3F_RGB]
        found.rgb = max(rgb, key=lambda i: i.columns * i.rows) if rgb else None
    elif head[:3] == b"\x00MR":
        mrw = _raw_formats.read_mrw(r)
        if mrw.tiff_base is not None:
            spans += _tiff_spans(r, mrw.tiff_base, found)
    elif head[:2] in (b"II", b"MM") and head[4:8] != b"ftyp" and head[6:14] != b"HEAPCCDR":
        found.tiff = head[2:4] in (b"*\x00", b"\x00*")
        spans += _tiff_spans(r, 0, found)
    seen: set[int] = set()
    for offset, length in spans:
        if offset in seen:
            continue
        seen.add(offset)
        preview = probe_jpeg(fp, size, offset, length or size - offset)
        if preview is not None:
            found.previews.append(preview)
    return found


def _tiff_spans(r: Reader, base: int, found: Found) -> list[tuple[int, int]]:
    try:
        layout = _raw_tiff.read_layout(r, base)
    except BudgetExceeded:
        return []
    if layout is None:
        return []
    found.orientation = layout.orientation if layout.orientation in range(1, 9) else None
    found.layout = layout
    return _raw_tiff.preview_spans(layout)


def wants_scan(found: Found) -> bool:
    """Scan for more JPEGs when none is declared or the biggest is only a thumbnail."""
    return not found.previews or max(max(p.width, p.height) for p in found.previews) < SCAN_BELOW


def probe_jpeg(fp: BinaryIO, size: int, offset: int, length: int) -> Preview | None:
    """Return the dimensions of a JPEG stream at ``offset`` if it looks decodable.

    Lossless JPEG (SOF3, the sensor data in DNG/CR2) is rejected: Pillow cannot
    decode it and it is not a preview.
    """
    if offset <= 0 or length < 128 or offset + 4 > size:
        return None
    length = min(length, size - offset)
    pos = offset
    fp.seek(pos)
    if fp.read(3) != b"\xff\xd8\xff":
        return None
    pos += 2
    for _ in range(256):
        fp.seek(pos)
        seg = fp.read(9)
        if len(seg) < 4 or seg[0] != 0xFF:
            return None
        marker = seg[1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _SOF_MARKERS and len(seg) >= 9:
            h, w = struct.unpack(">HH", seg[5:9])
            return Preview(offset, length, w, h) if w and h else None
        if marker in _LOSSLESS_SOF or marker in (0xDA, 0xD9):
            return None
        pos += 2 + struct.unpack(">H", seg[2:4])[0]
        if pos >= offset + length:
            return None
    return None


def scan(fp: BinaryIO, size: int, skip: set[int] = frozenset(),  # type: ignore[assignment]
         limit: int = MAX_SCAN_HITS) -> list[Preview]:
    """Find embedded JPEG streams by their SOI marker (bounded number of hits)."""
    found: list[Preview] = []
    try:
        mm = mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, io.UnsupportedOperation):
        return found
    with mm:
        pos = mm.find(b"\xff\xd8\xff", 1)
        hits = 0
        while pos != -1 and hits < limit:
            hits += 1
            if pos not in skip:
                preview = probe_jpeg(fp, size, pos, size - pos)
                if preview is not None:
                    found.append(preview)
            pos = mm.find(b"\xff\xd8\xff", pos + 3)
    return found


def read_rgb(fp: BinaryIO, image: _raw_formats.X3fImage, max_pixels: int) -> bytes | None:
    """The pixels of an uncompressed X3F RGB preview as packed RGB rows (or None)."""
    width, height, row = image.columns, image.rows, image.row_size
    if not width or not height or width * height > max_pixels or row < width * 3:
        return None
    if row * height > image.length:
        return None
    out = bytearray()
    fp.seek(image.offset)
    for _ in range(height):
        data = fp.read(row)
        if len(data) < row:
            return None
        out += data[:width * 3]
    return bytes(out)
