"""Realistic-cost stand-ins for the default face models: the tiny models plus a conv stack.

The tiny models (:mod:`tests.ml.tinyfaces`) find bright squares in microseconds, which says
nothing about faces per second on a real box. These add, in front of the tiny graph, a
depthwise-separable convolution stack with roughly the real models' size and work, whose
result is multiplied by zero and added to the input: onnxruntime must run it (it does not
fold ``x · 0``), and the answers stay the tiny model's, so a benchmark still knows how many
faces each photo has. Same input/output contract as YuNet and SFace.

What the real ones cost (public figures):

* **YuNet 2023mar**: 75,856 parameters (the YuNet paper, Wu, Peng & Yu 2023, abstract;
  1.6 ms a 320x320 frame on an i7-12700K). No FLOPs figure was found in the sources at
  hand; the stand-in does 0.26 GMAC (~0.5 GFLOP) at 640x640 with ~80k parameters, a guess
  (most of a tiny detector's work is in its high-resolution first layers).
* **SFace 2021dec**: a MobileFaceNet-class network (OpenCV Zoo's README: "Model files encode
  MobileFaceNet instances"); MobileFaceNet is 0.99 M parameters and 0.449 GFLOPs at 112x112
  (OpenVINO model zoo, face-recognition-mobilefacenet-arcface), but the 2021dec file is
  38.7 MB (~9.7 M fp32 parameters), wider than that. The stand-in follows a published
  layer listing of that file (Conv 3→32 at 112, depthwise-separable blocks up to 512
  channels at 14x14, a 7x7 head and a 128-d projection): 0.50 GMAC (~1 GFLOP), ~2.0 M
  parameters, so the same order as MobileFaceNet's work, if fewer weights than the file.

:func:`stack_stats` counts what a built stand-in does (MACs and parameters of its conv
stack), so the benchmark prints measured, not remembered, numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["DETECTOR_STACK", "RECOGNISER_STACK", "add_cost", "stack_stats", "tiny_nodes"]

# (kind, in channels, out channels, stride): "conv" is a full 3x3 conv, "dw" a 3x3 depthwise
# conv followed by a 1x1 pointwise conv to ``out`` channels, "head" a 7x7 depthwise conv
# (no padding) followed by a linear projection to ``out``.
DETECTOR_STACK = [("conv", 3, 16, 2), ("dw", 16, 16, 1), ("dw", 16, 32, 2), ("dw", 32, 32, 1),
                  ("dw", 32, 64, 2), ("dw", 64, 64, 1), ("dw", 64, 64, 1), ("dw", 64, 96, 2),
                  ("dw", 96, 96, 1), ("dw", 96, 128, 2), ("dw", 128, 128, 1), ("dw", 128, 128, 1)]
RECOGNISER_STACK = [("conv", 3, 32, 1), ("dw", 32, 64, 1), ("dw", 64, 128, 2), ("dw", 128, 128, 1),
                    ("dw", 128, 256, 2), ("dw", 256, 256, 1), ("dw", 256, 512, 2)] + \
                   [("dw", 512, 512, 1)] * 5 + [("dw", 512, 512, 2), ("head", 512, 128, 1)]


def stack_stats(stack: list[tuple[str, int, int, int]], size: int) -> tuple[float, int]:
    """``(multiply-adds, parameters)`` of ``stack`` on a ``size`` x ``size`` input."""
    macs, params, side = 0, 0, size
    for kind, cin, cout, stride in stack:
        if kind == "head":
            params += cin * 49 + cin * cout
            macs += cin * 49 + cin * cout
            continue
        side = -(-side // stride)
        if kind == "conv":
            params += cin * cout * 9
            macs += side * side * cin * cout * 9
        else:
            params += cin * 9 + cin * cout
            macs += side * side * (cin * 9 + cin * cout)
    return float(macs), params


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def add_cost(src: Path, dst: Path, stack: list[tuple[str, int, int, int]], *, seed: int = 7) -> Path:
    """Write ``src`` with ``stack`` run on its first input and folded in as ``+ 0 · tanh(mean)``."""
    model = onnx.load(str(src))
    g = model.graph
    rng = np.random.default_rng(seed)
    x = g.input[0].name
    nodes, inits = [], []
    n = 0

    def name(prefix: str) -> str:
        nonlocal n
        n += 1
        return f"cost_{prefix}{n}"

    def const(value: np.ndarray) -> str:
        c = name("w")
        inits.append(numpy_helper.from_array(np.asarray(value), c))
        return c

    def op(op_type: str, inputs: list[str], **attrs) -> str:
        out = name("t")
        nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    # Inputs are 0-255 (YuNet, SFace): scale to ~[0, 1] first, as the real first layer's weights do.
    t = op("Mul", [x, const(np.float32(1 / 255))])
    for kind, cin, cout, stride in stack:
        if kind == "conv":
            t = op("Relu", [op("Conv", [t, const(_he(rng, (cout, cin, 3, 3), cin * 9))],
                               strides=[stride, stride], pads=[1, 1, 1, 1])])
        elif kind == "dw":
            t = op("Relu", [op("Conv", [t, const(_he(rng, (cin, 1, 3, 3), 9))], group=cin,
                               strides=[stride, stride], pads=[1, 1, 1, 1])])
            t = op("Relu", [op("Conv", [t, const(_he(rng, (cout, cin, 1, 1), cin))])])
        else:  # head
            t = op("Conv", [t, const(_he(rng, (cin, 1, 7, 7), 49))], group=cin)
            t = op("Flatten", [t], axis=1)
            t = op("MatMul", [t, const(_he(rng, (cin, cout), cin))])
    axes = [1] if stack[-1][0] == "head" else [1, 2, 3]
    s = op("ReduceMean", [t], axes=axes, keepdims=1)
    if axes == [1]:
        s = op("Unsqueeze", [s, const(np.array([2, 3], np.int64))])
    zero = op("Mul", [op("Tanh", [s]), const(np.float32(0.0))])
    fed = op("Add", [x, zero])
    for k, node in enumerate(g.node):
        node.input[:] = [fed if i == x else i for i in node.input]
        node.name = node.name or f"tiny_{k}"  # named, so quantization can leave them out
    old = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old)
    g.initializer.extend(inits)
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(model.SerializeToString())
    return dst


def tiny_nodes(path: Path) -> list[str]:
    """Names of the tiny model's own nodes in a stand-in: int8 would blur its exact window
    sums (it finds squares by arithmetic, not by learnt features), so only the stack is quantized."""
    return [n.name for n in onnx.load(str(path)).graph.node if n.name.startswith("tiny_")]
