"""ClipModel and ModelManager on the tiny models: shapes, semantics, preprocessing, caching, unloading."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto
from PIL import Image

from photobox.ml.clip import ClipModel, ModelManager, preprocess_image
from photobox.ml.fetch import fetch_model
from photobox.ml.registry import load_installed
from tests.ml.helpers import FakeClock, file_override, write_manifest
from tests.ml.tinymodels import (
    CLIP_MEAN,
    CLIP_STD,
    CONTEXT,
    DIM,
    build_text_model,
    tiny_manifest,
    vocabulary,
    write_tiny_models,
)

RED, GREEN, BLUE = (230, 20, 25), (30, 200, 40), (20, 40, 220)


def solid(colour, size=(320, 240)) -> Image.Image:
    return Image.new("RGB", size, colour)


@pytest.fixture
def manager(installed, models_dir, manifests_dir) -> ModelManager:
    return ModelManager(models_dir, threads=1, idle_seconds=60, manifests_dir=manifests_dir, clock=FakeClock())


@pytest.fixture
def clip(manager) -> ClipModel:
    model = manager.clip()
    assert model is not None
    return model


def test_image_embeddings_shape_dtype_and_norm(clip):
    emb = clip.embed_images([solid(RED), solid(BLUE), solid(GREEN, (100, 300)),
                              solid((250, 240, 230)).convert("L")])  # grey-scale input works too
    assert emb.shape == (4, DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert clip.embed_images([]).shape == (0, DIM)


def test_text_embeddings_shape_dtype_and_norm(clip):
    emb = clip.embed_texts(["red", "a photo of the sky", "grass", "completely unknown words"])
    assert emb.shape == (4, DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert clip.embed_texts([]).shape == (0, DIM)


def test_text_ranks_matching_colours_first(clip):
    images = clip.embed_images([solid(RED), solid(GREEN), solid(BLUE)])
    scores = clip.embed_texts(["red", "a photo of green grass", "the blue sky", "fire", "sea"]) @ images.T
    assert list(scores.argmax(axis=1)) == [0, 1, 2, 0, 2]
    assert scores[0, 0] > scores[0, 2] + 0.5  # "red" ranks a red image well above a blue one


def test_mixed_scene_ranks_by_dominant_colour(clip):
    half = Image.new("RGB", (200, 200), BLUE)
    half.paste(Image.new("RGB", (200, 140), RED), (0, 0))  # mostly red, some blue
    imgs = clip.embed_images([half, solid(BLUE)])
    red, blue = clip.embed_texts(["red", "blue"])
    assert red @ imgs[0] > red @ imgs[1]
    assert blue @ imgs[1] > blue @ imgs[0]


def test_int8_embeddings_stay_close_to_fp32(clip, tiny):
    fp32 = ort.InferenceSession(str(tiny.image), providers=["CPUExecutionProvider"])
    images = [solid(RED), solid((120, 130, 200)), solid((250, 250, 20))]
    batch = np.stack([clip.preprocess(i) for i in images])
    ref = fp32.run(None, {"image": batch})[0]
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert (clip.embed_images(images) * ref).sum(axis=1).min() > 0.999


def test_preprocess_matches_a_hand_computation():
    cfg = {"size": 224, "resize": "shortest", "interpolation": "bicubic", "crop": "center",
           "mean": CLIP_MEAN, "std": CLIP_STD}
    rng = np.random.default_rng(7)
    img = Image.fromarray(rng.integers(0, 256, size=(200, 301, 3), dtype=np.uint8), "RGB")  # landscape
    out = preprocess_image(img, cfg)
    # torchvision: Resize(224) → (int(224 * 301 / 200), 224) = (337, 224); CenterCrop rounds the offset.
    resized = img.resize((337, 224), Image.Resampling.BICUBIC)
    left = int(round((337 - 224) / 2.0))
    crop = np.asarray(resized.crop((left, 0, left + 224, 224)), dtype=np.float32) / 255.0
    want = ((crop - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)).transpose(2, 0, 1)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)

    portrait = preprocess_image(img.transpose(Image.Transpose.ROTATE_90), cfg)
    assert portrait.shape == (3, 224, 224)
    # A solid colour normalises to exactly ((c / 255) - mean) / std everywhere.
    flat = preprocess_image(solid((10, 200, 30)), cfg)
    expected = (np.array([10, 200, 30]) / 255.0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    np.testing.assert_allclose(flat[:, 100, 100], expected, rtol=1e-5)


def test_preprocess_squash_and_alpha():
    cfg = {"size": 64, "resize": "squash", "interpolation": "bilinear", "crop": "none",
           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    img = Image.new("RGBA", (300, 100), (255, 0, 0, 0))
    out = preprocess_image(img, cfg)
    assert out.shape == (3, 64, 64)
    np.testing.assert_allclose(out[:, 10, 10], [1.0, -1.0, -1.0])  # alpha dropped like open_clip


def test_tokenizer_pads_truncates_and_keeps_eos_last(clip):
    tok = clip.tokenizer()
    vocab = vocabulary()
    ids, mask = tok(["Red   fire", " ".join(["sky"] * 200)])
    assert ids.shape == (2, CONTEXT)
    assert list(ids[0, :4]) == [vocab["<bos>"], vocab["red"], vocab["fire"], vocab["<eos>"]]
    assert set(ids[0, 4:]) == {vocab["<pad>"]} and mask[0].sum() == 4
    assert ids[1, 0] == vocab["<bos>"] and ids[1, -1] == vocab["<eos>"] and mask[1].sum() == CONTEXT


def test_int64_text_input_and_fixed_batch_models(models_dir, tmp_path):
    # Static batch of 1 (as Immich's exports) and a text tower taking int64 "input_ids"
    # (transformers.js style).
    repo = write_tiny_models(tmp_path / "repo", fixed_batch=1)
    build_text_model(repo.text, fixed_batch=1, input_name="input_ids", dtype=TensorProto.INT64)
    manifest = tiny_manifest(repo, input_names={"image": "image", "text": "input_ids"})
    write_manifest(tmp_path / "m", manifest)
    fetch_model("tiny-clip", models_dir, source_override=file_override(repo), manifests_dir=tmp_path / "m")
    clip = ModelManager(models_dir, threads=1).clip()
    images = clip.embed_images([solid(RED), solid(GREEN), solid(BLUE)])  # three runs of batch 1
    texts = clip.embed_texts(["red", "green", "blue"])
    assert images.shape == (3, DIM) and texts.shape == (3, DIM)
    assert list((texts @ images.T).argmax(axis=1)) == [0, 1, 2]
    assert clip._towers["text"].input_dtype is np.int64 and clip._towers["image"].fixed_batch == 1


def test_text_embeddings_are_cached(clip, monkeypatch):
    first = clip.embed_texts(["red", "sky"])
    calls = []
    run = clip._towers["text"].run
    monkeypatch.setattr(clip._towers["text"], "run", lambda *a: calls.append(a) or run(*a))
    again = clip.embed_texts(["sky", "red", "red"])
    assert calls == []  # no inference: all from the cache
    np.testing.assert_array_equal(again[0], first[1])
    again[0] += 1  # callers get their own array…
    np.testing.assert_array_equal(clip.embed_texts(["sky"])[0], first[1])  # …the cache is untouched
    assert clip.cache_info()["hits"] >= 4
    clip.embed_texts(["grass", "red"])
    assert len(calls) == 1 and len(calls[0][0]) == 1  # only the new text was embedded


def test_text_cache_is_bounded(installed, models_dir):
    clip = ModelManager(models_dir, threads=1, text_cache_size=2).clip()
    clip.embed_texts(["red", "sky", "grass"])
    assert clip.cache_info()["size"] == 2


def test_idle_unload_frees_sessions_and_next_call_reloads(manager, clip):
    clock = manager.clock
    assert clip.loaded == {"image": False, "text": False}  # lazy
    clip.embed_images([solid(RED)])
    assert clip.loaded == {"image": True, "text": False}
    clock.advance(30)
    clip.embed_texts(["blue"])
    clock.advance(31)
    assert manager.unload_idle() == ["tiny-clip:image"]  # text was used 31 s ago
    assert clip.loaded == {"image": False, "text": True}
    clock.advance(30)
    assert manager.unload_idle() == ["tiny-clip:text"]
    assert clip.loaded == {"image": False, "text": False}
    assert manager.unload_idle() == []
    emb = clip.embed_images([solid(BLUE)])  # reloads transparently
    assert clip.loaded["image"] and emb.shape == (1, DIM)
    assert manager.clip() is clip  # same object while the install is unchanged


def test_without_models_clip_is_none_and_status_explains(tmp_path):
    manager = ModelManager(tmp_path / "models")
    assert manager.clip() is None
    status = manager.status()
    assert status["ready"] is False and status["active"] is None and status["installed"] == []
    # the shipped default has no sha256 pins yet: the command says --trust-on-first-use
    assert "photobox models fetch --trust-on-first-use --data-dir " in status["fetch_command"]
    assert "photobox models fetch" in status["message"]
    assert {a["name"] for a in status["available"]} >= {"clip-vit-b-32-laion2b", "mobileclip-s0"}
    assert manager.unload_idle() == []


def test_status_when_installed(manager, clip):
    clip.embed_texts(["red"])
    status = manager.status()
    assert status["ready"] and status["installed"] == ["tiny-clip"]
    active = status["active"]
    assert active["name"] == "tiny-clip" and active["model_id"] == clip.model_id
    assert active["loaded"] == {"image": False, "text": True} and active["embedding_size"] == DIM
    assert "tiny-clip" in status["message"]


def test_manager_notices_a_new_install_and_removal(models_dir, manifests_dir, tiny):
    manager = ModelManager(models_dir, threads=1, manifests_dir=manifests_dir)
    assert manager.clip() is None
    fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=manifests_dir)
    clip = manager.clip()
    assert clip is not None and clip.embed_texts(["red"]).shape == (1, DIM)
    (models_dir / "installed.json").write_text('{"version": 1, "models": {}}')
    assert manager.clip() is None and manager.status()["ready"] is False


def test_damaged_state_is_reported_not_raised(models_dir):
    models_dir.mkdir(parents=True)
    (models_dir / "installed.json").write_text("[broken")
    manager = ModelManager(models_dir)
    assert manager.clip() is None
    assert "damaged" in manager.status()["message"]


def test_named_model_that_is_not_installed(installed, models_dir, manifests_dir):
    manager = ModelManager(models_dir, model_name="clip-vit-b-32-laion2b", manifests_dir=manifests_dir)
    assert manager.clip() is None
    assert "photobox models fetch clip-vit-b-32-laion2b" in manager.status()["message"]


def test_concurrent_use_is_consistent(clip, manager):
    want_img = clip.embed_images([solid(RED)])[0]
    want_txt = clip.embed_texts(["sky"])[0]
    errors, results = [], []

    def work(i):
        try:
            if i % 3 == 0:
                manager.unload_idle(now=manager.clock() + 3600)  # unload while others run
            results.append((clip.embed_images([solid(RED)])[0], clip.embed_texts(["sky"])[0]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and len(results) == 12
    for img, txt in results:
        np.testing.assert_allclose(img, want_img, atol=1e-6)
        np.testing.assert_allclose(txt, want_txt, atol=1e-6)


def test_throughput_of_the_tiny_model(clip, capsys):
    """Not a benchmark of real models: shows what preprocessing + a trivial tower cost here."""
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (480, 640, 3), dtype=np.uint8))
              for i in range(32)]
    clip.embed_images(images[:2])  # load the session first
    start = time.perf_counter()
    clip.embed_images(images)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[tiny CLIP] {len(images) / elapsed:.0f} images/s (640x480 inputs, preprocessing included)")


def test_installed_record_is_what_the_model_uses(installed, models_dir, clip):
    record = load_installed(models_dir)["tiny-clip"]
    assert clip.model_id == record.model_id
    assert clip._towers["image"].path == models_dir / record.files["image"].path


def test_a_busy_tower_is_not_unloaded(manager, clip):
    clip.embed_images([solid(RED)])
    tower = clip._towers["image"]
    tower.busy += 1  # as if a long batch were running in another thread
    try:
        assert manager.unload_idle(now=manager.clock() + 3600) == []
    finally:
        tower.busy -= 1
    assert manager.unload_idle(now=manager.clock() + 3600) == ["tiny-clip:image"]


def test_unknown_pad_token_is_refused_at_fetch_time(models_dir, tmp_path, tiny):
    from photobox.ml.fetch import FetchError

    write_manifest(tmp_path / "m", tiny_manifest(tiny, tokenizer={"pad_token": "<nothing>"}))
    with pytest.raises(FetchError, match="<nothing>"):
        fetch_model("tiny-clip", models_dir, source_override=file_override(tiny), manifests_dir=tmp_path / "m")
