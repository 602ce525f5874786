"""Tiny real media files made by the tests (no binary fixtures in the repository)."""

from __future__ import annotations

import hashlib
import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import piexif
from PIL import Image


def _rational(value: float, denominator: int = 10000) -> tuple[int, int]:
    return int(round(value * denominator)), denominator


def _gps(lat: float, lon: float) -> dict:
    def dms(v: float):
        v = abs(v)
        d = int(v)
        m = int((v - d) * 60)
        s = (v - d - m / 60) * 3600
        return ((d, 1), (m, 1), _rational(s, 100))

    return {
        piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
        piexif.GPSIFD.GPSLatitude: dms(lat),
        piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
        piexif.GPSIFD.GPSLongitude: dms(lon),
    }


def jpeg_bytes(*, taken: str | None = "2021:07:14 15:30:00", offset: str | None = "+02:00", size=(320, 240),
               seed: int = 0, gps: tuple[float, float] | None = None, make: str = "Pixelcam",
               model: str = "PC-1", orientation: int = 1, live_id: str | None = None,
               gps_fix: tuple[str, tuple[int, int, int]] | None = None) -> bytes:
    """A JPEG with EXIF (date, offset, camera, optional GPS and GPS fix time) and photo-like pixels.

    ``gps_fix``: (GPSDateStamp ``"YYYY:MM:DD"``, (hours, minutes, seconds) of GPSTimeStamp), UTC.
    """
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    zeroth = {piexif.ImageIFD.Make: make.encode(), piexif.ImageIFD.Model: model.encode(),
              piexif.ImageIFD.Orientation: orientation}
    exif_ifd = {}
    if taken:
        exif_ifd[piexif.ExifIFD.DateTimeOriginal] = taken.encode()
    if offset:
        exif_ifd[0x9011] = offset.encode()  # OffsetTimeOriginal
    gps_ifd = _gps(*gps) if gps else {}
    if gps_fix:
        gps_ifd[piexif.GPSIFD.GPSDateStamp] = gps_fix[0].encode()
        gps_ifd[piexif.GPSIFD.GPSTimeStamp] = tuple((v, 1) for v in gps_fix[1])
    data = {"0th": zeroth, "Exif": exif_ifd, "GPS": gps_ifd, "1st": {}, "thumbnail": None}
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85, exif=piexif.dump(data))
    return buf.getvalue()


def png_bytes(size=(64, 48), color=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def mp4_file(path: Path, *, seconds: float = 1.0, size=(160, 120), codec: str = "h264", fps: int = 10) -> Path:
    """A short real video written by PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec if codec != "h264" else _h264(), rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            arr = np.full((size[1], size[0], 3), (i * 20) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def mjpeg_without_pictures(path: Path, *, size=(160, 120)) -> Path:
    """A MOV whose container and stream headers are fine but whose frames are zeros: FFmpeg
    opens it, and no picture decodes (so its pixel format stays unknown)."""
    import av

    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuvj420p"
        for i in range(5):
            arr = np.full((size[1], size[0], 3), i * 40, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = bytearray(path.read_bytes())
    at = data.index(b"mdat")
    end = at - 4 + int.from_bytes(data[at - 4:at], "big")
    data[at + 4:end] = bytes(end - at - 4)
    path.write_bytes(bytes(data))
    return path


def audio_only_mp4(path: Path) -> Path:
    """An MP4 holding one AAC stream and no video."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _h264() -> str:
    import av

    for name in ("libx264", "h264", "libopenh264"):
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
                return name
            except Exception:
                continue
    return "mpeg4"


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()
