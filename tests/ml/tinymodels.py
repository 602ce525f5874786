"""Tiny stand-ins for a CLIP image tower, text tower and tokenizer, built on the spot.

Tests never download weights, so they build models with the SAME contract as the real
exported towers (Immich's OpenCLIP export: input ``image`` float32 ``[batch, 3, 224, 224]``,
input ``text`` int32 ``[batch, 77]``, output ``embedding`` ``[batch, dim]``) and just
enough meaning to check semantics end to end:

* the image tower takes the mean of ``relu(pixel - grey)`` per channel (after the
  manifest's mean/std normalisation, so preprocessing matters) and maps R, G and B onto
  three fixed directions of the embedding space;
* the text tower looks words up in an embedding table (Gather) where "red"/"fire" sit on
  the red direction, "green"/"grass" on green, "blue"/"sky" on blue, other (and unknown)
  words on small random vectors and padding/start/end tokens on zero, averages them (ReduceMean) and applies the
  same random orthogonal projection (MatMul) as the image tower.

So a red picture embeds next to the text "red", and a blue one next to "sky". Weights
are fp32 and come from a seeded generator, so the files (and their sha256) are the same
on every run and the int8 quantization step really has MatMul weights to quantize.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "CLIP_MEAN", "CLIP_STD", "COLOUR_WORDS", "DIM", "TinyModelFiles", "build_image_model", "build_text_model",
    "build_tokenizer", "write_tiny_models", "tiny_manifest",
]

DIM = 32
SIZE = 224
CONTEXT = 77
SEED = 1234
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
COLOUR_WORDS = {"red": 0, "fire": 0, "tomato": 0, "green": 1, "grass": 1, "forest": 1, "blue": 2, "sky": 2, "sea": 2}
OTHER_WORDS = ["a", "an", "the", "photo", "picture", "of", "with", "and", "in", "on", "my", "dog", "cat", "house",
               "car", "tree", "beach", "holiday", "birthday", "party", "snow", "night", "day"]


def _weights(dim: int = DIM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colour directions [3, dim], projection [dim, dim], table of other words [n, dim])."""
    rng = np.random.default_rng(SEED)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    colours = q[:3].astype(np.float32)  # three orthonormal directions
    projection, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    others = (rng.normal(size=(len(OTHER_WORDS) + 1, dim)) * 0.05).astype(np.float32)  # + <unk>
    return colours, projection.astype(np.float32), others


def vocabulary() -> dict[str, int]:
    words = SPECIALS + list(COLOUR_WORDS) + OTHER_WORDS
    return {w: i for i, w in enumerate(words)}


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Deterministic bytes: no producer version that changes between onnx releases.
    model.producer_name = "photobox-tinymodels"
    model.producer_version = "1"
    path.write_bytes(model.SerializeToString(deterministic=True))


def build_image_model(path: Path, *, dim: int = DIM, fixed_batch: int | None = None) -> Path:
    """Write the tiny image tower: ``image`` float32 [batch, 3, 224, 224] → ``embedding`` [batch, dim].

    ``fixed_batch=1`` mimics exports whose batch dimension is static (Immich's are).
    """
    colours, projection, _ = _weights(dim)
    # What a mid-grey pixel (0.5) becomes after CLIP normalisation: only colour above grey counts.
    grey = ((0.5 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)).astype(np.float32).reshape(1, 3, 1, 1)
    batch = fixed_batch if fixed_batch else "batch"
    graph = helper.make_graph(
        [
            helper.make_node("Sub", ["image", "grey"], ["centred"]),
            helper.make_node("Relu", ["centred"], ["above_grey"]),
            helper.make_node("ReduceMean", ["above_grey"], ["rgb"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["rgb", "colour_directions"], ["colour_embedding"]),
            helper.make_node("MatMul", ["colour_embedding", "projection"], ["embedding"]),
        ],
        "tiny_clip_visual",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])],
        [numpy_helper.from_array(grey, "grey"), numpy_helper.from_array(colours, "colour_directions"),
         numpy_helper.from_array(projection, "projection")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    _save(model, path)
    return path


def build_text_model(path: Path, *, dim: int = DIM, fixed_batch: int | None = None,
                     input_name: str = "text", dtype: int = TensorProto.INT32) -> Path:
    """Write the tiny text tower: ``text`` int32 [batch, 77] → ``embedding`` [batch, dim]."""
    colours, projection, others = _weights(dim)
    vocab = vocabulary()
    table = np.zeros((len(vocab), dim), dtype=np.float32)  # pad/bos/eos stay zero
    for word, colour in COLOUR_WORDS.items():
        table[vocab[word]] = colours[colour]
    for i, word in enumerate([*OTHER_WORDS, "<unk>"]):
        table[vocab[word]] = others[i]
    batch = fixed_batch if fixed_batch else "batch"
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["token_embedding", input_name], ["tokens"], axis=0),
            helper.make_node("ReduceMean", ["tokens"], ["pooled"], axes=[1], keepdims=0),
            helper.make_node("MatMul", ["pooled", "projection"], ["embedding"]),
        ],
        "tiny_clip_textual",
        [helper.make_tensor_value_info(input_name, dtype, [batch, CONTEXT])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])],
        [numpy_helper.from_array(table, "token_embedding"), numpy_helper.from_array(projection, "projection")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    _save(model, path)
    return path


def build_tokenizer(path: Path) -> Path:
    """Write a WordLevel ``tokenizer.json`` that wraps text as ``<bos> … <eos>`` like CLIP's BPE one."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = vocabulary()
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tokenizer.to_str())
    return path


@dataclass(frozen=True)
class TinyModelFiles:
    """Where :func:`write_tiny_models` put the files, laid out like the hub repository."""

    root: Path
    image: Path
    text: Path
    tokenizer: Path

    def sha256(self, key: str) -> str:
        return hashlib.sha256(getattr(self, key).read_bytes()).hexdigest()

    def size(self, key: str) -> int:
        return getattr(self, key).stat().st_size


def write_tiny_models(root: Path, *, fixed_batch: int | None = None) -> TinyModelFiles:
    """Build the three files under ``root``: ``visual/model.onnx``, ``textual/{model.onnx,tokenizer.json}``."""
    return TinyModelFiles(
        root=root,
        image=build_image_model(root / "visual" / "model.onnx", fixed_batch=fixed_batch),
        text=build_text_model(root / "textual" / "model.onnx", fixed_batch=fixed_batch),
        tokenizer=build_tokenizer(root / "textual" / "tokenizer.json"),
    )


def tiny_manifest(files: TinyModelFiles, *, name: str = "tiny-clip", base_url: str = "https://models.invalid/tiny",
                  pinned: bool = True, **overrides) -> dict:
    """A manifest for the tiny models, in the format of ``models/*.json``.

    ``base_url`` is deliberately unreachable: tests point ``source_override`` at a
    ``file://`` folder or a local HTTP server, as an offline install would.
    """

    def entry(key: str, rel: str, fmt: str | None) -> dict:
        spec = {"url": f"{base_url}/{rel}", "path": rel, "sha256": files.sha256(key) if pinned else None,
                "size": files.size(key)}
        if fmt:
            spec["format"] = fmt
        return spec

    manifest = {
        "name": name,
        "task": "clip",
        "description": "Tiny generated CLIP look-alike for tests.",
        "licence": "CC0-1.0 (generated by tests/ml/tinymodels.py)",
        "source": "tests/ml/tinymodels.py",
        "files": {
            "image": entry("image", "visual/model.onnx", "onnx-fp32"),
            "text": entry("text", "textual/model.onnx", "onnx-fp32"),
            "tokenizer": entry("tokenizer", "textual/tokenizer.json", None),
        },
        "preprocess": {"size": SIZE, "resize": "shortest", "interpolation": "bicubic", "crop": "center",
                       "mean": CLIP_MEAN, "std": CLIP_STD},
        "embedding_size": DIM,
        "context_length": CONTEXT,
        "tokenizer": {"pad_token": "<pad>", "eos_token": "<eos>"},
        "input_names": {"image": "image", "text": "text"},
        "output_names": {"image": "embedding", "text": "embedding"},
        "quantize": "dynamic-int8",
        "quantize_options": {"per_channel": True, "op_types": ["MatMul"]},
    }
    manifest.update(overrides)
    return manifest


if __name__ == "__main__":  # python -m tests.ml.tinymodels OUT_DIR: build them by hand
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-models")
    built = write_tiny_models(out)
    (out / "tiny-clip.json").write_text(json.dumps(tiny_manifest(built), indent=2) + "\n")
    print(f"wrote {out}")
