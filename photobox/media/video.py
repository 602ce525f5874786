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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import av.filter
from PIL import Image

from photobox.media.decode import DecodeError

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

# Bounds for hostile input. FFmpeg's own probing defaults (5 MB / 5 s) are fine
# for sane files; the I/O timeout is enforced through FFmpeg's interrupt
# callback, which also fires inside its internal read loops.
_OPEN_OPTIONS = {"probesize": str(20 * 1024 * 1024), "analyzeduration": str(20_000_000)}
_MAX_PACKETS_FOR_FRAME = 3000  # long-GOP camera files need a few hundred at most
_MAX_DECODE_ERRORS = 50

_PLAYABLE_VIDEO = {"h264", "vp8", "vp9", "av1"}
_PLAYABLE_AUDIO = {None, "aac", "mp3", "opus"}
_WEBM_AUDIO = {None, "opus", "vorbis"}
_PLAYABLE_CONTAINERS = {"mp4", "mov", "webm"}
# Browsers only decode 8-bit 4:2:0 H.264 (High 10 / 4:2:2 from cameras fail).
_H264_PLAYABLE_PIX_FMTS = {None, "yuv420p", "yuvj420p", "nv12"}


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


# --------------------------------------------------------------------------- helpers


def _open(path: Path, timeout: float) -> av.container.InputContainer:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise VideoError("empty file")
    try:
        return av.open(
            str(path),
            "r",
            options=_OPEN_OPTIONS,
            timeout=(timeout, timeout),
            metadata_errors="replace",
        )
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoError(f"not a readable video ({_short(exc)})") from exc


def _short(exc: BaseException) -> str:
    msg = str(exc)
    # PyAV appends the file name to FFmpeg errors; keep messages path-free.
    return msg.split(": '", 1)[0] if ": '" in msg else msg


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """First real video stream (cover art / attached pictures are skipped)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            if stream.codec_context.width and stream.codec_context.height:
                return stream
    raise VideoError("no video stream")


def _audio_stream(container: av.container.InputContainer):
    """First audio stream FFmpeg can decode (newer iPhones add an APAC spatial
    audio track next to the AAC one; an undecodable track must not win)."""
    for stream in container.streams.audio:
        cc = stream.codec_context
        if cc is not None and cc.codec is not None and cc.codec.is_decoder:
            return stream
    return None


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
                if errors > _MAX_DECODE_ERRORS:
                    raise VideoError(f"too many decode errors ({_short(exc)})") from exc
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
    with _open(path, timeout) as container:
        vs = _video_stream(container)
        audio = _audio_stream(container)
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
    with _open(path, timeout) as container:
        vs = _video_stream(container)
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
        with _open(path, remaining) as container:
            vs = _video_stream(container)
            start = float(vs.start_time * vs.time_base) if vs.start_time is not None else 0.0
            for first in _decoded_frames(container, vs, deadline=time.monotonic() + remaining):
                return _poster(first, sar, max_short_side, start)
    raise VideoError("no decodable video frame")


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
        raise VideoError(f"cannot convert frame ({_short(exc)})") from exc
    # exiftool 90 = turn clockwise; PIL's ROTATE_* constants are counter-clockwise.
    method = {
        90: Image.Transpose.ROTATE_270,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }.get(rotation)
    return image.transpose(method) if method is not None else image


# --------------------------------------------------------------------------- transcode


def pick_h264_encoder() -> str:
    """Name of the H.264 encoder to use with this PyAV/FFmpeg build.

    libx264 when available (software, CRF, best quality per bit). Otherwise the
    Raspberry Pi's V4L2 M2M hardware encoder if its device exists, then any
    other H.264 encoder FFmpeg offers.

    Returns:
        An encoder name for ``add_stream``.

    Raises:
        VideoError: No H.264 encoder at all.
    """
    available = av.codecs_available
    if "libx264" in available:
        return "libx264"
    if "h264_v4l2m2m" in available and os.path.exists("/dev/video11"):
        return "h264_v4l2m2m"
    for name in ("libopenh264", "h264_vaapi", "h264_v4l2m2m"):
        if name in available:
            return name
    raise VideoError("no H.264 encoder available in this FFmpeg build")


def _output_size(info: VideoInfo, max_height: int) -> tuple[int, int]:
    """Even (width, height) in display orientation, short side <= max_height."""
    dw, dh = info.display_width, info.display_height
    scale = min(1.0, max_height / min(dw, dh))
    w = max(2, int(round(dw * scale / 2)) * 2)
    h = max(2, int(round(dh * scale / 2)) * 2)
    return w, h


def _build_graph(vs, info: VideoInfo, out_w: int, out_h: int, threads: int) -> av.filter.Graph:
    """buffer -> scale -> (rotate) -> setsar=1 -> yuv420p -> sink, all inside FFmpeg."""
    graph = av.filter.Graph()
    graph.threads = threads
    nodes = [graph.add_buffer(template=vs)]
    # Scale first (in coded orientation) so the rotation touches fewer pixels.
    sw, sh = (out_h, out_w) if info.rotation in (90, 270) else (out_w, out_h)
    nodes.append(graph.add("scale", f"{sw}:{sh}:flags=bicubic"))
    if info.rotation == 90:
        nodes.append(graph.add("transpose", "clock"))
    elif info.rotation == 270:
        nodes.append(graph.add("transpose", "cclock"))
    elif info.rotation == 180:
        nodes.append(graph.add("hflip"))
        nodes.append(graph.add("vflip"))
    nodes.append(graph.add("setsar", "1"))
    # 8-bit 4:2:0: the only H.264 flavour every browser decodes. (10-bit HDR
    # sources are converted without tone mapping and look flat.)
    nodes.append(graph.add("format", "yuv420p"))
    nodes.append(graph.add("buffersink"))
    graph.link_nodes(*nodes).configure()
    return graph


def transcode(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    max_height: int = 720,
    crf: int = 23,
    preset: str = "veryfast",
    bitrate: int | None = None,
    audio_bitrate: int = 128_000,
    threads: int = 2,
    encoder: str | None = None,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    timeout: float = 60.0,
) -> None:
    """Transcode to a browser-playable H.264 + AAC MP4 with ``+faststart``.

    The picture is scaled so its short side is at most ``max_height`` (the
    "720p" of a portrait clip is 720 px wide), to even dimensions, square
    pixels, rotation baked into the pixels (no reliance on players honouring a
    display matrix). Audio (first track) becomes AAC-LC 48 kHz stereo. Frames
    are streamed through FFmpeg, so memory stays bounded whatever the length.

    The output is written to a temp file next to ``dst`` and renamed into place
    at the end; on error or cancellation the temp file is removed.

    Args:
        src: Source video.
        dst: Output ``.mp4`` path.
        max_height: Short-side limit in pixels (never upscales).
        crf: x264 constant rate factor (ignored by hardware encoders).
        preset: x264 preset; ``veryfast`` is the best speed/size trade on a Pi.
        bitrate: Target video bit rate in bit/s. Default: CRF for libx264,
            else 0.1 bit per pixel per frame (~2.8 Mbit/s for 720p30).
        audio_bitrate: AAC bit rate.
        threads: Decoder, filter and encoder threads.
        encoder: Force an encoder name (default :func:`pick_h264_encoder`).
        progress: Called with the fraction done (0..1), at most every 1 %.
        should_stop: Polled once per packet; returning True cancels.
        timeout: FFmpeg I/O timeout in seconds (per open/read, not in total).

    Raises:
        TranscodeCancelled: ``should_stop`` returned True.
        VideoError: The source cannot be decoded or the encoder failed.
    """
    src, dst = Path(src), Path(dst)
    info = probe(src, timeout=timeout)
    enc_name = encoder or pick_h264_encoder()
    out_w, out_h = _output_size(info, max_height)
    from photobox.media._stale import replacing

    with replacing(dst) as tmp:  # a unique temp name, renamed over dst when complete
        _transcode_into(
            src, tmp, info, enc_name, out_w, out_h,
            crf=crf, preset=preset, bitrate=bitrate, audio_bitrate=audio_bitrate,
            threads=threads, progress=progress, should_stop=should_stop, timeout=timeout,
        )


def _transcode_into(
    src: Path,
    tmp: Path,
    info: VideoInfo,
    enc_name: str,
    out_w: int,
    out_h: int,
    *,
    crf: int,
    preset: str,
    bitrate: int | None,
    audio_bitrate: int,
    threads: int,
    progress: Callable[[float], None] | None,
    should_stop: Callable[[], bool] | None,
    timeout: float,
) -> None:
    with _open(src, timeout) as inp:
        vs = _video_stream(inp)
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = threads
        ain = _audio_stream(inp)
        rate = vs.average_rate or vs.guessed_rate or Fraction(30)
        # The muxer writes moov at the end; +faststart moves it to the front so
        # browsers can start playing before the whole file has downloaded.
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            ov = out.add_stream(enc_name, rate=rate)
            ov.width, ov.height, ov.pix_fmt = out_w, out_h, "yuv420p"
            # Keep the source timestamps (phones record variable frame rate).
            ov.codec_context.time_base = vs.time_base
            ov.codec_context.thread_count = threads
            if enc_name == "libx264":
                opts = {"preset": preset, "profile": "high"}
                if bitrate is None:
                    opts["crf"] = str(crf)
                ov.codec_context.options = opts
            if bitrate is not None or enc_name != "libx264":
                ov.bit_rate = bitrate or int(out_w * out_h * min(float(rate), 60.0) * 0.1)
            oa = resampler = None
            if ain is not None:
                oa = out.add_stream("aac", rate=48000)
                oa.layout = "stereo"
                oa.bit_rate = audio_bitrate
                resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)

            graph = _build_graph(vs, info, out_w, out_h, threads)
            streams = [vs] + ([ain] if ain is not None else [])
            duration = info.duration or 0.0
            # Shift every stream by the earliest start so the output begins at 0
            # while keeping the audio/video offset (MPEG-TS clips start at ~1 s,
            # with audio and video starting at different times).
            starts = [
                float(s.start_time * s.time_base)
                for s in streams
                if s.start_time is not None and s.time_base
            ]
            t0 = min(starts) if starts else 0.0
            video_shift = round(t0 / vs.time_base) if vs.time_base else 0
            audio_shift = round(t0 / ain.time_base) if ain is not None and ain.time_base else 0
            last_reported = -1.0
            errors = audio_errors = 0
            last_pts = -(2**62)
            audio_ok = True
            video_frames = 0

            def pump(frame) -> None:
                nonlocal video_frames
                graph.vpush(frame)
                while True:
                    try:
                        filtered = graph.vpull()
                    except (BlockingIOError, av.error.BlockingIOError):
                        return
                    except (EOFError, av.error.EOFError):
                        return
                    filtered.pict_type = av.video.frame.PictureType.NONE
                    for pkt in ov.encode(filtered):
                        out.mux(pkt)
                    video_frames += 1

            for packet in inp.demux(*streams):
                if should_stop is not None and should_stop():
                    raise TranscodeCancelled()
                if packet.stream is not vs and not audio_ok:
                    continue
                try:
                    frames = packet.decode()
                except (av.error.FFmpegError, ValueError) as exc:
                    # Corrupt packets are skipped (players do the same); only a
                    # file that is mostly garbage fails. Audio trouble never
                    # costs the picture: past the limit the audio is dropped.
                    if packet.stream is vs:
                        errors += 1
                        if errors > _MAX_DECODE_ERRORS:
                            raise VideoError(f"too many decode errors ({_short(exc)})") from exc
                    else:
                        audio_errors += 1
                        if audio_errors > _MAX_DECODE_ERRORS:
                            audio_ok = False
                            log.warning("dropping undecodable audio: %s", _short(exc))
                    continue
                for frame in frames:
                    if packet.stream is vs:
                        if frame.pts is None or frame.pts <= last_pts:
                            # Unplaceable or duplicate timestamps (broken files):
                            # x264 rejects non-increasing PTS, so drop the frame.
                            continue
                        last_pts = frame.pts
                        frame.pts -= video_shift
                        pump(frame)
                        if progress is not None and duration and frame.time is not None:
                            done = min(1.0, max(0.0, frame.time / duration))
                            if done - last_reported >= 0.01:
                                last_reported = done
                                progress(done)
                    elif oa is not None:
                        if frame.pts is not None:
                            frame.pts -= audio_shift
                        for rframe in resampler.resample(frame):
                            for pkt in oa.encode(rframe):
                                out.mux(pkt)
            # Flush filter graph, encoders.
            pump(None)
            for pkt in ov.encode(None):
                out.mux(pkt)
            if oa is not None:
                for rframe in resampler.resample(None):
                    for pkt in oa.encode(rframe):
                        out.mux(pkt)
                for pkt in oa.encode(None):
                    out.mux(pkt)
            if video_frames == 0:
                raise VideoError("no decodable video frame")
    if progress is not None:
        progress(1.0)
