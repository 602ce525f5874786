"""Tiny stand-ins for the face detectors and recognisers, built with ``onnx.helper``.

Same input/output contract as the real models (see ``models/face-*.json``):

* **YuNet** (``face_detection_yunet_2023mar.onnx``): input ``input`` float32 [1, 3, 640, 640]
  (BGR, 0-255); 12 outputs ``cls_8, cls_16, cls_32, obj_*, bbox_*, kps_*`` of shapes
  [1, N, 1], [1, N, 1], [1, N, 4], [1, N, 10] with N = (640/stride)².
* **SCRFD** (InsightFace ``det_*``): input ``input.1`` float32 [1, 3, ?, ?] ((x-127.5)/128, RGB);
  9 outputs in the order score×3, bbox×3, kps×3 (strides 8/16/32), rank 2: [2·N, 1],
  [2·N, 4], [2·N, 10] (two anchors per location), with numeric names as InsightFace's are.
* **SFace** (``face_recognition_sface_2021dec.onnx``): ``data`` float32 [1, 3, 112, 112]
  (RGB, 0-255) → ``fc1`` [1, 128].
* **ArcFace** (InsightFace ``w600k_*``): ``input.1`` float32 [batch, 3, 112, 112] ((x-127.5)/127.5)
  → [batch, 512].

What they compute, so tests can check semantics:

* the detector "sees" bright blobs: brightness b = clip(2·(max over channels − 0.25), 0, 1)
  (pixel values in [0, 1]). At each stride s and grid cell (c, r) it sums b over a 6s window
  centred on the cell's anchor point (c·s, r·s), with first moments, so it knows the blob's
  area S and centroid. The face is the square of side √S centred on the centroid (exact for
  a square wholly inside the window), the landmarks are the ArcFace template scaled into
  that square, and the score is high when √S ≈ 4s (the stride that suits the size) and no
  other brightness lies in a 10s window around it. Neighbouring cells find the same square:
  non-maximum suppression must remove those duplicates.
* the recogniser takes the mean colour of the middle of the crop, centres it on grey, and
  maps it with fixed orthonormal matrices (two MatMuls, so int8 quantization has work):
  two crops of the same colour embed together, different colours apart.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "TEMPLATE", "TinyFaceFiles", "build_detector", "build_recogniser", "face_manifests", "square_landmarks",
    "write_tiny_faces",
]

SEED = 4321
STRIDES = (8, 16, 32)
SIGMA = 0.35  # width of the size preference, in log units
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]])
# SCRFD-10g's output names (numeric, as exported); photobox reads SCRFD outputs by order.
SCRFD_NAMES = ["448", "471", "494", "451", "474", "497", "454", "477", "500"]


def square_landmarks(x0: float, y0: float, side: float) -> np.ndarray:
    """Where the tiny detector puts the 5 landmarks of the square [x0, x0+side)×[y0, y0+side) (PIL coordinates)."""
    return np.array([x0, y0]) + (TEMPLATE + 0.5) * side / 112.0


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.producer_name = "photobox-tinyfaces"
    model.producer_version = "1"
    path.write_bytes(model.SerializeToString(deterministic=True))
    return path


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, value, name: str | None = None, dtype=np.float32) -> str:
        self._n += 1
        name = name or f"c{self._n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        self._n += 1
        out = out or f"t{self._n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _window_sums(g: _Graph, b: str, stride: int) -> tuple[str, str, str, str]:
    """``(S, MX, MY, O)`` [1, 1, H/s, W/s]: sum and first moments of b in the 6s window, sum in the 10s window."""
    k, pb, pe = 6 * stride, 3 * stride, 2 * stride
    ones = np.ones(k, np.float32)
    offsets = np.arange(k, dtype=np.float32) - pb  # input pixel minus anchor point
    horizontal = np.stack([ones, offsets]).reshape(2, 1, 1, k)
    vertical = np.zeros((3, 2, k, 1), np.float32)
    vertical[0, 0, :, 0] = ones  # S  = Σ b
    vertical[1, 1, :, 0] = ones  # MX = Σ dx·b
    vertical[2, 0, :, 0] = offsets  # MY = Σ dy·b
    h = g.op("Conv", [b, g.const(horizontal)], strides=[1, stride], pads=[0, pb, 0, pe])
    v = g.op("Conv", [h, g.const(vertical)], strides=[stride, 1], pads=[pb, 0, pe, 0])
    s, mx, my = (g.op("Slice", [v, g.const([i], dtype=np.int64), g.const([i + 1], dtype=np.int64),
                                g.const([1], dtype=np.int64)]) for i in range(3))
    ko, pbo, peo = 10 * stride, 5 * stride, 4 * stride
    ho = g.op("Conv", [b, g.const(np.ones((1, 1, 1, ko), np.float32))], strides=[1, stride], pads=[0, pbo, 0, peo])
    o = g.op("Conv", [ho, g.const(np.ones((1, 1, ko, 1), np.float32))], strides=[stride, 1], pads=[pbo, 0, peo, 0])
    return s, mx, my, o


def build_detector(path: Path, kind: str = "yunet") -> Path:
    """Write the tiny detector with YuNet's (``kind="yunet"``) or SCRFD's (``"scrfd"``) contract."""
    g = _Graph()
    if kind == "yunet":
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 640, 640])
        scale, shift = 2.0 / 255.0, -0.5  # raw 0-255 → 2·(x/255 − 0.25)
    else:
        inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "?", "?"])
        scale, shift = 256.0 / 255.0, 0.5  # (x−127.5)/128 → 2·(x/255 − 0.25)
    peak = g.op("ReduceMax", [inp.name], axes=[1], keepdims=1)
    b = g.op("Clip", [g.op("Add", [g.op("Mul", [peak, g.const(scale)]), g.const(shift)]), g.const(0.0),
                      g.const(1.0)])
    fx = (TEMPLATE[:, 0] + 0.5) / 112.0 - 0.5
    fy = (TEMPLATE[:, 1] + 0.5) / 112.0 - 0.5
    outputs: dict[str, list[tuple[str, list]]] = {"score": [], "obj": [], "bbox": [], "kps": []}
    for stride in STRIDES:
        s, mx, my, o = _window_sums(g, b, stride)
        se = g.op("Add", [s, g.const(1e-3)])
        u = g.op("Div", [g.op("Div", [mx, se]), g.const(float(stride))])  # centroid − anchor, in strides
        v = g.op("Div", [g.op("Div", [my, se]), g.const(float(stride))])
        lq = g.op("Sub", [g.op("Mul", [g.op("Log", [se]), g.const(0.5)]), g.const(math.log(stride))])  # ln(side/s)
        q = g.op("Exp", [lq])
        t = g.op("Sub", [lq, g.const(math.log(4.0))])
        size_term = g.op("Exp", [g.op("Mul", [g.op("Mul", [t, t]), g.const(-1.0 / (2 * SIGMA ** 2))])])
        isolation = g.op("Min", [g.op("Div", [se, g.op("Add", [o, g.const(1e-3)])]), g.const(1.0)])
        score = g.op("Mul", [size_term, isolation])
        xs = g.op("Add", [g.op("Mul", [q, g.const(fx.reshape(1, 5, 1, 1))]), u])  # [1,5,R,C]
        ys = g.op("Add", [g.op("Mul", [q, g.const(fy.reshape(1, 5, 1, 1))]), v])
        axis2 = g.const([2], dtype=np.int64)
        kps = g.op("Concat", [g.op("Unsqueeze", [xs, axis2]), g.op("Unsqueeze", [ys, axis2])], axis=2)  # [1,5,2,R,C]
        kps = g.op("Reshape", [kps, g.const([1, 10, -1], dtype=np.int64)])
        kps = g.op("Transpose", [kps], perm=[0, 2, 1])  # [1, N, 10]
        if kind == "yunet":
            bbox = g.op("Concat", [u, v, lq, lq], axis=1)
        else:
            half = g.op("Mul", [q, g.const(0.5)])
            bbox = g.op("Concat", [g.op("Sub", [half, u]), g.op("Sub", [half, v]), g.op("Add", [half, u]),
                                   g.op("Add", [half, v])], axis=1)
        bbox = g.op("Transpose", [g.op("Reshape", [bbox, g.const([1, 4, -1], dtype=np.int64)])], perm=[0, 2, 1])
        score = g.op("Reshape", [score, g.const([1, -1, 1], dtype=np.int64)])  # [1, N, 1]
        if kind == "yunet":
            n = (640 // stride) ** 2
            outputs["score"].append((g.op("Identity", [score], f"cls_{stride}"), [1, n, 1]))
            outputs["obj"].append((g.op("Identity", [score], f"obj_{stride}"), [1, n, 1]))
            outputs["bbox"].append((g.op("Identity", [bbox], f"bbox_{stride}"), [1, n, 4]))
            outputs["kps"].append((g.op("Identity", [kps], f"kps_{stride}"), [1, n, 10]))
        else:
            for key, tensor, width in (("score", score, 1), ("bbox", bbox, 4), ("kps", kps, 10)):
                # [1, N, w] → two identical anchors per location → [2N, w]
                twice = g.op("Concat", [tensor, tensor], axis=2)
                outputs[key].append((twice, width))
    if kind == "yunet":
        order = outputs["score"] + outputs["obj"] + outputs["bbox"] + outputs["kps"]
        out_infos = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in order]
    else:
        order = outputs["score"] + outputs["bbox"] + outputs["kps"]
        out_infos = []
        for (tensor, width), name in zip(order, SCRFD_NAMES, strict=True):
            g.op("Reshape", [tensor, g.const([-1, width], dtype=np.int64)], name)
            out_infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{name}", width]))
    graph = helper.make_graph(g.nodes, f"tiny_{kind}", [inp], out_infos, g.inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def _directions(dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED + dim)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    projection, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q[:3].astype(np.float32), projection.astype(np.float32)


def build_recogniser(path: Path, kind: str = "sface") -> Path:
    """Write the tiny recogniser with SFace's (``kind="sface"``) or ArcFace's (``"arcface"``) contract."""
    g = _Graph()
    if kind == "sface":
        dim, in_name, out_name, batch = 128, "data", "fc1", 1
        scale, shift = 2.0 / 255.0, -1.0  # 0-255 → [-1, 1]
    else:
        dim, in_name, out_name, batch = 512, "input.1", "embedding", "None"
        scale, shift = 1.0, 0.0  # already (x-127.5)/127.5
    colours, projection = _directions(dim)
    middle = g.op("Slice", [in_name, g.const([16, 16], dtype=np.int64), g.const([96, 96], dtype=np.int64),
                            g.const([2, 3], dtype=np.int64)])
    mean = g.op("ReduceMean", [middle], axes=[2, 3], keepdims=0)  # [batch, 3]
    centred = g.op("Add", [g.op("Mul", [mean, g.const(scale)]), g.const(shift)])
    coloured = g.op("MatMul", [centred, g.const(colours)])
    g.op("MatMul", [coloured, g.const(projection)], out_name)
    graph = helper.make_graph(
        g.nodes, f"tiny_{kind}",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, dim])], g.inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


@dataclass(frozen=True)
class TinyFaceFiles:
    """Where :func:`write_tiny_faces` put the models, keyed like the manifests (``yunet`` …)."""

    root: Path
    paths: dict[str, Path]

    def sha256(self, key: str) -> str:
        return hashlib.sha256(self.paths[key].read_bytes()).hexdigest()

    def size(self, key: str) -> int:
        return self.paths[key].stat().st_size

    def override(self, key: str) -> dict[str, str]:
        """``source_override`` for fetch_model: the file from its ``file://`` URL."""
        return {"model": self.paths[key].as_uri()}


REL = {"yunet": "face_detection_yunet/face_detection_yunet_2023mar.onnx",
       "sface": "face_recognition_sface/face_recognition_sface_2021dec.onnx",
       "scrfd": "buffalo_s/detection/model.onnx", "arcface": "buffalo_s/recognition/model.onnx"}


def write_tiny_faces(root: Path) -> TinyFaceFiles:
    paths = {"yunet": build_detector(root / REL["yunet"], "yunet"),
             "scrfd": build_detector(root / REL["scrfd"], "scrfd"),
             "sface": build_recogniser(root / REL["sface"], "sface"),
             "arcface": build_recogniser(root / REL["arcface"], "arcface")}
    return TinyFaceFiles(root, paths)


def face_manifests(files: TinyFaceFiles, *, base_url: str = "https://models.invalid/tiny-faces",
                   pinned: bool = True) -> dict[str, dict]:
    """Manifests ``tiny-yunet``, ``tiny-scrfd`` (face-detect) and ``tiny-sface``, ``tiny-arcface`` (face-embed).

    The yunet/sface pair is marked default, as the real YuNet/SFace manifests are.
    """

    def manifest(key: str, task: str, pre: dict, **extra) -> dict:
        return {
            "name": f"tiny-{key}", "task": task, "default": key in ("yunet", "sface"),
            "description": f"Tiny generated {key} look-alike for tests.",
            "licence": "CC0-1.0 (generated by tests/ml/tinyfaces.py)", "source": "tests/ml/tinyfaces.py",
            "files": {"model": {"url": f"{base_url}/{REL[key]}", "path": REL[key],
                                "sha256": files.sha256(key) if pinned else None, "size": files.size(key),
                                "format": "onnx-fp32"}},
            "preprocess": {"size": pre["size"], "interpolation": "bilinear", "mean": pre["mean"], "std": pre["std"],
                           "channels": pre.get("channels", "rgb")},
            "quantize": "dynamic-int8",
            "quantize_options": {"per_channel": True, "op_types": ["MatMul"]},
            **extra,
        }

    raw = [0.0, 0.0, 0.0], [1 / 255] * 3
    return {
        "yunet": manifest("yunet", "face-detect", {"size": 640, "mean": raw[0], "std": raw[1], "channels": "bgr"},
                          detector={"decoder": "yunet", "strides": [8, 16, 32]}),
        "scrfd": manifest("scrfd", "face-detect", {"size": 640, "mean": [0.5] * 3, "std": [128 / 255] * 3},
                          detector={"decoder": "scrfd", "strides": [8, 16, 32], "anchors": 2}),
        "sface": manifest("sface", "face-embed", {"size": 112, "mean": raw[0], "std": raw[1]}, embedding_size=128,
                          output_names={"model": "fc1"}),
        "arcface": manifest("arcface", "face-embed", {"size": 112, "mean": [0.5] * 3, "std": [0.5] * 3},
                            embedding_size=512),
    }
