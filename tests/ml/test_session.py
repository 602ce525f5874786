"""photobox.ml.session: the lazy onnxruntime session CLIP and faces share, and the installed-models cache."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from photobox.ml import clip as clip_module
from photobox.ml import faces as faces_module
from photobox.ml.session import (
    InstalledCache,
    LazySession,
    ModelError,
    choose_installed,
    l2_normalise,
    pad_batch,
    swap_model,
)
from tests.ml.helpers import FakeClock


def image_feed(session) -> dict[str, np.ndarray]:
    meta = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in meta.shape]
    return {meta.name: np.zeros(shape, np.float32)}


def test_loads_on_first_use_and_unloads_only_when_idle(tiny):
    clock = FakeClock()
    lazy = LazySession("tiny image", tiny.image, 1, clock)
    assert not lazy.loaded and not lazy.unload_idle(0)
    session = lazy.session()
    assert lazy.loaded and lazy.session() is session
    out = lazy.run(image_feed(session))
    assert out[0].shape[0] == 1 and lazy.last_used == clock() and lazy.busy == 0
    clock.advance(59)
    assert not lazy.unload_idle(60) and lazy.loaded
    clock.advance(1)
    assert lazy.unload_idle(60) and not lazy.loaded
    assert not lazy.unload()  # already gone
    lazy.run(image_feed(lazy.session()))  # reloads on next use
    assert lazy.loaded and lazy.unload() and not lazy.loaded


def test_a_run_in_progress_is_not_unloaded_when_idle(tiny):
    clock = FakeClock()
    lazy = LazySession("tiny image", tiny.image, 1, clock)
    with lazy.in_use() as session:
        assert lazy.busy == 1
        clock.advance(3600)
        assert not lazy.unload_idle(60)
        # An explicit unload during the run drops our reference; the run keeps its own.
        assert lazy.unload() and not lazy.loaded
        assert lazy.run_on(session, image_feed(session))[0].shape[0] == 1
    assert lazy.busy == 0 and lazy.last_used == clock()


def test_two_threads_load_once(tiny, monkeypatch):
    import onnxruntime as ort

    created = []
    real = ort.InferenceSession

    def counting(*args, **kwargs):
        created.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    lazy = LazySession("tiny image", tiny.image, 1, FakeClock())
    barrier = threading.Barrier(4)
    got = []

    def work():
        barrier.wait()
        got.append(lazy.session())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 1 and len({id(s) for s in got}) == 1


def test_unloadable_file_is_a_model_error(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    lazy = LazySession("broken model", broken, 1, FakeClock())
    with pytest.raises(ModelError, match="broken model: cannot load broken.onnx"):
        lazy.session()
    assert not lazy.loaded and lazy.busy == 0


def test_inspect_can_reject_a_session_and_it_is_not_kept(tiny):
    class Picky(LazySession):
        calls = 0

        def inspect(self, session):
            Picky.calls += 1
            raise ModelError("does not match its manifest")

    lazy = Picky("picky", tiny.image, 1, FakeClock())
    for _ in range(2):
        with pytest.raises(ModelError, match="does not match"):
            lazy.session()
    assert not lazy.loaded and Picky.calls == 2  # tried again, not cached


def test_clip_and_faces_share_the_pieces():
    """The duplicated holders are gone: both modules use photobox.ml.session."""
    assert issubclass(clip_module._Tower, LazySession)
    assert clip_module.ModelError is ModelError and faces_module.ModelError is ModelError
    assert issubclass(faces_module.FaceModelsMissing, ModelError)
    assert not hasattr(faces_module, "_LazySession") and not hasattr(clip_module, "_session_options")


def test_helpers():
    rows = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert rows.dtype == np.float32 and np.allclose(rows, [[0.6, 0.8], [0.0, 0.0]])
    chunk = np.ones((2, 3), np.int64)
    assert pad_batch(chunk, None) is chunk and pad_batch(chunk, 2) is chunk
    padded = pad_batch(chunk, 4)
    assert padded.shape == (4, 3) and padded.dtype == np.int64 and padded[2:].sum() == 0


def test_installed_cache_rereads_only_on_change(installed, models_dir):
    cache = InstalledCache(models_dir)
    first = cache.read()
    assert list(first) == ["tiny-clip"] and cache.error is None
    assert cache.read() is first  # unchanged file: not parsed again
    assert choose_installed(first, "clip", None).name == "tiny-clip"
    assert choose_installed(first, "clip", "other") is None and choose_installed(first, "face-detect", None) is None
    (models_dir / "installed.json").write_text("{ damaged")
    assert cache.read() == {} and cache.error
    (models_dir / "installed.json").unlink()
    assert cache.read() == {} and cache.error is None


def test_swap_model_keeps_replaces_and_drops(installed, models_dir):
    class Fake:
        def __init__(self, record):
            self.model_id, self.unloaded = record.model_id, False

        def unload(self):
            self.unloaded = True

    record = InstalledCache(models_dir).read()["tiny-clip"]
    made = []

    def make(r):
        made.append(Fake(r))
        return made[-1]

    first = swap_model(None, record, make, "CLIP")
    assert swap_model(first, record, make, "CLIP") is first and len(made) == 1  # the same install: kept
    newer = dataclasses.replace(record, dir="tiny-clip/newer")
    second = swap_model(first, newer, make, "CLIP")
    assert second is made[1] and first.unloaded and not second.unloaded  # a new install: replaced
    assert swap_model(second, None, make, "CLIP") is None and second.unloaded  # removed: dropped
    assert swap_model(None, None, make, "CLIP") is None and len(made) == 2
