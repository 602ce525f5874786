"""Find and open the MakerNote of a TIFF/EXIF structure, and the JPEGs it points to.

A MakerNote is the camera maker's private IFD inside the Exif IFD (tag
0x927C).  Most start with a maker signature, after which comes an ordinary
IFD whose offsets count either from the TIFF header or from the MakerNote
itself, in either byte order (exiftool's MakerNotes.pm lists them; the table
below keeps the ones that matter here).  Makers store their preview JPEGs
there: Olympus in CameraSettings (0x2020 -> 0x0101), Pentax at 0x0004,
Minolta at 0x0088, Nikon in a PreviewIFD, Sony/Epson inline.  Rather than a
table per model, `jpeg_pointers` follows every offset-like entry of the
MakerNote (and its sub-IFDs) to where a JPEG starts, trying each base exiftool
knows makers to use; the caller then probes each hit.
"""

from __future__ import annotations

import dataclasses
import struct

from ._tiff_walk import EXIF_IFD, MAKERNOTE, Dir, Entry, Tiff, first

JPEG_SOI = b"\xff\xd8\xff"
MAX_POINTERS = 64
# MakerNote tags holding sub-IFDs whatever their declared type: Olympus
# Equipment/CameraSettings/RawDevelopment/ImageProcessing/FocusInfo, Nikon
# PreviewIFD.
_SUB_IFD_TAGS = {0x2010, 0x2020, 0x2030, 0x2040, 0x2050, 0x0011}
# (signature, bytes before the IFD, what offsets count from): "mn" = the
# MakerNote start, "tiff" = the enclosing TIFF header, "own" = a TIFF header
# of its own 10 bytes in (Nikon type 3).
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"Nikon\x00\x02", 8, "own"),
    (b"Nikon\x00\x01", 8, "tiff"),
    (b"OLYMPUS\x00", 12, "mn"),
    (b"OM SYSTEM\x00", 16, "mn"),
    (b"OLYMP\x00", 8, "tiff"),
    (b"EPSON\x00", 8, "tiff"),
    (b"MINOL\x00", 8, "tiff"),
    (b"CAMER\x00", 8, "tiff"),
    (b"AOC\x00", 6, "tiff"),
    (b"PENTAX \x00", 10, "mn"),
    (b"RICOH\x00", 8, "mn"),
    (b"SONY DSC ", 12, "tiff"),
    (b"SONY CAM ", 12, "tiff"),
    (b"SONY MOBILE", 12, "tiff"),
    (b"VHAB     \x00", 12, "tiff"),
    (b"Panasonic\x00", 12, "tiff"),
    (b"SIGMA\x00", 10, "tiff"),
    (b"FOVEON\x00", 10, "tiff"),
    (b"Apple iOS\x00", 14, "mn"),
    (b"FUJIFILM", 12, "mn"),
    (b"GENERALE", 12, "mn"),
    (b"LEICA\x00", 8, "tiff"),
)


@dataclasses.dataclass(slots=True)
class MakerNote:
    """An opened MakerNote: its IFD and the views to read its offsets with."""

    start: int                 # absolute offset of the MakerNote's first byte
    length: int
    signature: bytes           # the first bytes (maker signature)
    tiff: Tiff                 # offsets as this maker counts them
    root: Dir
    bases: tuple[int, ...]     # every base a pointer might count from


def locate(t: Tiff, dirs: list[Dir]) -> tuple[int, int] | None:
    """``(absolute start, length)`` of the MakerNote in the Exif IFD, if any."""
    entry = _makernote_entry(t, dirs)
    if entry is None or entry.count < 8:
        return None
    return entry.pos, entry.count


def _makernote_entry(t: Tiff, dirs: list[Dir]) -> Entry | None:
    exif = first(dirs, "ExifIFD")
    if exif is None:
        return None
    return exif.entries.get(MAKERNOTE)


def open_makernote(t: Tiff, start: int, length: int) -> MakerNote | None:
    """Parse the MakerNote at ``start``: find its IFD, byte order and offset base."""
    head = t.r.read(start, 32)
    skip, base_kind = 0, "tiff"
    for signature, header, kind in _SIGNATURES:
        if head.startswith(signature):
            skip, base_kind = header, kind
            break
    view = t
    ifd_pos = start + skip
    if base_kind == "own":
        own = t.r.read(start + 10, 8)
        if len(own) < 8 or own[:2] not in (b"II", b"MM"):
            return None
        order = "<" if own[:2] == b"II" else ">"
        view = t.with_base(start + 10, order)
        ifd_pos = start + 10 + struct.unpack(order + "I", own[4:8])[0]
    elif base_kind == "mn":
        view = t.with_base(start)
    elif head.startswith(b"FUJIFILM") and len(head) >= 12:
        ifd_pos = start + struct.unpack("<I", head[8:12])[0]
    root = _read_either_order(view, ifd_pos)
    if root is None:
        return None
    view = view if root[1] == view.order else view.with_base(view.base, root[1])
    bases = tuple(dict.fromkeys((view.base, start, t.base, 0)))
    return MakerNote(start, length, head[:16], view, root[0], bases)


def _read_either_order(t: Tiff, pos: int) -> tuple[Dir, str] | None:
    # exiftool's "ByteOrder => Unknown": some makers write the MakerNote in
    # the other byte order than the EXIF (Nikon D1, some Pentax/Samsung).
    raw = t.r.read(pos, 2)
    if len(raw) < 2:
        return None
    for order in (t.order, ">" if t.order == "<" else "<"):
        if 0 < struct.unpack(order + "H", raw)[0] <= 512:
            view = t if order == t.order else t.with_base(t.base, order)
            d = view.read_dir(pos, "MakerNote")
            return (d, order) if d is not None else None
    return None


def from_tiff(t: Tiff, dirs: list[Dir]) -> MakerNote | None:
    """The MakerNote of a walked TIFF structure, opened (None when absent or bad)."""
    found = locate(t, dirs)
    return open_makernote(t, *found) if found else None


def jpeg_pointers(mn: MakerNote, depth: int = 0) -> list[int]:
    """Absolute offsets where the MakerNote (or a sub-IFD of it) points at a JPEG.

    Inline JPEGs (undefined-type values starting with FFD8FF) count too.
    """
    found: list[int] = []
    _scan_dir(mn, mn.root, depth, found)
    return list(dict.fromkeys(found))[:MAX_POINTERS]


def _scan_dir(mn: MakerNote, d: Dir, depth: int, found: list[int]) -> None:
    t = mn.tiff
    for tag, entry in d.entries.items():
        if len(found) >= MAX_POINTERS:
            return
        if entry.type in (1, 7) and entry.count > 4:
            if t.r.read(entry.pos, 3) == JPEG_SOI:
                found.append(entry.pos)
            elif depth < 2 and tag in _SUB_IFD_TAGS:
                _scan_subdir(mn, entry.pos, depth, found)   # Olympus E-1: IFD as a value
            continue
        if entry.type not in (4, 13) or entry.count != 1:
            continue
        value = t.ints(entry, 1)
        if not value or value[0] < 8:
            continue
        for base in mn.bases:
            pos = base + value[0]
            if t.r.read(pos, 3) == JPEG_SOI:
                found.append(pos)
                break
        else:
            if depth < 2 and (entry.type == 13 or tag in _SUB_IFD_TAGS):
                _scan_subdir(mn, mn.tiff.base + value[0], depth, found)


def _scan_subdir(mn: MakerNote, pos: int, depth: int, found: list[int]) -> None:
    sub = mn.tiff.read_dir(pos, "MakerNoteSub")
    if sub is not None:
        _scan_dir(mn, sub, depth + 1, found)


def sub_dir(mn: MakerNote, tag: int) -> Dir | None:
    """The sub-IFD a MakerNote tag points to (type IFD/LONG) or holds inline (undefined)."""
    entry = mn.root.entries.get(tag)
    if entry is None:
        return None
    if entry.type == 7:
        # Old-style Olympus: the sub-IFD is the value, offsets count from the MakerNote.
        return mn.tiff.read_dir(entry.pos, f"MakerNote{tag:04x}")
    value = mn.tiff.ints(entry, 1)
    if not value:
        return None
    return mn.tiff.read_dir(mn.tiff.base + value[0], f"MakerNote{tag:04x}")


__all__ = ["MakerNote", "locate", "open_makernote", "from_tiff", "jpeg_pointers", "sub_dir",
           "EXIF_IFD"]
