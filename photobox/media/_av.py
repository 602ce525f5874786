"""What the video modules share: their errors, :class:`VideoInfo`, and opening a file with FFmpeg.

:mod:`photobox.media.video` (probe, poster frames) and :mod:`photobox.media._transcode`
(web renditions) both use these; ``video`` re-exports the public names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from photobox.media.decode import DecodeError

__all__ = ["MAX_DECODE_ERRORS", "TranscodeCancelled", "VideoError", "VideoInfo", "audio_stream", "codec_name",
           "damaged_stream", "ffmpeg_words", "no_picture", "open_video", "video_stream"]

# Bounds for hostile input. FFmpeg's own probing defaults (5 MB / 5 s) are fine
# for sane files; the I/O timeout is enforced through FFmpeg's interrupt
# callback, which also fires inside its internal read loops.
_OPEN_OPTIONS = {"probesize": str(20 * 1024 * 1024), "analyzeduration": str(20_000_000)}
#: Corrupt packets skipped before a decode gives up on the file.
MAX_DECODE_ERRORS = 50


class VideoError(DecodeError):
    """The file cannot be probed, decoded or transcoded as a video."""


class TranscodeCancelled(Exception):
    """``should_stop`` asked :func:`transcode` to stop; nothing was written."""


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What :func:`probe` found out about a video file.

    Attributes:
        container: Normalised container: ``"mp4"``, ``"mov"``, ``"3gp"``,
            ``"webm"``, ``"matroska"``, ``"avi"``, ``"mpegts"``, ... (the
            FFmpeg demuxer name, with the MOV/MP4/3GP family split by brand).
        format_name: FFmpeg's demuxer name as is (e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``).
        video_codec: FFmpeg codec name (``"h264"``, ``"hevc"``, ``"mjpeg"``...).
        audio_codec: Codec of the first audio stream, or None.
        width: Coded frame width (before rotation).
        height: Coded frame height (before rotation).
        display_width: Width as shown: rotation and pixel aspect ratio applied.
        display_height: Height as shown.
        rotation: Clockwise degrees to rotate for display (exiftool convention).
        duration: Seconds, or None when unknown.
        fps: Average frame rate, or None.
        has_audio: True when there is an audio stream.
        pix_fmt: Decoder pixel format (``"yuv420p"``, ``"yuv420p10le"``...).
        profile: Codec profile name (``"High"``, ``"Main 10"``...), or None.
        bit_rate: Container bit rate in bit/s, or None.
    """

    container: str
    format_name: str
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    display_width: int
    display_height: int
    rotation: int
    duration: float | None
    fps: float | None
    has_audio: bool
    pix_fmt: str | None
    profile: str | None
    bit_rate: int | None


def open_video(path: Path, timeout: float) -> av.container.InputContainer:
    """Open ``path`` with FFmpeg, bounded by ``timeout`` seconds per open and read.

    Raises:
        VideoError: the file cannot be read, is empty, or FFmpeg cannot open it as a video.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoError(f"cannot read the file ({exc.strerror or exc})") from exc
    if size == 0:
        raise VideoError("the file is empty (0 bytes), there is no video in it")
    try:
        return av.open(
            str(path),
            "r",
            options=_OPEN_OPTIONS,
            timeout=(timeout, timeout),
            metadata_errors="replace",
        )
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoError("not a video FFmpeg can open (expected a container such as MP4, MOV, MTS or AVI; "
                         f"FFmpeg says: {ffmpeg_words(exc)})") from exc


def ffmpeg_words(exc: BaseException) -> str:
    """What FFmpeg or PyAV said, as words: without the errno number and the file's path."""
    text = getattr(exc, "strerror", None) or str(exc)
    # "[Errno 1094995529] Invalid data found when processing input: '/path'": the number is
    # FFmpeg's error code, the path is ours (and not for a message a share could show).
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text).split(": '", 1)[0].strip().rstrip(".")
    return text or f"no details ({type(exc).__name__})"


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """First real video stream (cover art / attached pictures are skipped).

    Raises:
        VideoError: there is none; the message says which streams there are.
    """
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            if stream.codec_context.width and stream.codec_context.height:
                return stream
    found = [f"{s.type} ({s.codec_context.name if s.codec_context else 'unknown codec'})"
             for s in container.streams]
    raise VideoError("the file has no video stream with a picture size (found: "
                     f"{', '.join(found[:6]) if found else 'no streams at all'})")


def audio_stream(container: av.container.InputContainer):
    """First audio stream FFmpeg can decode (newer iPhones add an APAC spatial
    audio track next to the AAC one; an undecodable track must not win)."""
    for stream in container.streams.audio:
        cc = stream.codec_context
        if cc is not None and cc.codec is not None and cc.codec.is_decoder:
            return stream
    return None


def codec_name(stream) -> str:
    """FFmpeg's name of a stream's codec (``h264``, ``mjpeg``), or ``unknown``."""
    cc = stream.codec_context
    return (cc.name if cc is not None else None) or "unknown"


def damaged_stream(stream, exc: BaseException) -> str:
    """The message for a stream whose packets keep failing to decode."""
    return (f"the video data is damaged: more than {MAX_DECODE_ERRORS} packets of its "
            f"{codec_name(stream)} stream could not be decoded (FFmpeg says: {ffmpeg_words(exc)})")


def no_picture(codec: str) -> str:
    """The message for a video none of whose pictures decodes (a poster, a transcode)."""
    return (f"no picture could be decoded from its {codec} video stream (expected at least one frame; "
            "the video data is missing or damaged)")
