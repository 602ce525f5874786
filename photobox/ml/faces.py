"""Faces: detection (boxes, scores, 5 landmarks), alignment and recognition embeddings.

Two installed models work together, each with its own manifest (``models/face-*.json``):

* a **detector** (task ``face-detect``): YuNet (OpenCV Zoo, MIT; the default) or SCRFD
  (InsightFace, non-commercial research only). Both are anchor-free, predict at strides
  8/16/32 and return a score, a box and five landmarks (eyes, nose tip, mouth corners)
  per grid location; :class:`FaceDetector` decodes them, drops low scores and small faces,
  and removes duplicates with non-maximum suppression.
* a **recogniser** (task ``face-embed``): SFace (OpenCV Zoo, Apache-2.0; the default, 128-d)
  or ArcFace (InsightFace's MobileFaceNet / R50, 512-d). It sees a 112×112 crop aligned
  with :func:`align_face` (a similarity transform taking the landmarks onto the standard
  ArcFace 5-point template) and returns an L2-normalised vector: two crops of one person
  have a high dot product.

Coordinates are PIL's: pixel ``(i, j)`` spans ``[i, i+1) × [j, j+1)``, so a box crops with
``image.crop(face.box)``. They refer to the **upright** image: an image carrying an EXIF
orientation is transposed first (pass the upright preview anyway: it is cheaper).

Sessions are loaded on first use with an explicit number of threads and dropped by
:meth:`FaceModels.unload_idle`; nothing here needs a model to be installed to import, and
:meth:`FaceModels.status` says what to fetch when none is.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from photobox.ml import fetch_command
from photobox.ml.face_geometry import ARCFACE_TEMPLATE, align_face, nms, similarity_transform
from photobox.ml.registry import InstalledModel, Manifest, list_manifests
from photobox.ml.session import (
    InstalledCache,
    LazySession,
    ModelError,
    choose_installed,
    l2_normalise,
    pad_batch,
    swap_model,
)

__all__ = [
    "ARCFACE_TEMPLATE", "Face", "FaceDetector", "FaceEmbedder", "FaceModels", "FaceModelsMissing", "align_face",
    "check_model", "nms", "similarity_transform",
]

log = logging.getLogger(__name__)

#: Where the eyes, nose tip and mouth corners go in a 112×112 crop (InsightFace's ``arcface_dst``,
#: also OpenCV's ``FaceRecognizerSF``), in OpenCV's convention (pixel centres at integers).
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
             "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS,
             "box": Image.Resampling.BOX}


class FaceModelsMissing(ModelError):  # noqa: N818 - reads better at the call site
    """No face detector or recogniser is installed; the message says what to fetch."""


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
    """One detected face in the upright image's pixel coordinates.

    Attributes:
        box: ``(x1, y1, x2, y2)``; ``image.crop(box)`` gives the face.
        score: detector confidence in [0, 1].
        landmarks: float32 ``[5, 2]``: right eye, left eye (as seen in the picture: left,
            then right), nose tip, mouth corners; ``(x, y)`` each.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(v, 2) for v in self.box], "score": round(self.score, 4),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks]}


def _upright(image: Image.Image) -> Image.Image:
    """The image as displayed: EXIF orientation applied (a no-op without one)."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF: use the pixels as stored
        return image
    return ImageOps.exif_transpose(image) if orientation not in (None, 1) else image


# ---------------------------------------------------------------------------------------------
# sessions


def _to_array(image: Image.Image, preprocess: Mapping[str, Any]) -> np.ndarray:
    """HWC uint8 → normalised float32 HWC, in the channel order the model wants."""
    arr = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.float32)
    if preprocess.get("channels", "rgb") == "bgr":
        arr = arr[..., ::-1]
    mean = np.asarray(preprocess["mean"], dtype=np.float32)
    std = np.asarray(preprocess["std"], dtype=np.float32)
    # (x/255 - mean) / std, in one multiply-add
    return arr * (1.0 / (255.0 * std)) - mean / std


class _Model:
    """What the detector and the recogniser share: manifest, session, model id, idle unloading."""

    task = ""

    def __init__(self, manifest: Manifest, path: Path, *, threads: int, clock: Callable[[], float],
                 model_id: str | None) -> None:
        if manifest.task != self.task:
            raise ModelError(f"{manifest.name} is a {manifest.task} model, not {self.task}")
        self.manifest = manifest
        self.name = manifest.name
        self.model_id = model_id or f"{manifest.name}@unsaved"
        self.threads = threads
        self.clock = clock
        self._model = LazySession(manifest.name, Path(path), threads, clock)

    @classmethod
    def from_record(cls, record: InstalledModel, models_dir: Path, **kwargs):
        return cls(record.manifest, record.path("model", models_dir), model_id=record.model_id, **kwargs)

    @property
    def loaded(self) -> bool:
        return self._model.loaded

    @property
    def last_used(self) -> float:
        return self._model.last_used

    def load(self) -> None:
        self._model.session()

    def unload(self) -> bool:
        return self._model.unload()

    def unload_idle(self, idle_seconds: float, now: float | None = None) -> bool:
        return self._model.unload_idle(idle_seconds, self.clock() if now is None else now)

    def _input(self):
        session = self._model.session()
        inputs = session.get_inputs()
        wanted = self.manifest.input_names.get("model")
        meta = next((i for i in inputs if i.name == wanted), None) if wanted else inputs[0]
        if meta is None:
            raise ModelError(f"{self.name}: the model has no input {wanted!r} (it has {[i.name for i in inputs]})")
        if len(meta.shape) != 4 or meta.type != "tensor(float)":
            raise ModelError(f"{self.name}: input {meta.name} is {meta.type} {meta.shape}, expected float "
                             f"[batch, 3, height, width]")
        return meta


class FaceDetector(_Model):
    """Finds faces: ``detect(image) -> list[Face]``, best first.

    Args:
        manifest: a ``face-detect`` manifest (its ``detector.decoder`` is ``yunet`` or ``scrfd``).
        path: the ONNX file.
        threads: onnxruntime intra-op threads (0 = all cores).
        min_score: drop faces the detector is less sure of.
        min_size: drop faces whose box is narrower or lower than this, in pixels of the
            image given (a face of 20 pixels in a preview is too small to recognise).
        nms_iou: boxes overlapping a better one by more than this IoU are duplicates.
        max_faces: keep at most this many (the best).
    """

    task = "face-detect"

    def __init__(self, manifest: Manifest, path: Path, *, threads: int = 0, min_score: float = 0.6,
                 min_size: float = 20.0, nms_iou: float = 0.4, max_faces: int = 100,
                 clock: Callable[[], float] = time.monotonic, model_id: str | None = None) -> None:
        super().__init__(manifest, path, threads=threads, clock=clock, model_id=model_id)
        self.min_score = min_score
        self.min_size = min_size
        self.nms_iou = nms_iou
        self.max_faces = max_faces
        self.decoder = manifest.detector["decoder"]
        self.strides = [int(s) for s in manifest.detector["strides"]]
        self.anchors = int(manifest.detector["anchors"])

    def prepare(self, image: Image.Image) -> tuple[dict[str, np.ndarray], tuple[float, float], tuple[int, int]]:
        """``(feed, (sx, sy), (height, width))``: the letterboxed input, its scale, its size.

        A model with a fixed input (YuNet's 640×640) gets the image scaled to fit and padded
        right and below; one that takes any size (SCRFD) gets the long side scaled to
        ``preprocess.size`` and both sides padded to a multiple of the largest stride.
        """
        meta = self._input()
        pre = self.manifest.preprocess
        img = image if image.mode == "RGB" else image.convert("RGB")
        w, h = img.size
        fixed_h, fixed_w = meta.shape[2], meta.shape[3]
        if isinstance(fixed_h, int) and isinstance(fixed_w, int) and fixed_h > 0 and fixed_w > 0:
            scale = min(fixed_w / w, fixed_h / h)
            in_h, in_w = fixed_h, fixed_w
        else:
            scale = int(pre["size"]) / max(w, h)
            step = max(self.strides)
            in_h = max(step, math.ceil(round(h * scale) / step) * step)
            in_w = max(step, math.ceil(round(w * scale) / step) * step)
        nw, nh = max(1, min(in_w, round(w * scale))), max(1, min(in_h, round(h * scale)))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), resample=_RESAMPLE[pre.get("interpolation", "bilinear")])
        canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)  # padding is black, as OpenCV/InsightFace pad
        canvas[:nh, :nw] = np.asarray(img)
        arr = _to_array(Image.fromarray(canvas), pre)
        batch = np.ascontiguousarray(arr.transpose(2, 0, 1)[None], dtype=np.float32)
        return {meta.name: batch}, (nw / w, nh / h), (in_h, in_w)

    def detect(self, image: Image.Image) -> list[Face]:
        """The faces in ``image`` (EXIF orientation applied first), best score first."""
        image = _upright(image)
        feed, (sx, sy), (in_h, in_w) = self.prepare(image)
        session = self._model.session()
        names = [o.name for o in session.get_outputs()]
        outputs = self._model.run(feed)
        boxes, scores, marks = self._decode(dict(zip(names, outputs, strict=True)), names, in_h, in_w)
        if not len(scores):
            return []
        # input pixel centre x_in ↔ original PIL coordinate (x_in + 0.5) / sx
        boxes = (boxes + 0.5) / np.array([sx, sy, sx, sy])
        marks = (marks + 0.5) / np.array([sx, sy])
        w, h = image.size
        boxes = np.clip(boxes, 0, [w, h, w, h])
        big = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= self.min_size
        boxes, scores, marks = boxes[big], scores[big], marks[big]
        keep = nms(boxes, scores, self.nms_iou)[: self.max_faces]
        return [Face(box=tuple(float(v) for v in boxes[i]), score=float(scores[i]),
                     landmarks=marks[i].astype(np.float32)) for i in keep]

    def _grid(self, stride: int, in_h: int, in_w: int) -> tuple[int, int]:
        return in_h // stride, in_w // stride

    def _outputs(self, by_name: Mapping[str, np.ndarray], names: list[str], kinds: Sequence[str]):
        """``{kind: [array per stride]}``, by name (``cls_8`` …) when the model has them, else by order."""
        n = len(self.strides)
        if all(f"{k}_{s}" in by_name for k in kinds for s in self.strides):
            return {k: [by_name[f"{k}_{s}"] for s in self.strides] for k in kinds}
        if len(names) != n * len(kinds):
            raise ModelError(f"{self.name}: a {self.decoder} detector has {n * len(kinds)} outputs ({', '.join(kinds)} "
                             f"per stride {self.strides}); this model has {len(names)}: {names}")
        return {k: [by_name[names[j * n + i]] for i in range(n)] for j, k in enumerate(kinds)}

    def _decode(self, by_name: Mapping[str, np.ndarray], names: list[str], in_h: int, in_w: int):
        """``(boxes [n,4], scores [n], landmarks [n,5,2])`` above ``min_score``, input pixel centres."""
        kinds = ("cls", "obj", "bbox", "kps") if self.decoder == "yunet" else ("score", "bbox", "kps")
        outs = self._outputs(by_name, names, kinds)
        all_boxes, all_scores, all_marks = [], [], []
        for i, stride in enumerate(self.strides):
            rows, cols = self._grid(stride, in_h, in_w)
            count = rows * cols * self.anchors
            parts = {}
            for kind, width in zip(kinds, (1, 1, 4, 10) if self.decoder == "yunet" else (1, 4, 10), strict=True):
                arr = np.asarray(outs[kind][i], dtype=np.float32)
                if arr.size != count * width:
                    raise ModelError(f"{self.name}: output {kind} at stride {stride} has shape {list(arr.shape)}, "
                                     f"expected {count}×{width} for a {in_h}×{in_w} input")
                parts[kind] = arr.reshape(count, width)
            # Anchor points: (column, row) of each grid cell, `anchors` consecutive per cell.
            rr, cc = np.divmod(np.arange(rows * cols), cols)
            cells = np.repeat(np.stack([cc, rr], axis=1).astype(np.float32), self.anchors, axis=0)
            if self.decoder == "yunet":
                # OpenCV's FaceDetectorYN: score = sqrt(cls·obj); centre = (cell + d)·stride; size = exp(d)·stride
                score = np.sqrt(np.clip(parts["cls"][:, 0], 0, 1) * np.clip(parts["obj"][:, 0], 0, 1))
                sel = np.flatnonzero(score >= self.min_score)
                b = parts["bbox"][sel]
                centre = (cells[sel] + b[:, :2]) * stride
                size = np.exp(np.minimum(b[:, 2:], 20.0)) * stride
                boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
                marks = (parts["kps"][sel].reshape(-1, 5, 2) + cells[sel, None, :]) * stride
            else:
                # InsightFace's SCRFD: distances from the anchor point to the four sides, ×stride
                score = parts["score"][:, 0]
                sel = np.flatnonzero(score >= self.min_score)
                point = cells[sel] * stride
                d = parts["bbox"][sel] * stride
                boxes = np.concatenate([point - d[:, :2], point + d[:, 2:]], axis=1)
                marks = point[:, None, :] + parts["kps"][sel].reshape(-1, 5, 2) * stride
            all_boxes.append(boxes)
            all_scores.append(score[sel])
            all_marks.append(marks)
        return (np.concatenate(all_boxes).astype(np.float64), np.concatenate(all_scores).astype(np.float64),
                np.concatenate(all_marks).astype(np.float64))


class FaceEmbedder(_Model):
    """Face crops → L2-normalised vectors: ``embed(crops)`` and ``embed_faces(image, faces)``.

    Args:
        manifest: a ``face-embed`` manifest (``preprocess.size`` 112, ``embedding_size``).
        path: the ONNX file.
        threads: onnxruntime intra-op threads (0 = all cores).
        batch_size: crops per inference call when the model takes any batch size.
    """

    task = "face-embed"

    def __init__(self, manifest: Manifest, path: Path, *, threads: int = 0, batch_size: int = 16,
                 clock: Callable[[], float] = time.monotonic, model_id: str | None = None) -> None:
        super().__init__(manifest, path, threads=threads, clock=clock, model_id=model_id)
        self.size = int(manifest.preprocess["size"])
        self.embedding_size = manifest.embedding_size
        self.batch_size = max(1, batch_size)

    def preprocess(self, crop: Image.Image) -> np.ndarray:
        """One aligned crop as float32 ``[3, size, size]``."""
        img = crop if crop.mode == "RGB" else crop.convert("RGB")
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), resample=Image.Resampling.BILINEAR)
        return np.ascontiguousarray(_to_array(img, self.manifest.preprocess).transpose(2, 0, 1))

    def _batch_limit(self, meta) -> tuple[int, int | None]:
        size = self.size
        if any(isinstance(d, int) and d != size for d in meta.shape[2:]):
            raise ModelError(f"{self.name}: input {meta.name} has shape {meta.shape}, expected [batch, 3, {size}, "
                             f"{size}] (check preprocess.size)")
        fixed = meta.shape[0] if isinstance(meta.shape[0], int) and meta.shape[0] > 0 else None
        return fixed or self.batch_size, fixed

    def feed(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The input feed for ``batch`` (padded to a fixed batch size if the model has one)."""
        meta = self._input()
        _, fixed = self._batch_limit(meta)
        return {meta.name: pad_batch(batch, fixed).astype(np.float32, copy=False)}

    def output_name(self) -> str:
        outputs = [o.name for o in self._model.session().get_outputs()]
        name = self.manifest.output_names.get("model") or outputs[0]
        if name not in outputs:
            raise ModelError(f"{self.name}: the model has no output {name!r} ({outputs})")
        return name

    def embed(self, crops: Sequence[Image.Image]) -> np.ndarray:
        """``(len(crops), embedding_size)`` float32, rows L2-normalised; crops aligned with :func:`align_face`."""
        if not crops:
            return np.zeros((0, self.embedding_size), np.float32)
        batch = np.stack([self.preprocess(c) for c in crops])
        limit, _ = self._batch_limit(self._input())
        output = self.output_name()
        out = []
        for start in range(0, len(batch), limit):
            chunk = batch[start:start + limit]
            result = self._model.run(self.feed(chunk), [output])[0]
            out.append(np.asarray(result, dtype=np.float32).reshape(-1, np.prod(result.shape[1:]))[:len(chunk)])
        emb = np.concatenate(out)
        if emb.shape[1] != self.embedding_size:
            raise ModelError(f"{self.name}: embeddings have {emb.shape[1]} dimensions, the manifest says "
                             f"{self.embedding_size}")
        return l2_normalise(emb)

    def embed_faces(self, image: Image.Image, faces: Sequence[Face]) -> np.ndarray:
        """Align each face of ``image`` (EXIF orientation applied, as :meth:`FaceDetector.detect` does) and embed it."""
        image = _upright(image)
        return self.embed([align_face(image, f.landmarks, self.size) for f in faces])


def _check_image() -> Image.Image:
    """A deterministic picture with gradients and a bright square, for install-time checks."""
    y, x = np.mgrid[0:360, 0:480].astype(np.float32)
    rgb = np.stack([x / 480 * 120, y / 360 * 120, ((x // 40 + y // 40) % 2) * 60 + 20], axis=-1)
    rgb[120:200, 180:260] = (235, 190, 160)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")


def check_model(manifest: Manifest, path: Path) -> tuple[dict[str, np.ndarray], str]:
    """Load and run a face model once as photobox will; return ``(feed, output)`` to compare int8 with fp32.

    Raises:
        ModelError: the model does not load or does not match its manifest.
    """
    image = _check_image()
    if manifest.task == "face-detect":
        detector = FaceDetector(manifest, path, threads=1, min_score=0.99)
        try:
            detector.detect(image)  # decodes every output: checks names, counts and shapes
            feed, _, _ = detector.prepare(image)
            # Compare the dense box regression of the finest stride: scores are mostly zero.
            names = [o.name for o in detector._model.session().get_outputs()]
            first = detector.strides[0]
            position = (2 if detector.decoder == "yunet" else 1) * len(detector.strides)
            return feed, f"bbox_{first}" if f"bbox_{first}" in names else names[position]
        finally:
            detector.unload()
    if manifest.task == "face-embed":
        embedder = FaceEmbedder(manifest, path, threads=1)
        try:
            crop = image.crop((140, 80, 300, 240))
            embedder.embed([crop])
            return embedder.feed(embedder.preprocess(crop)[None]), embedder.output_name()
        finally:
            embedder.unload()
    raise ModelError(f"{manifest.name}: not a face model ({manifest.task})")


# ---------------------------------------------------------------------------------------------
# the manager


class FaceModels:
    """Hands out the installed face detector and recogniser, and frees their memory when idle.

    Reads ``installed.json`` again when it changes (a ``photobox models fetch`` from the CLI
    takes effect without a restart). Call :meth:`unload_idle` periodically.

    Args:
        models_dir: ``<data>/models``.
        threads: onnxruntime intra-op threads per session (0 = all cores; the default 2
            leaves cores of a Pi to thumbnails and the web app).
        idle_seconds: unload sessions unused this long.
        detector_name, embedder_name: which installed models to use; default the manifest
            marked ``default``, else the first installed one by name.
        min_score, min_size, nms_iou: see :class:`FaceDetector`.
        batch_size: crops per recogniser call.
        manifests_dir: where manifests are (for :meth:`status`).
        clock: monotonic clock.
    """

    def __init__(self, models_dir: Path, *, threads: int = 2, idle_seconds: float = 600.0,
                 detector_name: str | None = None, embedder_name: str | None = None, min_score: float = 0.6,
                 min_size: float = 20.0, nms_iou: float = 0.4, batch_size: int = 16,
                 manifests_dir: Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.models_dir = Path(models_dir)
        self.threads = threads
        self.idle_seconds = idle_seconds
        self.names = {"face-detect": detector_name, "face-embed": embedder_name}
        self.detector_options = {"min_score": min_score, "min_size": min_size, "nms_iou": nms_iou}
        self.batch_size = batch_size
        self.manifests_dir = manifests_dir
        self.clock = clock
        self._lock = threading.RLock()
        self._installed = InstalledCache(self.models_dir)
        self._models: dict[str, _Model | None] = {"face-detect": None, "face-embed": None}

    def _read_installed(self) -> dict[str, InstalledModel]:
        return self._installed.read()

    def _choose(self, task: str, installed: Mapping[str, InstalledModel]) -> InstalledModel | None:
        return choose_installed(installed, task, self.names[task])

    def _get(self, task: str):
        with self._lock:
            self._models[task] = swap_model(self._models[task], self._choose(task, self._read_installed()),
                                            self._make, task)
            return self._models[task]

    def _make(self, record: InstalledModel) -> _Model:
        if record.task == "face-detect":
            return FaceDetector.from_record(record, self.models_dir, threads=self.threads, clock=self.clock,
                                            **self.detector_options)
        return FaceEmbedder.from_record(record, self.models_dir, threads=self.threads, batch_size=self.batch_size,
                                        clock=self.clock)

    def detector(self) -> FaceDetector | None:
        """The installed detector, or ``None``."""
        return self._get("face-detect")

    def embedder(self) -> FaceEmbedder | None:
        """The installed recogniser, or ``None``."""
        return self._get("face-embed")

    def model_id(self) -> str | None:
        """Store this beside face embeddings: vectors of different recognisers are not comparable."""
        embedder = self.embedder()
        return embedder.model_id if embedder else None

    def detect_and_embed(self, image: Image.Image) -> list[tuple[Face, np.ndarray]]:
        """Every face in ``image`` with its embedding, best first.

        Raises:
            FaceModelsMissing: no detector or recogniser is installed (the message says what to run).
        """
        detector, embedder = self.detector(), self.embedder()
        if detector is None or embedder is None:
            raise FaceModelsMissing(self.status()["message"])
        image = _upright(image)
        faces = detector.detect(image)
        vectors = embedder.embed_faces(image, faces)
        return list(zip(faces, vectors, strict=True))

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload sessions idle for ``idle_seconds``; returns the names of those dropped."""
        with self._lock:
            models = [m for m in self._models.values() if m is not None]
        dropped = [m.name for m in models if m.unload_idle(self.idle_seconds, now)]
        for name in dropped:
            log.info("unloaded idle face model %s", name)
        return dropped

    def unload_all(self) -> None:
        with self._lock:
            for model in self._models.values():
                if model is not None:
                    model.unload()

    def status(self) -> dict[str, Any]:
        """What the UI shows: ``ready``, ``detector``/``embedder`` (or None), ``available``, ``message``."""
        with self._lock:
            installed = self._read_installed()
            chosen = {task: self._choose(task, installed) for task in self._models}
            loaded = {task: bool(m is not None and chosen[task] is not None and m.model_id == chosen[task].model_id
                                 and m.loaded) for task, m in self._models.items()}
            error = self._installed.error
        manifests = [m for m in list_manifests(self.manifests_dir) if m.task in self._models]
        available = [{"name": m.name, "task": m.task, "description": m.description, "default": m.default,
                      "installed": m.name in installed, "approx_mb": m.approx_mb, "licence": m.licence}
                     for m in manifests]

        def describe(task: str) -> dict[str, Any] | None:
            record = chosen[task]
            if record is None:
                return None
            return {"name": record.name, "model_id": record.model_id, "installed_at": record.installed_at,
                    "licence": record.manifest.licence, "loaded": loaded[task],
                    **({"embedding_size": record.manifest.embedding_size} if task == "face-embed" else {})}

        missing = [task for task, record in chosen.items() if record is None]
        default_fetch = fetch_command(self.models_dir.parent, manifests_dir=self.manifests_dir)
        if not missing:
            message = (f"Faces are found with {chosen['face-detect'].name} and recognised with "
                       f"{chosen['face-embed'].name}.")
        elif error:
            message = f"The installed-models record is damaged ({error}); run `{default_fetch}` to reinstall."
        else:
            names = []
            for task in missing:
                wanted = self.names[task] or next((m.name for m in manifests if m.task == task and m.default), None) \
                    or next((m.name for m in manifests if m.task == task), None)
                if wanted:
                    names.append(wanted)
            what = " and ".join({"face-detect": "face detector", "face-embed": "face recogniser"}[t] for t in missing)
            sizes = [a["approx_mb"] for a in available if a["name"] in names]
            size = f" (downloads about {sum(sizes):.0f} MB once)" if names and None not in sizes and sizes else ""
            command = fetch_command(self.models_dir.parent, names, manifests_dir=self.manifests_dir)
            message = f"No {what} is installed, so People is off. Run `{command}` on the photobox{size}."
        return {
            "ready": not missing,
            "models_dir": str(self.models_dir),
            "detector": describe("face-detect"),
            "embedder": describe("face-embed"),
            "missing": missing,
            "installed": sorted(n for n, m in installed.items() if m.task in self._models),
            "available": available,
            "fetch_command": default_fetch,
            "message": message,
            "error": error,
        }
