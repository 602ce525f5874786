"""A short, deterministic hypothesis fuzz of the parsers (the long run is ``scripts/bench fuzz``):
mutated JPEG/PNG/HEIC/WebP/TIFF/MP4/Motion Photo files through the metadata extractor and
the Motion Photo scanner, and mutated multipart bodies through the real upload endpoint.
See :mod:`tests.fuzz` for what counts as a finding."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import MultipartTarget, check_metadata, check_motion, multipart_body, mutate, mutations, seed_files

# Pillow's notes about damaged EXIF are expected on mutated files.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

SEEDS = seed_files()
NAMES = sorted(SEEDS)
FAST = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FAST
@given(name=st.sampled_from(NAMES), ops=mutations)
def test_metadata_extract_survives_mutations(work, name, ops):
    path = work / ("m_" + name.replace("/", "_"))
    path.write_bytes(mutate(SEEDS[name], ops))
    assert check_metadata(path) == []


@FAST
@given(name=st.sampled_from([n for n in NAMES if "motion" in n] or NAMES), ops=mutations)
def test_motion_scan_survives_mutations(work, name, ops):
    path = work / ("v_" + name.replace("/", "_"))
    path.write_bytes(mutate(SEEDS[name], ops, head_bias=False))
    out = work / "out"
    out.mkdir(exist_ok=True)
    assert check_motion(path, out) == []


@pytest.fixture(scope="module")
def upload_target(tmp_path_factory):
    target = MultipartTarget(tmp_path_factory.mktemp("mp") / "data")
    yield target
    target.close()


@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=mutations, boundary=st.sampled_from(["fuzzB0undary", "a", "x" * 70, "with space", '"quoted"']),
       header_boundary=st.booleans())
def test_upload_multipart_survives_mutations(upload_target, ops, boundary, header_boundary):
    body = mutate(multipart_body("photo.jpg", SEEDS["photo.jpg"][:3000], boundary.strip('"')), ops)
    ctype = f"multipart/form-data; boundary={boundary if header_boundary else 'other'}"
    assert upload_target.check(body, ctype) == []


#: A 1.6 kB MP4 mutated by ``scripts/bench fuzz``: ffmpeg opens it without a container format
#: and without a codec context; the probe used to crash (AttributeError) and call the whole
#: video unreadable, instead of keeping what the box parser read.
NO_FORMAT_MP4 = (
    "AAAAIGZ0eXBpc29tAAACAGlzb21pc28yYXZjMW1wNDEAAAAIZnJlZQAAAuxtZGF0AAACoAYF//+c3EXpvebZSLeWLNgg2SPu73gy"
    "NjQgLSBjb3JlIDE2NSAtIEguMjY0L01QRUctNCBBVkMgY29kZWMgLSBDb3B5bGVmdCAyMDAzLTIwMjUgLSBodHRwOi8vd3d3LnZp"
    "ZGVvbGFuLm9yZy94MjY0Lmh0bWwgLSBvcHRpb25zOiBjYWJhYz0xIHJlZj0zIGRlYmxvY2s9MTowOjAgYW5hbHlzZT0weDM6MHgx"
    "MTMgbWU9aGV4IHN1Ym1lPTcgcHN5PTEgcHN5X3JkPTEuMDA6MC4wMCBtaXhlZF9yZWY9MSBtZV9yYW5nZT0xNiBjaHJvbWFfbWU9"
    "MSB0cmVsbGlzPTEgOHg4ZGN0PTEgY3FtPTAgZGVhZHpvbmU9MjEsMTEgZmFzdF9wc2tpcD0xIGNocm9tYV9xcF9vZmZzZXQ9LTIg"
    "dGhyZWFkcz0xIGxvb2thaGVhZF90aHJlYWRzPTEgc2xpY2VkX3RocmVhZHM9MCBucj0wIGRlY2ltYXRlPTEgaW50ZXJsYWNlZD0w"
    "IGJsdXJheV9jb21wYXQ9MCBjb25zdHJhaW5lZF9pbnRyYT0wIGJmcmFtZXM9MyBiX3B5cmFtaWQ9MiBiX2FkYXB0PTEgYl9iaWFz"
    "PTAgZGlyZWN0PTEgd2VpZ2h0Yj0xIG9wZW5fZ29wPTAgd2VpZ2h0cD0yIGtleWludD0yNTAga2V5aW50X21pbj0xMCBzY2VuZWN1"
    "dD00MCBpbnRyYV9yZWZyZXNoPTAgcmNfbG9va2FoZWFkPTQwIHJjPWNyZiBtYnRyZWU9MSBjcmY9MjMuMCBxY29tcD0wLjYwIHFw"
    "bWluPTAgcXBtYXg9NjkgcXBzdGVwPTQgaXBfcmF0aW89MS40MCBhcT0xOjEuMDAAgAAAAB5liIQAP//+92ifApteYaqA5JXFI6zu"
    "gr4qk8tlt4EAAAAOQZoiY+B+AiEN//6n7kAAAAAIAZ5BeQ3/DekAAANNbW9vdgAAAGxtdmhkAAAAAAAAAAAAAAAAAAAD6AAAASwA"
    "AQAAAQAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAgAAAnd0cmFrAAAAXHRraGQAAAADAAAAAAAAAAAAAAABAAAAAAAAASwAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAA"
    "AAABAAAAAAAAAAAAAAAAAABAAAAAAEAAAAAwAAAAAAAkZWR0cwAAABxlbHN0AAAAAAAAAAEAAAEsAAAIAAABAAAAAAHvbWRpYQAA"
    "ACBtZGhkAAAAAAAAAAAAAAAAAAAoAAAAEABVxAAAAAAALWhkbHIAAAAAAAAAAHZpZGUAAAAAAAAAAAAAAABWaWRlb0hhbmRsZXIA"
    "AAABmm1pbmYAAAAUdm1oZAAAAAEAAAAAAAAAAAAAACRkaW5mAAAAHGRyZWYAAAAAAAAAAQAAAAx1cmwgAAAAAQAAAVpzdGJsAAAA"
    "rnN0AAAAAAAAAAAAAQAAAJ5hdmMxAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAEAAMABIAAAASAAAAAAAAAABAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAGP//AAAANGF2Y0MBZAAK/+EAF2dkAAqs2UR6EAAAAwAQAAADAUDxIllgAQAGaOvjyyLA/fj4"
    "AAAAABRidHJ0AAAAAAAATRUAAAAAAAAAGHN0dHMAAAAAAAAAAQAAAAMAAAQAAAAAFHN0c3MAAAAAAAAAAQAAAAEAAAAoY3R0cwAA"
    "AAAAAAADAAAAAQAACAAAAAABAAAMAAAAAAEAAAQAAAAAHHN0c2MAAAAAAAAAAQAAAAEAAAADAAAAAQAAACBzdHN6AAAAAAAAAAAA"
    "AAADAAACxgAAABIAAAAMAAAAFHN0Y28AAAAAAAAAAQAAADAAAABidWR0YQAAAFptZXRhAAAAAAAAACFoZGxyAAAAAAAAAABtZGly"
    "YXBwbAAAAAAAAAAAAAAAAC1pbHN0AAAAJal0b28AAAAdZGF0YQAAAAEAAAAATGF2ZjYyLjEyLjEwMg=="
)


def test_fuzz_regression_video_without_container_format(tmp_path):
    import base64

    from photobox.media.metadata import extract

    path = tmp_path / "clip.mp4"
    path.write_bytes(base64.b64decode(NO_FORMAT_MP4))
    assert check_metadata(path) == []
    md = extract(path)
    assert md.kind == "video" and md.width == 64 and md.duration == 0.3
