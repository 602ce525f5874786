"""photobox.media.video: probe, poster frames, playability, transcoding."""

from __future__ import annotations

from pathlib import Path

import pytest

av = pytest.importorskip("av")

from PIL import Image  # noqa: E402

from photobox.media.decode import DecodeError  # noqa: E402
from photobox.media.video import (  # noqa: E402
    TranscodeCancelled,
    VideoError,
    VideoInfo,
    browser_playable,
    pick_h264_encoder,
    poster_frame,
    probe,
    transcode,
)

try:
    from . import _gen
except ImportError:  # tests/media is not a package: pytest put it on sys.path
    import _gen

HAS_X265 = "libx265" in av.codecs_available
QUIET_X265 = {"x265-params": "log-level=error"}


def _red(px) -> bool:
    return px[0] > 180 and px[1] < 90 and px[2] < 90


def _marker_corner(im: Image.Image) -> str:
    w, h = im.size
    spots = {"top-left": (3, 3), "top-right": (w - 4, 3), "bottom-left": (3, h - 4), "bottom-right": (w - 4, h - 4)}
    hits = [k for k, xy in spots.items() if _red(im.convert("RGB").getpixel(xy))]
    assert len(hits) == 1, hits
    return hits[0]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    out = {
        "h264": _gen.make_video(d / "h264.mp4"),
        "rot90": _gen.make_video(d / "rot90.mp4", rotation_exif=90),
        "rot270": _gen.make_video(d / "rot270.mov", rotation_exif=270, container="mov"),
        "rot180": _gen.make_video(d / "rot180.mp4", rotation_exif=180, audio=None),
        "mpeg4_avi": _gen.make_video(d / "old.avi", codec="mpeg4", audio="mp3", container="avi"),
    }
    if HAS_X265:
        out["hevc"] = _gen.make_video(d / "hevc.mp4", codec="libx265", options=QUIET_X265, rotation_exif=90)
    return out


def test_probe_h264(clips):
    info = probe(clips["h264"])
    assert info.container == "mp4" and info.video_codec == "h264" and info.audio_codec == "aac"
    assert (info.width, info.height) == (160, 96)
    assert (info.display_width, info.display_height) == (160, 96)
    assert info.rotation == 0 and info.has_audio and info.pix_fmt == "yuv420p"
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.fps == pytest.approx(25)
    assert browser_playable(info)


@pytest.mark.parametrize("name,rotation", [("rot90", 90), ("rot270", 270), ("rot180", 180)])
def test_probe_rotation_uses_exiftool_sign(clips, name, rotation):
    info = probe(clips[name])
    assert info.rotation == rotation
    if rotation in (90, 270):
        assert (info.display_width, info.display_height) == (96, 160)
    # PyAV itself reports the opposite sign (counter-clockwise).
    with av.open(str(clips[name])) as c:
        frame = next(c.decode(video=0))
        assert (-frame.rotation) % 360 == rotation
    if name == "rot270":
        assert info.container == "mov"
    if name == "rot180":
        assert not info.has_audio and info.audio_codec is None


@pytest.mark.parametrize(
    "name,corner",
    [("h264", "top-left"), ("rot90", "top-right"), ("rot270", "bottom-left"), ("rot180", "bottom-right")],
)
def test_poster_frame_rotated_and_not_black(clips, name, corner):
    im = poster_frame(clips[name])
    assert im.mode == "RGB"
    assert im.size == ((96, 160) if name in ("rot90", "rot270") else (160, 96))
    assert _marker_corner(im) == corner  # the black first frame was skipped


def test_poster_frame_at_zero_is_the_black_frame(clips):
    im = poster_frame(clips["h264"], at=0)
    assert max(im.convert("L").getextrema()) < 40


def test_poster_frame_scaled(clips):
    im = poster_frame(clips["rot90"], max_short_side=48)
    assert im.size == (48, 80)


def test_poster_frame_past_the_end_falls_back(clips):
    im = poster_frame(clips["h264"], at=999)
    assert im.size == (160, 96)


def _info(**kw) -> VideoInfo:
    base = dict(
        container="mp4", format_name="mov,mp4", video_codec="h264", audio_codec="aac",
        width=1920, height=1080, display_width=1920, display_height=1080, rotation=0,
        duration=1.0, fps=30.0, has_audio=True, pix_fmt="yuv420p", profile="High", bit_rate=None,
    )
    base.update(kw)
    return VideoInfo(**base)


@pytest.mark.parametrize(
    "kw,playable",
    [
        ({}, True),
        ({"container": "mov"}, True),
        ({"audio_codec": None, "has_audio": False}, True),
        ({"audio_codec": "mp3"}, True),
        ({"audio_codec": "opus"}, True),
        ({"container": "webm", "video_codec": "vp9", "audio_codec": "opus"}, True),
        ({"container": "webm", "video_codec": "vp8", "audio_codec": "vorbis"}, True),
        ({"video_codec": "av1"}, True),
        ({"video_codec": "hevc"}, False),
        ({"video_codec": "mpeg2video"}, False),
        ({"video_codec": "mpeg4"}, False),
        ({"video_codec": "mjpeg"}, False),
        ({"container": "mpegts"}, False),
        ({"container": "avi"}, False),
        ({"container": "3gp", "audio_codec": "amr_nb"}, False),
        ({"audio_codec": "pcm_s16le"}, False),
        ({"audio_codec": "ac3"}, False),
        ({"pix_fmt": "yuv420p10le", "profile": "High 10"}, False),
        ({"pix_fmt": "yuv422p"}, False),
        ({"container": "matroska"}, False),
    ],
)
def test_browser_playable(kw, playable):
    assert browser_playable(_info(**kw)) is playable


def test_mpeg4_avi_needs_transcode(clips, tmp_path):
    info = probe(clips["mpeg4_avi"])
    assert info.container == "avi" and info.video_codec == "mpeg4" and info.audio_codec == "mp3"
    assert not browser_playable(info)
    out = tmp_path / "web.mp4"
    transcode(clips["mpeg4_avi"], out)
    o = probe(out)
    assert (o.container, o.video_codec, o.audio_codec) == ("mp4", "h264", "aac")
    assert browser_playable(o)


@pytest.mark.skipif(not HAS_X265, reason="this FFmpeg build has no libx265 to make an HEVC input")
def test_transcode_hevc_rotated(clips, tmp_path):
    src_info = probe(clips["hevc"])
    assert src_info.video_codec == "hevc" and not browser_playable(src_info)
    out = tmp_path / "sub" / "web.mp4"
    seen: list[float] = []
    transcode(clips["hevc"], out, progress=seen.append)
    o = probe(out)
    assert (o.video_codec, o.audio_codec, o.rotation) == ("h264", "aac", 0)
    assert (o.width, o.height) == (96, 160)  # rotation baked into pixels
    assert browser_playable(o)
    assert o.duration == pytest.approx(2.0, abs=0.15)
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.sample_rate == 48000 and a.codec_context.layout.name == "stereo"
        assert sum(1 for _ in c.decode(video=0)) == 50  # every frame kept
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart
    assert _marker_corner(poster_frame(out)) == "top-right"
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) <= 102
    assert [p.name for p in out.parent.iterdir()] == ["web.mp4"]


def test_transcode_scales_short_side_and_even_dims(tmp_path):
    src = _gen.make_video(tmp_path / "odd.mp4", width=301, height=201, seconds=0.5, audio=None, pix_fmt="yuv444p")
    out = tmp_path / "o.mp4"
    transcode(src, out, max_height=100)
    o = probe(out)
    assert (o.width, o.height) == (150, 100) and o.pix_fmt == "yuv420p"
    assert not o.has_audio

    portrait = _gen.make_video(tmp_path / "p.mp4", width=160, height=96, rotation_exif=90, seconds=0.5, audio=None)
    transcode(portrait, out, max_height=48)
    o = probe(out)
    assert (o.width, o.height) == (48, 80)  # short side limited, portrait kept


def test_transcode_cancel_cleans_up(clips, tmp_path):
    out = tmp_path / "cancel.mp4"
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(TranscodeCancelled):
        transcode(clips["h264"], out, should_stop=stop)
    assert list(tmp_path.iterdir()) == []


def test_transcode_failure_cleans_up(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0\0\0\x18ftypisom" + b"garbage" * 100)
    with pytest.raises(VideoError):
        transcode(bad, tmp_path / "o.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["bad.mp4"]


def test_hostile_inputs(tmp_path, clips):
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    truncated = tmp_path / "trunc.mp4"
    truncated.write_bytes(clips["h264"].read_bytes()[:3000])
    for path in (empty, garbage, truncated):
        with pytest.raises(VideoError) as exc:
            poster_frame(path)
        assert isinstance(exc.value, DecodeError)
        with pytest.raises(VideoError):
            probe(path)


def test_encoder_choice():
    assert pick_h264_encoder() in av.codecs_available


def test_transcode_with_explicit_bitrate(clips, tmp_path):
    out = tmp_path / "br.mp4"
    transcode(clips["rot180"], out, bitrate=150_000, encoder=pick_h264_encoder())
    o = probe(out)
    assert o.video_codec == "h264" and o.rotation == 0 and (o.width, o.height) == (160, 96)
    assert _marker_corner(poster_frame(out)) == "bottom-right"


def _words(message: str) -> None:
    """A failure message a person can read: no FFmpeg error number, no bare PyAV phrase."""
    assert "[Errno" not in message and "missing format" not in message and len(message.split()) >= 6, message


def test_video_without_a_decodable_picture_fails_in_words(tmp_path):
    """The issue's case: transcode raised a bare ``ValueError: missing format``."""
    from tests.gen import mjpeg_without_pictures

    src = mjpeg_without_pictures(tmp_path / "clip.mov")
    info = probe(src)
    assert (info.video_codec, info.pix_fmt) == ("mjpeg", None)
    with pytest.raises(VideoError, match="no picture could be decoded from its mjpeg video stream") as exc:
        transcode(src, tmp_path / "out.mp4")
    _words(str(exc.value))
    with pytest.raises(VideoError, match="no picture could be decoded from its mjpeg video stream"):
        poster_frame(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mov"]  # no half output left


def test_ffmpeg_failures_say_what_was_expected_and_found(tmp_path, clips):
    from tests.gen import audio_only_mp4

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError) as exc:
        probe(garbage)
    assert str(exc.value).startswith("not a video FFmpeg can open (expected a container such as MP4")
    assert "Invalid data found" in str(exc.value) and str(garbage) not in str(exc.value)
    _words(str(exc.value))
    with pytest.raises(VideoError, match=r"no video stream .*\(found: audio \(aac\)\)"):
        probe(audio_only_mp4(tmp_path / "voice.m4a"))
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match=r"the file is empty \(0 bytes\)"):
        transcode(empty, tmp_path / "o.mp4")


def test_corpus_quicktime_without_pictures_fails_in_words(tmp_path):
    from tests.resil import find_corpus

    corpus = find_corpus()
    src = corpus / "video" / "pp__quicktime-jpeg.mov" if corpus else None
    if src is None or not src.exists():
        pytest.skip("../shared/corpus is absent (test data, not shipped)")
    with pytest.raises(VideoError, match="no picture could be decoded from its mjpeg video stream") as exc:
        transcode(src, tmp_path / "out.mp4")
    _words(str(exc.value))
