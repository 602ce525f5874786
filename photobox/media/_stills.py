"""Header walkers for still-image containers: JPEG, PNG, WebP, GIF and BMP
(camera RAW containers are in `_raw_formats` and `_raw_ciff`).

Each walker reads the image size from the header and collects the metadata
blobs (EXIF, XMP, IPTC, MPF) without touching pixel data.  All reads go
through `_quicktime.Reader`, which clamps to the file and enforces a byte
budget.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

from . import _dates, _xmp
from ._quicktime import Reader

SEGMENT_BYTES_CAP = 8 * 1024 * 1024   # APPn bytes kept from one JPEG
CHUNK_CAP = 4 * 1024 * 1024           # largest PNG/WebP metadata chunk kept
MAX_CHUNKS = 20000
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclasses.dataclass(slots=True)
class Still:
    """What a container walker found."""

    width: int | None = None
    height: int | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    xmp_ext: list[bytes] = dataclasses.field(default_factory=list)
    iptc: bytes | None = None
    mpf: bool = False
    flir: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # APP1 "FLIR" spans
    data_start: int | None = None   # JPEG: first byte of entropy-coded data
    truncated: bool = False
    problems: list[str] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------
# JPEG


def read_jpeg(r: Reader, start: int = 0, end: int | None = None) -> Still:
    """Walk JPEG markers up to the start of scan.

    Args:
        r: Reader over the file.
        start: Offset of the SOI marker (non-zero for RAF previews).
        end: Where the JPEG stream ends at the latest.

    Returns:
        Still with size and APP1/APP2/APP13 payloads.
    """
    still = Still()
    end = r.size if end is None else min(end, r.size)
    pos, kept = start + 2, 0
    for _ in range(MAX_CHUNKS):
        head = r.read(pos, 4)
        if len(head) < 2 or head[0] != 0xFF:
            still.truncated = len(head) < 2 or pos >= end
            if not still.truncated:
                still.problems.append(f"bad JPEG marker at {pos}")
            return still
        marker = head[1]
        if marker == 0xFF:          # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            return still
        if len(head) < 4:
            still.truncated = True
            return still
        length = struct.unpack(">H", head[2:4])[0]
        if length < 2:
            still.problems.append("bad JPEG segment length")
            return still
        body_start, body_len = pos + 4, length - 2
        if body_start + body_len > end:
            still.truncated = True
        if marker in _SOF and still.width is None:
            sof = r.read(body_start, 5)
            if len(sof) == 5:
                still.height, still.width = struct.unpack(">HH", sof[1:5])
        elif marker == 0xE1 and r.read(body_start, 5) == b"FLIR\x00":
            # Thermal cameras' FFF record, split over many segments: kept as
            # positions, `_flir` reads only the records it needs.
            still.flir.append((body_start, body_len))
        elif marker in (0xE1, 0xE2, 0xED) and kept + body_len <= SEGMENT_BYTES_CAP:
            kept += body_len
            _keep_segment(still, marker, r.read(body_start, body_len))
        if marker == 0xDA:
            still.data_start = body_start + body_len
            return still
        pos = body_start + body_len
        if pos >= end:
            still.truncated = True
            return still
    return still


def _keep_segment(still: Still, marker: int, body: bytes) -> None:
    if marker == 0xE1:
        if body.startswith(b"Exif\x00") and still.exif is None:
            # Pillow also uses the first EXIF segment; later ones are usually
            # stale copies left by editors.
            still.exif = body[6:]
        elif body.startswith(_xmp.JPEG_STD_SIG) and still.xmp is None:
            still.xmp = body[len(_xmp.JPEG_STD_SIG):]
        elif body.startswith(_xmp.JPEG_EXT_SIG) and len(still.xmp_ext) < 256:
            still.xmp_ext.append(body[len(_xmp.JPEG_EXT_SIG):])
    elif marker == 0xE2 and body.startswith(b"MPF\x00"):
        still.mpf = True
    elif marker == 0xED and body.startswith(b"Photoshop 3.0\x00") and still.iptc is None:
        still.iptc = body


def jpeg_has_end(r: Reader, end: int, window: int = 64 * 1024) -> bool:
    """Tell whether an EOI marker (FFD9) sits in the ``window`` bytes before ``end``.

    Camera JPEGs may carry trailers (padding, maker data), so rather than
    demanding FFD9 as the last two bytes we look for it near the end.
    """
    start = max(0, end - window)
    return b"\xff\xd9" in r.read(start, end - start)


def iptc_date(blob: bytes | None) -> _dates.Stamp | None:
    """Read IPTC DateCreated (2:55) + TimeCreated (2:60) from a Photoshop APP13."""
    if not blob:
        return None
    pos = len(b"Photoshop 3.0\x00")
    iptc = None
    while pos + 12 <= len(blob) and blob[pos:pos + 4] == b"8BIM":
        res_id = struct.unpack(">H", blob[pos + 4:pos + 6])[0]
        name_len = blob[pos + 6]
        pos += 6 + ((name_len + 2) & ~1)           # Pascal name, padded to even
        if pos + 4 > len(blob):
            return None
        size = struct.unpack(">I", blob[pos:pos + 4])[0]
        pos += 4
        if res_id == 0x0404:
            iptc = blob[pos:pos + size]
            break
        pos += size + (size & 1)
    if not iptc:
        return None
    fields: dict[tuple[int, int], bytes] = {}
    pos = 0
    while pos + 5 <= len(iptc) and iptc[pos] == 0x1C:
        record, dataset = iptc[pos + 1], iptc[pos + 2]
        size = struct.unpack(">H", iptc[pos + 3:pos + 5])[0]
        if size & 0x8000:   # extended length: never used for dates
            break
        fields.setdefault((record, dataset), iptc[pos + 5:pos + 5 + size])
        pos += 5 + size
    date = fields.get((2, 55), b"").decode("latin-1").strip()
    time = fields.get((2, 60), b"").decode("latin-1").strip()
    if len(date) != 8 or not date.isdigit() or len(time) < 6:
        return None   # a date without time is not a capture time
    text = f"{date[:4]}:{date[4:6]}:{date[6:]} {time[:2]}:{time[2:4]}:{time[4:6]}{time[6:]}"
    return _dates.parse_datetime(text)


# --------------------------------------------------------------------------
# PNG / WebP / GIF / BMP


def read_png(r: Reader) -> Still:
    """Walk PNG chunks (IDAT data is skipped, not read)."""
    still = Still()
    pos = 8
    saw_end = False
    for _ in range(MAX_CHUNKS):
        head = r.read(pos, 8)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head)
        data_start = pos + 8
        if data_start + length + 4 > r.size:
            still.truncated = True
            break
        if kind == b"IHDR":
            still.width, still.height = struct.unpack(">II", r.read(data_start, 8))
        elif kind == b"IEND":
            saw_end = True
            break
        elif kind in (b"eXIf", b"iTXt", b"tEXt", b"zTXt") and length <= CHUNK_CAP:
            _png_text(still, kind, r.read(data_start, length))
        pos = data_start + length + 4
    still.truncated = still.truncated or not saw_end
    return still


def _png_text(still: Still, kind: bytes, data: bytes) -> None:
    if kind == b"eXIf":
        still.exif = still.exif or data
        return
    keyword, _, rest = data.partition(b"\x00")
    if kind == b"zTXt":
        rest = _inflate(rest[1:])
    elif kind == b"iTXt":
        compressed = rest[:1] == b"\x01"
        rest = rest[2:].split(b"\x00", 2)[-1]    # skip language + translated key
        if compressed:
            rest = _inflate(rest)
    if keyword == b"XML:com.adobe.xmp":
        still.xmp = still.xmp or rest
    elif keyword in (b"Raw profile type exif", b"Raw profile type APP1") and not still.exif:
        # ImageMagick: "\nexif\n   <len>\n<hex digits...>"
        lines = rest.split(b"\n", 3)
        if len(lines) == 4:
            try:
                blob = bytes.fromhex(lines[3].decode("ascii").replace("\n", "").strip())
            except ValueError:
                return
            still.exif = blob[6:] if blob.startswith(b"Exif\x00") else blob


def _inflate(data: bytes) -> bytes:
    try:
        out = zlib.decompressobj()
        return out.decompress(data, CHUNK_CAP)
    except zlib.error:
        return b""


def read_webp(r: Reader) -> Still:
    """Walk WebP RIFF chunks for size, EXIF and XMP."""
    still = Still()
    riff_end = min(r.size, 8 + struct.unpack("<I", r.read(4, 4).ljust(4, b"\0"))[0])
    pos = 12
    for _ in range(MAX_CHUNKS):
        head = r.read(pos, 8)
        if len(head) < 8:
            break
        kind, length = head[:4], struct.unpack("<I", head[4:])[0]
        data_start = pos + 8
        if data_start + length > r.size:
            still.truncated = True
        if kind == b"VP8X":
            data = r.read(data_start, 10)
            if len(data) == 10:
                still.width = int.from_bytes(data[4:7], "little") + 1
                still.height = int.from_bytes(data[7:10], "little") + 1
        elif kind == b"VP8 " and still.width is None:
            data = r.read(data_start, 10)
            if len(data) == 10 and data[3:6] == b"\x9d\x01\x2a":
                w, h = struct.unpack("<HH", data[6:10])
                still.width, still.height = w & 0x3FFF, h & 0x3FFF
        elif kind == b"VP8L" and still.width is None:
            data = r.read(data_start, 5)
            if len(data) == 5 and data[0] == 0x2F:
                bits = int.from_bytes(data[1:5], "little")
                still.width, still.height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        elif kind == b"EXIF" and length <= CHUNK_CAP:
            blob = r.read(data_start, length)
            # Pillow used to write an "Exif\0\0" prefix here; accept both.
            still.exif = blob[6:] if blob.startswith(b"Exif\x00") else blob
        elif kind == b"XMP " and length <= CHUNK_CAP:
            still.xmp = r.read(data_start, length)
        pos = data_start + length + (length & 1)
        if pos >= riff_end:
            break
    return still


def read_gif(r: Reader) -> Still:
    """Logical screen size of a GIF."""
    head = r.read(6, 4)
    if len(head) < 4:
        return Still(truncated=True)
    width, height = struct.unpack("<HH", head)
    return Still(width=width, height=height)


def read_bmp(r: Reader) -> Still:
    """Pixel size from a BMP's DIB header (negative height = top-down)."""
    head = r.read(14, 12)
    if len(head) < 12:
        return Still(truncated=True)
    if struct.unpack("<I", head[:4])[0] == 12:
        width, height = struct.unpack("<HH", head[4:8])
    else:
        width, height = struct.unpack("<ii", head[4:12])
    return Still(width=abs(width), height=abs(height))
