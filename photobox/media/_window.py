"""A read-only file object over a byte range of another file, for parsers that want one.

Pillow opens an embedded JPEG preview of a RAW file (``decode``) and walks the IFDs of a
TIFF-structured file (``_exif``) through a file object; :class:`FileWindow` gives it
``f[offset:offset+length]`` in place, without copying megabytes into a ``BytesIO``.
"""

from __future__ import annotations

import io
from typing import BinaryIO


class FileWindow(io.RawIOBase):
    """Read-only, seekable view of ``f[offset:offset+length]``; positions are relative to ``offset``.

    Args:
        f: the underlying binary file (seeked before every read, so it may be shared).
        offset: where the window starts in ``f``.
        length: how many bytes it spans; reads stop there.
        budget: total bytes the window will ever return (a hostile TIFF IFD can declare
            huge counts pointing back at the whole file); once spent, reads come back short,
            which Pillow treats as a truncated tag and skips. ``None``: no limit.
        magic: bytes shown in place of the window's first bytes. Panasonic RW2 (``IIU\\0``)
            and Olympus ORF (``IIRO``/``MMOR``) are TIFF with a private magic number;
            presenting the standard one lets Pillow walk their IFDs.
        tail: bytes shown after the window's last byte (they count in its length). A JPEG
            cut off mid-scan gets its end-of-image marker this way, so libjpeg decodes what
            is there instead of Pillow refusing the file (``decode``).
    """

    def __init__(self, f: BinaryIO, offset: int, length: int, *, budget: int | None = None,
                 magic: bytes | None = None, tail: bytes = b"") -> None:
        super().__init__()
        self._f, self._off, self._len = f, offset, length + len(tail)
        self._budget = budget
        self._magic = magic
        self._tail, self._tail_at = tail, length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._len}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        remaining = self._len - self._pos
        if n is None or n < 0 or n > remaining:
            n = max(0, remaining)
        if self._budget is not None:
            n = min(n, self._budget)
        if n <= 0:
            return b""
        if self._budget is not None:
            self._budget -= n
        data = b""
        if self._pos < self._tail_at:
            self._f.seek(self._off + self._pos)
            data = self._f.read(min(n, self._tail_at - self._pos))
        if self._tail and self._pos + len(data) >= self._tail_at and len(data) < n:
            start = self._pos + len(data) - self._tail_at
            data += self._tail[start:start + n - len(data)]
        if self._magic and self._pos < len(self._magic):
            fixed = self._magic[self._pos:]
            data = fixed[:len(data)] + data[len(fixed):]
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buf) -> int:  # type: ignore[override]
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)
