"""Manifests (the shipped ones and invalid ones) and installed.json."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from photobox.ml.registry import (
    FILE_KEYS,
    InstalledStateError,
    Manifest,
    ManifestError,
    get_manifest,
    list_manifests,
    load_installed,
    load_manifest,
    save_installed,
)
from photobox.resources import MODELS_DIR
from tests.ml.helpers import write_manifest
from tests.ml.tinymodels import tiny_manifest


def test_shipped_manifests_are_valid_and_pinned_to_a_revision():
    manifests = [m for m in list_manifests() if m.task == "clip"]  # face manifests: tests/ml/test_faces.py
    names = [m.name for m in manifests]
    assert {"clip-vit-b-32-laion2b", "mobileclip-s0", "siglip-b16-i18n-256"} <= set(names)
    assert [m.name for m in manifests if m.default] == ["clip-vit-b-32-laion2b"]
    assert names[0] == "clip-vit-b-32-laion2b"  # default first
    for m in manifests:
        assert m.licence and m.source.startswith("https://")
        for key in FILE_KEYS:
            spec = m.files[key]
            # A moving branch ("main") would change the files under a pin.
            assert re.search(r"/resolve/[0-9a-f]{40}/", spec.url), spec.url
            assert spec.url.endswith("/" + spec.path)
        assert len(m.preprocess["mean"]) == 3


def test_default_manifest_matches_immich_export():
    m = get_manifest("clip-vit-b-32-laion2b")
    assert m.preprocess == {"size": 224, "resize": "shortest", "interpolation": "bicubic", "crop": "center",
                            "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}
    assert (m.embedding_size, m.context_length) == (512, 77)
    assert m.files["image"].quantize and m.files["text"].quantize and not m.files["tokenizer"].quantize
    assert m.input_names == {"image": "image", "text": "text"}


def test_unpinned_files_are_null_not_invented():
    for path in sorted(MODELS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        for spec in data["files"].values():
            assert spec["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", spec["sha256"])


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["files"]["image"].update(sha256="ABC"), "sha256"),
    (lambda d: d["files"].pop("tokenizer"), "files"),
    (lambda d: d["files"]["text"].update(url="ftp://x/y"), "url"),
    (lambda d: d.update(task="faces"), "task"),
    (lambda d: d["preprocess"].update(mean=[0.5, 0.5]), "preprocess.mean"),
    (lambda d: d["preprocess"].update(resize="longest"), "preprocess.resize"),
    (lambda d: d.update(name="Bad Name"), "name"),
    (lambda d: d["files"]["image"].update(path="../../etc/passwd"), "path"),
    (lambda d: d.update(context_length=0), "context_length"),
])
def test_invalid_manifests_name_the_field(tiny, change, message):
    data = copy.deepcopy(tiny_manifest(tiny))
    change(data)
    with pytest.raises(ManifestError, match=re.escape(message)):
        Manifest.from_dict(data)


def test_a_broken_manifest_does_not_hide_the_others(tmp_path, tiny, caplog):
    write_manifest(tmp_path, tiny_manifest(tiny))
    (tmp_path / "broken.json").write_text("{not json")
    assert [m.name for m in list_manifests(tmp_path)] == ["tiny-clip"]
    assert "broken.json" in caplog.text
    with pytest.raises(KeyError, match="tiny-clip"):
        get_manifest("nope", tmp_path)
    with pytest.raises(ManifestError):
        load_manifest(tmp_path / "broken.json")


def test_fp32_published_int8_and_opt_out_decide_what_is_quantized(tiny):
    data = tiny_manifest(tiny)
    data["files"]["text"]["format"] = "onnx-int8"
    data["files"]["image"]["quantize"] = False
    m = Manifest.from_dict(data)
    assert not m.files["image"].quantize and not m.files["text"].quantize
    data = tiny_manifest(tiny, quantize="none")
    assert not any(f.quantize for f in Manifest.from_dict(data).files.values())


def test_installed_state_round_trip_and_atomic_write(installed, models_dir: Path):
    state = load_installed(models_dir)
    record = state["tiny-clip"]
    assert record.model_id == f"tiny-clip@{record.revision}"
    save_installed(models_dir, state)
    again = load_installed(models_dir)["tiny-clip"]
    assert again.to_dict() == record.to_dict()
    assert not list(models_dir.glob(".installed.json.*"))  # no temp file left
    body = json.loads((models_dir / "installed.json").read_text())
    assert body["version"] == 1 and body["models"]["tiny-clip"]["manifest"]["name"] == "tiny-clip"


def test_missing_and_damaged_installed_state(models_dir: Path):
    assert load_installed(models_dir) == {}
    models_dir.mkdir(parents=True)
    (models_dir / "installed.json").write_text("{")
    with pytest.raises(InstalledStateError):
        load_installed(models_dir)


def test_an_unreadable_entry_does_not_hide_the_others(installed, models_dir: Path, caplog):
    body = json.loads((models_dir / "installed.json").read_text())
    body["models"]["from-the-future"] = {"name": "from-the-future", "task": "clip", "format": 99}
    (models_dir / "installed.json").write_text(json.dumps(body))
    assert list(load_installed(models_dir)) == ["tiny-clip"]
    assert "from-the-future" in caplog.text
