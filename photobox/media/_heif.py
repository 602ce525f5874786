"""HEIF/AVIF item boxes: the primary image's size, rotation and metadata items.

Only the ``meta`` box is parsed (pitm, iinf, iloc, iprp/ipma, idat), through
the bounded box reader of `_quicktime`; no image data is read.  pillow-heif
would read the whole file and run libheif on it, while the primary item's
properties and its Exif/XMP extents are all metadata needs.
"""

from __future__ import annotations

import dataclasses
import struct

from ._quicktime import ITEM_TABLE_CAP, Box, Reader, children, iter_boxes, payload


@dataclasses.dataclass(slots=True)
class Heif:
    """Primary-item facts of a HEIF/AVIF file."""

    has_meta: bool = False
    primary: int | None = None
    width: int | None = None          # ispe: stored size, before clap/irot
    height: int | None = None
    display: tuple[int, int] | None = None   # after clap + irot (libheif's size)
    irot: int = 0                     # counter-clockwise quarter turns * 90
    imir: int | None = None
    exif: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    xmp: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    truncated: list[str] = dataclasses.field(default_factory=list)
    mpvd: tuple[int, int] | None = None    # Samsung motion-photo video box
    data_end: int | None = None            # end of the last item extent


@dataclasses.dataclass(slots=True)
class _Item:
    type: str = ""
    content_type: str = ""
    method: int = 0
    extents: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    props: list[int] = dataclasses.field(default_factory=list)


def read_heif(r: Reader) -> Heif:
    """Parse the ``meta`` box of a HEIF/AVIF file (no image data is read)."""
    heif = Heif()
    for box in iter_boxes(r, 0, r.size):
        if box.truncated:
            heif.truncated.append(box.type.decode("latin-1"))
        if box.type == b"meta" and not heif.has_meta:
            heif.has_meta = True
            _read_heif_meta(r, box, heif)
        elif box.type == b"mpvd":
            heif.mpvd = (box.payload, box.end - box.payload)
    return heif


def _read_heif_meta(r: Reader, meta: Box, heif: Heif) -> None:
    items: dict[int, _Item] = {}
    props: list[tuple[bytes, bytes]] = []
    idat_start = None
    for box in children(r, meta, 4):
        if box.type == b"pitm":
            data = payload(r, box, 64)
            if len(data) >= 6:
                heif.primary = (struct.unpack(">H", data[4:6])[0] if data[0] == 0
                                else struct.unpack(">I", data[4:8])[0])
        elif box.type == b"iinf":
            _read_iinf(r, box, items)
        elif box.type == b"iloc":
            _read_iloc(payload(r, box, ITEM_TABLE_CAP), items)
        elif box.type == b"iprp":
            _read_iprp(r, box, items, props)
        elif box.type == b"idat":
            idat_start = box.payload
    _resolve(heif, items, props, idat_start)


def _item(items: dict[int, _Item], item_id: int) -> _Item:
    if item_id not in items and len(items) < 65536:
        items[item_id] = _Item()
    return items.get(item_id, _Item())


def _read_iinf(r: Reader, iinf: Box, items: dict[int, _Item]) -> None:
    head = r.read(iinf.payload, 8)
    skip = 6 if head[:1] == b"\x00" else 8
    for infe in children(r, iinf, skip):
        if infe.type != b"infe":
            continue
        data = payload(r, infe, 4096)
        if len(data) < 4 or data[0] < 2:
            continue
        if data[0] == 2:
            item_id, pos = struct.unpack(">H", data[4:6])[0], 8
        else:
            item_id, pos = struct.unpack(">I", data[4:8])[0], 10
        item = _item(items, item_id)
        item.type = data[pos:pos + 4].decode("latin-1")
        rest = data[pos + 4:].split(b"\x00")
        if item.type == "mime" and len(rest) > 1:
            item.content_type = rest[1].decode("latin-1")


def _read_iloc(data: bytes, items: dict[int, _Item]) -> None:
    if len(data) < 8:
        return
    version = data[0]
    sizes = data[4], data[5]
    offset_size, length_size = sizes[0] >> 4, sizes[0] & 15
    base_size, index_size = sizes[1] >> 4, (sizes[1] & 15) if version in (1, 2) else 0
    pos = 6
    if version < 2:
        count, pos = struct.unpack(">H", data[pos:pos + 2])[0], pos + 2
    else:
        count, pos = struct.unpack(">I", data[pos:pos + 4])[0], pos + 4

    def take(n: int) -> int:
        nonlocal pos
        if n not in (0, 2, 4, 8) or pos + n > len(data):
            raise ValueError("bad iloc")
        value = int.from_bytes(data[pos:pos + n], "big") if n else 0
        pos += n
        return value

    try:
        for _ in range(min(count, 65536)):
            item_id = take(2) if version < 2 else take(4)
            method = take(2) & 15 if version in (1, 2) else 0
            take(2)  # data_reference_index
            base = take(base_size)
            extents = take(2)
            item = _item(items, item_id)
            item.method = method
            for _ in range(min(extents, 64)):
                take(index_size)
                offset = take(offset_size)
                length = take(length_size)
                item.extents.append((base + offset, length))
    except (ValueError, struct.error):
        return


def _read_iprp(r: Reader, iprp: Box, items: dict[int, _Item],
               props: list[tuple[bytes, bytes]]) -> None:
    for box in children(r, iprp):
        if box.type == b"ipco":
            for prop in children(r, box):
                small = prop.type in (b"ispe", b"irot", b"imir", b"clap")
                props.append((prop.type, payload(r, prop, 256) if small else b""))
        elif box.type == b"ipma":
            data = payload(r, box, ITEM_TABLE_CAP)
            if len(data) < 8:
                continue
            version, flags = data[0], data[3]
            count, pos = struct.unpack(">I", data[4:8])[0], 8
            for _ in range(min(count, 65536)):
                id_size = 2 if version < 1 else 4
                if pos + id_size + 1 > len(data):
                    break
                item_id = int.from_bytes(data[pos:pos + id_size], "big")
                pos += id_size
                n = data[pos]
                pos += 1
                item = _item(items, item_id)
                for _ in range(n):
                    if flags & 1:
                        if pos + 2 > len(data):
                            break
                        index = struct.unpack(">H", data[pos:pos + 2])[0] & 0x7FFF
                        pos += 2
                    else:
                        if pos + 1 > len(data):
                            break
                        index = data[pos] & 0x7F
                        pos += 1
                    item.props.append(index)


def _resolve(heif: Heif, items: dict[int, _Item], props: list[tuple[bytes, bytes]],
             idat_start: int | None) -> None:
    ends = []
    for item in items.values():
        base = idat_start if item.method == 1 and idat_start is not None else 0
        located = [(base + off, length) for off, length in item.extents]
        ends += [off + length for off, length in located]
        if item.type == "Exif":
            heif.exif = located
        elif item.type == "mime" and "rdf+xml" in item.content_type:
            heif.xmp = located
    heif.data_end = max(ends) if ends else None
    primary = items.get(heif.primary) if heif.primary is not None else None
    if primary is None:
        return
    width = height = None
    display = None
    for index in primary.props:
        if not 1 <= index <= len(props):
            continue
        kind, data = props[index - 1]
        if kind == b"ispe" and len(data) >= 12:
            width, height = struct.unpack(">II", data[4:12])
            display = (width, height)
        elif kind == b"clap" and len(data) >= 32 and display:
            display = _clap(data, display)
        elif kind == b"irot" and data:
            heif.irot = (data[0] & 3) * 90
            if display and data[0] & 1:
                display = (display[1], display[0])
        elif kind == b"imir" and data:
            heif.imir = data[0] & 1
    heif.width, heif.height, heif.display = width, height, display


def _clap(data: bytes, size: tuple[int, int]) -> tuple[int, int]:
    # Clean aperture: width/height are fractions; libheif rounds them to the
    # nearest integer and never grows the image.
    wn, wd, hn, hd = struct.unpack(">IIII", data[:16])
    if not wd or not hd:
        return size
    width = int((wn + wd // 2) // wd)
    height = int((hn + hd // 2) // hd)
    if not 0 < width <= size[0] or not 0 < height <= size[1]:
        return size
    return width, height


def read_extents(r: Reader, extents: list[tuple[int, int]], cap: int) -> bytes:
    """Concatenate item extents, or b"" when they exceed ``cap`` or the file."""
    total = sum(length for _, length in extents)
    if total > cap:
        return b""
    parts = []
    for offset, length in extents:
        if offset + length > r.size:
            return b""
        parts.append(r.read(offset, length))
    return b"".join(parts)
