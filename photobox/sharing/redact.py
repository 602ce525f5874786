"""Originals without their metadata, for share links that hide it (the default).

Phones write where a photo was taken into the file itself, so serving the original bytes of
a shared photo would hand out the family's home address. When a link hides metadata:

* **JPEG** is rewritten on the fly, losslessly: the markers before the image data are kept
  except APP1 (EXIF and XMP), APP13 (IPTC), COM and APP2 MPF; a minimal EXIF holding only
  the orientation is put back (so the photo is not shown sideways), and nothing after the
  first EOI is sent (Motion Photo videos and MPF secondary images carry their own metadata).
* **MP4 / MOV** keep their length: the boxes holding metadata (``udta`` with ``©xyz``
  location, ``meta`` with Apple's location keys, top-level ``uuid`` XMP) are renamed to
  ``free``, which every player skips. Offsets stay valid, so byte ranges (seeking) work.
* **HEIC / HEIF / AVIF** keep their length too: the ``Exif`` and XMP items get an unknown item
  type (readers skip them) and their bytes are zeroed; orientation is a HEIF property, kept.
* Anything else (PNG, WebP, RAW…) is refused as an original; thumbnails and previews are
  re-encoded by photobox without metadata and are always available.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import piexif

__all__ = ["CLEANABLE", "can_clean", "heif_patches", "jpeg_clean", "mp4_patches", "read_patched"]

_BLOCK = 256 * 1024
JPEG = {"image/jpeg"}
MP4 = {"video/mp4", "video/quicktime", "video/3gpp", "video/x-m4v"}
HEIF = {"image/heic", "image/heif", "image/avif", "image/heic-sequence", "image/heif-sequence"}
CLEANABLE = JPEG | MP4 | HEIF


def can_clean(mime: str | None) -> bool:
    return (mime or "") in CLEANABLE


# -- JPEG ------------------------------------------------------------------------------------

def _orientation(app1: bytes) -> int | None:
    try:
        data = piexif.load(app1[2:]) if app1.startswith(b"\xff\xe1") else piexif.load(app1)
        return data["0th"].get(piexif.ImageIFD.Orientation)
    except Exception:
        return None


def jpeg_clean(path: Path) -> Iterator[bytes]:
    """The JPEG at ``path`` without EXIF/XMP/IPTC/comments or trailing data, in blocks."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            raise ValueError("not a JPEG")
        kept: list[bytes] = [b"\xff\xd8"]
        orientation = None
        while True:
            marker = f.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                raise ValueError("damaged JPEG header")
            while marker[1] == 0xFF:  # fill bytes
                marker = marker[1:] + f.read(1)
            code = marker[1]
            if code == 0xDA:  # start of scan: image data follows
                break
            if code in (0x01,) or 0xD0 <= code <= 0xD7:
                kept.append(marker)
                continue
            (length,) = struct.unpack(">H", f.read(2))
            body = f.read(length - 2)
            segment = marker + struct.pack(">H", length) + body
            if code == 0xE1:
                if body.startswith(b"Exif\x00\x00"):
                    orientation = _orientation(body[6:]) or orientation
                continue  # EXIF (GPS, camera, serial numbers) and XMP
            if code in (0xED, 0xFE) or (code == 0xE2 and body.startswith(b"MPF\x00")) or 0xE3 <= code <= 0xEC:
                continue  # IPTC, comments, MPF, vendor blocks
            kept.append(segment)
        if orientation and orientation != 1:
            exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: int(orientation)}, "Exif": {}, "GPS": {},
                                "1st": {}, "thumbnail": None})
            app1 = b"Exif\x00\x00" + exif[6:] if exif.startswith(b"Exif") else b"Exif\x00\x00" + exif
            # after APP0 (JFIF) if present, else right after SOI
            at = 2 if len(kept) > 1 and kept[1][:2] == b"\xff\xe0" else 1
            kept.insert(at, b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1)
        yield b"".join(kept) + marker
        # Scan data up to and including the first EOI (FF D9 cannot occur inside entropy-coded
        # data: a data byte FF is always followed by 00, and restart markers are D0-D7).
        prev = b""
        while True:
            block = f.read(_BLOCK)
            if not block:
                return
            joined = prev + block
            end = joined.find(b"\xff\xd9")
            if end >= 0:
                yield joined[: end + 2]
                return
            yield joined[:-1]
            prev = joined[-1:]


# -- same-length patches (MP4 / MOV / HEIF) -----------------------------------------------------

#: (start, end, data): write ``data`` (``end - start`` bytes) at ``start``, or zeros if None.
Patch = tuple[int, int, "bytes | None"]

_RENAME_IN = {b"moov": {b"udta", b"meta"}, b"trak": {b"udta", b"meta"}, b"": {b"uuid", b"meta"}}
_DESCEND = {b"": {b"moov"}, b"moov": {b"trak"}}


def _boxes(f, start: int, end: int):
    """(box start, header length, box end, type) of the ISO-BMFF boxes in ``start..end``."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            return
        box_size, box_type = struct.unpack(">I4s", head[:8])
        header = 8
        if box_size == 1 and len(head) >= 16:
            box_size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif box_size == 0:
            box_size = end - pos
        if box_size < header or pos + box_size > end:
            return  # damaged: stop here rather than guess
        yield pos, header, pos + box_size, box_type
        pos += box_size


def mp4_patches(path: Path) -> list[Patch]:
    """Metadata boxes renamed to ``free`` and zeroed (``udta`` with ``©xyz``, ``meta`` with
    Apple's location keys, top-level XMP ``uuid``), keeping the file's length."""
    patches: list[Patch] = []
    with open(path, "rb") as f:
        def walk(start: int, end: int, parent: bytes, depth: int) -> None:
            for box_start, header, box_end, box_type in _boxes(f, start, end):
                if box_type in _RENAME_IN.get(parent, ()):
                    patches.append((box_start + 4, box_start + 8, b"free"))
                    patches.append((box_start + header, box_end, None))
                elif box_type in _DESCEND.get(parent, ()) and depth < 3:
                    walk(box_start + header, box_end, box_type, depth + 1)

        walk(0, path.stat().st_size, b"", 0)
    return patches


def _uint(data: bytes, at: int, size: int) -> tuple[int, int]:
    return (int.from_bytes(data[at:at + size], "big") if size else 0), at + size


def heif_patches(path: Path) -> list[Patch]:
    """HEIC/HEIF/AVIF: the ``Exif`` and XMP (``mime``) items are turned into items of an
    unknown type (``zero``), which readers skip, and their bytes zeroed. Orientation lives in
    the ``irot``/``imir`` properties, not in EXIF, so the image shows the same.

    Raises:
        ValueError: the item tables cannot be read (the caller refuses the original).
    """
    patches: list[Patch] = []
    with open(path, "rb") as f:
        size = path.stat().st_size
        meta = next(((s, h, e) for s, h, e, t in _boxes(f, 0, size) if t == b"meta"), None)
        if meta is None:
            raise ValueError("no meta box")
        children = {t: (s, h, e) for s, h, e, t in _boxes(f, meta[0] + meta[1] + 4, meta[2])}
        if b"iinf" not in children or b"iloc" not in children:
            raise ValueError("no item tables")
        # iinf: which items are Exif or XMP
        s, h, e = children[b"iinf"]
        f.seek(s + h)
        version = f.read(4)[0]
        count_size = 2 if version == 0 else 4
        f.read(count_size)
        doomed: set[int] = set()
        for is_, ih, ie, it in _boxes(f, s + h + 4 + count_size, e):
            if it != b"infe":
                continue
            f.seek(is_ + ih)
            body = f.read(min(ie - is_ - ih, 512))
            v = body[0]
            if v < 2:
                continue
            id_size = 2 if v == 2 else 4
            item_id, at = _uint(body, 4, id_size)
            at += 2  # protection index
            item_type = body[at:at + 4]
            strings = body[at + 4:].split(b"\0")  # item name, then (for 'mime') the content type
            content_type = strings[1].lower() if item_type == b"mime" and len(strings) > 1 else b""
            if item_type == b"Exif" or b"xmp" in content_type or b"rdf" in content_type or b"xml" in content_type:
                doomed.add(item_id)
                patches.append((is_ + ih + at, is_ + ih + at + 4, b"zero"))
        # iloc: where their bytes are
        s, h, e = children[b"iloc"]
        f.seek(s + h)
        data = f.read(e - s - h)
        version = data[0]
        offset_size, length_size = data[4] >> 4, data[4] & 15
        base_size, index_size = data[5] >> 4, (data[5] & 15 if version in (1, 2) else 0)
        count, at = _uint(data, 6, 2 if version < 2 else 4)
        idat = children.get(b"idat")
        for _ in range(count):
            item_id, at = _uint(data, at, 2 if version < 2 else 4)
            method = 0
            if version in (1, 2):
                method, at = _uint(data, at, 2)
                method &= 15
            at += 2  # data reference index
            base, at = _uint(data, at, base_size)
            extents, at = _uint(data, at, 2)
            for _ in range(extents):
                at += index_size
                offset, at = _uint(data, at, offset_size)
                length, at = _uint(data, at, length_size)
                if item_id not in doomed:
                    continue
                if method == 0:
                    begin = base + offset
                elif method == 1 and idat is not None:
                    begin = idat[0] + idat[1] + base + offset
                else:
                    raise ValueError("metadata item stored in a way photobox cannot clean")
                if length == 0 or begin + length > size:
                    raise ValueError("metadata item outside the file")
                patches.append((begin, begin + length, None))
            if at > len(data):
                raise ValueError("damaged iloc")
    return patches


def read_patched(path: Path, start: int, length: int, patches: list[Patch]) -> Iterator[bytes]:
    """Bytes ``start .. start+length`` of ``path`` with the patches applied."""
    with open(path, "rb") as f:
        f.seek(start)
        pos, remaining = start, length
        while remaining > 0:
            block = f.read(min(_BLOCK, remaining))
            if not block:
                return
            end = pos + len(block)
            hits = [p for p in patches if p[0] < end and p[1] > pos]
            if hits:
                buf = bytearray(block)
                for p_start, p_end, p_data in hits:
                    lo, hi = max(p_start, pos), min(p_end, end)
                    buf[lo - pos:hi - pos] = bytes(hi - lo) if p_data is None else p_data[lo - p_start:hi - p_start]
                block = bytes(buf)
            yield block
            pos, remaining = end, remaining - len(block)
