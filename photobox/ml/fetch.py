"""Download a model, verify it, quantize it to int8 and install it: ``photobox models fetch``.

Everything happens in a staging folder inside the models folder (``.staging-<name>-<random>``):
each file is streamed there while its sha256 is computed, checked against the manifest,
the fp32 towers are quantized, both towers are loaded and run once (the int8 ones against
their fp32 originals), and only then is the staging folder renamed to
``<models>/<name>/<revision>/`` and ``installed.json`` updated. Any failure, an interrupted
download included, removes the staging folder: nothing partial is ever installed, and a
crash leaves only a ``.staging-*`` folder that the next fetch removes.

A file without a known sha256 in its manifest is refused unless ``trust_on_first_use``
is given; then the hash computed on download is recorded (and trusted for later
re-fetches of the same URL), with a loud warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import http.client
import json
import logging
import os
import secrets
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from photobox import __version__
from photobox.ml.quantize import (
    RECIPES,
    Int8Cpu,
    QuantizationError,
    compare,
    int8_cpu,
    quantize_file,
    recipe_of,
    resolve_options,
)
from photobox.ml.registry import (
    InstalledFile,
    InstalledModel,
    InstalledStateError,
    Manifest,
    get_manifest,
    load_installed,
    models_lock,
    save_installed,
)

__all__ = ["ChecksumError", "FetchError", "FetchResult", "Progress", "SourceUnreachable", "UnpinnedError",
           "fetch_model", "sha256_file"]

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)``: stage is e.g. ``"download image"`` or ``"quantize text"``;
#: ``done``/``total`` are bytes for downloads (``total`` None when unknown) and 0/None otherwise.
Progress = Callable[[str, int, int | None], None]

CHUNK = 1 << 20


def _suffix(spec) -> str:
    return ".json" if spec.format == "tokenizer-json" else ".onnx"


class FetchError(RuntimeError):
    """A model could not be fetched; nothing was installed."""


class ChecksumError(FetchError):
    """A downloaded file's sha256 (or size) is not the one the manifest pins."""


class SourceUnreachable(FetchError):
    """The model hub could not be reached, or the download broke off (no or bad network)."""


class UnpinnedError(FetchError):
    """The manifest has no sha256 for some files and trust-on-first-use was not asked for."""


@dataclasses.dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_model` did: ``status`` is ``installed`` or ``already-installed``."""

    name: str
    status: str
    record: InstalledModel
    warnings: tuple[str, ...] = ()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _open_source(source: str, timeout: float):
    """``(stream, total_bytes_or_None)`` for an http(s)/file URL or a plain local path."""
    parsed = urllib.parse.urlsplit(source)
    if parsed.scheme in ("http", "https"):
        request = urllib.request.Request(source, headers={"User-Agent": f"photobox/{__version__}"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked above
        except urllib.error.HTTPError as exc:
            raise FetchError(f"{source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SourceUnreachable(f"{source}: {getattr(exc, 'reason', exc)}") from None
        length = response.headers.get("Content-Length")
        return response, int(length) if length and length.isdigit() else None
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
    elif parsed.scheme == "":
        path = Path(source)
    else:
        raise FetchError(f"{source}: only https, http and file URLs are supported")
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise FetchError(f"{path}: {exc.strerror or exc}") from None
    return stream, path.stat().st_size


def _download(source: str, dest: Path, *, label: str, expected_size: int | None, progress: Progress | None,
              timeout: float) -> tuple[str, int]:
    """Stream ``source`` into ``dest`` (created new), returning ``(sha256, size)``."""
    stream, announced = _open_source(source, timeout)
    total = announced or expected_size
    h = hashlib.sha256()
    done = 0
    with contextlib.closing(stream), open(dest, "xb") as out:
        if progress:
            progress(label, 0, total)
        while True:
            try:
                block = stream.read(CHUNK)
            except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                raise SourceUnreachable(f"{source}: download interrupted after {done} bytes ({type(exc).__name__}: "
                                 f"{exc})") from None
            if not block:
                break
            h.update(block)
            out.write(block)
            done += len(block)
            if progress:
                progress(label, done, total)
        out.flush()
        os.fsync(out.fileno())
    if announced is not None and done != announced:
        raise SourceUnreachable(f"{source}: download interrupted after {done} of {announced} bytes")
    return h.hexdigest(), done


def _sources(manifest: Manifest, override: Mapping[str, str] | None) -> dict[str, str]:
    override = dict(override or {})
    unknown = set(override) - set(manifest.files)
    if unknown:
        raise FetchError(f"source_override has unknown keys {sorted(unknown)} (use {list(manifest.files)})")
    return {key: str(override.get(key) or spec.url) for key, spec in manifest.files.items()}


#: Quantization options that do not depend on the CPU: a change means new int8 files.
_STABLE_OPTIONS = ("per_channel", "op_types", "nodes_to_exclude")


def _quant_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the quantization options that decides the int8 files (for the revision)."""
    return {k: options[k] for k in ("weight_type", "per_channel", "reduce_range", "op_types", "nodes_to_exclude")}


def _recipe_plan(options: Mapping[str, Any], cpu: Int8Cpu) -> list[dict[str, Any]]:
    """The quantization options to try in order: the manifest's pinned weight type, or this CPU's recipes."""
    if options["weight_type"] is not None:
        return [dict(options)]
    return [dict(options, weight_type=RECIPES[name].weight_type, reduce_range=RECIPES[name].reduce_range)
            for name in cpu.recipes]


def _quantization_current(record: InstalledModel, options: Mapping[str, Any], cpu: Int8Cpu) -> bool:
    """Whether the record's int8 files (or its fp32 fallback) are what a fetch on this CPU would install."""
    if not any(f.quantized for f in record.files.values()):
        # int8 was refused on this CPU class at install time: fp32 is the right answer here.
        return record.checks.get("int8_refused_on") == cpu.cls
    recorded = record.quantization or {}
    if any(recorded.get(k) != options[k] for k in _STABLE_OPTIONS):
        return False
    if options["weight_type"] is not None:
        return recorded.get("weight_type") == options["weight_type"]
    return cpu.fits(recipe_of(recorded) or "")


def _up_to_date(record: InstalledModel | None, manifest: Manifest, models_dir: Path, options: Mapping[str, Any],
                verify: bool, cpu: Int8Cpu) -> bool:
    if record is None or set(record.files) != set(manifest.files):
        return False
    fallback = "int8_refused_on" in record.checks
    for key, spec in manifest.files.items():
        have = record.files[key]
        if spec.sha256 is not None and have.original_sha256 != spec.sha256:
            return False
        if spec.sha256 is None and not (have.trusted_on_first_use and have.url == spec.url):
            return False
        if have.quantized != spec.quantize and not (fallback and spec.quantize):
            return False
        path = models_dir / have.path
        try:
            if path.stat().st_size != have.size:
                return False
        except OSError:
            return False
        if verify and sha256_file(path) != have.sha256:
            return False
    if any(spec.quantize for spec in manifest.files.values()):
        return _quantization_current(record, options, cpu)
    return True


def _check_image():
    """A deterministic test picture with colour, gradients and edges (what a real photo has)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:240, 0:320].astype(np.float32)
    rgb = np.stack([x / 320 * 255, y / 240 * 255, ((x // 40 + y // 40) % 2) * 200 + 25], axis=-1)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")


_CHECK_TEXTS = ["a photo of a dog on the beach", "birthday party"]


def _provisional(manifest: Manifest, models_dir: Path, folder: Path, files: Mapping[str, Path]) -> InstalledModel:
    """A record pointing at files in ``folder`` (to load them with ClipModel before installing)."""
    rel = {k: str(p.relative_to(models_dir)) for k, p in files.items()}
    return InstalledModel(
        name=manifest.name, task=manifest.task, dir=str(folder.relative_to(models_dir)), installed_at="",
        manifest=manifest,
        files={k: InstalledFile(key=k, path=rel[k], sha256="", size=0, original_sha256="", original_size=0,
                                url="", format="", quantized=False) for k in manifest.files},
    )


def _smoke_test(manifest: Manifest, models_dir: Path, folder: Path, originals: Mapping[str, Path],
                final: Mapping[str, Path], progress: Progress | None) -> dict[str, float]:
    """Load and run the towers once; compare int8 towers with their fp32 originals.

    Returns ``{"<key>_int8_cosine": cosine}`` for each int8 tower.

    Raises:
        FetchError: a tower does not load or does not match the manifest.
        QuantizationError: an int8 tower does not run on this CPU.
    """
    if manifest.task != "clip":
        return _smoke_test_faces(manifest, originals, final, progress)
    from photobox.ml.clip import ClipModel
    from photobox.ml.session import ModelError

    checks: dict[str, float] = {}
    if progress:
        progress("check", 0, None)
    model = ClipModel(_provisional(manifest, models_dir, folder, final), models_dir, threads=1, text_cache_size=0)
    try:
        # Runs both towers as search will, which also checks names, shapes and embedding size.
        model.embed_images([_check_image()])
        model.embed_texts(_CHECK_TEXTS)
        towers = {key: model._towers[key] for key in ("image", "text")}
        model.unload()  # one tower pair in memory at a time: a Pi has little to spare
        for key, tower in towers.items():
            if final[key] == originals[key]:
                continue
            batch = tower.fixed_batch or 1
            if key == "image":
                feed = {tower.input_name: np.repeat(model.preprocess(_check_image())[None], batch, axis=0)}
            else:
                ids, mask = model.tokenizer()(_CHECK_TEXTS[:1] * batch)
                feed = {tower.input_name: ids.astype(tower.input_dtype)}
                if tower.wants_mask:
                    feed["attention_mask"] = mask.astype(tower.input_dtype)
            checks[f"{key}_int8_cosine"] = round(compare(originals[key], final[key], feed, tower.output_name), 5)
    except ModelError as exc:
        raise FetchError(str(exc)) from exc
    finally:
        model.unload()
    return checks


def _smoke_test_faces(manifest: Manifest, originals: Mapping[str, Path], final: Mapping[str, Path],
                      progress: Progress | None) -> dict[str, float]:
    """A face detector or recogniser: run it once as photobox will; compare int8 with fp32."""
    from photobox.ml.faces import check_model
    from photobox.ml.session import ModelError

    checks: dict[str, float] = {}
    if progress:
        progress("check", 0, None)
    try:
        feed, output = check_model(manifest, final["model"])
        if final["model"] != originals["model"]:
            checks["model_int8_cosine"] = round(compare(originals["model"], final["model"], feed, output), 5)
    except ModelError as exc:
        raise FetchError(str(exc)) from exc
    return checks


def _quantize_and_check(manifest: Manifest, models_dir: Path, staging: Path, originals: Mapping[str, Path],
                        options: Mapping[str, Any], cpu: Int8Cpu, progress: Progress | None
                        ) -> tuple[dict[str, Path], dict[str, Any] | None, dict[str, Any], list[str]]:
    """Quantize with each recipe this CPU allows until one matches fp32 closely; fp32 when none does.

    Returns ``(final files, quantization record or None, checks, warnings)``.
    """
    quantizable = [key for key, spec in manifest.files.items() if spec.quantize]
    if not quantizable:
        return dict(originals), None, _smoke_test(manifest, models_dir, staging, originals, originals, progress), []
    consequence = "search quality may suffer" if manifest.task == "clip" else "face recognition may suffer"
    tried: list[str] = []
    usable: list[tuple[float, dict[str, Path], dict[str, Any], dict[str, Any]]] = []
    for opts in _recipe_plan(options, cpu):
        recipe = recipe_of(opts) or "?"
        final = dict(originals)
        record: dict[str, Any] = {}
        for key in quantizable:
            if progress:
                progress(f"quantize {key}", 0, None)
            final[key] = staging / f"{key}.int8-{recipe}.onnx"
            try:
                record = quantize_file(originals[key], final[key], opts)
            except QuantizationError as exc:
                raise FetchError(f"{manifest.name}: {exc}") from exc
        try:
            checks = _smoke_test(manifest, models_dir, staging, originals, final, progress)
        except QuantizationError as exc:  # an int8 operator without a kernel on this CPU
            tried.append(f"{recipe}: {exc}")
            continue
        worst = min(checks.values(), default=1.0)
        tried.append(f"{recipe}: cosine {worst:.4f}")
        if worst >= options["min_cosine"]:
            usable.append((worst, final, dict(record, cpu=cpu.cls), checks))
        if worst >= max(options["warn_cosine"], options["min_cosine"]):
            break
    if usable:
        worst, final, record, checks = max(usable, key=lambda u: u[0])
        for path in staging.glob("*.int8-*.onnx"):
            if path not in final.values():
                path.unlink()
        for key in quantizable:  # the chosen files get their plain names
            final[key] = final[key].rename(staging / f"{key}.int8.onnx")
        warnings = []
        if worst < options["warn_cosine"]:
            warnings.append(f"the int8 version of {manifest.name} ({record['recipe']} on {cpu.cls}) differs from the "
                            f"original more than usual (cosine {worst:.3f}); {consequence}")
        return final, record, dict(checks, int8_tried="; ".join(tried)), warnings
    for path in staging.glob("*.int8-*.onnx"):
        path.unlink()
    checks = _smoke_test(manifest, models_dir, staging, originals, originals, progress)
    warning = (f"{manifest.name}: no int8 version is close enough to the original on this CPU ({cpu.why}; "
               f"{'; '.join(tried)}; the floor is {options['min_cosine']}), so the fp32 original is used: "
               f"slower and larger, but exact")
    log.warning(warning)
    return dict(originals), None, dict(checks, int8_refused_on=cpu.cls, int8_tried="; ".join(tried)), [warning]


def _clean_staging(models_dir: Path) -> None:
    for stale in models_dir.glob(".staging-*"):
        log.warning("removing %s left by an interrupted fetch", stale.name)
        shutil.rmtree(stale, ignore_errors=True)


def fetch_model(name: str, models_dir: Path, *, source_override: Mapping[str, str] | None = None,
                progress: Progress | None = None, trust_on_first_use: bool = False,
                manifests_dir: Path | None = None, manifest: Manifest | None = None,
                keep_originals: bool = False, verify_installed: bool = False, timeout: float = 60.0) -> FetchResult:
    """Install model ``name`` into ``models_dir`` (``<data>/models``), or do nothing if it already is.

    Args:
        name: a manifest name (``photobox models list``).
        models_dir: where models are installed.
        source_override: ``{"image"|"text"|"tokenizer": url_or_path}`` to take files from
            elsewhere than the manifest's URLs (a mirror, a USB stick, tests). The sha256
            pins still apply.
        progress: called as ``progress(stage, done, total)``; see :data:`Progress`.
        trust_on_first_use: accept files the manifest has no sha256 for, recording the
            hash computed now.
        manifests_dir: where manifests are (default photobox's ``models/``).
        manifest: use this manifest instead of looking ``name`` up.
        keep_originals: keep the fp32 files next to the int8 ones (re-quantizing later
            then needs no download; costs their size on disk).
        verify_installed: re-hash installed files when deciding whether work is needed.
        timeout: seconds without data before a download is abandoned.

    Returns:
        A :class:`FetchResult`.

    Raises:
        KeyError: no manifest called ``name``.
        UnpinnedError: unpinned files and no ``trust_on_first_use``.
        ChecksumError: a downloaded file is not the pinned one.
        FetchError: any other failure (network, quantization, a model that does not run).
    """
    manifest = manifest or get_manifest(name, manifests_dir)
    sources = _sources(manifest, source_override)
    try:
        options = resolve_options(manifest.quantize_options)
    except QuantizationError as exc:
        raise FetchError(f"{manifest.name}: {exc}") from None
    models_dir = Path(models_dir)
    with models_lock(models_dir):
        _clean_staging(models_dir)
        try:
            installed = load_installed(models_dir)
        except InstalledStateError as exc:
            backup = models_dir / f"installed.json.damaged-{dt.datetime.now():%Y%m%d-%H%M%S}"
            (models_dir / "installed.json").replace(backup)
            log.error("%s; moved it to %s and starting afresh", exc, backup.name)
            installed = {}
        record = installed.get(manifest.name)
        cpu = int8_cpu()
        if _up_to_date(record, manifest, models_dir, options, verify_installed, cpu):
            assert record is not None
            # Same files, but the manifest's text changed (e.g. a pin was added for a file
            # trusted on first use): keep the record in step without downloading anything.
            files = {k: dataclasses.replace(f, trusted_on_first_use=f.trusted_on_first_use
                                            and manifest.files[k].sha256 is None) for k, f in record.files.items()}
            if dict(record.manifest.raw) != dict(manifest.raw) or files != dict(record.files):
                record = dataclasses.replace(record, manifest=manifest, files=files)
                installed[manifest.name] = record
                save_installed(models_dir, installed)
            return FetchResult(manifest.name, "already-installed", record)

        # A file without a pin in the manifest may still have one from an earlier
        # trust-on-first-use install of the same URL: that hash is trusted from then on.
        expected: dict[str, str | None] = {}
        for key, spec in manifest.files.items():
            previous = record.files.get(key) if record else None
            if spec.sha256 is None and previous and previous.trusted_on_first_use and previous.url == spec.url:
                expected[key] = previous.original_sha256
            else:
                expected[key] = spec.sha256
        unpinned = [k for k, v in expected.items() if v is None]
        if unpinned and not trust_on_first_use:
            raise UnpinnedError(
                f"{manifest.name}: no sha256 is known for {', '.join(unpinned)}, so photobox cannot verify the "
                f"download. Add the published sha256 to the manifest, or accept the files as downloaded now with "
                f"--trust-on-first-use (their hashes are then recorded and checked from then on).")
        return _install(manifest, models_dir, installed, sources, expected, options, cpu, progress=progress,
                        keep_originals=keep_originals, timeout=timeout)


def _install(manifest: Manifest, models_dir: Path, installed: dict[str, InstalledModel], sources: Mapping[str, str],
             expected: Mapping[str, str | None], options: Mapping[str, Any], cpu: Int8Cpu, *,
             progress: Progress | None,
             keep_originals: bool, timeout: float) -> FetchResult:
    staging = models_dir / f".staging-{manifest.name}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    warnings: list[str] = []
    try:
        originals: dict[str, Path] = {}
        hashes: dict[str, tuple[str, int]] = {}
        for key, spec in manifest.files.items():
            dest = staging / f"{key}{_suffix(spec)}"
            sha, size = _download(sources[key], dest, label=f"download {key}", expected_size=spec.size,
                                  progress=progress, timeout=timeout)
            if spec.size is not None and size != spec.size:
                raise ChecksumError(f"{manifest.name} {key}: got {size} bytes, the manifest says {spec.size}")
            want = expected[key]
            if want is not None and sha != want:
                raise ChecksumError(f"{manifest.name} {key}: sha256 mismatch — expected {want}, got {sha} "
                                    f"(from {sources[key]}); nothing was installed")
            if want is None:
                message = (f"TRUST ON FIRST USE: {manifest.name} {key} has no published sha256; accepting the file "
                           f"downloaded from {sources[key]} with sha256 {sha}. Verify it against the source.")
                log.warning(message)
                warnings.append(message)
            originals[key] = dest
            hashes[key] = (sha, size)

        final, quantization, checks, more = _quantize_and_check(manifest, models_dir, staging, originals, options,
                                                                cpu, progress)
        warnings += more
        if not keep_originals:
            for key, path in originals.items():
                if final[key] != path:
                    path.unlink()

        for path in staging.iterdir():  # durable before installed.json points at them
            with open(path, "rb") as f:
                os.fsync(f.fileno())

        revision = hashlib.sha256(json.dumps(
            {"originals": {k: h[0] for k, h in sorted(hashes.items())},
             "quantization": _quant_settings(quantization) if quantization else None}, sort_keys=True).encode()
        ).hexdigest()[:12]
        target = models_dir / manifest.name / revision
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # the same files installed before (e.g. damaged since): replace them
            shutil.rmtree(target)
        staging.rename(target)
        files = {}
        for key, spec in manifest.files.items():
            path = target / final[key].name
            files[key] = InstalledFile(
                key=key, path=str(path.relative_to(models_dir)), sha256=sha256_file(path) if final[key] !=
                originals[key] else hashes[key][0], size=path.stat().st_size, original_sha256=hashes[key][0],
                original_size=hashes[key][1], url=spec.url, format="onnx-int8" if final[key] != originals[key]
                else spec.format, quantized=final[key] != originals[key], trusted_on_first_use=spec.sha256 is None,
            )
        record = InstalledModel(
            name=manifest.name, task=manifest.task, dir=str(target.relative_to(models_dir)),
            installed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), manifest=manifest, files=files,
            quantization=quantization, checks=checks,
        )
        installed[manifest.name] = record
        save_installed(models_dir, installed)
        # Only now is the previous revision unreferenced; a running server notices the new
        # record and loads the new files on its next call.
        for old in (models_dir / manifest.name).iterdir():
            if old.name != revision:
                shutil.rmtree(old, ignore_errors=True)
        return FetchResult(manifest.name, "installed", record, tuple(warnings))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
