"""fp32 ONNX → int8 with onnxruntime's dynamic quantization, and a check that it still works.

Why these defaults (``models/README.md`` has the longer story):

* **Dynamic** quantization: weights are stored as int8, activations are quantized on the
  fly per call. It needs no calibration images and is what onnxruntime recommends for
  transformers (both CLIP towers are transformers).
* **The weight type follows the CPU** (:func:`int8_cpu`, a "recipe"). onnxruntime multiplies
  uint8 activations by int8 ("s8") or uint8 ("u8") weights. On x86 CPUs without VNNI its
  U8S8 kernel adds pairs of products in 16 bits (``vpmaddubsw``), which saturates: a tiny
  tower drifted to cosine 0.975 from its fp32 original there, against 0.9999 with VNNI.
  Its U8U8 kernel widens to 16 bits before multiplying and is exact everywhere. So s8 runs
  where it is exact and fastest (x86 with VNNI; ARM64, whose NEON and dot-product kernels
  accumulate in 32 bits: Pi 4 and Pi 5 alike), u8 everywhere else. ``photobox models fetch``
  tries the recipes in this order, keeps the first that matches fp32 closely, falls back
  to fp32 when none does, and records the recipe and the CPU class it was chosen for: a
  data folder moved to a CPU where its recipe saturates is re-quantized by the next fetch,
  and ``doctor`` says so meanwhile.
* **per_channel**: one scale per output column instead of one per matrix. ViT weight
  matrices have a few outlier columns; with a single scale they would flatten every
  other column's resolution. It costs nothing at inference.
* **Only MatMul** by default (manifests may add ``Gather`` to shrink a big vocabulary
  table). Conv is left in fp32: in a ViT it is only the patch embedding, ~2% of the
  work, it sees raw pixels, dynamic ConvInteger is slow in onnxruntime and quantizing
  convolutions dynamically is what breaks small CNN towers (MobileCLIP's int8 vision
  tower is reported to embed identical images at 0.37 similarity).
* **reduce_range off**: 7-bit weights also avoid the saturation (cosine 0.99988 there), but u8
  weights keep the eighth bit (0.99993); the 7-bit variant stays as the last int8 recipe.

After quantizing, :func:`compare` runs both models on the same input and reports the
cosine similarity of their embeddings; :mod:`photobox.ml.fetch` refuses a model whose
int8 tower drifted too far instead of installing something that silently searches badly.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_OPTIONS", "RECIPES", "Int8Cpu", "QuantizationError", "Recipe", "compare", "int8_cpu", "quantize_file",
    "recipe_of", "resolve_options",
]

log = logging.getLogger(__name__)

DEFAULT_OPTIONS: dict[str, Any] = {
    # None: chosen for the CPU (int8_cpu); a manifest may pin "QInt8" or "QUInt8".
    "weight_type": None,
    "per_channel": True,
    "reduce_range": False,
    "op_types": ["MatMul"],
    "nodes_to_exclude": [],
    # Cosine similarity between fp32 and int8 embeddings of the check input: below
    # min_cosine the model is refused, below warn_cosine photobox warns.
    "min_cosine": 0.90,
    "warn_cosine": 0.98,
}


class QuantizationError(RuntimeError):
    """Quantizing failed or produced a model too far from the original."""


def resolve_options(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """:data:`DEFAULT_OPTIONS` updated with a manifest's ``quantize_options``.

    Raises:
        QuantizationError: an unknown option or weight type.
    """
    options = dict(DEFAULT_OPTIONS)
    unknown = set(overrides or {}) - set(options)
    if unknown:
        raise QuantizationError(f"unknown quantize_options: {', '.join(sorted(unknown))}")
    options.update(overrides or {})
    if options["weight_type"] not in {None, "QInt8", "QUInt8"}:
        raise QuantizationError("quantize_options.weight_type must be QInt8 or QUInt8")
    return options


@dataclass(frozen=True)
class Recipe:
    """How weights are stored: ``name`` is what installed.json and ``doctor`` show."""

    name: str
    weight_type: str
    reduce_range: bool
    note: str


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("s8", "QInt8", False, "int8 weights"),
    Recipe("u8", "QUInt8", False, "uint8 weights"),
    Recipe("s7", "QInt8", True, "7-bit int8 weights"),
)}


@dataclass(frozen=True)
class Int8Cpu:
    """What this CPU's int8 kernels compute exactly: the recipes to try in order, and why."""

    cls: str
    recipes: tuple[str, ...]
    why: str

    def fits(self, recipe: str) -> bool:
        """Whether a model quantized with ``recipe`` computes accurately on this CPU."""
        return recipe in self.recipes


def _probe_model(b_type: int, b_value: int, k: int) -> bytes:
    """A one-node ``MatMulInteger`` model: uint8 ``a`` [1, k] times a constant ``b`` [k, 1] of ``b_value``."""
    from onnx import TensorProto, helper

    b = helper.make_tensor("b", b_type, [k, 1], [b_value] * k)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "int8_probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])], initializer=[b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@functools.cache
def _exact_recipes() -> tuple[str, ...]:
    """Which recipes onnxruntime's int8 kernels compute exactly on this CPU, measured, not assumed.

    Each recipe's largest product (activation 255 times its largest weight) is summed over
    64 terms; a kernel that adds pairs of products in 16 bits (x86 without VNNI) saturates
    and returns less. CPU flags cannot tell (an emulator, a hypervisor or a future kernel
    may differ from /proc/cpuinfo); the kernel's own answer can.
    """
    import onnxruntime as ort
    from onnx import TensorProto

    k = 64
    largest = {"s8": (TensorProto.INT8, 127), "u8": (TensorProto.UINT8, 255), "s7": (TensorProto.INT8, 63)}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    exact = []
    for name, (b_type, value) in largest.items():
        try:
            session = ort.InferenceSession(_probe_model(b_type, value, k), opts, providers=["CPUExecutionProvider"])
            got = int(session.run(None, {"a": np.full((1, k), 255, np.uint8)})[0][0, 0])
        except Exception as exc:  # noqa: BLE001 - a kernel that does not run is not exact either
            log.warning("the %s int8 kernel does not run here: %s", name, exc)
            continue
        if got == 255 * value * k:
            exact.append(name)
    return tuple(exact)


def int8_cpu(machine: str | None = None) -> Int8Cpu:
    """The int8 recipes that are exact on this CPU, fastest first (see the module docstring)."""
    import platform

    arch = (machine or platform.machine()).lower()
    exact = _exact_recipes()
    if not exact:
        return Int8Cpu(f"{arch}/none", (), f"{arch}: no int8 kernel computes exactly here, so models stay fp32")
    if "s8" in exact:
        why = (f"{arch}: onnxruntime's int8 kernel adds products in 32 bits here (x86 with VNNI, ARM64), so int8 "
               f"weights are exact and fastest")
    else:
        why = (f"{arch}: onnxruntime's int8-weight kernel saturates here (x86 without VNNI adds pairs of products "
               f"in 16 bits), so weights are stored as {RECIPES[exact[0]].note}")
    return Int8Cpu(f"{arch}/{','.join(exact)}", exact, why)


def recipe_of(quantization: Mapping[str, Any] | None) -> str | None:
    """The recipe an installed model's ``quantization`` record used (None: not quantized)."""
    if not quantization:
        return None
    if quantization.get("recipe") in RECIPES:
        return str(quantization["recipe"])
    if quantization.get("weight_type") == "QUInt8":  # recorded before recipes had names
        return "u8"
    return "s7" if quantization.get("reduce_range") else "s8"


class _DropHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")


def quantize_file(src: Path, dst: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """Quantize ``src`` into ``dst``; return the settings used (recorded in installed.json).

    Without a ``weight_type`` in ``options`` the fastest recipe that is exact on this CPU is used.

    Raises:
        QuantizationError: onnxruntime could not quantize the model.
    """
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic logs a "consider pre-processing" hint on the root logger for every
    # model; it is advice for static quantization and would only confuse the CLI's output.
    root = logging.getLogger()
    hint = _DropHint()
    root.addFilter(hint)
    if options["weight_type"] is None:  # this CPU's fastest exact recipe
        cpu = int8_cpu()
        if not cpu.recipes:
            raise QuantizationError(cpu.why)
        recipe = RECIPES[cpu.recipes[0]]
        options = dict(options, weight_type=recipe.weight_type, reduce_range=recipe.reduce_range)
    try:
        quantize_dynamic(
            src, dst,
            weight_type=getattr(QuantType, options["weight_type"]),
            per_channel=bool(options["per_channel"]),
            reduce_range=bool(options["reduce_range"]),
            op_types_to_quantize=list(options["op_types"]),
            nodes_to_exclude=list(options["nodes_to_exclude"]) or None,
        )
    except Exception as exc:  # onnx/onnxruntime raise a variety of types
        raise QuantizationError(f"quantizing {src.name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        root.removeFilter(hint)
    return {
        "method": "dynamic",
        "recipe": recipe_of({"weight_type": options["weight_type"], "reduce_range": options["reduce_range"]}),
        "weight_type": options["weight_type"],
        "per_channel": bool(options["per_channel"]),
        "reduce_range": bool(options["reduce_range"]),
        "op_types": list(options["op_types"]),
        "nodes_to_exclude": list(options["nodes_to_exclude"]),
        "onnxruntime": onnxruntime.__version__,
    }


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def compare(original: Path, quantized: Path, feed: Mapping[str, np.ndarray], output: str | None = None) -> float:
    """Cosine similarity between the two models' first (or ``output``) output on ``feed``.

    Loading the int8 model is itself a check: an operator without an int8 kernel on
    this CPU fails here, at install time, not at the first search.

    Raises:
        QuantizationError: a model does not load or run.
    """
    try:
        a = _session(original).run([output] if output else None, dict(feed))[0]
        b = _session(quantized).run([output] if output else None, dict(feed))[0]
    except Exception as exc:
        raise QuantizationError(f"running {quantized.name} failed: {type(exc).__name__}: {exc}") from exc
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1), 0.0)
    return float(cos.min())
