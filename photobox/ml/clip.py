"""CLIP embeddings with onnxruntime: :class:`ClipModel` and the :class:`ModelManager` that owns it.

A CLIP model is two ONNX towers that map an image and a text into the same vector space;
search ranks photos by the cosine similarity of their image embedding to the query's text
embedding. Both are returned L2-normalised, so cosine similarity is a dot product (what
sqlite-vec computes).

Preprocessing follows the manifest exactly, the way open_clip's reference transform does
it on PIL images: convert to RGB, resize so the shortest side is ``size`` (bicubic, with
the long side truncated to an int as torchvision does), centre-crop (torchvision's
rounding), scale to [0, 1], subtract ``mean`` and divide by ``std`` per channel, NCHW
float32. A different resize or crop moves every embedding a little and silently worsens
search, so the tests check it against a hand computation.

On a Pi the sessions are the memory: ~90 MB (int8 image tower) plus ~65-140 MB (text).
They are loaded on first use and dropped by :meth:`ModelManager.unload_idle` after
``idle_seconds`` without use; the text-embedding cache survives unloading.
"""

from __future__ import annotations

import logging
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from photobox.ml import fetch_command
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

__all__ = ["ClipModel", "ModelError", "ModelManager", "TextTokenizer", "preprocess_image"]

log = logging.getLogger(__name__)

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX,
}
_ORT_INT_TYPES = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def preprocess_image(image: Image.Image, preprocess: Mapping[str, Any]) -> np.ndarray:
    """One image as the float32 ``[3, size, size]`` array the image tower expects.

    Args:
        image: any PIL image; it is converted to RGB (alpha dropped, as open_clip does).
        preprocess: the manifest's ``preprocess`` object.
    """
    size = int(preprocess["size"])
    resample = _RESAMPLE[preprocess.get("interpolation", "bicubic")]
    img = image if image.mode == "RGB" else image.convert("RGB")
    if preprocess.get("resize", "shortest") == "squash":
        img = img.resize((size, size), resample=resample)
    else:
        w, h = img.size
        # torchvision.transforms.Resize(int) on a PIL image: short side = size, long side
        # truncated (not rounded); skipped when already the right size.
        if w <= h:
            new = (size, int(size * h / w))
        else:
            new = (int(size * w / h), size)
        if new != (w, h):
            img = img.resize(new, resample=resample)
        if preprocess.get("crop", "center") == "center":
            w, h = img.size
            # torchvision.transforms.functional.center_crop rounds the offsets.
            top = int(round((h - size) / 2.0))
            left = int(round((w - size) / 2.0))
            img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(preprocess["mean"], dtype=np.float32)
    std = np.asarray(preprocess["std"], dtype=np.float32)
    arr = (arr - mean) / std
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)


class TextTokenizer:
    """A ``tokenizer.json`` set up to give exactly ``context_length`` ids per text.

    The pad token is the manifest's ``tokenizer.pad_token`` (CLIP's BPE tokenizer pads with
    ``<|endoftext|>``: the model pools at the first end-of-text, so padding with it is
    harmless; models that pool differently need their own pad id, which is why the
    manifest names it rather than photobox guessing). Truncation leaves room for the
    special tokens the tokenizer's post-processor adds, so the end-of-text token stays
    last; ``eos_token`` is forced into the last position should a tokenizer not do that.
    """

    def __init__(self, path: Path, manifest: Manifest) -> None:
        from tokenizers import Tokenizer

        self.context_length = manifest.context_length
        self.clean = manifest.tokenizer.get("clean", "whitespace")
        self._tokenizer = Tokenizer.from_file(str(path))
        spec = manifest.tokenizer
        pad_token = spec.get("pad_token")
        padding = self._tokenizer.padding or {}
        if pad_token is not None:
            pad_id = self._tokenizer.token_to_id(pad_token)
            if pad_id is None:
                raise ModelError(f"{manifest.name}: pad token {pad_token!r} is not in {path.name}")
        elif padding:
            pad_token, pad_id = padding["pad_token"], padding["pad_id"]
        else:
            raise ModelError(f"{manifest.name}: the manifest names no tokenizer.pad_token and {path.name} has none")
        self.pad_id = int(pad_id)
        eos = spec.get("eos_token")
        self.eos_id = self._tokenizer.token_to_id(eos) if eos else None
        if eos and self.eos_id is None:
            raise ModelError(f"{manifest.name}: eos token {eos!r} is not in {path.name}")
        self._tokenizer.enable_truncation(max_length=self.context_length)
        self._tokenizer.enable_padding(length=self.context_length, pad_id=self.pad_id, pad_token=pad_token)

    def clean_text(self, text: str) -> str:
        text = " ".join(text.split())
        if self.clean == "canonicalize":  # SigLIP-style: lower case, no punctuation
            text = text.translate(_PUNCTUATION).lower()
        return text

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, attention_mask)``, both int64 ``[len(texts), context_length]``."""
        encodings = self._tokenizer.encode_batch([self.clean_text(t) for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), self.context_length)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(ids.shape)
        if self.eos_id is not None:
            for row, enc in enumerate(encodings):
                if enc.overflowing and ids[row, -1] != self.eos_id:
                    ids[row, -1] = self.eos_id
        return ids, mask


class _Tower(LazySession):
    """One tower's lazily loaded session with what we need to know about its input and output."""

    def __init__(self, model: ClipModel, key: str, path: Path) -> None:
        super().__init__(f"{model.manifest.name} {key} model", path, model.threads, model.clock)
        self.model = model
        self.key = key
        self.input_name = ""
        self.input_dtype: Any = np.float32
        self.fixed_batch: int | None = None
        self.wants_mask = False
        self.output_name = ""

    def inspect(self, session) -> None:
        """Check a freshly loaded session against the manifest and note its input and output."""
        manifest = self.model.manifest
        inputs = {i.name: i for i in session.get_inputs()}
        name = manifest.input_names.get(self.key) or next(n for n in inputs if n != "attention_mask")
        if name not in inputs:
            raise ModelError(f"{manifest.name}: the {self.key} model has no input {name!r} (it has {sorted(inputs)})")
        meta = inputs[name]
        shape = list(meta.shape)
        batch = shape[0] if shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        if self.key == "image":
            size = manifest.preprocess["size"]
            if len(shape) != 4 or any(isinstance(d, int) and d != want for d, want in zip(shape[1:], (3, size, size),
                                                                                          strict=True)):
                raise ModelError(f"{manifest.name}: image input {name} has shape {shape}, expected [batch, 3, {size}, "
                                 f"{size}] (check preprocess.size)")
            self.input_dtype = np.float32
        else:
            if meta.type not in _ORT_INT_TYPES:
                raise ModelError(f"{manifest.name}: text input {name} is {meta.type}, expected int32 or int64 ids")
            self.input_dtype = _ORT_INT_TYPES[meta.type]
            if len(shape) == 2 and isinstance(shape[1], int) and shape[1] != manifest.context_length:
                raise ModelError(f"{manifest.name}: text input {name} takes {shape[1]} tokens, the manifest says "
                                 f"context_length {manifest.context_length}")
            self.wants_mask = "attention_mask" in inputs and name != "attention_mask"
        outputs = [o.name for o in session.get_outputs()]
        self.output_name = manifest.output_names.get(self.key) or outputs[0]
        if self.output_name not in outputs:
            raise ModelError(f"{manifest.name}: the {self.key} model has no output {self.output_name!r} ({outputs})")
        self.input_name = name

    def run(self, batch: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:  # type: ignore[override]
        """Embed ``batch`` (first axis = items) in chunks the model accepts; L2-normalised rows."""
        with self.in_use() as session:
            limit = self.fixed_batch or self.model.batch_size
            out = []
            for start in range(0, len(batch), limit):
                part = batch[start:start + limit]
                n = len(part)
                chunk = pad_batch(part, self.fixed_batch)  # a static batch dimension needs a full batch
                feed = {self.input_name: chunk.astype(self.input_dtype, copy=False)}
                if self.wants_mask and mask is not None:
                    m = pad_batch(mask[start:start + limit], len(chunk))
                    feed["attention_mask"] = m.astype(self.input_dtype, copy=False)
                result = self.run_on(session, feed, [self.output_name])[0]
                out.append(np.asarray(result, dtype=np.float32).reshape(len(chunk), -1)[:n])
        emb = np.concatenate(out) if out else np.zeros((0, self.model.embedding_size), np.float32)
        if emb.shape[1] != self.model.embedding_size:
            raise ModelError(f"{self.model.name}: {self.key} embeddings have {emb.shape[1]} dimensions, the manifest "
                             f"says {self.model.embedding_size}")
        return l2_normalise(emb)


class ClipModel:
    """An installed CLIP model: ``embed_images`` and ``embed_texts``, sessions loaded on first use.

    Thread-safe: embeddings may be requested from several threads; each tower runs one
    batch at a time (with ``threads`` intra-op threads).

    Args:
        record: the model's entry in installed.json.
        models_dir: ``<data>/models``, which the record's paths are relative to.
        threads: onnxruntime intra-op threads per session (0 = onnxruntime's default).
        batch_size: images per inference call when the model takes any batch size.
        text_cache_size: how many recent query embeddings to keep.
        clock: monotonic clock, for idle unloading (tests pass a fake one).
    """

    def __init__(self, record: InstalledModel, models_dir: Path, *, threads: int = 0, batch_size: int = 8,
                 text_cache_size: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self.record = record
        self.manifest = record.manifest
        self.name = record.name
        self.model_id = record.model_id
        self.embedding_size = self.manifest.embedding_size
        self.threads = threads
        self.batch_size = max(1, batch_size)
        self.clock = clock
        self._towers = {key: _Tower(self, key, record.path(key, models_dir)) for key in ("image", "text")}
        self._tokenizer_path = record.path("tokenizer", models_dir)
        self._tokenizer: TextTokenizer | None = None
        self._tokenizer_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = max(0, text_cache_size)
        self._cache_lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    def __repr__(self) -> str:
        return f"<ClipModel {self.model_id} loaded={self.loaded}>"

    @property
    def loaded(self) -> dict[str, bool]:
        return {key: tower.loaded for key, tower in self._towers.items()}

    def last_used(self, key: str) -> float:
        return self._towers[key].last_used

    def load(self) -> None:
        """Load both sessions now (e.g. to pay the load time before the first search)."""
        for tower in self._towers.values():
            tower.session()
        self.tokenizer()

    def tokenizer(self) -> TextTokenizer:
        if self._tokenizer is None:
            with self._tokenizer_lock:
                if self._tokenizer is None:
                    self._tokenizer = TextTokenizer(self._tokenizer_path, self.manifest)
        return self._tokenizer

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """See :func:`preprocess_image`."""
        return preprocess_image(image, self.manifest.preprocess)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``(len(images), embedding_size)`` float32, each row L2-normalised.

        Pass upright images (EXIF orientation applied) and previews rather than
        12-megapixel originals: resizing dominates otherwise and the towers see 224 pixels.
        """
        if not images:
            return np.zeros((0, self.embedding_size), np.float32)
        batch = np.stack([self.preprocess(img) for img in images])
        return self._towers["image"].run(batch)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), embedding_size)`` float32, each row L2-normalised; recent texts come from a cache."""
        result: list[np.ndarray | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        with self._cache_lock:
            for i, text in enumerate(texts):
                cached = self._cache.get(text)
                if cached is not None:
                    self._cache.move_to_end(text)
                    self.cache_hits += 1
                    result[i] = cached
                else:
                    missing.setdefault(text, []).append(i)
            self.cache_misses += len(missing)
        if missing:
            todo = list(missing)
            ids, mask = self.tokenizer()(todo)
            embedded = self._towers["text"].run(ids, mask)
            with self._cache_lock:
                for text, row in zip(todo, embedded, strict=True):
                    row.setflags(write=False)  # shared between callers through the cache
                    for i in missing[text]:
                        result[i] = row
                    if self._cache_size:
                        self._cache[text] = row
                        self._cache.move_to_end(text)
                        while len(self._cache) > self._cache_size:
                            self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self.embedding_size), np.float32)
        return np.stack(result)  # a fresh array: callers may modify it

    def cache_info(self) -> dict[str, int]:
        with self._cache_lock:
            return {"hits": self.cache_hits, "misses": self.cache_misses, "size": len(self._cache),
                    "max_size": self._cache_size}

    def unload(self) -> list[str]:
        """Drop both sessions (they reload on next use); return which were loaded."""
        return [key for key, tower in self._towers.items() if tower.unload()]

    def unload_idle(self, idle_seconds: float, now: float | None = None) -> list[str]:
        """Drop the sessions unused for ``idle_seconds``; return which were dropped."""
        now = self.clock() if now is None else now
        return [key for key, tower in self._towers.items() if tower.unload_idle(idle_seconds, now)]


class ModelManager:
    """Hands out the installed CLIP model and frees its memory when it is not used.

    Call :meth:`unload_idle` periodically (e.g. every minute from the scheduler). Reads
    ``installed.json`` again when it changes, so ``photobox models fetch`` run from the
    CLI takes effect in a running server without a restart.

    Args:
        models_dir: ``<data>/models``.
        threads: onnxruntime intra-op threads per session (0 = all cores).
        idle_seconds: unload sessions unused this long.
        model_name: which installed CLIP model to use; default: the manifest marked
            ``default``, else the first installed one by name.
        text_cache_size: recent query embeddings kept (an LRU).
        batch_size: images per inference call.
        manifests_dir: where manifests are (for :meth:`status`); default photobox's ``models/``.
        clock: monotonic clock.
    """

    def __init__(self, models_dir: Path, *, threads: int = 0, idle_seconds: float = 600.0,
                 model_name: str | None = None, text_cache_size: int = 256, batch_size: int = 8,
                 manifests_dir: Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.models_dir = Path(models_dir)
        self.threads = threads
        self.idle_seconds = idle_seconds
        self.model_name = model_name
        self.text_cache_size = text_cache_size
        self.batch_size = batch_size
        self.manifests_dir = manifests_dir
        self.clock = clock
        self._lock = threading.RLock()
        self._installed = InstalledCache(self.models_dir)
        self._clip: ClipModel | None = None

    def _read_installed(self) -> dict[str, InstalledModel]:
        return self._installed.read()

    def _choose(self, installed: Mapping[str, InstalledModel]) -> InstalledModel | None:
        return choose_installed(installed, "clip", self.model_name)

    def clip(self) -> ClipModel | None:
        """The CLIP model to use, or ``None`` when none is installed (search by description is then off)."""
        with self._lock:
            self._clip = swap_model(self._clip, self._choose(self._read_installed()), self._make, "CLIP")
            return self._clip

    def _make(self, record: InstalledModel) -> ClipModel:
        return ClipModel(record, self.models_dir, threads=self.threads, batch_size=self.batch_size,
                         text_cache_size=self.text_cache_size, clock=self.clock)

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload sessions idle for ``idle_seconds``; returns e.g. ``["clip-…:image"]``."""
        with self._lock:
            clip = self._clip
        if clip is None:
            return []
        dropped = clip.unload_idle(self.idle_seconds, now)
        for key in dropped:
            log.info("unloaded idle %s %s model", clip.name, key)
        return [f"{clip.name}:{key}" for key in dropped]

    def unload_all(self) -> None:
        with self._lock:
            if self._clip is not None:
                self._clip.unload()

    def status(self) -> dict[str, Any]:
        """What the UI shows: installed/available models, what is loaded, and how to fetch.

        Keys: ``ready`` (a CLIP model is installed), ``active`` (name, model_id, loaded,
        …, or None), ``installed`` (names), ``available`` (every manifest), ``fetch_command``
        and ``message`` (one sentence for a person).
        """
        with self._lock:
            installed = self._read_installed()
            record = self._choose(installed)
            clip = self._clip if self._clip is not None and record is not None \
                and self._clip.model_id == record.model_id else None
            error = self._installed.error
        available = []
        for manifest in list_manifests(self.manifests_dir):
            if manifest.task != "clip":
                continue
            available.append({"name": manifest.name, "description": manifest.description, "default": manifest.default,
                              "installed": manifest.name in installed, "approx_mb": manifest.approx_mb,
                              "licence": manifest.licence})
        active = None
        if record is not None:
            active = {"name": record.name, "model_id": record.model_id, "installed_at": record.installed_at,
                      "embedding_size": record.manifest.embedding_size, "licence": record.manifest.licence,
                      "loaded": clip.loaded if clip else {"image": False, "text": False},
                      "text_cache": clip.cache_info() if clip else None}
        command = fetch_command(self.models_dir.parent, manifests_dir=self.manifests_dir)
        if record is not None:
            message = f"Search by description uses {record.name}."
        elif error:
            message = f"The installed-models record is damaged ({error}); run `{command}` to reinstall."
        elif self.model_name and installed:
            named = fetch_command(self.models_dir.parent, [self.model_name], manifests_dir=self.manifests_dir)
            message = f"Model {self.model_name} is not installed; run `{named}`."
        else:
            default = next((a for a in available if a["default"]), None)
            size = f" (downloads about {default['approx_mb']:.0f} MB once)" if default and default["approx_mb"] else ""
            message = (f"No CLIP model is installed, so search by description is off. "
                       f"Run `{command}` on the photobox{size}.")
        return {
            "ready": record is not None,
            "models_dir": str(self.models_dir),
            "active": active,
            "installed": sorted(installed),
            "available": available,
            "fetch_command": command,
            "message": message,
            "error": error,
        }
