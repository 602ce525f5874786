"""TIFF-structured camera RAWs: which RAW a TIFF is, its size and its previews.

NEF, NRW, ARW, PEF, SRW, 3FR, ERF, DCR, KDC, MEF, MOS, IIQ and DNG are all
TIFF files; exiftool tells them apart by file name.  photobox reads the
content instead: a DNGVersion tag, a Phase One directory (IIQ), or sensor
data (a CFA/LinearRaw photometric or a maker's RAW compression) named by the
camera's Make.  The image size follows exiftool's ImageSize (see
`_tiff_walk.main_value`; ExifImageWidth for CR2/IIQ, the Phase One directory's
size for IIQ), so the displayed size agrees with exiftool's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct

from . import _makernotes
from ._quicktime import Reader
from ._tiff_walk import (
    COMPRESSION,
    DNG_VERSION,
    EXIF_HEIGHT,
    EXIF_WIDTH,
    HEIGHT,
    JPEG_LENGTH,
    JPEG_START,
    MAKE,
    ORIENTATION,
    PHOTOMETRIC,
    STRIP_BYTES,
    STRIPS,
    TILES,
    WIDTH,
    Dir,
    Tiff,
    first,
    main_value,
)

# Compressions only cameras' sensor data uses (exiftool Exif.pm %compression).
RAW_COMPRESSIONS = {262, 32766, 32767, 32769, 32770, 32772, 32867, 34713, 65000, 65535,
                    34316, 34826, 34828, 34830}
# Colour filter array / linear raw photometric interpretations.
RAW_PHOTOMETRIC = {32803, 34892}
KODAK_KDC_IFD, KODAK_IFD = 0xFE00, 0x8290
# Make prefix (upper case) -> RAW mime, for TIFFs that carry sensor data.
_MAKE_MIMES = (
    ("NIKON", "image/x-nikon-nef"), ("SONY", "image/x-sony-arw"),
    ("PENTAX", "image/x-pentax-pef"), ("ASAHI", "image/x-pentax-pef"),
    ("RICOH", "image/x-pentax-pef"), ("SAMSUNG", "image/x-samsung-srw"),
    ("HASSELBLAD", "image/x-hasselblad-3fr"), ("SEIKO EPSON", "image/x-epson-erf"),
    ("EPSON", "image/x-epson-erf"), ("EASTMAN KODAK", "image/x-kodak-dcr"),
    ("KODAK", "image/x-kodak-dcr"), ("MAMIYA", "image/x-mamiya-mef"),
    ("LEAF", "image/x-leaf-mos"), ("PHASE ONE", "image/x-phaseone-iiq"),
    ("OLYMPUS", "image/x-olympus-orf"), ("OM DIGITAL", "image/x-olympus-orf"),
)
IIQ = "image/x-phaseone-iiq"
_PHASE_ONE_SIG = (b"IIII", b"MMMM")


@dataclasses.dataclass(slots=True)
class PhaseOne:
    """Facts from a Phase One (IIQ) MakerNote directory."""

    width: int | None = None
    height: int | None = None
    taken: dt.datetime | None = None     # Unix time, as exiftool prints it (no zone)
    iso: int | None = None
    lens: str | None = None
    raw_data: bool = False


@dataclasses.dataclass(slots=True)
class Layout:
    """The structure of one TIFF-based file."""

    tiff: Tiff
    dirs: list[Dir]
    make: str | None
    raw_mime: str | None               # the RAW it is by content, None = not shown to be one
    sensor_data: bool                  # an IFD holds CFA/linear/maker-compressed data
    orientation: int | None
    makernote: _makernotes.MakerNote | None
    phase_one: PhaseOne | None

    def image_size(self, mime: str | None, seed: tuple[int | None, int | None] = (None, None)
                   ) -> tuple[int | None, int | None]:
        """exiftool's Composite:ImageSize for this file, read as ``mime``.

        ``seed`` is a size the container gave before the TIFF (MRW's PRD).
        """
        t, dirs = self.tiff, self.dirs
        width, height = main_value(t, dirs, WIDTH, seed[0]), main_value(t, dirs, HEIGHT, seed[1])
        if self.phase_one and self.phase_one.width and self.phase_one.height:
            # The Phase One directory's ImageWidth has normal priority and
            # comes after IFD0's (exiftool processes the MakerNote later).
            width, height = self.phase_one.width, self.phase_one.height
        if mime in ("image/x-canon-cr2", IIQ):
            exif = first(dirs, "ExifIFD")
            ew, eh = t.int(exif, EXIF_WIDTH), t.int(exif, EXIF_HEIGHT)
            if ew and eh:
                width, height = ew, eh
        return width, height


def read_layout(r: Reader, base: int = 0) -> Layout | None:
    """Walk the TIFF structure at ``base`` (None when there is no TIFF header)."""
    opened = Tiff.open(r, base)
    if opened is None:
        return None
    t, ifd0_pos = opened
    dirs = t.walk(ifd0_pos)
    if not dirs:
        return None
    make = t.text(dirs[0], MAKE)
    mn_at = _makernotes.locate(t, dirs)
    phase_one = None
    makernote = None
    if mn_at is not None:
        if t.r.read(mn_at[0], 4) in _PHASE_ONE_SIG:
            phase_one = read_phase_one(r, *mn_at)
        else:
            makernote = _makernotes.open_makernote(t, *mn_at)
    sensor = any(_holds_sensor_data(t, d) for d in dirs if d.name not in ("ExifIFD", "GPS"))
    layout = Layout(t, dirs, make, None, sensor, main_value(t, dirs, ORIENTATION),
                    makernote, phase_one)
    layout.raw_mime = _flavour(layout)
    return layout


def _holds_sensor_data(t: Tiff, d: Dir) -> bool:
    return (t.int(d, COMPRESSION) in RAW_COMPRESSIONS
            or t.int(d, PHOTOMETRIC) in RAW_PHOTOMETRIC)


def _flavour(layout: Layout) -> str | None:
    t, ifd0 = layout.tiff, layout.dirs[0]
    if DNG_VERSION in ifd0.entries:
        return "image/x-adobe-dng"
    if layout.phase_one is not None and layout.phase_one.raw_data:
        return IIQ
    kodak = KODAK_KDC_IFD in ifd0.entries or KODAK_IFD in ifd0.entries
    if not (layout.sensor_data or kodak):
        return None
    if KODAK_KDC_IFD in ifd0.entries:
        return "image/x-kodak-kdc"
    make = (layout.make or "").upper()
    for prefix, mime in _MAKE_MIMES:
        if make.startswith(prefix):
            if mime == "image/x-nikon-nef" and t.int(ifd0, COMPRESSION) == 6:
                # Coolpix NRW: a JPEG thumbnail in IFD0 (exiftool's test too).
                return "image/x-nikon-nrw"
            return mime
    return None


# --------------------------------------------------------------------------
# Previews


def preview_spans(layout: Layout) -> list[tuple[int, int]]:
    """``(offset, length)`` of every JPEG the structure declares, MakerNote included.

    A length of 0 means "unknown" (MakerNote pointers): the caller probes the
    JPEG's markers from the offset.
    """
    t = layout.tiff
    spans: list[tuple[int, int]] = []
    for d in layout.dirs:
        if d.name in ("ExifIFD", "GPS"):
            continue
        start, length = t.int(d, JPEG_START), t.int(d, JPEG_LENGTH)
        if start and length:
            spans.append((t.base + start, length))
        strips, counts = t.ints(d.entries.get(STRIPS), 2), t.ints(d.entries.get(STRIP_BYTES), 2)
        if t.int(d, COMPRESSION) in (6, 7) and len(strips) == 1 and len(counts) == 1:
            spans.append((t.base + strips[0], counts[0]))
        rw2 = d.entries.get(0x002E)              # Panasonic RW2 JpgFromRaw (inline)
        if d.name == "IFD0" and rw2 is not None and rw2.type == 7 and rw2.count > 1024:
            spans.append((rw2.pos, rw2.count))
    if layout.makernote is not None:
        spans += [(pos, 0) for pos in _makernotes.jpeg_pointers(layout.makernote)]
    return list(dict.fromkeys(spans))


def tile_offsets(layout: Layout) -> set[int]:
    """Absolute offsets of image tiles (a scan for JPEGs must not take one for a preview)."""
    t = layout.tiff
    found: set[int] = set()
    for d in layout.dirs:
        found.update(t.base + off for off in t.ints(d.entries.get(TILES)))
    return found


# --------------------------------------------------------------------------
# Phase One


def read_phase_one(r: Reader, start: int, length: int) -> PhaseOne | None:
    """Read the Phase One directory (IIQ MakerNote, exiftool's PhaseOne.pm).

    Layout: ``IIII`` or ``MMMM``, a 4-byte signature, the directory offset;
    there a u32 entry count, 4 unused bytes, then 16-byte entries (tag, value
    size class, byte size, value or offset from the MakerNote start).
    """
    head = r.read(start, 12)
    if len(head) < 12:
        return None
    order = "<" if head[:4] == b"IIII" else ">"
    dir_off = struct.unpack(order + "I", head[8:12])[0]
    raw = r.read(start + dir_off, 8)
    if len(raw) < 8:
        return None
    count = struct.unpack(order + "I", raw[:4])[0]
    if not 2 <= count <= 300:
        return None
    block = r.read(start + dir_off + 8, count * 16)
    facts = PhaseOne()
    for i in range(len(block) // 16):
        tag, _, size, value = struct.unpack(order + "4I", block[i * 16:i * 16 + 16])
        if tag == 0x010F:
            facts.raw_data = True
        elif tag in (0x010C, 0x010D, 0x0105, 0x0112) and size == 4:
            if tag == 0x010C:
                facts.width = value or None
            elif tag == 0x010D:
                facts.height = value or None
            elif tag == 0x0105:
                facts.iso = value or None
            elif value:
                facts.taken = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=value)
        elif tag == 0x0412 and 0 < size <= 256:
            text = r.read(start + value, size) if size > 4 else block[i * 16 + 12:i * 16 + 16]
            facts.lens = text.split(b"\x00", 1)[0].decode("latin-1").strip() or None
    return facts
