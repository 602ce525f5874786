"""Video probing, poster frames and web transcoding with PyAV (FFmpeg).

All functions take a path and bound their work (FFmpeg I/O timeouts, packet and
error caps, a wall-clock deadline) because hostile or broken files are normal
in a photo library: a half-copied MOV without its ``moov`` atom, an MP4 whose
``mdat`` claims to be larger than the file, a zero-byte upload.

Rotation uses **exiftool's sign convention** everywhere in photobox: the
clockwise angle, 0/90/180/270, by which the frame must be turned for display
(an iPhone portrait clip is 90). FFmpeg/PyAV report the display-matrix angle
counter-clockwise (``frame.rotation == -90`` for the same clip), so the value
is negated once, in :func:`_exif_rotation`.

Failures raise :class:`VideoError`, a :class:`~photobox.media.decode.DecodeError`
subclass, so the thumbnail pipeline handles photos and videos alike.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
from PIL import Image

from photobox.media._av import (
    MAX_DECODE_ERRORS,
    TranscodeCancelled,
    VideoError,
    VideoInfo,
    audio_stream,
    codec_name,
    damaged_stream,
    ffmpeg_words,
    no_picture,
    open_video,
    video_stream,
)
from photobox.media._transcode import pick_h264_encoder, transcode

log = logging.getLogger(__name__)

__all__ = [
    "Poster",
    "TranscodeCancelled",
    "VideoError",
    "VideoInfo",
    "browser_playable",
    "extract_poster",
    "pick_h264_encoder",
    "poster_frame",
    "probe",
    "transcode",
]

_MAX_PACKETS_FOR_FRAME = 3000  # long-GOP camera files need a few hundred at most

_PLAYABLE_VIDEO = {"h264", "vp8", "vp9", "av1"}
_PLAYABLE_AUDIO = {None, "aac", "mp3", "opus"}
_WEBM_AUDIO = {None, "opus", "vorbis"}
_PLAYABLE_CONTAINERS = {"mp4", "mov", "webm"}
# Browsers only decode 8-bit 4:2:0 H.264 (High 10 / 4:2:2 from cameras fail).
_H264_PLAYABLE_PIX_FMTS = {None, "yuv420p", "yuvj420p", "nv12"}


# --------------------------------------------------------------------------- helpers


def _exif_rotation(frame: av.VideoFrame) -> int:
    """PyAV's counter-clockwise display rotation -> exiftool's clockwise 0/90/180/270."""
    try:
        ccw = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return int(round(-ccw / 90.0)) * 90 % 360


def _duration(container, stream) -> float | None:
    if container.duration and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE units
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _sar(stream) -> Fraction:
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    try:
        sar = Fraction(sar) if sar else Fraction(1)
    except (TypeError, ValueError, ZeroDivisionError):
        return Fraction(1)
    # Garbage SAR values exist in the wild; ignore anything absurd.
    return sar if Fraction(1, 4) <= sar <= 4 else Fraction(1)


def _container_name(container, video_codec: str | None, audio_codec: str | None) -> str:
    fmt = container.format.name or ""
    if fmt.startswith("mov,mp4"):
        brand = (container.metadata.get("major_brand") or "").strip().lower()
        if brand == "qt":
            return "mov"
        if brand.startswith("3g"):
            return "3gp"
        return "mp4"
    if fmt.startswith("matroska"):
        webm = video_codec in {"vp8", "vp9", "av1"} and audio_codec in _WEBM_AUDIO
        return "webm" if webm else "matroska"
    return fmt.split(",", 1)[0]


def _decoded_frames(
    container, stream, *, deadline: float, max_packets: int = _MAX_PACKETS_FOR_FRAME
) -> Iterator[av.VideoFrame]:
    """Decode frames of one stream, skipping (bounded) corrupt packets."""
    errors = 0
    packets = 0
    try:
        for packet in container.demux(stream):
            packets += 1
            if packets > max_packets or time.monotonic() > deadline:
                return
            try:
                frames = packet.decode()
            except (av.error.InvalidDataError, av.error.UndefinedError, ValueError) as exc:
                errors += 1
                if errors > MAX_DECODE_ERRORS:
                    raise VideoError(damaged_stream(stream, exc)) from exc
                continue
            yield from frames
    except av.error.FFmpegError as exc:
        # A read error after some frames (truncated file) simply ends the stream.
        log.debug("demux stopped: %s", exc)
    except EOFError:
        return


# --------------------------------------------------------------------------- probe


def probe(path: str | os.PathLike[str], *, timeout: float = 15.0) -> VideoInfo:
    """Read a video's stream parameters (decodes at most the first frame).

    The first frame is decoded because that is where FFmpeg exposes the display
    matrix (rotation) reliably for every container, and the true pixel format.

    Args:
        path: Video file.
        timeout: Seconds allowed for opening and for each read.

    Returns:
        A :class:`VideoInfo`.

    Raises:
        VideoError: Not a video, no video stream, or unreadable.
    """
    path = Path(path)
    deadline = time.monotonic() + timeout
    with open_video(path, timeout) as container:
        vs = video_stream(container)
        audio = audio_stream(container)
        cc = vs.codec_context
        video_codec = cc.codec.canonical_name if cc.codec else cc.name
        audio_codec = None
        if audio is not None:
            acc = audio.codec_context
            audio_codec = acc.codec.canonical_name if acc.codec else acc.name
        rate = vs.average_rate or vs.guessed_rate
        info = dict(
            container=_container_name(container, video_codec, audio_codec),
            format_name=container.format.name or "",
            video_codec=video_codec,
            audio_codec=audio_codec,
            duration=_duration(container, vs),
            fps=float(rate) if rate else None,
            has_audio=audio is not None,
            profile=cc.profile or None,
            bit_rate=container.bit_rate or None,
        )
        width, height, pix_fmt = cc.width, cc.height, cc.pix_fmt
        rotation = 0
        for frame in _decoded_frames(container, vs, deadline=deadline):
            rotation = _exif_rotation(frame)
            width, height = frame.width, frame.height
            pix_fmt = frame.format.name
            break
        sar = _sar(vs)
    dw, dh = round(width * sar), height
    if rotation in (90, 270):
        dw, dh = dh, dw
    return VideoInfo(
        width=width,
        height=height,
        display_width=dw,
        display_height=dh,
        rotation=rotation,
        pix_fmt=pix_fmt,
        **info,
    )


def browser_playable(info: VideoInfo) -> bool:
    """Whether browsers can play the file as is (no transcode needed).

    Playable: H.264 (8-bit 4:2:0), VP8, VP9 or AV1 video with AAC, MP3, Opus or
    no audio, in MP4/MOV (serve MOV as ``video/mp4``) or WebM (Opus/Vorbis
    audio). Not playable: HEVC (no Chrome/Firefox support everywhere), MPEG-2,
    MPEG-4 Part 2, MJPEG, MTS/M2TS, AVI, 3GP (AMR audio), PCM/AC-3 audio,
    10-bit or 4:2:2 H.264.

    Args:
        info: Result of :func:`probe`.

    Returns:
        True when the original can be served to a ``<video>`` element.
    """
    if info.container not in _PLAYABLE_CONTAINERS:
        return False
    if info.video_codec not in _PLAYABLE_VIDEO:
        return False
    if info.video_codec == "h264" and info.pix_fmt not in _H264_PLAYABLE_PIX_FMTS:
        return False
    if info.container == "webm":
        return info.audio_codec in _WEBM_AUDIO
    return info.audio_codec in _PLAYABLE_AUDIO


# --------------------------------------------------------------------------- poster


@dataclass(frozen=True, slots=True)
class Poster:
    """A poster frame plus the geometry of the video it came from.

    Attributes:
        image: ``RGB`` image, rotated and with square pixels (maybe scaled down).
        display_width: Full-size display width of the video (rotation and pixel
            aspect ratio applied, before any scaling of ``image``).
        display_height: Full-size display height.
        rotation: Clockwise rotation that was applied (exiftool convention).
        time: Timestamp of the frame in seconds from the start, if known.
    """

    image: Image.Image
    display_width: int
    display_height: int
    rotation: int
    time: float | None


def poster_frame(
    path: str | os.PathLike[str],
    at: float | None = None,
    *,
    max_short_side: int | None = None,
    timeout: float = 30.0,
) -> Image.Image:
    """Decode one representative frame as a display-ready RGB image.

    Seeks to ``at`` seconds -- by default 10 % of the duration, at most 1 s, so
    fade-ins and black first frames are skipped -- then decodes forward to the
    first frame at or after it. Rotation and non-square pixels are applied.

    Args:
        path: Video file.
        at: Time in seconds from the start, or None for the default.
        max_short_side: Scale down (in FFmpeg's scaler, before the RGB
            conversion) so the short side is at most this many pixels.
        timeout: Seconds allowed for I/O and decoding in total.

    Returns:
        An ``RGB`` Pillow image.

    Raises:
        VideoError: The file has no decodable video frame.
    """
    return extract_poster(path, at, max_short_side=max_short_side, timeout=timeout).image


def extract_poster(
    path: str | os.PathLike[str],
    at: float | None = None,
    *,
    max_short_side: int | None = None,
    timeout: float = 30.0,
) -> Poster:
    """Like :func:`poster_frame`, also returning the video's display size.

    Args:
        path: Video file.
        at: See :func:`poster_frame`.
        max_short_side: See :func:`poster_frame`.
        timeout: See :func:`poster_frame`.

    Returns:
        A :class:`Poster`.

    Raises:
        VideoError: The file has no decodable video frame.
    """
    path = Path(path)
    deadline = time.monotonic() + timeout
    frame = None
    with open_video(path, timeout) as container:
        vs = video_stream(container)
        sar = _sar(vs)
        duration = _duration(container, vs)
        if at is None:
            at = min(1.0, 0.1 * duration) if duration else 0.0
        tb = vs.time_base
        start = float(vs.start_time * tb) if vs.start_time is not None and tb else 0.0
        if at > 0 and tb:
            try:
                container.seek(int((start + at) / tb), stream=vs, backward=True)
            except (av.error.FFmpegError, OverflowError, ValueError):
                at = 0.0  # unseekable (some MTS/AVI): fall back to the first frame
        for candidate in _decoded_frames(container, vs, deadline=deadline):
            frame = candidate
            t = candidate.time
            if t is None or t + 1e-3 >= start + at:
                break
        if frame is not None:
            return _poster(frame, sar, max_short_side, start)
    if at:
        # The seek landed past the last keyframe (short or broken index): retry
        # from the very beginning.
        remaining = max(1.0, deadline - time.monotonic())
        with open_video(path, remaining) as container:
            vs = video_stream(container)
            start = float(vs.start_time * vs.time_base) if vs.start_time is not None else 0.0
            for first in _decoded_frames(container, vs, deadline=time.monotonic() + remaining):
                return _poster(first, sar, max_short_side, start)
    raise VideoError(no_picture(codec_name(vs)))


def _poster(frame: av.VideoFrame, sar: Fraction, max_short_side: int | None, start: float) -> Poster:
    rotation = _exif_rotation(frame)
    dw, dh = max(2, round(frame.width * sar)), frame.height
    if rotation in (90, 270):
        dw, dh = dh, dw
    t = frame.time - start if frame.time is not None else None
    return Poster(_frame_to_image(frame, sar, max_short_side), dw, dh, rotation, t)


def _frame_to_image(frame: av.VideoFrame, sar: Fraction, max_short_side: int | None) -> Image.Image:
    rotation = _exif_rotation(frame)
    w, h = frame.width, frame.height
    dw = max(2, round(w * sar))  # anamorphic (HDV 1440x1080, DV) -> square pixels
    dh = h
    if max_short_side and min(dw, dh) > max_short_side:
        scale = max_short_side / min(dw, dh)
        dw, dh = max(2, round(dw * scale)), max(2, round(dh * scale))
    kwargs = {}
    if (dw, dh) != (w, h):
        kwargs = {"width": dw, "height": dh, "interpolation": "AREA"}
    try:
        image = frame.to_image(**kwargs)
    except (ValueError, av.error.FFmpegError) as exc:
        raise VideoError(f"a decoded {w}x{h} {frame.format.name} picture could not be converted to RGB "
                         f"(FFmpeg says: {ffmpeg_words(exc)})") from exc
    # exiftool 90 = turn clockwise; PIL's ROTATE_* constants are counter-clockwise.
    method = {
        90: Image.Transpose.ROTATE_270,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }.get(rotation)
    return image.transpose(method) if method is not None else image
