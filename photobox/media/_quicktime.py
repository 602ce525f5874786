"""A small, bounded ISO-BMFF (MP4/QuickTime/HEIF/CR3) box reader.

Only headers and a handful of small boxes are read: the movie header (mvhd),
track headers (tkhd matrix and size), sample descriptions, user data
(``©xyz`` GPS...), the QuickTime ``keys``/``ilst`` metadata
(``com.apple.quicktime.*``), XMP, Canon CR3 ``CMT*`` TIFF blocks and camera
makers' own user-data atoms (`_qt_vendor`); HEIF items are read by `_heif`
with the same box reader.  Every size field is distrusted: boxes are clamped to
their parent, recursion depth and box counts are capped, and the total number
of bytes read is budgeted, so a hostile file cannot make us seek forever or
allocate its declared sizes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import struct
from typing import BinaryIO, Iterator

from . import _qt_vendor

MAX_DEPTH = 10
MAX_BOXES_PER_LEVEL = 4096
READ_BUDGET = 32 * 1024 * 1024      # total bytes one parse may read
SMALL_BOX_CAP = 4 * 1024 * 1024     # largest single metadata box we read whole
ITEM_TABLE_CAP = 1024 * 1024        # HEIF iloc/ipma: a 200 MP grid needs ~20 KB
XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_QT_EPOCH = dt.datetime(1904, 1, 1)
# Boxes allowed at the top level of an MP4/MOV; used to find where an embedded
# motion-photo video ends.
TOP_LEVEL_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid",
                   b"meta", b"pnot", b"udta", b"sidx", b"moof", b"mfra", b"styp",
                   b"pdin", b"prfl", b"junk", b"beam", b"PICT"}


class BudgetExceeded(Exception):
    """Raised when a parse wants to read more than READ_BUDGET bytes."""


class Reader:
    """Random access to a file that never reads past EOF or over budget."""

    def __init__(self, f: BinaryIO, size: int, budget: int = READ_BUDGET):
        self.f = f
        self.size = size
        self.budget = budget

    def read(self, offset: int, length: int) -> bytes:
        """Read up to ``length`` bytes at ``offset`` (short at EOF)."""
        if offset < 0 or offset >= self.size or length <= 0:
            return b""
        length = min(length, self.size - offset)
        if length > self.budget:
            raise BudgetExceeded(f"read of {length} bytes exceeds budget")
        self.budget -= length
        self.f.seek(offset)
        return self.f.read(length)


@dataclasses.dataclass(slots=True)
class Box:
    """A box header: ``start``..``end`` (clamped), payload after ``header``."""

    type: bytes
    start: int
    header: int
    end: int
    truncated: bool  # declared size ran past its parent / the file

    @property
    def payload(self) -> int:
        """Offset of the first payload byte."""
        return self.start + self.header


def iter_boxes(r: Reader, start: int, end: int) -> Iterator[Box]:
    """Yield the boxes between ``start`` and ``end``.

    Stops at the first malformed header; a box whose size runs past ``end`` is
    yielded clamped with ``truncated=True`` and ends the walk.
    """
    pos, count = start, 0
    end = min(end, r.size)
    while pos + 8 <= end and count < MAX_BOXES_PER_LEVEL:
        head = r.read(pos, 16)
        if len(head) < 8:
            return
        size, box_type = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                return
            size = struct.unpack(">Q", head[8:16])[0]
            header = 16
        elif size == 0:  # "extends to end of file"
            size = end - pos
        if box_type == b"uuid":
            header += 16
        if size < header:
            return
        box_end = pos + size
        truncated = box_end > end
        yield Box(box_type, pos, header, min(box_end, end), truncated)
        if truncated:
            return
        pos = box_end
        count += 1


def children(r: Reader, box: Box, skip: int = 0) -> Iterator[Box]:
    """Yield the child boxes of ``box``, skipping ``skip`` payload bytes first."""
    yield from iter_boxes(r, box.payload + skip, box.end)


def find(r: Reader, box: Box, path: list[bytes], skip: int = 0) -> Box | None:
    """Follow a path of box types below ``box`` (first match at each level)."""
    current = box
    for depth, wanted in enumerate(path):
        if depth >= MAX_DEPTH:
            return None
        nxt = None
        for child in children(r, current, skip if depth == 0 else 0):
            if child.type == wanted:
                nxt = child
                break
        if nxt is None:
            return None
        current = nxt
    return current


def payload(r: Reader, box: Box, cap: int = SMALL_BOX_CAP) -> bytes:
    """Return a box's payload, or b"" when it is bigger than ``cap``."""
    length = box.end - box.payload
    if length > cap:
        return b""
    return r.read(box.payload, length)


# --------------------------------------------------------------------------
# Movies (MP4 / MOV / 3GP / CR3)


@dataclasses.dataclass(slots=True)
class Track:
    """What we learn about one trak."""

    handler: str | None = None
    enabled: bool = True
    width: float | None = None      # tkhd, 16.16 fixed point, before rotation
    height: float | None = None
    matrix: tuple[float, float, float, float] | None = None  # a, b, c, d
    codec: str | None = None        # stsd sample entry fourcc
    sample_width: int | None = None
    sample_height: int | None = None
    timescale: int | None = None
    duration: int | None = None     # in timescale units (mdhd)
    sample_count: int | None = None


@dataclasses.dataclass(slots=True)
class Movie:
    """Metadata from a QuickTime/MP4 movie header."""

    has_moov: bool = False
    creation: dt.datetime | None = None   # mvhd creation time, UTC
    duration: float | None = None         # seconds (mvhd)
    tracks: list[Track] = dataclasses.field(default_factory=list)
    keys: dict[str, object] = dataclasses.field(default_factory=dict)
    udta: dict[str, str] = dataclasses.field(default_factory=dict)
    xmp: bytes | None = None
    loci: tuple[float, float, float] | None = None   # 3GPP location (lat, lon, alt)
    cr3: dict[str, bytes] = dataclasses.field(default_factory=dict)
    vendor: dict[bytes, bytes] = dataclasses.field(default_factory=dict)   # udta TAGS/PENT
    truncated: list[str] = dataclasses.field(default_factory=list)
    moov_end: int | None = None

    def video_track(self) -> Track | None:
        """Return the first enabled video track (or any video track)."""
        videos = [t for t in self.tracks if t.handler == "vide"]
        enabled = [t for t in videos if t.enabled]
        return (enabled or videos or [None])[0]

    def rotation(self) -> int | None:
        """Clockwise display rotation in degrees, exiftool's convention.

        The tkhd matrix maps stored pixels to display; exiftool reports
        ``atan2(b, a)`` which is the clockwise angle (an iPhone portrait clip
        has a=0, b=1 -> 90).  PyAV/ffmpeg report the opposite sign.
        """
        track = self.video_track()
        if track is None or track.matrix is None:
            return None
        a, b, _, _ = track.matrix
        if a == 0 and b == 0:
            return None
        angle = math.degrees(math.atan2(b, a))
        return int(round(angle)) % 360


def read_movie(r: Reader) -> Movie:
    """Parse the top level and ``moov`` of an MP4/QuickTime/CR3 file."""
    movie = Movie()
    for box in iter_boxes(r, 0, r.size):
        if box.truncated:
            movie.truncated.append(box.type.decode("latin-1"))
        if box.type == b"moov":
            movie.has_moov = not box.truncated
            movie.moov_end = box.end
            _read_moov(r, box, movie)
        elif box.type == b"uuid" and r.read(box.start + 8, 16) == XMP_UUID:
            movie.xmp = movie.xmp or payload(r, box) or None
    return movie


def _read_moov(r: Reader, moov: Box, movie: Movie) -> None:
    for box in children(r, moov):
        if box.type == b"mvhd":
            _read_mvhd(payload(r, box, 4096), movie)
        elif box.type == b"trak" and len(movie.tracks) < 64:
            movie.tracks.append(_read_trak(r, box))
        elif box.type == b"udta":
            _read_udta(r, box, movie)
        elif box.type == b"meta":
            _read_qt_meta(r, box, movie)
        elif box.type == b"uuid" and r.read(box.start + 8, 16) == CANON_UUID:
            for sub in children(r, box):
                if sub.type in (b"CMT1", b"CMT2", b"CMT3", b"CMT4"):
                    movie.cr3[sub.type.decode()] = payload(r, sub, 1024 * 1024)


def _read_mvhd(data: bytes, movie: Movie) -> None:
    if len(data) < 20:
        return
    if data[0] == 1:
        if len(data) < 32:
            return
        created, _, timescale, duration = struct.unpack(">QQIQ", data[4:32])
    else:
        created, _, timescale, duration = struct.unpack(">IIII", data[4:20])
    movie.creation = qt_time(created)
    if timescale and duration not in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        movie.duration = duration / timescale


def qt_time(seconds: int) -> dt.datetime | None:
    """Convert QuickTime seconds-since-1904 (UTC) to a datetime.

    Zero means "not set" (exiftool shows 0000:00:00).  Some writers put Unix
    time here instead; like exiftool, values that would land before 1970 are
    read as seconds since 1970.
    """
    if not seconds:
        return None
    try:
        when = _QT_EPOCH + dt.timedelta(seconds=seconds)
        if when.year < 1970:
            when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    except OverflowError:   # 64-bit garbage
        return None
    return when


def _read_trak(r: Reader, trak: Box) -> Track:
    track = Track()
    for box in children(r, trak):
        if box.type == b"tkhd":
            _read_tkhd(payload(r, box, 4096), track)
        elif box.type == b"mdia":
            _read_mdia(r, box, track)
    return track


def _read_tkhd(data: bytes, track: Track) -> None:
    if len(data) < 4:
        return
    track.enabled = bool(data[3] & 1)
    pos = 4 + (32 if data[0] == 1 else 20) + 8 + 8   # times/ids, reserved, layer..
    if len(data) < pos + 44:
        return
    m = struct.unpack(">9i", data[pos:pos + 36])
    track.matrix = (m[0] / 65536, m[1] / 65536, m[3] / 65536, m[4] / 65536)
    width, height = struct.unpack(">II", data[pos + 36:pos + 44])
    track.width, track.height = width / 65536, height / 65536


def _read_mdia(r: Reader, mdia: Box, track: Track) -> None:
    for box in children(r, mdia):
        if box.type == b"mdhd":
            data = payload(r, box, 4096)
            if len(data) >= 20 and data[0] != 1:
                track.timescale, track.duration = struct.unpack(">II", data[12:20])
            elif len(data) >= 32:
                track.timescale, track.duration = struct.unpack(">IQ", data[20:32])
        elif box.type == b"hdlr":
            data = payload(r, box, 4096)
            if len(data) >= 12:
                track.handler = data[8:12].decode("latin-1")
        elif box.type == b"minf":
            stbl = find(r, box, [b"stbl"])
            if stbl is not None:
                _read_stbl(r, stbl, track)


def _read_stbl(r: Reader, stbl: Box, track: Track) -> None:
    for box in children(r, stbl):
        if box.type == b"stsd":
            head = r.read(box.payload, 8 + 8 + 8 + 16 + 4 + 4)
            if len(head) >= 16:
                track.codec = head[12:16].decode("latin-1")
            # Visual sample entries carry width/height after 24 bytes of
            # reserved/pre-defined fields.
            if len(head) >= 8 + 8 + 8 + 16 + 4 and track.handler == "vide":
                track.sample_width, track.sample_height = struct.unpack(
                    ">HH", head[8 + 8 + 8 + 16:8 + 8 + 8 + 16 + 4])
        elif box.type == b"stsz":
            head = r.read(box.payload, 12)
            if len(head) == 12:
                track.sample_count = struct.unpack(">I", head[8:12])[0]


def _read_udta(r: Reader, udta: Box, movie: Movie) -> None:
    for box in children(r, udta):
        name = box.type.decode("latin-1")
        if box.type == b"XMP_":
            movie.xmp = movie.xmp or payload(r, box) or None
        elif box.type == b"meta":
            _read_qt_meta(r, box, movie)
        elif box.type == b"loci":
            movie.loci = movie.loci or _read_loci(payload(r, box, 4096))
        elif box.type in _qt_vendor.ATOMS:
            movie.vendor.setdefault(box.type, r.read(box.payload, min(
                box.end - box.payload, _qt_vendor.ATOMS[box.type])))
        elif box.type == b"date":   # 3GPP-style recording date (FLIR, some Androids)
            text = payload(r, box, 256).decode("latin-1").strip("\x00 ")
            movie.udta.setdefault("date", text)
        elif name.startswith("\xa9") and box.end - box.payload <= 4096:
            # QuickTime user data text: u16 length, u16 language, text.
            data = payload(r, box, 4096)
            if len(data) >= 4:
                length = struct.unpack(">H", data[:2])[0]
                text = data[4:4 + length]
                if b"data" == data[4:8]:  # some writers use an iTunes data box
                    text = data[16:]
                movie.udta.setdefault(name, text.decode("utf-8", "replace").strip("\x00 "))


def _read_loci(data: bytes) -> tuple[float, float, float] | None:
    # 3GPP 'loci': version/flags, language, name (NUL-terminated), role byte,
    # then longitude, latitude, altitude as signed 16.16 fixed point.
    if len(data) < 7:
        return None
    end = data.find(b"\x00", 6)
    if end < 0 or end + 1 + 1 + 12 > len(data):
        return None
    lon, lat, alt = struct.unpack(">iii", data[end + 2:end + 14])
    return lat / 65536, lon / 65536, alt / 65536


def _read_qt_meta(r: Reader, meta: Box, movie: Movie) -> None:
    # QuickTime 'meta' is a plain box, ISO 'meta' a full box (4 bytes of
    # version/flags first); tell them apart by where 'hdlr' sits.
    probe = r.read(meta.payload, 12)
    skip = 4 if probe[8:12] == b"hdlr" or probe[:4] == b"\x00\x00\x00\x00" else 0
    keys: list[str] = []
    ilst = None
    for box in children(r, meta, skip):
        if box.type == b"keys":
            keys = _read_keys(payload(r, box, 256 * 1024))
        elif box.type == b"ilst":
            ilst = box
    if ilst is None:
        return
    for item in children(r, ilst):
        index = struct.unpack(">I", item.type)[0]
        if keys and 1 <= index <= len(keys):
            name = keys[index - 1]
        else:
            name = item.type.decode("latin-1")
        for data_box in children(r, item):
            if data_box.type == b"data":
                value = _data_value(payload(r, data_box, 64 * 1024))
                if value is not None:
                    movie.keys.setdefault(name, value)
                break


def _read_keys(data: bytes) -> list[str]:
    keys: list[str] = []
    if len(data) < 8:
        return keys
    count = struct.unpack(">I", data[4:8])[0]
    pos = 8
    while len(keys) < min(count, 1024) and pos + 8 <= len(data):
        size = struct.unpack(">I", data[pos:pos + 4])[0]
        if size < 8:
            break
        keys.append(data[pos + 8:pos + size].decode("utf-8", "replace"))
        pos += size
    return keys


def _data_value(data: bytes) -> object:
    if len(data) < 8:
        return None
    kind = struct.unpack(">I", data[:4])[0] & 0xFFFFFF
    raw = data[8:]
    if kind == 1:
        return raw.decode("utf-8", "replace").strip("\x00")
    if kind == 2:
        return raw.decode("utf-16-be", "replace").strip("\x00")
    if kind == 23 and len(raw) == 4:
        return struct.unpack(">f", raw)[0]
    if kind == 24 and len(raw) == 8:
        return struct.unpack(">d", raw)[0]
    if kind in (21, 22) and 1 <= len(raw) <= 8:
        return int.from_bytes(raw, "big", signed=kind == 21)
    return raw


def mp4_extent(r: Reader, start: int) -> tuple[int, bool]:
    """Measure an MP4 embedded at ``start`` by walking its top-level boxes.

    Returns:
        ``(end, complete)``: where the last recognisable box ends, and whether
        a complete ``moov`` was seen with no box running past EOF.
    """
    end, has_moov = start, False
    for box in iter_boxes(r, start, r.size):
        if box.type not in TOP_LEVEL_BOXES:
            break
        if box.truncated:
            return box.end, False
        has_moov = has_moov or box.type == b"moov"
        end = box.end
    return end, has_moov
