"""Motion Photo detection on synthetic files: a real JPEG/HEIC plus a real MP4."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from PIL import Image

from photobox.media.metadata import extract
from photobox.media.motion import extract_motion_video, find_motion_video

RDF = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">{}</rdf:RDF></x:xmpmeta>')
CAMERA = 'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"'
CONTAINER = ('xmlns:Container="http://ns.google.com/photos/1.0/container/" '
             'xmlns:Item="http://ns.google.com/photos/1.0/container/item/"')


def container_xmp(items: list[tuple[str, str, int]], motion: bool = True) -> str:
    """Google Motion Photo v1 style XMP with a Container:Directory."""
    lis = "".join(
        f'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="{mime}" '
        f'Item:Semantic="{semantic}" Item:Length="{length}" Item:Padding="0"/></rdf:li>'
        for semantic, mime, length in items)
    flag = 'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1"' if motion else ""
    return RDF.format(f'<rdf:Description rdf:about="" {CAMERA} {CONTAINER} {flag}>'
                      f"<Container:Directory><rdf:Seq>{lis}</rdf:Seq></Container:Directory>"
                      "</rdf:Description>")


def micro_video_xmp(offset: int) -> str:
    return RDF.format(f'<rdf:Description rdf:about="" {CAMERA} GCamera:MicroVideo="1" '
                      f'GCamera:MicroVideoVersion="1" GCamera:MicroVideoOffset="{offset}"/>')


def sef_trailer(video: bytes) -> bytes:
    """Samsung SEF records (MotionPhoto_Data + one more) plus SEFH/SEFT."""
    records = [(0x0A30, b"MotionPhoto_Data", video), (0x0A01, b"Image_UTC_Data", b"1678258865058")]
    blobs = [struct.pack("<HHI", 0, kind, len(name)) + name + data for kind, name, data in records]
    body = b"".join(blobs)
    directory = b"SEFH" + struct.pack("<II", 0x6B, len(blobs))
    pos = 0
    for (kind, _, _), blob in zip(records, blobs):
        directory += struct.pack("<HHII", 0, kind, len(body) - pos, len(blob))
        pos += len(blob)
    return body + directory + struct.pack("<I", len(directory)) + b"SEFT"


@pytest.fixture
def clip(md_build) -> bytes:
    return md_build.mp4(frames=15, rate=15)


def check_found(path: Path, offset: int, clip: bytes, tmp_path: Path) -> None:
    assert find_motion_video(path) == (offset, len(clip))
    out = tmp_path / "out.mp4"
    assert extract_motion_video(path, out)
    assert out.read_bytes() == clip
    import av
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    md = extract(path)
    assert (md.motion_video_offset, md.motion_video_length) == (offset, len(clip))
    assert md.error is None, md.warnings


def test_google_motion_photo_container(md_build, clip, tmp_path) -> None:
    xmp = container_xmp([("Primary", "image/jpeg", 0), ("MotionPhoto", "video/mp4", len(clip))])
    still = md_build.jpeg((64, 48), segments=md_build.xmp_segment(xmp))
    path = md_build.write("PXL_20230101_101010123.MP.jpg", still + clip)
    check_found(path, len(still), clip, tmp_path)


def test_legacy_micro_video(md_build, clip, tmp_path) -> None:
    still = md_build.jpeg(segments=md_build.xmp_segment(micro_video_xmp(len(clip))))
    path = md_build.write("MVIMG_20190101_101010.jpg", still + clip)
    check_found(path, len(still), clip, tmp_path)


def test_wrong_declared_length_is_verified_by_scanning(md_build, clip, tmp_path) -> None:
    # Like the Samsung HEIC in the corpus: XMP says 80 bytes, the video is bigger.
    xmp = container_xmp([("Primary", "image/jpeg", 0), ("MotionPhoto", "video/mp4", 80)])
    still = md_build.jpeg(segments=md_build.xmp_segment(xmp))
    path = md_build.write("a.jpg", still + clip)
    check_found(path, len(still), clip, tmp_path)


def test_samsung_sef_trailer(md_build, clip, tmp_path) -> None:
    still = md_build.jpeg()
    record_header = 8 + len(b"MotionPhoto_Data")
    path = md_build.write("20230308_123105.jpg", still + sef_trailer(clip))
    check_found(path, len(still) + record_header, clip, tmp_path)


def test_samsung_heic_mpvd_box_with_wrong_xmp(md_build, clip, tmp_path) -> None:
    pytest.importorskip("pillow_heif").register_heif_opener()
    xmp = container_xmp([("Primary", "image/heic", 0), ("MotionPhoto", "video/mp4", 80)])
    heic_path = tmp_path / "still.heic"
    Image.new("RGB", (64, 48)).save(heic_path, format="HEIF", xmp=xmp.encode())
    still = heic_path.read_bytes()
    mpvd = struct.pack(">I", 8 + len(clip)) + b"mpvd" + clip
    path = md_build.write("motion.heic", still + mpvd)
    check_found(path, len(still) + 8, clip, tmp_path)


def test_ultra_hdr_gain_map_is_not_a_motion_photo(md_build, tmp_path) -> None:
    gain_map = md_build.jpeg((16, 12))
    xmp = container_xmp([("Primary", "image/jpeg", 0), ("GainMap", "image/jpeg", len(gain_map))],
                        motion=False)
    path = md_build.write("ultrahdr.jpg", md_build.jpeg(segments=md_build.xmp_segment(xmp)) + gain_map)
    assert find_motion_video(path) is None
    assert not extract_motion_video(path, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
    md = extract(path)
    assert md.motion_video_offset is None and md.error is None


def test_undeclared_appended_video_is_ignored(md_build, clip) -> None:
    # Without an XMP/SEF declaration we never scan (cost, and false positives).
    path = md_build.write("a.jpg", md_build.jpeg() + clip)
    assert find_motion_video(path) is None


def test_declared_but_missing_video(md_build) -> None:
    still = md_build.jpeg(segments=md_build.xmp_segment(micro_video_xmp(1024)))
    path = md_build.write("broken.jpg", still + b"\x00" * 1024)
    assert find_motion_video(path) is None
    md = extract(path)
    assert md.motion_video_offset is None
    assert any("no embedded video" in w for w in md.warnings)


def test_truncated_embedded_video(md_build, clip) -> None:
    xmp = container_xmp([("Primary", "image/jpeg", 0), ("MotionPhoto", "video/mp4", len(clip))])
    still = md_build.jpeg(segments=md_build.xmp_segment(xmp))
    path = md_build.write("cut.jpg", still + clip[: len(clip) // 2])
    assert find_motion_video(path) is None
    assert any("truncated" in w for w in extract(path).warnings)


def test_unreadable_inputs(tmp_path) -> None:
    assert find_motion_video(tmp_path / "missing.jpg") is None
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert find_motion_video(tmp_path / "empty.jpg") is None
    assert not extract_motion_video(tmp_path / "missing.jpg", tmp_path / "o.mp4")
