"""Web renditions of videos: H.264 + AAC MP4 with ``+faststart``, streamed through FFmpeg.

Public through :mod:`photobox.media.video` (``video.transcode``, ``video.pick_h264_encoder``);
split out so each module stays readable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import av.error
import av.filter

from photobox.media._av import (
    MAX_DECODE_ERRORS,
    TranscodeCancelled,
    VideoError,
    VideoInfo,
    audio_stream,
    damaged_stream,
    ffmpeg_words,
    no_picture,
    open_video,
    video_stream,
)

log = logging.getLogger(__name__)

__all__ = ["pick_h264_encoder", "transcode"]


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
    raise VideoError("this FFmpeg build has no H.264 encoder (expected libx264, libopenh264, "
                     "h264_v4l2m2m or h264_vaapi)")


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
    # The stream's own pixel format, else the one its first decoded frame had (probe):
    # PyAV's add_buffer says only "missing format" when both are unknown.
    nodes = [graph.add_buffer(template=vs, format=vs.format or info.pix_fmt)]
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
    from photobox.media.video import probe  # video imports this module for its re-export

    info = probe(src, timeout=timeout)
    if info.pix_fmt is None:
        # Nothing decoded while probing: FFmpeg does not know the picture's pixel format,
        # and there is nothing to convert.
        raise VideoError(no_picture(info.video_codec))
    enc_name = encoder or pick_h264_encoder()
    out_w, out_h = _output_size(info, max_height)
    from photobox.media._stale import replacing

    with replacing(dst) as tmp:  # a unique temp name, renamed over dst when complete
        try:
            _transcode_into(
                src, tmp, info, enc_name, out_w, out_h,
                crf=crf, preset=preset, bitrate=bitrate, audio_bitrate=audio_bitrate,
                threads=threads, progress=progress, should_stop=should_stop, timeout=timeout,
            )
        except (VideoError, TranscodeCancelled, OSError):
            raise  # OSError: the disk or the output, worth a retry (the video job lets it through)
        except (av.error.FFmpegError, ValueError) as exc:
            # PyAV's own words are terse ("missing format"): say what was being done.
            raise VideoError(f"FFmpeg failed to convert its {info.video_codec} {info.pix_fmt} video to "
                             f"{out_w}x{out_h} H.264 with {enc_name} ({ffmpeg_words(exc)})") from exc


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
    with open_video(src, timeout) as inp:
        vs = video_stream(inp)
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = threads
        ain = audio_stream(inp)
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
                        if errors > MAX_DECODE_ERRORS:
                            raise VideoError(damaged_stream(vs, exc)) from exc
                    else:
                        audio_errors += 1
                        if audio_errors > MAX_DECODE_ERRORS:
                            audio_ok = False
                            log.warning("dropping undecodable audio: %s", ffmpeg_words(exc))
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
                raise VideoError(no_picture(info.video_codec))
    if progress is not None:
        progress(1.0)
