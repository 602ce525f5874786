"""Camera RAW files built byte by byte from each format's published layout.

No RAW file from a camera is committed (licences, sizes); these builders
write the structures exiftool documents (Exif.pm, MakerNotes.pm, Olympus.pm,
Pentax.pm, Canon.pm, PhaseOne.pm, MinoltaRaw.pm, SigmaRaw.pm, FLIR.pm,
QuickTime.pm) with real, decodable JPEG previews made by Pillow.  Values a
test asserts were checked once against exiftool 12.57 on the generated file
(``exiftool -j -n``) and are written into the tests as constants: tests never
run exiftool.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from PIL import Image

# Entry value constructors: (TIFF type, value)
Value = tuple[int, Any]


def S(*v: int) -> Value:           # SHORT
    return 3, list(v)


def L(*v: int) -> Value:           # LONG
    return 4, list(v)


def A(text: str) -> Value:         # ASCII
    return 2, text.encode("latin-1") + b"\x00"


def U(data: bytes) -> Value:       # UNDEFINED
    return 7, data


def R(*v: tuple[int, int]) -> Value:   # RATIONAL
    return 5, list(v)


def SS(*v: int) -> Value:          # SSHORT
    return 8, list(v)


def REF(typ: int, count: int, offset: int) -> Value:
    """An entry pointing at bytes already in the buffer (e.g. an IIQ MakerNote)."""
    return -1, (typ, count, offset)


_CODES = {3: "H", 4: "I", 8: "h", 9: "i", 13: "I"}
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 8: 2, 9: 4, 10: 8, 13: 4}


class TiffWriter:
    """Writes a TIFF structure bottom-up: values and child IFDs first, parents last.

    Offsets are relative to the writer's first byte (the TIFF header), as in a
    TIFF file or an EXIF block.
    """

    def __init__(self, order: str = "<", magic: bytes | None = None, prefix: bytes = b"",
                 header: bytes | None = None) -> None:
        self.order = order
        mark = b"II" if order == "<" else b"MM"
        magic = magic if magic is not None else struct.pack(order + "H", 42)
        # ``header`` replaces the TIFF header: a MakerNote whose offsets count
        # from its own first byte (Olympus, Pentax "PENTAX \0"...).
        self.buf = bytearray(header if header is not None
                             else mark + magic + b"\x00\x00\x00\x00" + prefix)

    def align(self) -> None:
        if len(self.buf) % 2:
            self.buf += b"\x00"

    def blob(self, data: bytes) -> int:
        """Append raw bytes; return their offset."""
        self.align()
        pos = len(self.buf)
        self.buf += data
        return pos

    def _encode(self, typ: int, value: Any) -> tuple[int, int, bytes]:
        if typ in (2, 7, 1):
            data = bytes(value)
            return typ, len(data), data
        if typ in (5, 10):
            code = "I" if typ == 5 else "i"
            return typ, len(value), b"".join(struct.pack(self.order + code * 2, n, d)
                                              for n, d in value)
        code = _CODES[typ]
        return typ, len(value), struct.pack(f"{self.order}{len(value)}{code}", *value)

    def ifd_bytes(self, entries: dict[int, Value], next_ifd: int = 0) -> bytes:
        """Encode an IFD; values longer than 4 bytes are appended to the buffer first."""
        rows = []
        for tag in sorted(entries):
            typ, value = entries[tag]
            if typ == -1:
                ref_type, count, offset = value
                rows.append(struct.pack(self.order + "HHII", tag, ref_type, count, offset))
                continue
            typ, count, data = self._encode(typ, value)
            if len(data) <= 4:
                field = data.ljust(4, b"\x00")
            else:
                field = struct.pack(self.order + "I", self.blob(data))
            rows.append(struct.pack(self.order + "HHI", tag, typ, count) + field)
        return (struct.pack(self.order + "H", len(rows)) + b"".join(rows)
                + struct.pack(self.order + "I", next_ifd))

    def ifd(self, entries: dict[int, Value], next_ifd: int = 0) -> int:
        """Write an IFD; return its offset."""
        data = self.ifd_bytes(entries, next_ifd)
        return self.blob(data)

    def reserve_ifd(self, count: int) -> int:
        """Keep room for an IFD of ``count`` entries written later by `fill_ifd`."""
        return self.blob(b"\x00" * (2 + 12 * count + 4))

    def fill_ifd(self, pos: int, entries: dict[int, Value], next_ifd: int = 0) -> None:
        """Write an IFD into room kept by `reserve_ifd` (its values go after)."""
        data = self.ifd_bytes(entries, next_ifd)
        self.buf[pos:pos + len(data)] = data

    def finish(self, ifd0: int) -> bytes:
        """Point the header at IFD0 and return the bytes."""
        self.buf[4:8] = struct.pack(self.order + "I", ifd0)
        return bytes(self.buf)


def jpeg(size: tuple[int, int], color=(200, 80, 40), exif: bytes | None = None) -> bytes:
    """A real JPEG of ``size`` (a preview or thumbnail).

    With ``exif`` the APP1 segment comes right after SOI, as cameras write it
    (Pillow puts a JFIF APP0 first, which Sigma's JpgFromRaw never has).
    """
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=80, **({"exif": exif} if exif else {}))
    data = buf.getvalue()
    if exif and data[2:4] == b"\xff\xe0":
        app0 = 4 + struct.unpack(">H", data[4:6])[0]
        data = data[:2] + data[app0:]
    return data


def exif_ifd(w: TiffWriter, taken: str, makernote: Value | None = None,
             extra: dict[int, Value] | None = None) -> int:
    """An Exif IFD with DateTimeOriginal, exposure and optionally a MakerNote."""
    entries: dict[int, Value] = {
        0x829A: R((1, 250)), 0x829D: R((56, 10)), 0x8827: S(200),
        0x9003: A(taken), 0x9004: A(taken), 0x920A: R((50, 1)),
    }
    if makernote is not None:
        entries[0x927C] = makernote
    entries.update(extra or {})
    return w.ifd(entries)


# --------------------------------------------------------------------------
# TIFF-based RAWs


def tiff_raw(*, make: str, model: str, taken: str = "2021:06:05 14:03:02",
             raw_size: tuple[int, int] = (6016, 4016), orientation: int = 1,
             compression: int = 1, preview: tuple[int, int] | None = (1616, 1080),
             thumb_in_ifd0: bool = False, ifd0_extra: dict[int, Value] | None = None,
             makernote: bytes | None = None, order: str = "<",
             magic: bytes | None = None) -> bytes:
    """A TIFF RAW as NEF/ARW/PEF/SRW/3FR/ERF/DCR/KDC cameras lay it out.

    IFD0: a 160x120 RGB thumbnail flagged reduced-resolution (or a JPEG one
    for NRW), Make/Model/Orientation, a SubIFD with the sensor data
    (NewSubfileType 0, CFA photometric, ``compression``), and another SubIFD
    with a JPEG preview (JPEGInterchangeFormat); the Exif IFD with the date.
    """
    w = TiffWriter(order, magic)
    raw_data = w.blob(b"\x55" * 512)
    raw_ifd = w.ifd({0xFE: L(0), 0x100: L(raw_size[0]), 0x101: L(raw_size[1]),
                     0x102: S(12), 0x103: S(compression), 0x106: S(32803),
                     0x111: L(raw_data), 0x115: S(1), 0x116: L(raw_size[1]),
                     0x117: L(512), 0x828D: S(2, 2), 0x828E: (1, b"\x00\x01\x01\x02")})
    subs = [raw_ifd]
    if preview is not None:
        data = jpeg(preview)
        pos = w.blob(data)
        subs.insert(0, w.ifd({0xFE: L(1), 0x103: S(6), 0x201: L(pos), 0x202: L(len(data))}))
    mn = U(makernote) if makernote is not None else None
    exif = exif_ifd(w, taken, mn)
    entries: dict[int, Value] = {
        0xFE: L(1), 0x10F: A(make), 0x110: A(model), 0x112: S(orientation),
        0x14A: L(*subs), 0x8769: L(exif),
    }
    if thumb_in_ifd0:
        data = jpeg((160, 120))
        pos = w.blob(data)
        entries.update({0x103: S(6), 0x201: L(pos), 0x202: L(len(data))})
    else:
        thumb = w.blob(bytes([90, 90, 90]) * 160 * 120)
        entries.update({0x100: L(160), 0x101: L(120), 0x102: S(8, 8, 8), 0x103: S(1),
                        0x106: S(2), 0x111: L(thumb), 0x115: S(3), 0x116: L(120),
                        0x117: L(160 * 120 * 3)})
    entries.update(ifd0_extra or {})
    return w.finish(w.ifd(entries))


def olympus_makernote(preview: bytes, lens: str) -> bytes:
    """New-style Olympus MakerNote (``OLYMPUS\\0II\\x03\\0``, offsets from its start).

    0x2010 Equipment sub-IFD with LensModel (0x0203); 0x2020 CameraSettings
    sub-IFD with PreviewImageStart/Length (0x0101/0x0102); a small inline
    ThumbnailImage (0x0100, undefined) in the root.
    """
    w = TiffWriter("<", header=b"OLYMPUS\x00II\x03\x00")
    root = w.reserve_ifd(4)
    assert root == 12
    pos = w.blob(preview)
    equipment = w.ifd({0x0203: A(lens)})
    settings = w.ifd({0x0100: L(1), 0x0101: L(pos), 0x0102: L(len(preview))})
    w.fill_ifd(root, {0x0000: U(b"0100"), 0x0100: U(jpeg((160, 120))),
                      0x2010: (13, [equipment]), 0x2020: (13, [settings])})
    return bytes(w.buf)


def pentax_makernote(w: TiffWriter, preview: bytes) -> bytes:
    """Pentax ``AOC\\0`` MakerNote: PreviewImageLength/Start (0x0003/0x0004),
    offsets from the TIFF header (values placed in ``w``)."""
    pos = w.blob(preview)
    mark = b"MM" if w.order == ">" else b"II"
    return b"AOC\x00" + mark + w.ifd_bytes({0x0000: (1, b"\x03\x00\x00\x00"),
                                            0x0003: L(len(preview)), 0x0004: L(pos)})


def canon_makernote(w: TiffWriter, lens: str, *, camera_iso: int = 0, base_iso: int = 0,
                    auto_iso: int = 0) -> bytes:
    """Canon MakerNote (a bare IFD, offsets from the TIFF header): CameraSettings
    (CameraISO at index 16, FocalUnits at 25), ShotInfo (AutoISO 1, BaseISO 2)
    and LensModel (0x0095)."""
    settings = [0] * 46
    settings[0], settings[16], settings[25] = 92, camera_iso, 1
    shot = [0] * 34
    shot[0], shot[1], shot[2] = 68, auto_iso, base_iso
    return w.ifd_bytes({0x0001: SS(*settings), 0x0004: SS(*shot),
                        0x0095: A(lens.ljust(73, "\x00")[:73])})


def phase_one_iiq(*, size: tuple[int, int] = (7320, 5484), lens: str = "Schneider LS 80mm",
                  taken: str = "2013:06:19 15:44:21") -> bytes:
    """A Phase One IIQ: TIFF header, the Phase One directory at byte 8 (the
    MakerNote: ``IIII`` ``CwaR``, directory offset, count, 16-byte entries of
    tag, size class, byte size, value/offset), then a 1x1 RGB IFD0 flagged
    full-resolution, as the camera writes it."""
    lens_bytes = lens.encode() + b"\x00"
    entries = [(0x0100, 4, 4, 0), (0x0105, 4, 4, 100), (0x0108, 4, 4, size[0] + 52),
               (0x0109, 4, 4, size[1] + 52), (0x010C, 4, 4, size[0]), (0x010D, 4, 4, size[1])]
    dir_at = 12 + 4 + len(lens_bytes) + 256        # header, lens text, fake raw data
    dir_at += (-dir_at) % 4
    body = bytearray(b"IIIICwaR" + struct.pack("<I", dir_at))
    lens_at = len(body)
    body += lens_bytes
    raw_at = len(body)
    body += b"\x33" * 256
    body += b"\x00" * (dir_at - len(body))
    rows = entries + [(0x010F, 1, 256, raw_at), (0x0412, 1, len(lens_bytes), lens_at)]
    body += struct.pack("<II", len(rows), 0)
    for tag, size_class, nbytes, value in sorted(rows):
        body += struct.pack("<4I", tag, size_class, nbytes, value)
    w = TiffWriter("<", prefix=bytes(body))
    mn = REF(7, len(body), 8)
    exif = exif_ifd(w, taken, mn)
    pixel = w.blob(b"\x80\x80\x80")
    ifd0 = w.ifd({0xFE: L(0), 0x100: S(1), 0x101: S(1), 0x102: S(8, 8, 8), 0x103: S(1),
                  0x106: S(2), 0x10F: A("Phase One"), 0x110: A("IQ180"), 0x111: L(pixel),
                  0x115: S(3), 0x116: L(1), 0x117: L(3), 0x8769: L(exif)})
    return w.finish(ifd0)


def minolta_mrw(*, size: tuple[int, int] = (3264, 2448), preview: tuple[int, int] = (640, 480),
                taken: str = "2004:11:18 23:14:58", orientation: int = 1) -> bytes:
    """A Minolta MRW: ``\\0MRM`` + length, ``\\0PRD`` (sensor and image size,
    big-endian), ``\\0TTW`` (a TIFF with IFD0, Exif IFD and a Minolta MakerNote
    whose PreviewImageStart/Length, 0x0088/0x0089, count from the TIFF), ``\\0WBG``,
    then the sensor data."""
    w = TiffWriter(">")
    pv = jpeg(preview)
    pos = w.blob(pv)
    mn = w.ifd_bytes({0x0000: U(b"MLT0"), 0x0088: L(pos), 0x0089: L(len(pv))})
    exif = exif_ifd(w, taken, U(mn))
    ifd0 = w.ifd({0x10F: A("Konica Minolta Camera, Inc."), 0x110: A("DiMAGE A2"),
                  0x112: S(orientation), 0x8769: L(exif)})
    ttw = w.finish(ifd0)
    ttw += b"\x00" * ((-len(ttw)) % 4)
    prd = (b"21860002" + struct.pack(">4H", size[1] + 16, size[0] + 16, size[1], size[0])
           + bytes([12, 12, 0x52, 0, 0, 0, 0, 1]))
    blocks = (b"\x00PRD" + struct.pack(">I", len(prd)) + prd
              + b"\x00TTW" + struct.pack(">I", len(ttw)) + ttw
              + b"\x00WBG" + struct.pack(">I", 12) + bytes([0, 0, 0, 0]) + b"\x01\x00" * 4)
    return b"\x00MRM" + struct.pack(">I", len(blocks)) + blocks + b"\x44" * 1024


def sigma_x3f(*, version: int = 0x00020002, size: tuple[int, int] = (2268, 1512),
              rotation: int = 0, props: dict[str, str] | None = None,
              jpeg_preview: bytes | None = None, rgb: tuple[int, int] | None = (189, 126)) -> bytes:
    """A Sigma X3F: ``FOVb``, version, header (width/height/rotation at 28 before
    version 4, at 40 from 4.0), sections, and the ``SECd`` directory whose offset
    is the last u32.  ``props`` go in a ``SECp`` property list (UTF-16LE);
    ``jpeg_preview`` in an ``IMA2`` section (type 2, format 18); ``rgb`` makes an
    uncompressed RGB preview section (type 2, format 3) as the SD9/SD10 write."""
    major = version >> 16
    header = bytearray(b"FOVb" + struct.pack("<I", version) + b"\x01" * 16 + b"\x00" * 4)
    header = header.ljust(0x300 if major >= 4 else 72 + 160, b"\x00")
    at = 40 if major >= 4 else 28
    header[at:at + 12] = struct.pack("<3I", size[0], size[1], rotation)
    data = bytearray(header)
    directory = []

    def section(kind: bytes, body: bytes) -> None:
        directory.append((len(data), len(body), kind))
        data.extend(body)
        data.extend(b"\x00" * ((-len(data)) % 4))

    if jpeg_preview is not None:
        with Image.open(io.BytesIO(jpeg_preview)) as im:
            w_, h_ = im.size
        section(b"IMA2", b"SECi" + struct.pack("<6I", 0x00020000, 2, 18, w_, h_, 0) + jpeg_preview)
    if rgb is not None:
        cols, rows = rgb
        row = cols * 3 + 1
        pixels = b"".join(bytes([200, 60, 30]) * cols + b"\x00" for _ in range(rows))
        section(b"IMAG", b"SECi" + struct.pack("<6I", 0x00020000, 2, 3, cols, rows, row) + pixels)
    section(b"IMAG", b"SECi" + struct.pack("<6I", 0x00020000, 3, 6, size[0] + 36, size[1] + 19, 0)
            + b"\x55" * 512)
    if props:
        chars = bytearray()
        table = bytearray()
        for name, value in props.items():
            name_at = len(chars) // 2
            chars += (name + "\x00").encode("utf-16-le")
            value_at = len(chars) // 2
            chars += (value + "\x00").encode("utf-16-le")
            table += struct.pack("<II", name_at, value_at)
        prop = (b"SECp" + struct.pack("<5I", 0x00020000, len(props), 0, 0, len(chars) // 2)
                + table + chars)
        section(b"PROP", prop)
    dir_at = len(data)
    data += b"SECd" + struct.pack("<II", 0x00020000, len(directory))
    for offset, length, kind in directory:
        data += struct.pack("<II", offset, length) + kind
    data += struct.pack("<I", dir_at)
    return bytes(data)


def flir_jpeg(*, unix_time: int, millis: int, minutes_west: int, lens: str = "FOL18",
              chunk: int = 400, exif: bytes | None = None) -> bytes:
    """A JPEG (EXIF optional) whose APP1 ``FLIR`` segments carry an FFF record:
    64-byte header (version 100, big-endian), record directory, a CameraInfo
    record (type 0x20, little-endian as cameras write it) with LensModel at
    0x170 and DateTimeOriginal at 0x384; split into ``chunk``-byte segments so
    the record crosses a segment boundary."""
    info = bytearray(0x400)
    info[0:2] = struct.pack("<H", 2)
    info[0x170:0x170 + len(lens)] = lens.encode()
    info[0x384:0x38E] = struct.pack("<IIh", unix_time, millis, minutes_west)
    record_at = 0x40 + 0x20
    fff = bytearray(b"FFF\x00" + b"photobox-test\x00\x00\x00")
    fff += struct.pack(">IIII", 100, 0x40, 1, 2).ljust(0x40 - len(fff), b"\x00")
    fff = fff[:0x40]
    fff += struct.pack(">HHIIII", 0x20, 1, 0x64, 1, record_at, len(info)).ljust(0x20, b"\x00")
    fff += info
    parts = [bytes(fff[i:i + chunk]) for i in range(0, len(fff), chunk)]
    segments = b""
    for index, part in enumerate(parts):
        payload = b"FLIR\x00\x01" + bytes([index, len(parts) - 1]) + part
        segments += b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    base = jpeg((320, 240), exif=exif)
    at = 2
    if exif:     # after the EXIF APP1, where FLIR cameras put their record
        at = 4 + struct.unpack(">H", base[4:6])[0]
    return base[:at] + segments + base[at:]


def with_udta_atom(movie: bytes, atom: bytes) -> bytes:
    """Add ``atom`` (a complete box) to the movie's ``moov/udta``.

    The moov box must be the last top-level box (as ffmpeg writes it without
    faststart), so no sample offset moves.
    """
    pos, moov = 0, None
    while pos + 8 <= len(movie):
        size, kind = struct.unpack(">I4s", movie[pos:pos + 8])
        if kind == b"moov":
            moov = pos
        if size < 8:
            break
        pos += size
    assert moov is not None and pos == len(movie), "moov must end the file"
    size = struct.unpack(">I", movie[moov:moov + 4])[0]
    assert moov + size == len(movie)
    udta = struct.pack(">I", 8 + len(atom)) + b"udta" + atom
    body = movie[moov + 8:] + udta
    return movie[:moov] + struct.pack(">I", 8 + len(body)) + b"moov" + body


def pentax_tags_atom() -> bytes:
    """The ``TAGS`` atom Pentax Optio cameras write: make at 0 (string[24]),
    exposure time as 10/value at 0x26, f-number rational at 0x2A."""
    body = bytearray(0xB8)
    body[0:22] = b"PENTAX DIGITAL CAMERA\x00"
    body[0x26:0x2A] = struct.pack("<I", 300)
    body[0x2A:0x32] = struct.pack("<II", 35, 10)
    return struct.pack(">I", 8 + len(body)) + b"TAGS" + bytes(body)


def pentax_pent_atom(make: str = "PENTAX", model: str = "WG-2 GPS") -> bytes:
    """The ``PENT`` atom of Pentax WG-2 GPS movies: make at 0, model at 0x1A."""
    body = bytearray(0x150)
    body[0:len(make)] = make.encode()
    body[0x1A:0x1A + len(model)] = model.encode()
    return struct.pack(">I", 8 + len(body)) + b"PENT" + bytes(body)
