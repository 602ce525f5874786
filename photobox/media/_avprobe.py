"""Video facts from PyAV (ffmpeg) without decoding frames.

We open the container (ffmpeg reads headers, bounded by probesize and
analyzeduration), read stream parameters and metadata, and for AVCHD
(MPEG-TS) clips demux a few packets of the H.264 stream to read the camera's
MDPM user data (recording date with zone, make, model), which is where
camcorders keep what other formats put in EXIF.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct
from pathlib import Path
from typing import Any

from . import _dates

# ffmpeg reads at most this much while probing streams.
_OPTIONS = {"probesize": "5000000", "analyzeduration": "5000000"}
_MDPM_UUID = b"\x17\xee\x8c\x60\xf8\x4d\x11\xd9\x8c\xd6\x08\x00\x20\x0c\x9a\x66MDPM"
_MDPM_PACKETS = 12      # packets demuxed while looking for MDPM
_MDPM_MAKES = {0x0103: "Panasonic", 0x0108: "Sony", 0x1011: "Canon", 0x1104: "JVC"}


@dataclasses.dataclass(slots=True)
class AvInfo:
    """What ffmpeg reports for a media file."""

    format: str | None = None
    duration: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    mdpm: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None


def probe(path: Path, *, read_mdpm: bool = False) -> AvInfo:
    """Open a video with PyAV and collect its stream parameters.

    Args:
        path: The file.
        read_mdpm: Also demux a few H.264 packets for AVCHD MDPM metadata.

    Returns:
        AvInfo; ``error`` is set when ffmpeg cannot open the file.
    """
    info = AvInfo()
    try:
        import av
    except ImportError:  # pragma: no cover - PyAV is a hard dependency
        info.error = "PyAV not installed"
        return info
    try:
        container = av.open(str(path), options=_OPTIONS, metadata_errors="ignore")
    except Exception as exc:  # av raises a zoo of error types on junk
        info.error = f"{type(exc).__name__}: {exc}"[:200]
        return info
    try:
        _fill(container, info)
        if read_mdpm:
            info.mdpm = _read_mdpm(container)
    except Exception as exc:
        info.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        container.close()
    return info


def _fill(container: Any, info: AvInfo) -> None:
    # A damaged file can open without a recognised container format (found by scripts/bench fuzz).
    info.format = container.format.name if container.format is not None else None
    if container.duration:
        info.duration = container.duration / 1_000_000
    info.tags = {str(k): str(v) for k, v in (container.metadata or {}).items()}
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is not None:
        ctx = video.codec_context
        info.video_codec = ctx.name if ctx is not None else None
        # Without a codec context PyAV's stream has no width at all (AttributeError), as fuzzing found.
        info.width, info.height = getattr(video, "width", None) or None, getattr(video, "height", None) or None
        rate = video.average_rate or video.guessed_rate
        if rate:
            info.fps = round(float(rate), 3)
        for key, value in (video.metadata or {}).items():
            info.tags.setdefault(str(key), str(value))
    if audio is not None and audio.codec_context is not None:
        info.audio_codec = audio.codec_context.name


def _read_mdpm(container: Any) -> dict[str, Any]:
    if not container.streams.video:
        return {}
    stream = container.streams.video[0]
    for count, packet in enumerate(container.demux(stream)):
        if count >= _MDPM_PACKETS:
            break
        data = bytes(packet)
        pos = data.find(_MDPM_UUID)
        if pos >= 0:
            # Undo H.264 emulation prevention (00 00 03 -> 00 00) before
            # reading the 5-byte MDPM records.
            return parse_mdpm(data[pos + len(_MDPM_UUID):].replace(b"\x00\x00\x03", b"\x00\x00"))
    return {}


def parse_mdpm(data: bytes) -> dict[str, Any]:
    """Decode the MDPM records that follow the UUID + ``MDPM`` signature.

    Layout (as documented by exiftool's H264 module): a count byte, then
    records of one tag byte and four data bytes.  0x18/0x19 hold the BCD
    recording time with a zone byte, 0xe0 the maker code, 0xe4-0xe6 the
    model name (Sony).

    Returns:
        Dict with optional ``taken`` (Stamp), ``make``, ``model``,
        ``exposure_time`` and ``f_number``.
    """
    out: dict[str, Any] = {}
    if not data:
        return out
    records: dict[int, bytes] = {}
    for i in range(data[0]):
        record = data[1 + 5 * i:6 + 5 * i]
        if len(record) < 5:
            break
        records.setdefault(record[0], record[1:])
    if 0x18 in records and 0x19 in records:
        out["taken"] = _mdpm_time(records[0x18] + records[0x19])
    if 0xE0 in records:
        code = struct.unpack(">H", records[0xE0][:2])[0]
        out["make"] = _MDPM_MAKES.get(code)
    for tag, key in ((0xA0, "exposure_time"), (0xA1, "f_number")):
        if tag in records:
            num, den = struct.unpack(">HH", records[tag][:4])
            if den:
                out[key] = num / den
    model = b"".join(records.get(t, b"") for t in (0xE4, 0xE5, 0xE6))
    model_text = model.split(b"\x00", 1)[0].decode("latin-1").strip()
    if model_text and out.get("make") == "Sony":
        out["model"] = model_text
    return out


def _mdpm_time(raw: bytes) -> _dates.Stamp | None:
    zone, digits = raw[0], raw[1:]
    try:
        year, month, day, hour, minute, second = (
            int(f"{digits[0]:02x}{digits[1]:02x}"), *(int(f"{b:02x}") for b in digits[2:7]))
        when = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:   # not BCD / impossible date
        return None
    # Zone byte: 0x20 sign, 0x1e hours, 0x01 half hour (0x40 is a DST flag;
    # the stored offset already includes it, e.g. +02:00 DST for CEST).
    offset = ((zone >> 1) & 0x0F) * 60 + (30 if zone & 0x01 else 0)
    if zone & 0x20:
        offset = -offset
    return _dates.Stamp(when, offset, True)
