"""The realistic-cost face stand-ins (``tests/ml/costly.py``, used by ``scripts/bench faces``)
keep the tiny models' contract and answers, and quantize through photobox's real path."""

from __future__ import annotations

import numpy as np

from photobox.ml.faces import FaceDetector, FaceEmbedder
from photobox.ml.quantize import quantize_file, resolve_options
from photobox.ml.registry import Manifest
from tests.ml.costly import DETECTOR_STACK, RECOGNISER_STACK, add_cost, stack_stats, tiny_nodes
from tests.ml.test_faces import TWO_FACES, picture
from tests.ml.tinyfaces import face_manifests, write_tiny_faces


def test_stand_ins_cost_what_the_real_models_do_and_answer_like_the_tiny_ones(tmp_path):
    tiny = write_tiny_faces(tmp_path / "tiny")
    manifests = face_manifests(tiny)
    det_path = add_cost(tiny.paths["yunet"], tmp_path / "yunet.onnx", DETECTOR_STACK)
    rec_path = add_cost(tiny.paths["sface"], tmp_path / "sface.onnx", RECOGNISER_STACK)
    macs, params = stack_stats(DETECTOR_STACK, 640)
    assert 0.1e9 < macs < 0.6e9 and 50_000 < params < 120_000  # YuNet: 75,856 parameters
    macs, params = stack_stats(RECOGNISER_STACK, 112)
    assert 0.2e9 < macs < 1e9  # MobileFaceNet-class: 0.22 GMAC

    image = picture(TWO_FACES)
    det = {k: FaceDetector(Manifest.from_dict(manifests["yunet"]), p, threads=1)
           for k, p in (("tiny", tiny.paths["yunet"]), ("costly", det_path))}
    faces = {k: d.detect(image) for k, d in det.items()}
    assert len(faces["costly"]) == 2
    assert np.allclose([f.box for f in faces["costly"]], [f.box for f in faces["tiny"]], atol=1e-3)

    int8 = tmp_path / "sface.int8.onnx"
    options = resolve_options({"op_types": ["Conv", "MatMul"], "nodes_to_exclude": tiny_nodes(rec_path)})
    quantize_file(rec_path, int8, options)
    assert int8.stat().st_size < rec_path.stat().st_size / 2  # the stack's weights are int8 now
    vectors = []
    for path in (tiny.paths["sface"], rec_path, int8):
        e = FaceEmbedder(Manifest.from_dict(manifests["sface"]), path, threads=1)
        vectors.append(e.embed_faces(image, faces["tiny"]))
    assert np.allclose(vectors[0], vectors[1], atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-2)
