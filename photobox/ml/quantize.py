"""fp32 ONNX → int8 with onnxruntime's dynamic quantization, and a check that it still works.

Why these defaults (``models/README.md`` has the longer story):

* **Dynamic** quantization: weights are stored as int8, activations are quantized on the
  fly per call. It needs no calibration images and is what onnxruntime recommends for
  transformers (both CLIP towers are transformers).
* **weight_type QInt8** (the "U8S8" kernels: uint8 activations × int8 weights). That is
  onnxruntime's default and the pair its ARM64 kernels are built around (with the
  dot-product instructions of the Pi 5's Cortex-A76, plain NEON on the Pi 4's A72).
  QUInt8 weights only help on x86 CPUs without VNNI, where U8S8 can saturate; not a Pi.
* **per_channel**: one scale per output column instead of one per matrix. ViT weight
  matrices have a few outlier columns; with a single scale they would flatten every
  other column's resolution. It costs nothing at inference.
* **Only MatMul** by default (manifests may add ``Gather`` to shrink a big vocabulary
  table). Conv is left in fp32: in a ViT it is only the patch embedding, ~2% of the
  work, it sees raw pixels, dynamic ConvInteger is slow in onnxruntime and quantizing
  convolutions dynamically is what breaks small CNN towers (MobileCLIP's int8 vision
  tower is reported to embed identical images at 0.37 similarity).
* **reduce_range off**: 7-bit weights exist for x86 without VNNI; they only cost accuracy here.

After quantizing, :func:`compare` runs both models on the same input and reports the
cosine similarity of their embeddings; :mod:`photobox.ml.fetch` refuses a model whose
int8 tower drifted too far instead of installing something that silently searches badly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_OPTIONS", "QuantizationError", "compare", "quantize_file", "resolve_options"]

log = logging.getLogger(__name__)

DEFAULT_OPTIONS: dict[str, Any] = {
    "weight_type": "QInt8",
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
    if options["weight_type"] not in {"QInt8", "QUInt8"}:
        raise QuantizationError("quantize_options.weight_type must be QInt8 or QUInt8")
    return options


class _DropHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")


def quantize_file(src: Path, dst: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """Quantize ``src`` into ``dst``; return the settings used (recorded in installed.json).

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
