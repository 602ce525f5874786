"""photobox.media._window.FileWindow: the one byte-range view EXIF (TIFF IFDs) and RAW previews share."""

from __future__ import annotations

import io

from PIL import Image

from photobox.media import _exif, decode
from photobox.media._window import FileWindow

DATA = bytes(range(256)) * 4  # 1024 bytes


def test_bounds_seek_and_tell():
    w = FileWindow(io.BytesIO(DATA), 100, 50)
    assert w.readable() and w.seekable() and w.tell() == 0
    assert w.read(10) == DATA[100:110] and w.tell() == 10
    assert w.read() == DATA[110:150] and w.read() == b"" and w.read(5) == b""
    assert w.seek(-5, io.SEEK_END) == 45 and w.read(100) == DATA[145:150]
    assert w.seek(-100, io.SEEK_CUR) == 0  # clamped at the start
    assert w.seek(5) == 5 and w.read(3) == DATA[105:108]
    assert w.seek(500) == 500 and w.read(1) == b""  # past the end: empty, never beyond the window


def test_readinto_and_buffered_reads():
    w = FileWindow(io.BytesIO(DATA), 1000, 100)  # the file ends 24 bytes in
    buf = bytearray(40)
    assert w.readinto(buf) == 24 and bytes(buf[:24]) == DATA[1000:]
    assert io.BufferedReader(FileWindow(io.BytesIO(DATA), 10, 20)).read() == DATA[10:30]


def test_budget_makes_reads_short():
    w = FileWindow(io.BytesIO(DATA), 0, len(DATA), budget=30)
    assert w.read(20) == DATA[:20]
    assert w.read(20) == DATA[20:30]  # budget spent part-way
    assert w.seek(0) == 0 and w.read(5) == b""  # and stays spent, wherever we seek


def test_magic_replaces_the_first_bytes_only():
    raw = b"IIU\x00" + DATA[4:64]
    w = FileWindow(io.BytesIO(b"junk" + raw), 4, len(raw), magic=b"II*\x00")
    assert w.read(2) == b"II" and w.read(4) == b"*\x00" + raw[4:6]
    assert w.seek(0) == 0 and w.read() == b"II*\x00" + raw[4:]
    w.seek(4)
    assert w.read(4) == raw[4:8]


def test_exif_and_decode_use_the_shared_window():
    assert not hasattr(_exif, "_BoundedTiff") and not hasattr(decode, "_Window")
    assert _exif.FileWindow is FileWindow and decode.FileWindow is FileWindow


def test_pillow_opens_an_embedded_jpeg_in_place():
    jpeg = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 30, 30)).save(jpeg, "JPEG")
    blob = b"\x00" * 333 + jpeg.getvalue() + b"trailing"
    with Image.open(FileWindow(io.BytesIO(blob), 333, len(jpeg.getvalue()))) as im:
        assert im.size == (16, 8) and im.convert("RGB").getpixel((8, 4))[0] > 150


def test_tiff_ifds_through_a_budgeted_window_at_an_offset():
    tiff = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "PhotoboxCam"  # Make
    exif[0x0110] = "Window 1"  # Model
    Image.new("RGB", (4, 4)).save(tiff, "TIFF", exif=exif)
    blob = b"prefix" + tiff.getvalue()
    tags = _exif.from_tiff_file(io.BytesIO(blob), len(blob), base=6)
    assert tags.ifd0.get(0x010F) == "PhotoboxCam" and tags.ifd0.get(0x0110) == "Window 1"
