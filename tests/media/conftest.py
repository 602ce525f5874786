"""Fixtures that build metadata test files from scratch (nothing binary in git).

Fixture names start with ``md_`` so they do not collide with other media tests.
"""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import piexif
import pytest
from PIL import Image


def exif_blob(*, make: str | None = None, model: str | None = None,
              orientation: int | None = None, taken: str | None = None,
              subsec: str | None = None, offset: str | None = None,
              gps: tuple[float, float, float] | None = None,
              makernote: bytes | None = None,
              extra: dict[int, Any] | None = None,
              gps_extra: dict[int, Any] | None = None) -> bytes:
    """An EXIF blob written by piexif (an independent writer).

    ``extra`` holds additional Exif-IFD tags keyed by tag number, ``gps_extra`` GPS-IFD ones.
    """
    zeroth: dict[int, Any] = {}
    exif: dict[int, Any] = dict(extra or {})
    gps_ifd: dict[int, Any] = {}
    if make:
        zeroth[piexif.ImageIFD.Make] = make.encode()
    if model:
        zeroth[piexif.ImageIFD.Model] = model.encode()
    if orientation is not None:
        zeroth[piexif.ImageIFD.Orientation] = orientation
    if taken:
        exif[piexif.ExifIFD.DateTimeOriginal] = taken.encode()
    if subsec:
        exif[piexif.ExifIFD.SubSecTimeOriginal] = subsec.encode()
    if offset:
        exif[piexif.ExifIFD.OffsetTimeOriginal] = offset.encode()
    if makernote is not None:
        exif[piexif.ExifIFD.MakerNote] = makernote
    if gps:
        lat, lon, alt = gps
        gps_ifd = {
            piexif.GPSIFD.GPSLatitudeRef: b"S" if lat < 0 else b"N",
            piexif.GPSIFD.GPSLatitude: _dms(abs(lat)),
            piexif.GPSIFD.GPSLongitudeRef: b"W" if lon < 0 else b"E",
            piexif.GPSIFD.GPSLongitude: _dms(abs(lon)),
            piexif.GPSIFD.GPSAltitudeRef: 1 if alt < 0 else 0,
            piexif.GPSIFD.GPSAltitude: _rational(abs(alt)),
        }
    gps_ifd.update(gps_extra or {})
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps_ifd})


def _rational(value: float) -> tuple[int, int]:
    frac = Fraction(value).limit_denominator(1_000_000)
    return frac.numerator, frac.denominator


def _dms(value: float) -> tuple[tuple[int, int], ...]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return (degrees, 1), (minutes, 1), _rational(round(seconds, 4))


def app1(payload: bytes) -> bytes:
    """A JPEG APP1 segment around ``payload``."""
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def xmp_segment(xmp: str) -> bytes:
    """An APP1 XMP segment."""
    return app1(b"http://ns.adobe.com/xap/1.0/\x00" + xmp.encode())


def jpeg_bytes(size: tuple[int, int] = (64, 48), *, exif: bytes | None = None,
               segments: bytes = b"", quality: int = 80) -> bytes:
    """A real (decodable) JPEG with optional EXIF and extra segments after SOI."""
    buf = io.BytesIO()
    image = Image.new("RGB", size, (200, 80, 40))
    image.save(buf, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    data = buf.getvalue()
    return data[:2] + segments + data[2:]


def mp4_bytes(path: Path, *, frames: int = 10, rate: int = 10, size: tuple[int, int] = (64, 48),
              metadata: dict[str, str] | None = None, rotation: int | None = None,
              container_options: dict[str, str] | None = None) -> bytes:
    """Encode a tiny MPEG-4 Part 2 clip with PyAV and return its bytes."""
    import av

    options = dict(container_options or {})
    with av.open(str(path), "w", format="mp4", options=options) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            array = np.full((size[1], size[0], 3), (i * 20) % 255, np.uint8)
            frame = Image.fromarray(array)
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


@pytest.fixture
def md_build(tmp_path: Path) -> SimpleNamespace:
    """Builders for metadata tests.

    ``exif(...)``, ``jpeg(...)``, ``app1(...)``, ``xmp_segment(...)`` return
    bytes; ``mp4(**kw)`` encodes a clip with PyAV and returns its bytes;
    ``write(name, data)`` stores bytes under tmp_path and returns the path.
    """
    counter = iter(range(10_000))

    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    def mp4(**kwargs: Any) -> bytes:
        return mp4_bytes(tmp_path / f"_clip{next(counter)}.mp4", **kwargs)

    return SimpleNamespace(exif=exif_blob, jpeg=jpeg_bytes, app1=app1,
                           xmp_segment=xmp_segment, mp4=mp4, write=write, dir=tmp_path)


_REPORTS = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def md_report(request: pytest.FixtureRequest):
    """Collect text shown in the terminal summary (visible without ``-s``)."""
    reports = request.config.stash.setdefault(_REPORTS, [])
    return reports.append


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    for report in config.stash.get(_REPORTS, []):
        terminalreporter.write_sep("-", "photobox metadata: corpus agreement")
        terminalreporter.write_line(report)
