"""Faces: fetch the tiny face models, detect, align, embed; NMS, thresholds, status, idle unloading."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photobox.ml.faces import (
    ARCFACE_TEMPLATE,
    FaceDetector,
    FaceEmbedder,
    FaceModels,
    FaceModelsMissing,
    align_face,
    nms,
    similarity_transform,
)
from photobox.ml.fetch import ChecksumError, fetch_model
from photobox.ml.registry import Manifest, ManifestError, list_manifests, load_installed
from photobox.resources import MODELS_DIR
from tests.ml.helpers import FakeClock, write_manifest
from tests.ml.tinyfaces import TinyFaceFiles, face_manifests, square_landmarks, write_tiny_faces

BACKGROUND = (40, 40, 40)
RED, RED_AGAIN, BLUE = (230, 70, 60), (220, 80, 75), (60, 70, 230)
PAIRS = [("yunet", "sface"), ("scrfd", "arcface")]


def picture(squares, size=(640, 480)) -> Image.Image:
    """A dark picture with bright squares ``(x0, y0, side, colour)``: the tiny detector's faces."""
    arr = np.full((size[1], size[0], 3), BACKGROUND, np.uint8)
    for x0, y0, side, colour in squares:
        arr[y0:y0 + side, x0:x0 + side] = colour
    return Image.fromarray(arr)


TWO_FACES = [(80, 100, 64, RED), (380, 200, 120, BLUE)]


def expected_box(x0, y0, side):
    return np.array([x0, y0, x0 + side, y0 + side], float)


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory) -> TinyFaceFiles:
    return write_tiny_faces(tmp_path_factory.mktemp("tiny-faces"))


@pytest.fixture
def face_manifests_dir(tmp_path: Path, tiny_faces: TinyFaceFiles) -> Path:
    folder = tmp_path / "manifests"
    for manifest in face_manifests(tiny_faces).values():
        write_manifest(folder, manifest)
    return folder


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "models"


def fetch(key: str, models_dir: Path, manifests_dir: Path, files: TinyFaceFiles):
    return fetch_model(f"tiny-{key}", models_dir, source_override=files.override(key), manifests_dir=manifests_dir)


@pytest.fixture
def installed(models_dir, face_manifests_dir, tiny_faces) -> dict:
    return {key: fetch(key, models_dir, face_manifests_dir, tiny_faces) for pair in PAIRS for key in pair}


def detector(files: TinyFaceFiles, key: str = "yunet", **kwargs) -> FaceDetector:
    manifest = Manifest.from_dict(face_manifests(files)[key])
    return FaceDetector(manifest, files.paths[key], threads=1, **kwargs)


def embedder(files: TinyFaceFiles, key: str = "sface") -> FaceEmbedder:
    return FaceEmbedder(Manifest.from_dict(face_manifests(files)[key]), files.paths[key], threads=1)


# --- fetching -------------------------------------------------------------------------------


def test_fetch_verifies_quantizes_checks_and_records(installed, models_dir, face_manifests_dir, tiny_faces):
    records = load_installed(models_dir)
    assert set(records) == {"tiny-yunet", "tiny-sface", "tiny-scrfd", "tiny-arcface"}
    for name, record in records.items():
        assert record.task == ("face-detect" if name in ("tiny-yunet", "tiny-scrfd") else "face-embed")
        model = record.files["model"]
        assert model.quantized and model.path.endswith("model.int8.onnx")
        assert record.path("model", models_dir).is_file()
        assert record.checks["model_int8_cosine"] > 0.98
    assert all(r.status == "installed" for r in installed.values())
    assert fetch("yunet", models_dir, face_manifests_dir, tiny_faces).status == "already-installed"


def test_fetch_refuses_a_wrong_file(models_dir, face_manifests_dir, tiny_faces):
    with pytest.raises(ChecksumError):
        fetch_model("tiny-yunet", models_dir, source_override=tiny_faces.override("sface"),
                    manifests_dir=face_manifests_dir)
    assert not (models_dir / "tiny-yunet").exists()


def test_fetch_refuses_a_detector_with_the_wrong_contract(models_dir, tmp_path, tiny_faces):
    manifest = face_manifests(tiny_faces)["scrfd"]
    manifest["files"]["model"]["sha256"] = tiny_faces.sha256("sface")
    manifest["files"]["model"]["size"] = tiny_faces.size("sface")
    folder = tmp_path / "bad"
    write_manifest(folder, manifest)
    with pytest.raises(Exception, match="tiny-scrfd"):
        fetch_model("tiny-scrfd", models_dir, source_override=tiny_faces.override("sface"), manifests_dir=folder)


# --- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["yunet", "scrfd"])
def test_detects_two_faces_in_original_coordinates(tiny_faces, key):
    faces = detector(tiny_faces, key).detect(picture(TWO_FACES))
    assert len(faces) == 2
    by_x = sorted(faces, key=lambda f: f.box[0])
    for face, (x0, y0, side, _) in zip(by_x, TWO_FACES, strict=True):
        assert np.allclose(face.box, expected_box(x0, y0, side), atol=1.0), face.box
        assert np.allclose(face.landmarks, square_landmarks(x0, y0, side), atol=1.0)
        assert face.score > 0.9
        assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    assert faces[0].score >= faces[1].score  # best first


@pytest.mark.parametrize("key", ["yunet", "scrfd"])
@pytest.mark.parametrize("factor", [0.5, 1.7, 3.0])
def test_boxes_follow_a_resized_input(tiny_faces, key, factor):
    image = picture(TWO_FACES)
    resized = image.resize((round(640 * factor), round(480 * factor)), Image.Resampling.BILINEAR)
    faces = sorted(detector(tiny_faces, key, min_size=10).detect(resized), key=lambda f: f.box[0])
    assert len(faces) == 2
    for face, (x0, y0, side, _) in zip(faces, TWO_FACES, strict=True):
        # within a pixel of the 640-wide picture the detector saw, i.e. `factor` pixels here
        tolerance = max(1.0, factor)
        assert np.allclose(face.box, expected_box(x0, y0, side) * factor, atol=tolerance), (face.box, factor)
        assert np.allclose(face.landmarks, square_landmarks(x0, y0, side) * factor, atol=tolerance)


def test_boxes_follow_a_rotated_input(tiny_faces):
    image = picture(TWO_FACES)
    rotated = image.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise: (x, y) → (y, 640 - x)
    faces = sorted(detector(tiny_faces).detect(rotated), key=lambda f: f.box[0])
    want = sorted([np.array([y0, 640 - x0 - side, y0 + side, 640 - x0]) for x0, y0, side, _ in TWO_FACES],
                  key=lambda b: b[0])
    assert [np.allclose(f.box, w, atol=1.0) for f, w in zip(faces, want, strict=True)] == [True, True]


def test_exif_orientation_is_applied_first(tiny_faces):
    upright = picture(TWO_FACES)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", exif=exif)
    with Image.open(io.BytesIO(buffer.getvalue())) as reopened:
        reopened.load()
        faces = sorted(detector(tiny_faces).detect(reopened), key=lambda f: f.box[0])
    for face, (x0, y0, side, _) in zip(faces, TWO_FACES, strict=True):
        assert np.allclose(face.box, expected_box(x0, y0, side), atol=1.0)


def test_nms_drops_duplicates(tiny_faces):
    image = picture(TWO_FACES)
    everything = detector(tiny_faces, nms_iou=1.0).detect(image)
    assert len(everything) > 4  # neighbouring grid cells find the same squares
    assert len(detector(tiny_faces).detect(image)) == 2
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.85])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 3, 0, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_min_size_and_min_score(tiny_faces):
    # 24 px: a size between the detector's preferred 32 (stride 8) and 16: a lower score
    image = picture([(80, 100, 64, RED), (380, 200, 120, BLUE), (300, 60, 22, RED)])
    faces = detector(tiny_faces, min_size=10, min_score=0.5).detect(image)
    small = [f for f in faces if f.width < 30]
    assert len(faces) == 3 and len(small) == 1 and 0.5 <= small[0].score < 0.9
    assert len(detector(tiny_faces, min_size=10, min_score=0.9).detect(image)) == 2
    sizes = sorted(round(f.width) for f in detector(tiny_faces, min_size=100, min_score=0.5).detect(image))
    assert sizes == [120]


def test_no_faces_in_an_empty_picture(tiny_faces):
    assert detector(tiny_faces).detect(picture([])) == []
    assert detector(tiny_faces, "scrfd").detect(Image.new("L", (50, 30), 20)) == []


# --- alignment ------------------------------------------------------------------------------


def _dot_centres(crop: Image.Image, colours) -> np.ndarray:
    arr = np.asarray(crop, dtype=np.float64)
    centres = []
    for colour in colours:
        weight = np.clip(1 - np.abs(arr - colour).sum(axis=2) / 120, 0, None)
        ys, xs = np.mgrid[0:arr.shape[0], 0:arr.shape[1]]
        centres.append([(weight * xs).sum() / weight.sum() + 0.5, (weight * ys).sum() / weight.sum() + 0.5])
    return np.array(centres)


@pytest.mark.parametrize(("angle", "scale", "shift"), [(0, 1.0, (0, 0)), (25, 2.3, (200, 90)), (-40, 0.9, (30, 160))])
def test_align_puts_landmarks_on_the_template(angle, scale, shift):
    theta = np.radians(angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) * scale
    # landmarks of a face somewhere in a 500×400 picture (PIL coordinates)
    landmarks = (ARCFACE_TEMPLATE + 0.5) @ rot.T + np.array(shift) + 40
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    arr = np.zeros((400, 500, 3), np.uint8)
    ys, xs = np.mgrid[0:400, 0:500] + 0.5
    for (x, y), colour in zip(landmarks, colours, strict=True):
        arr[(xs - x) ** 2 + (ys - y) ** 2 <= (2.5 * scale) ** 2] = colour
    crop = align_face(Image.fromarray(arr), landmarks)
    assert crop.size == (112, 112) and crop.mode == "RGB"
    assert np.abs(_dot_centres(crop, colours) - (ARCFACE_TEMPLATE + 0.5)).max() < 1.0


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 100, size=(5, 2))
    theta, s, t = 0.3, 1.7, np.array([12.0, -5.0])
    rot = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    matrix = similarity_transform(src, src @ rot.T + t)
    assert np.allclose(matrix[:, :2], rot) and np.allclose(matrix[:, 2], t)
    with pytest.raises(ValueError):
        similarity_transform(np.ones((5, 2)), src)


@pytest.mark.parametrize(("det", "rec"), PAIRS)
def test_aligned_detection_fills_the_crop_with_the_face(tiny_faces, det, rec):
    image = picture(TWO_FACES)
    for face in detector(tiny_faces, det).detect(image):
        crop = np.asarray(align_face(image, face.landmarks), dtype=np.float64)
        colour = RED if face.box[0] < 300 else BLUE
        inner = crop[2:-2, 2:-2]  # the square maps onto the whole crop
        assert np.abs(inner - colour).max() < 2


# --- embeddings -----------------------------------------------------------------------------


@pytest.mark.parametrize(("det", "rec"), PAIRS)
def test_same_person_close_different_far(tiny_faces, det, rec):
    find, embed = detector(tiny_faces, det), embedder(tiny_faces, rec)
    first = picture([(80, 100, 64, RED), (380, 200, 120, BLUE)])
    second = picture([(300, 40, 100, RED_AGAIN)], size=(500, 400))  # same "person", elsewhere, larger
    faces1 = sorted(find.detect(first), key=lambda f: f.box[0])
    faces2 = find.detect(second)
    v1 = embed.embed_faces(first, faces1)
    v2 = embed.embed_faces(second, faces2)
    assert v1.shape == (2, embed.embedding_size) and v1.dtype == np.float32
    assert np.allclose(np.linalg.norm(v1, axis=1), 1, atol=1e-5)
    red, blue, red_again = v1[0], v1[1], v2[0]
    assert red @ red_again > 0.95
    assert red @ blue < 0.3
    assert embed.embed([]).shape == (0, embed.embedding_size)


def test_embed_batches_larger_than_the_model_takes(tiny_faces):
    crops = [Image.new("RGB", (112, 112), c) for c in (RED, BLUE, RED_AGAIN, (200, 200, 90), RED)]
    for key in ("sface", "arcface"):  # SFace has a fixed batch of 1, ArcFace any
        e = embedder(tiny_faces, key)
        e.batch_size = 2
        vectors = e.embed(crops)
        assert vectors.shape == (5, e.embedding_size)
        assert vectors[0] @ vectors[4] > 0.999 and vectors[0] @ vectors[1] < 0.3
        single = np.stack([e.embed([c])[0] for c in crops])
        assert np.allclose(single, vectors, atol=1e-5)


# --- the manager ----------------------------------------------------------------------------


def test_status_without_models_says_how_to_fetch(models_dir, face_manifests_dir):
    faces = FaceModels(models_dir, manifests_dir=face_manifests_dir)
    status = faces.status()
    assert not status["ready"] and status["detector"] is None and status["embedder"] is None
    assert status["missing"] == ["face-detect", "face-embed"]
    assert "photobox models fetch tiny-yunet tiny-sface" in status["message"]
    assert {a["name"] for a in status["available"]} == {"tiny-yunet", "tiny-scrfd", "tiny-sface", "tiny-arcface"}
    assert faces.detector() is None and faces.embedder() is None and faces.model_id() is None
    with pytest.raises(FaceModelsMissing, match="photobox models fetch"):
        faces.detect_and_embed(picture(TWO_FACES))


def test_status_with_only_a_detector(models_dir, face_manifests_dir, tiny_faces):
    fetch("yunet", models_dir, face_manifests_dir, tiny_faces)
    status = FaceModels(models_dir, manifests_dir=face_manifests_dir).status()
    assert not status["ready"] and status["missing"] == ["face-embed"]
    assert "photobox models fetch tiny-sface --data-dir " in status["message"] and "recogniser" in status["message"]


def test_detect_and_embed_idle_unload_and_reload(installed, models_dir, face_manifests_dir):
    clock = FakeClock()
    faces = FaceModels(models_dir, manifests_dir=face_manifests_dir, idle_seconds=60, clock=clock, threads=1)
    status = faces.status()
    assert status["ready"] and status["detector"]["name"] == "tiny-yunet" and status["embedder"]["name"] == "tiny-sface"
    assert status["detector"]["loaded"] is False
    results = faces.detect_and_embed(picture(TWO_FACES))
    assert len(results) == 2 and all(v.shape == (128,) for _, v in results)
    assert faces.model_id().startswith("tiny-sface@")
    assert faces.status()["detector"]["loaded"] and faces.status()["embedder"]["loaded"]
    clock.advance(30)
    assert faces.unload_idle() == []
    clock.advance(31)
    assert sorted(faces.unload_idle()) == ["tiny-sface", "tiny-yunet"]
    assert not faces.status()["detector"]["loaded"] and not faces.status()["embedder"]["loaded"]
    again = faces.detect_and_embed(picture(TWO_FACES))  # reloads on demand
    assert [f.box for f, _ in again] == [f.box for f, _ in results]
    assert all(np.allclose(a[1], b[1]) for a, b in zip(again, results, strict=True))


def test_manager_picks_named_models(installed, models_dir, face_manifests_dir):
    faces = FaceModels(models_dir, manifests_dir=face_manifests_dir, detector_name="tiny-scrfd",
                       embedder_name="tiny-arcface", threads=1)
    results = faces.detect_and_embed(picture(TWO_FACES))
    assert len(results) == 2 and results[0][1].shape == (512,)
    assert faces.status()["embedder"]["embedding_size"] == 512


def test_throughput_of_the_tiny_models(installed, models_dir, face_manifests_dir):
    faces = FaceModels(models_dir, manifests_dir=face_manifests_dir, threads=1)
    image = picture(TWO_FACES, size=(1024, 768))
    faces.detect_and_embed(image)  # load
    runs, found = 10, 0
    started = time.perf_counter()
    for _ in range(runs):
        found += len(faces.detect_and_embed(image))
    elapsed = time.perf_counter() - started
    print(f"\n[tiny faces] {found / elapsed:.1f} faces/s, {runs / elapsed:.1f} images/s "
          f"(1024x768, yunet+sface int8, 1 thread)")
    assert found == 2 * runs


# --- manifests ------------------------------------------------------------------------------


def test_shipped_face_manifests():
    manifests = {m.name: m for m in list_manifests() if m.task.startswith("face-")}
    defaults = sorted(n for n, m in manifests.items() if m.default)
    assert defaults == ["face-sface-2021dec", "face-yunet-2023mar"]
    for m in manifests.values():
        assert m.licence and m.source.startswith("https://")
        spec = m.files["model"]
        assert spec.url.endswith("/" + spec.path.rsplit("/", 1)[-1])
        if m.default:  # the licence-clean pair is pinned and fixed to a commit
            assert spec.sha256 and spec.size and re.search(r"/[0-9a-f]{40}/", spec.url)
        if "insightface" in m.licence.lower() or "buffalo" in m.name:
            assert "non-commercial" in m.licence.lower()
    for path in sorted(MODELS_DIR.glob("face-*.json")):
        data = json.loads(path.read_text())
        assert data["files"]["model"]["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}",
                                                                        data["files"]["model"]["sha256"])


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["detector"].pop("decoder"), "detector.decoder"),
    (lambda d: d["detector"].update(strides=[8, 0]), "detector.strides"),
    (lambda d: d["files"].update(image=d["files"]["model"]), "files"),
    (lambda d: d["preprocess"].update(channels="rgba"), "preprocess.channels"),
    (lambda d: d.update(task="face-embed"), "embedding_size"),
])
def test_invalid_face_manifests(tiny_faces, change, message):
    data = json.loads(json.dumps(face_manifests(tiny_faces)["yunet"]))
    change(data)
    with pytest.raises(ManifestError, match=re.escape(message)):
        Manifest.from_dict(data)
