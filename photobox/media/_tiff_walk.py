"""Walk the directories (IFDs) of a TIFF structure in place, in exiftool's order.

Pillow's IFD reader gives tag values; RAW files also need their structure:
which directory holds the full-resolution image, the order in which
directories are visited (exiftool lets the first ``ImageWidth`` win unless a
later directory is flagged as the full-resolution image), where a MakerNote
lies in the file, and where embedded JPEGs start.  Entries are read through a
budgeted `Reader`; values only when asked for, with capped counts, and no
directory is read twice (hostile files loop their pointers).

Used by the metadata readers (`_raw_tiff`) and by the RAW preview finder
(`_raw_preview`), so both agree on sizes and orientation.
"""

from __future__ import annotations

import dataclasses
import math
import struct

from ._quicktime import Reader

# Bytes per value of each TIFF field type (1 BYTE ... 13 IFD; 16-18 BigTIFF).
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8,
              11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_INT_CODES = {1: "B", 3: "H", 4: "I", 6: "b", 7: "B", 8: "h", 9: "i", 13: "I",
              16: "Q", 17: "q", 18: "Q"}
MAX_DIRS = 64          # directories one structure may hold
MAX_ENTRIES = 1000     # entries read from one directory
MAX_VALUES = 65536     # values read from one tag (tile offsets of a big DNG)
MAX_DEPTH = 4          # SubIFDs of SubIFDs...

SUBFILE, OLD_SUBFILE = 0x00FE, 0x00FF
WIDTH, HEIGHT, COMPRESSION, PHOTOMETRIC = 0x0100, 0x0101, 0x0103, 0x0106
MAKE, MODEL, STRIPS, ORIENTATION, STRIP_BYTES = 0x010F, 0x0110, 0x0111, 0x0112, 0x0117
TILES, TILE_BYTES, SUBIFDS = 0x0144, 0x0145, 0x014A
JPEG_START, JPEG_LENGTH = 0x0201, 0x0202
EXIF_IFD, GPS_IFD, MAKERNOTE = 0x8769, 0x8825, 0x927C
EXIF_WIDTH, EXIF_HEIGHT = 0xA002, 0xA003
DNG_VERSION = 0xC612


@dataclasses.dataclass(slots=True)
class Entry:
    """One directory entry: field type, value count and where its value lies."""

    type: int
    count: int
    pos: int       # absolute file offset of the value (inline or pointed to)

    @property
    def size(self) -> int:
        """Bytes the value occupies."""
        return TYPE_SIZES.get(self.type, 1) * self.count


@dataclasses.dataclass(slots=True)
class Dir:
    """One IFD: exiftool's name for it (IFD0, SubIFD1, ExifIFD...) and its entries."""

    name: str
    pos: int
    entries: dict[int, Entry]
    next_pos: int | None   # absolute offset of the next IFD in a chain


class Tiff:
    """A TIFF structure in a file: byte order and the offset its pointers count from.

    Args:
        r: Bounded reader over the whole file.
        base: Absolute offset that stored offsets are relative to (the TIFF
            header; for some MakerNotes the MakerNote itself).
        order: ``"<"`` (II) or ``">"`` (MM).
    """

    def __init__(self, r: Reader, base: int, order: str) -> None:
        self.r, self.base, self.order = r, base, order
        self._seen: set[int] = set()

    @classmethod
    def open(cls, r: Reader, base: int = 0) -> tuple[Tiff, int] | None:
        """Read the TIFF header at ``base``: the structure and IFD0's absolute offset.

        Any 2-byte magic after the byte-order mark is accepted (ORF ``RO``,
        RW2 ``U\\0``...); BigTIFF is not a RAW container and is refused.
        """
        head = r.read(base, 8)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            return None
        order = "<" if head[:2] == b"II" else ">"
        if struct.unpack(order + "H", head[2:4])[0] == 0x2B:
            return None
        first = struct.unpack(order + "I", head[4:8])[0]
        return cls(r, base, order), base + first

    def with_base(self, base: int, order: str | None = None) -> Tiff:
        """A view of the same file whose offsets count from ``base`` (MakerNotes)."""
        other = Tiff(self.r, base, order or self.order)
        other._seen = self._seen          # one loop guard for the whole file
        return other

    # ------------------------------------------------------------------ reading

    def read_dir(self, pos: int, name: str) -> Dir | None:
        """Read the IFD at absolute offset ``pos`` (None if bad, seen or over the cap)."""
        if pos in self._seen or len(self._seen) >= MAX_DIRS or pos < 0 or pos + 2 > self.r.size:
            return None
        self._seen.add(pos)
        raw = self.r.read(pos, 2)
        if len(raw) < 2:
            return None
        count = struct.unpack(self.order + "H", raw)[0]
        if not 0 < count <= MAX_ENTRIES:
            return None
        block = self.r.read(pos + 2, count * 12 + 4)
        entries: dict[int, Entry] = {}
        valid = 0
        for i in range(min(count, len(block) // 12)):
            tag, typ, n = struct.unpack(self.order + "HHI", block[i * 12:i * 12 + 8])
            unit = TYPE_SIZES.get(typ)
            if unit is None:
                continue           # unknown type: exiftool skips the entry too
            valid += 1
            if unit * n <= 4:
                vpos = pos + 2 + i * 12 + 8
            else:
                vpos = self.base + struct.unpack(self.order + "I", block[i * 12 + 8:i * 12 + 12])[0]
            entries.setdefault(tag, Entry(typ, n, vpos))
        if not valid:
            return None
        nxt = None
        if len(block) >= count * 12 + 4:
            off = struct.unpack(self.order + "I", block[count * 12:count * 12 + 4])[0]
            nxt = self.base + off if off else None
        return Dir(name, pos, entries, nxt)

    def ints(self, entry: Entry | None, limit: int = MAX_VALUES) -> list[int]:
        """Integer values of an entry (BYTE/SHORT/LONG/IFD...), at most ``limit``."""
        if entry is None:
            return []
        code = _INT_CODES.get(entry.type)
        if code is None:
            return []
        unit = TYPE_SIZES[entry.type]
        n = min(entry.count, limit, MAX_VALUES)
        data = self.r.read(entry.pos, n * unit)
        n = len(data) // unit
        return list(struct.unpack(f"{self.order}{n}{code}", data[:n * unit]))

    def int(self, d: Dir | None, tag: int) -> int | None:
        """The first integer value of ``tag`` in ``d``."""
        values = self.ints(d.entries.get(tag), 1) if d is not None else []
        return values[0] if values else None

    def number(self, d: Dir | None, tag: int) -> float | None:
        """The first value of ``tag`` as a float (rationals and floats included)."""
        entry = d.entries.get(tag) if d is not None else None
        if entry is None:
            return None
        if entry.type in (5, 10):
            data = self.r.read(entry.pos, 8)
            if len(data) < 8:
                return None
            num, den = struct.unpack(self.order + ("II" if entry.type == 5 else "ii"), data)
            return num / den if den else None
        if entry.type in (11, 12):
            data = self.r.read(entry.pos, 4 if entry.type == 11 else 8)
            if len(data) < (4 if entry.type == 11 else 8):
                return None
            value = struct.unpack(self.order + ("f" if entry.type == 11 else "d"), data)[0]
            return value if math.isfinite(value) else None
        value = self.int(d, tag)
        return float(value) if value is not None else None

    def data(self, entry: Entry | None, limit: int) -> bytes:
        """The raw bytes of an entry's value (at most ``limit``)."""
        if entry is None:
            return b""
        return self.r.read(entry.pos, min(entry.size, limit))

    def text(self, d: Dir | None, tag: int, limit: int = 256) -> str | None:
        """An ASCII value, trimmed at the first NUL; None when blank."""
        entry = d.entries.get(tag) if d is not None else None
        value = self.data(entry, limit).split(b"\x00", 1)[0].decode("latin-1").strip()
        return value or None

    # ------------------------------------------------------------------ walking

    def walk(self, first: int) -> list[Dir]:
        """IFD0 and its chain (IFD1, IFD2...) with their SubIFDs and ExifIFD.

        The order is exiftool's: a directory comes before the SubIFDs and
        ExifIFD it points to, and those before the next IFD of the chain.
        """
        out: list[Dir] = []
        subs = [0]

        def visit(pos: int, name: str, depth: int) -> Dir | None:
            d = self.read_dir(pos, name)
            if d is None:
                return None
            out.append(d)
            if depth >= MAX_DEPTH:
                return d
            for tag, entry in d.entries.items():
                if tag == SUBIFDS and entry.type in (4, 13):
                    for off in self.ints(entry, 16):
                        visit(self.base + off, f"SubIFD{subs[0] or ''}", depth + 1)
                        subs[0] += 1
                elif tag in (EXIF_IFD, GPS_IFD) and entry.type in (4, 13):
                    off = self.ints(entry, 1)
                    if off:
                        visit(self.base + off[0], "ExifIFD" if tag == EXIF_IFD else "GPS",
                              depth + 1)
            return d

        pos: int | None = first
        for index in range(16):
            if pos is None:
                break
            d = visit(pos, f"IFD{index}", 0)
            pos = d.next_pos if d is not None else None
        return out


def first(dirs: list[Dir], name: str) -> Dir | None:
    """The directory called ``name`` (e.g. ``"ExifIFD"``), if walked."""
    return next((d for d in dirs if d.name == name), None)


def main_value(t: Tiff, dirs: list[Dir], tag: int, seed: int | None = None) -> int | None:
    """Resolve a tag that several directories carry, as exiftool does.

    ImageWidth/ImageHeight/Orientation are "priority 0" tags in exiftool: the
    first one found wins, except that the first directory whose
    (New)SubfileType says "full-resolution image" takes precedence.  ``seed``
    is a value already found with normal priority (e.g. MRW's PRD block),
    which only that full-resolution directory may override.
    """
    value, prio = seed, None
    for d in dirs:
        if d.name in ("ExifIFD", "GPS"):
            continue
        if prio is None and (t.int(d, SUBFILE) == 0 or t.int(d, OLD_SUBFILE) == 1):
            prio = d
        found = t.int(d, tag)
        if found is not None and (value is None or d is prio):
            value = found
    return value
