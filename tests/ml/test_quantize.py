"""The int8 recipe follows what this CPU's kernels compute exactly, measured by a probe.

onnxruntime's int8-weight MatMul on x86 without VNNI adds pairs of products in 16 bits and
saturates (a tiny tower drifted to cosine 0.975 from fp32 on such a CPU). These tests run the
probe and the quantized tower on this CPU, and under ``qemu-x86_64 -cpu Haswell`` (AVX2, no
VNNI) where qemu is installed, so CI on a VNNI machine still checks the other kind of CPU.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from photobox.ml.quantize import RECIPES, int8_cpu, quantize_file, recipe_of, resolve_options
from tests.ml.tinymodels import CLIP_MEAN, CLIP_STD, build_image_model

ROOT = Path(__file__).resolve().parents[2]
COLOURS = [(255, 0, 0), (120, 130, 200), (250, 250, 20), (10, 200, 30)]


def _batch() -> np.ndarray:
    rows = [((np.ones((224, 224, 3)) * np.array(c) / 255 - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1) for c in COLOURS]
    return np.stack(rows).astype(np.float32)


def _cosine(src: Path, dst: Path) -> float:
    batch = _batch()
    a = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"image": batch})[0]
    b = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"image": batch})[0]
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def _quantized(tmp: Path, recipe: str) -> tuple[Path, Path]:
    src = tmp / "image.onnx"
    if not src.exists():
        build_image_model(src)
    dst = tmp / f"image.{recipe}.onnx"
    r = RECIPES[recipe]
    record = quantize_file(src, dst, resolve_options({"weight_type": r.weight_type, "reduce_range": r.reduce_range}))
    assert recipe_of(record) == recipe
    return src, dst


def test_probe_lists_exact_recipes_fastest_first():
    cpu = int8_cpu()
    assert cpu.recipes and set(cpu.recipes) <= set(RECIPES)
    assert "u8" in cpu.recipes  # onnxruntime's uint8 kernels widen before adding: exact on every CPU
    assert cpu.cls == f"{platform.machine().lower()}/{','.join(cpu.recipes)}"
    assert cpu.fits(cpu.recipes[0]) and not cpu.fits("fp16")


@pytest.mark.parametrize("recipe", ["s8", "u8", "s7"])
def test_each_recipe_the_probe_calls_exact_matches_fp32(tmp_path, recipe):
    if recipe not in int8_cpu().recipes:
        pytest.skip(f"{recipe} saturates on this CPU, so photobox never uses it here")
    assert _cosine(*_quantized(tmp_path, recipe)) > 0.999


def test_recipe_records_of_older_installs_are_understood():
    assert recipe_of(None) is None
    assert recipe_of({"weight_type": "QInt8", "reduce_range": False}) == "s8"
    assert recipe_of({"weight_type": "QInt8", "reduce_range": True}) == "s7"
    assert recipe_of({"weight_type": "QUInt8"}) == "u8"
    assert recipe_of({"recipe": "u8", "weight_type": "QUInt8"}) == "u8"


_EMULATED = """
import sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from photobox.ml.quantize import int8_cpu
from tests.ml.test_quantize import _cosine, _quantized
cpu = int8_cpu()
tmp = Path(tempfile.mkdtemp())
print("recipes", ",".join(cpu.recipes))
print("chosen", _cosine(*_quantized(tmp, cpu.recipes[0])))
print("s8", _cosine(*_quantized(tmp, "s8")))
"""


@pytest.mark.skipif(platform.machine() != "x86_64" or not shutil.which("qemu-x86_64"),
                    reason="needs x86_64 and qemu-x86_64 (Debian package qemu-user) to emulate a CPU without VNNI")
def test_on_an_emulated_cpu_without_vnni_the_chosen_recipe_matches_fp32():
    """A Haswell (AVX2, no VNNI): the probe must see int8 weights saturate and pick uint8 weights."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    run = subprocess.run(["qemu-x86_64", "-cpu", "Haswell", sys.executable, "-c", _EMULATED, str(ROOT)],
                         capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    result = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
    assert result["recipes"] == "u8,s7"
    assert float(result["chosen"]) > 0.999
    assert float(result["s8"]) < 0.995  # the emulation does reproduce the saturation the probe avoids
