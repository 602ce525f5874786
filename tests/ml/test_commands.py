"""``photobox models list|fetch`` functions and the doctor line (the CLI wiring is photobox.cli's)."""

from __future__ import annotations

import io
import shutil

from photobox.ml.commands import (
    _ProgressPrinter,
    cmd_models_fetch,
    cmd_models_list,
    doctor_check,
    models_dir,
    source_override_from_dir,
)
from photobox.ml.registry import get_manifest
from tests.ml.helpers import write_manifest
from tests.ml.tinymodels import tiny_manifest


def test_list_shipped_models_without_any_installed(settings):
    out = io.StringIO()
    assert cmd_models_list(settings, out) == 0
    text = out.getvalue()
    assert "clip-vit-b-32-laion2b  [default]" in text
    assert "mobileclip-s0" in text and "siglip-b16-i18n-256" in text
    assert "not installed" in text and "licence: MIT" in text
    assert "no sha256 pin for image, text, tokenizer" in text
    assert "photobox models fetch" in text


def test_fetch_from_a_folder_then_list_then_fetch_again(settings, manifests_dir, tiny):
    out = io.StringIO()
    assert cmd_models_fetch(settings, [], out, source_override_dir=tiny.root, manifests_dir=manifests_dir) == 0
    text = out.getvalue()
    assert "tiny-clip: installed (" in text and "image_int8_cosine=" in text
    assert "tiny-clip: download image 100%" in text and "checking the models" in text  # not a tty: lines

    listing = io.StringIO()
    cmd_models_list(settings, listing, manifests_dir=manifests_dir)
    assert "tiny-clip  [default]" in listing.getvalue() and "installed 20" in listing.getvalue()

    again = io.StringIO()
    assert cmd_models_fetch(settings, ["tiny-clip"], again, source_override_dir=tiny.root,
                            manifests_dir=manifests_dir) == 0
    assert "already installed" in again.getvalue()
    assert doctor_check(settings)[0] == "OK"


def test_fetch_from_a_folder_named_after_the_model(tmp_path, tiny):
    manifest = get_manifest("tiny-clip", write_manifest(tmp_path / "m", tiny_manifest(tiny)).parent)
    shutil.copytree(tiny.root, tmp_path / "usb" / "tiny-clip")
    override = source_override_from_dir(manifest, tmp_path / "usb")
    assert override["image"].endswith("usb/tiny-clip/visual/model.onnx")


def test_fetch_exit_codes(settings, tmp_path, tiny, manifests_dir):
    out = io.StringIO()
    assert cmd_models_fetch(settings, ["no-such-model"], out, manifests_dir=manifests_dir) == 2
    assert "unknown model" in out.getvalue()

    out = io.StringIO()
    assert cmd_models_fetch(settings, ["tiny-clip"], out, source_override_dir=tmp_path / "empty",
                            manifests_dir=manifests_dir) == 2
    assert "no image file" in out.getvalue()

    unpinned = tmp_path / "unpinned"
    write_manifest(unpinned, tiny_manifest(tiny, pinned=False))
    out = io.StringIO()
    assert cmd_models_fetch(settings, ["tiny-clip"], out, source_override_dir=tiny.root, manifests_dir=unpinned) == 2
    assert "--trust-on-first-use" in out.getvalue()
    out = io.StringIO()
    assert cmd_models_fetch(settings, ["tiny-clip"], out, source_override_dir=tiny.root, manifests_dir=unpinned,
                            trust_on_first_use=True) == 0
    assert "WARNING: TRUST ON FIRST USE" in out.getvalue()

    wrong = tmp_path / "wrong"
    manifest = tiny_manifest(tiny, name="tiny-wrong")
    manifest["files"]["image"]["sha256"] = "f" * 64
    write_manifest(wrong, manifest)
    out = io.StringIO()
    assert cmd_models_fetch(settings, ["tiny-wrong"], out, source_override_dir=tiny.root, manifests_dir=wrong) == 1
    assert "sha256 mismatch" in out.getvalue()
    assert not (models_dir(settings) / "tiny-wrong").exists()


def test_no_default_manifest(settings, tmp_path, tiny):
    write_manifest(tmp_path / "m", tiny_manifest(tiny))  # not marked default
    out = io.StringIO()
    assert cmd_models_fetch(settings, [], out, manifests_dir=tmp_path / "m") == 2


def test_doctor_check_without_models(settings):
    level, detail = doctor_check(settings)
    assert level == "WARN" and "photobox models fetch" in detail


def test_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = _ProgressPrinter(out, "m")
    bar("download image", 0, 2_000_000)
    bar("download image", 2_000_000, 2_000_000)
    bar("quantize image", 0, None)
    text = out.getvalue()
    assert "\rm: download image [" in text and "100.0%" in text and "m: quantize image…" in text
