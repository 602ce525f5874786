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
FAST = settings(max_examples=40, derandomize=True, deadline=None, database=None,
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
