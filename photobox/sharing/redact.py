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
* Anything else (HEIC, PNG, WebP…) is refused as an original; thumbnails and previews are
  re-encoded by photobox without metadata and are always available.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import piexif

__all__ = ["CLEANABLE", "can_clean", "jpeg_clean", "mp4_patches", "read_patched"]

_BLOCK = 256 * 1024
JPEG = {"image/jpeg"}
MP4 = {"video/mp4", "video/quicktime", "video/3gpp", "video/x-m4v"}
CLEANABLE = JPEG | MP4


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


# -- MP4 / MOV -------------------------------------------------------------------------------

_RENAME_IN = {b"moov": {b"udta", b"meta"}, b"trak": {b"udta", b"meta"}, b"": {b"uuid", b"meta"}}
_DESCEND = {b"": {b"moov"}, b"moov": {b"trak"}}


def mp4_patches(path: Path) -> list[tuple[int, int, int]]:
    """Metadata boxes as (box start, header length, box end): renamed to ``free`` and zeroed
    by :func:`read_patched`, keeping the file's length so byte ranges stay valid."""
    size = path.stat().st_size
    patches: list[tuple[int, int, int]] = []
    with open(path, "rb") as f:
        def walk(start: int, end: int, parent: bytes, depth: int) -> None:
            pos = start
            while pos + 8 <= end and depth < 4:
                f.seek(pos)
                head = f.read(16)
                if len(head) < 8:
                    return
                box_size, box_type = struct.unpack(">I4s", head[:8])
                if box_size == 1 and len(head) >= 16:
                    box_size = struct.unpack(">Q", head[8:16])[0]
                    header = 16
                elif box_size == 0:
                    box_size = end - pos
                    header = 8
                else:
                    header = 8
                if box_size < header or pos + box_size > end:
                    return  # damaged: stop here rather than guess
                if box_type in _RENAME_IN.get(parent, ()):
                    patches.append((pos, header, pos + box_size))
                elif box_type in _DESCEND.get(parent, ()):
                    walk(pos + header, pos + box_size, box_type, depth + 1)
                pos += box_size

        walk(0, size, b"", 0)
    return patches


def _overlay(buf: bytearray, pos: int, start: int, data: bytes | None, stop: int) -> None:
    """Write ``data`` (or zeros up to ``stop``) at file offset ``start`` into ``buf`` (file offset ``pos``)."""
    end = stop if data is None else start + len(data)
    lo, hi = max(start, pos), min(end, pos + len(buf))
    if lo >= hi:
        return
    if data is None:
        buf[lo - pos:hi - pos] = bytes(hi - lo)
    else:
        buf[lo - pos:hi - pos] = data[lo - start:hi - start]


def read_patched(path: Path, start: int, length: int, patches: list[tuple[int, int, int]]) -> Iterator[bytes]:
    """Bytes ``start .. start+length`` of ``path`` with each patched box renamed ``free`` and its
    contents zeroed (the location text must not merely be hidden from players)."""
    with open(path, "rb") as f:
        f.seek(start)
        pos, remaining = start, length
        while remaining > 0:
            block = f.read(min(_BLOCK, remaining))
            if not block:
                return
            end = pos + len(block)
            hits = [p for p in patches if p[0] < end and p[2] > pos]
            if hits:
                buf = bytearray(block)
                for box_start, header, box_end in hits:
                    _overlay(buf, pos, box_start + 4, b"free", 0)
                    _overlay(buf, pos, box_start + header, None, box_end)
                block = bytes(buf)
            yield block
            pos, remaining = end, remaining - len(block)
