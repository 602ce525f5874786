"""Model manifests (``models/*.json``) and what is installed (``<data>/models/installed.json``).

A manifest says where a model's files are published, their sha256 when known, how
images must be preprocessed and texts tokenized, and whether photobox quantizes the
published fp32 ONNX to int8. ``models/README.md`` documents every field.

``installed.json`` records, per installed model: the folder its files are in, the sha256
of each downloaded original and of each file actually used (the int8 one when quantized),
when it was installed, and a copy of the manifest it was installed from, so a model keeps
working with the preprocessing it was installed with even when the manifest in a newer
photobox changes. The file is replaced atomically (write, fsync, rename), so a reader
never sees half of it; writers take :func:`models_lock`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "FILE_KEYS", "INSTALLED_FILE", "TASK_FILE_KEYS", "FileSpec", "InstalledFile", "InstalledModel",
    "InstalledStateError", "Manifest",
    "ManifestError", "get_manifest", "installed_model", "list_manifests", "load_installed", "load_manifest",
    "models_lock", "save_installed",
]

log = logging.getLogger(__name__)

INSTALLED_FILE = "installed.json"
#: The files a CLIP manifest must list: the two ONNX towers and the tokenizer.
FILE_KEYS = ("image", "text", "tokenizer")
#: The files a manifest must list, per task: a face detector or recogniser is one ONNX model.
TASK_FILE_KEYS: dict[str, tuple[str, ...]] = {
    "clip": FILE_KEYS,
    "face-detect": ("model",),
    "face-embed": ("model",),
}
#: How a face detector's outputs are decoded (see :mod:`photobox.ml.faces`).
_DECODERS = {"yunet", "scrfd"}
_CHANNELS = {"rgb", "bgr"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FORMATS = {"onnx-fp32", "onnx-int8", "tokenizer-json"}
_QUANTIZE = {"dynamic-int8", "none"}
_RESIZE = {"shortest", "squash"}
_CROP = {"center", "none"}
_CLEAN = {"whitespace", "canonicalize", "none"}
_SCHEMES = ("https://", "http://", "file://")


class ManifestError(ValueError):
    """A manifest is missing a field or has one photobox cannot use; the message names it."""


class InstalledStateError(RuntimeError):
    """``installed.json`` exists but cannot be read."""


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ManifestError(f"{where}: {message}")


@dataclasses.dataclass(frozen=True, slots=True)
class FileSpec:
    """One published file of a model.

    Attributes:
        key: ``image``, ``text`` or ``tokenizer`` (CLIP); ``model`` (face tasks).
        url: where to download it (``https://`` in real manifests), pinned to a revision.
        path: its path inside the source repository, used to find it in a folder given
            to ``photobox models fetch --from DIR`` (an offline install).
        sha256: the published file's hash, or ``None`` when no pin is known (then
            fetching needs ``--trust-on-first-use``).
        size: exact size in bytes when known; checked after download.
        format: ``onnx-fp32``, ``onnx-int8`` or ``tokenizer-json``.
        quantize: whether photobox quantizes this file (only ever for ``onnx-fp32``).
        approx_mb: the size shown by the hub, for ``photobox models list`` only.
    """

    key: str
    url: str
    path: str
    sha256: str | None
    size: int | None
    format: str
    quantize: bool
    approx_mb: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed ``models/<name>.json``; ``raw`` is the dict it came from (stored in installed.json)."""

    name: str
    task: str
    description: str
    licence: str
    source: str
    files: Mapping[str, FileSpec]
    preprocess: Mapping[str, Any]
    embedding_size: int
    context_length: int
    tokenizer: Mapping[str, Any]
    input_names: Mapping[str, str]
    output_names: Mapping[str, str]
    quantize: str
    quantize_options: Mapping[str, Any]
    default: bool
    raw: Mapping[str, Any]
    #: face-detect only: ``{"decoder": "yunet"|"scrfd", "strides": [...], "anchors": n}``.
    detector: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def file_keys(self) -> tuple[str, ...]:
        """The file keys this manifest's task has (``image``/``text``/``tokenizer`` for CLIP)."""
        return TASK_FILE_KEYS[self.task]

    @property
    def unpinned(self) -> list[str]:
        """Keys of the files whose sha256 is not known."""
        return [key for key, spec in self.files.items() if spec.sha256 is None]

    @property
    def approx_mb(self) -> float | None:
        """Download size in MB, when every file's size (exact or approximate) is known."""
        sizes = [spec.size / 1e6 if spec.size else spec.approx_mb for spec in self.files.values()]
        return None if any(s is None for s in sizes) else round(sum(sizes), 1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "manifest") -> Manifest:
        """Validate ``data`` and build a :class:`Manifest`.

        Raises:
            ManifestError: naming the first field that is missing or wrong.
        """
        _require(isinstance(data, Mapping), where, "must be a JSON object")
        name = data.get("name")
        _require(isinstance(name, str) and bool(_NAME.match(name)), where,
                 "'name' must be lowercase letters, digits, '.', '_' or '-'")
        where = f"{where} ({name})"
        task = data.get("task")
        _require(task in TASK_FILE_KEYS, where,
                 f"'task' {task!r} is not supported (only {', '.join(repr(t) for t in TASK_FILE_KEYS)})")
        file_keys = TASK_FILE_KEYS[task]
        quantize = data.get("quantize", "none")
        _require(quantize in _QUANTIZE, where, f"'quantize' must be one of {sorted(_QUANTIZE)}")

        files_in = data.get("files")
        _require(isinstance(files_in, Mapping), where, "'files' must be an object")
        _require(set(files_in) == set(file_keys), where, f"'files' must have exactly {list(file_keys)}")
        files: dict[str, FileSpec] = {}
        for key in file_keys:
            spec = files_in[key]
            fw = f"{where} files.{key}"
            _require(isinstance(spec, Mapping), fw, "must be an object")
            url = spec.get("url")
            _require(isinstance(url, str) and url.startswith(_SCHEMES), fw, "'url' must be an http(s) or file URL")
            sha = spec.get("sha256")
            _require(sha is None or (isinstance(sha, str) and bool(_SHA256.match(sha))), fw,
                     "'sha256' must be 64 lowercase hex digits or null (unknown)")
            size = spec.get("size")
            _require(size is None or (isinstance(size, int) and size > 0), fw, "'size' must be a positive integer")
            fmt = spec.get("format", "tokenizer-json" if key == "tokenizer" else None)
            _require(fmt in _FORMATS, fw, f"'format' must be one of {sorted(_FORMATS)}")
            _require((key == "tokenizer") == (fmt == "tokenizer-json"), fw, "only the tokenizer is tokenizer-json")
            # A file is quantized when the model says so and it is published as fp32, unless
            # the file opts out (some towers break under int8; see models/README.md).
            file_quantize = spec.get("quantize", True)
            _require(isinstance(file_quantize, bool), fw, "'quantize' must be true or false")
            path = spec.get("path") or url.rsplit("/", 1)[-1]
            _require(isinstance(path, str) and ".." not in Path(path).parts and not path.startswith("/"), fw,
                     "'path' must be a relative path inside the source repository")
            approx = spec.get("approx_mb")
            files[key] = FileSpec(key=key, url=url, path=path, sha256=sha, size=size, format=fmt,
                                  quantize=quantize == "dynamic-int8" and fmt == "onnx-fp32" and file_quantize,
                                  approx_mb=float(approx) if isinstance(approx, int | float) else None)

        pre = data.get("preprocess")
        _require(isinstance(pre, Mapping), where, "'preprocess' must be an object")
        _require(isinstance(pre.get("size"), int) and pre["size"] > 0, where,
                 "'preprocess.size' must be a positive int")
        _require(pre.get("resize", "shortest") in _RESIZE, where,
                 f"'preprocess.resize' must be one of {sorted(_RESIZE)}")
        _require(pre.get("crop", "center") in _CROP, where, f"'preprocess.crop' must be one of {sorted(_CROP)}")
        _require(pre.get("interpolation", "bicubic") in {"bicubic", "bilinear", "nearest", "lanczos", "box"}, where,
                 "'preprocess.interpolation' must be bicubic, bilinear, nearest, lanczos or box")
        for field in ("mean", "std"):
            value = pre.get(field)
            _require(isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) for v in value),
                     where, f"'preprocess.{field}' must be three numbers")
        _require(all(v > 0 for v in pre["std"]), where, "'preprocess.std' must be positive")
        _require(pre.get("channels", "rgb") in _CHANNELS, where, f"'preprocess.channels' must be one of "
                 f"{sorted(_CHANNELS)}")

        tok = data.get("tokenizer", {})
        _require(isinstance(tok, Mapping), where, "'tokenizer' must be an object")
        _require(tok.get("clean", "whitespace") in _CLEAN, where, f"'tokenizer.clean' must be one of {sorted(_CLEAN)}")
        # A detector has no embedding and only CLIP has texts: those fields are optional there.
        needed = {"clip": ("embedding_size", "context_length"), "face-embed": ("embedding_size",)}.get(task, ())
        for field in ("embedding_size", "context_length"):
            if field in needed or field in data:
                _require(isinstance(data.get(field), int) and data[field] > 0, where,
                         f"'{field}' must be a positive int")
        tensor_keys = {"image", "text"} if task == "clip" else set(file_keys)
        names_in = data.get("input_names", {}), data.get("output_names", {})
        for label, names in zip(("input_names", "output_names"), names_in, strict=True):
            _require(isinstance(names, Mapping) and set(names) <= tensor_keys
                     and all(isinstance(v, str) for v in names.values()), where,
                     f"'{label}' must map {'/'.join(repr(k) for k in sorted(tensor_keys))} to tensor names")
        detector = data.get("detector", {})
        if task == "face-detect":
            _require(isinstance(detector, Mapping) and detector.get("decoder") in _DECODERS, where,
                     f"'detector.decoder' must be one of {sorted(_DECODERS)}")
            strides = detector.get("strides", [8, 16, 32])
            _require(isinstance(strides, list) and len(strides) > 0
                     and all(isinstance(v, int) and v > 0 for v in strides), where,
                     "'detector.strides' must be a list of positive ints")
            anchors = detector.get("anchors", 2 if detector.get("decoder") == "scrfd" else 1)
            _require(isinstance(anchors, int) and anchors > 0, where, "'detector.anchors' must be a positive int")
            detector = {**detector, "strides": list(strides), "anchors": anchors}
        else:
            detector = {}
        options = data.get("quantize_options", {})
        _require(isinstance(options, Mapping), where, "'quantize_options' must be an object")
        for field in ("description", "licence", "source"):
            _require(isinstance(data.get(field), str) and data[field].strip() != "", where, f"'{field}' is required")
        return cls(
            name=name, task=task, description=data["description"], licence=data["licence"], source=data["source"],
            files=files, preprocess=dict(pre), embedding_size=data.get("embedding_size", 0),
            context_length=data.get("context_length", 0), tokenizer=dict(tok), input_names=dict(names_in[0]),
            output_names=dict(names_in[1]), quantize=quantize, quantize_options=dict(options),
            default=bool(data.get("default", False)), raw=dict(data), detector=detector,
        )


def _manifests_dir(manifests_dir: Path | None) -> Path:
    if manifests_dir is not None:
        return manifests_dir
    from photobox.resources import MODELS_DIR

    return MODELS_DIR


def load_manifest(path: Path) -> Manifest:
    """Read and validate one manifest file.

    Raises:
        ManifestError: unreadable JSON or an invalid field.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: {exc}") from None
    return Manifest.from_dict(data, where=path.name)


def list_manifests(manifests_dir: Path | None = None) -> list[Manifest]:
    """Every valid manifest in ``manifests_dir`` (default: photobox's ``models/``), default first.

    An invalid manifest is logged and skipped so one bad file cannot hide the others.
    """
    found: list[Manifest] = []
    for path in sorted(_manifests_dir(manifests_dir).glob("*.json")):
        try:
            found.append(load_manifest(path))
        except ManifestError as exc:
            log.error("ignoring model manifest: %s", exc)
    return sorted(found, key=lambda m: (not m.default, m.name))


def get_manifest(name: str, manifests_dir: Path | None = None) -> Manifest:
    """The manifest called ``name``.

    Raises:
        KeyError: no such model (the message lists the known ones).
    """
    manifests = list_manifests(manifests_dir)
    for manifest in manifests:
        if manifest.name == name:
            return manifest
    raise KeyError(f"unknown model {name!r}; known: {', '.join(m.name for m in manifests) or 'none'}")


@dataclasses.dataclass(frozen=True, slots=True)
class InstalledFile:
    """One installed file. ``path`` is relative to the models folder."""

    key: str
    path: str
    sha256: str
    size: int
    original_sha256: str
    original_size: int
    url: str
    format: str
    quantized: bool
    trusted_on_first_use: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class InstalledModel:
    """One entry of ``installed.json``."""

    name: str
    task: str
    dir: str
    installed_at: str
    manifest: Manifest
    files: Mapping[str, InstalledFile]
    quantization: Mapping[str, Any] | None = None
    checks: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def revision(self) -> str:
        """Identifies these exact files (the install folder's name); changes when they do."""
        return Path(self.dir).name

    @property
    def model_id(self) -> str:
        """``name@revision``: store it beside embeddings, which are only comparable within one."""
        return f"{self.name}@{self.revision}"

    def path(self, key: str, models_dir: Path) -> Path:
        return models_dir / self.files[key].path

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "task": self.task, "dir": self.dir, "installed_at": self.installed_at,
            "files": {k: dataclasses.asdict(f) for k, f in self.files.items()},
            "quantization": self.quantization, "checks": dict(self.checks), "manifest": dict(self.manifest.raw),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstalledModel:
        fields = {f.name for f in dataclasses.fields(InstalledFile)}
        return cls(
            name=data["name"], task=data["task"], dir=data["dir"], installed_at=data["installed_at"],
            manifest=Manifest.from_dict(data["manifest"], where="installed.json"),
            files={k: InstalledFile(**{n: v for n, v in f.items() if n in fields}) for k, f in data["files"].items()},
            quantization=data.get("quantization"), checks=data.get("checks") or {},
        )


def load_installed(models_dir: Path) -> dict[str, InstalledModel]:
    """What ``<models_dir>/installed.json`` lists (``{}`` when it does not exist).

    Raises:
        InstalledStateError: the file exists but is not valid.
    """
    path = models_dir / INSTALLED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InstalledStateError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise InstalledStateError(f"{path}: not an installed-models record")
    models = {}
    for name, entry in data.get("models", {}).items():
        # One entry this photobox cannot read (e.g. written by a newer one) must not hide
        # the others; it counts as not installed, so fetching reinstalls it.
        try:
            models[name] = InstalledModel.from_dict(entry)
        except (KeyError, TypeError, ValueError, ManifestError) as exc:
            log.error("%s: ignoring the entry for %s (%s)", path, name, exc)
    return models


def installed_model(models_dir: Path, name: str) -> InstalledModel | None:
    return load_installed(models_dir).get(name)


def save_installed(models_dir: Path, models: Mapping[str, InstalledModel]) -> None:
    """Replace ``installed.json`` atomically. Call it holding :func:`models_lock`."""
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / INSTALLED_FILE
    body = json.dumps({"version": 1, "models": {n: m.to_dict() for n, m in sorted(models.items())}},
                      indent=2, sort_keys=False) + "\n"
    tmp = models_dir / f".{INSTALLED_FILE}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(models_dir)


def _fsync_dir(path: Path) -> None:
    # The rename is only durable once the directory entry is on disk (matters on a Pi's
    # power cut more than anywhere).
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def models_lock(models_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the models folder (a CLI fetch and the server may overlap)."""
    import fcntl

    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
