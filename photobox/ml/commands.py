"""``photobox models list`` and ``photobox models fetch``, and the ``doctor`` line for models.

:mod:`photobox.cli.models` wires them into the CLI; the ``cmd_*`` functions take the resolved
settings and a text stream so they are easy to test and to reuse.

Exit codes of :func:`cmd_models_fetch`: 0 every model is installed (now or before),
1 a download, checksum, quantization or check failed, 2 the request itself was wrong
(unknown model, unpinned files without ``--trust-on-first-use``, nothing in ``--from``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from photobox.ml import fetch_command
from photobox.ml.fetch import FetchError, SourceUnreachable, UnpinnedError, fetch_model
from photobox.ml.registry import (
    InstalledModel,
    InstalledStateError,
    Manifest,
    get_manifest,
    list_manifests,
    load_installed,
)
from photobox.settings import Settings

__all__ = ["cmd_models_fetch", "cmd_models_list", "doctor_check", "models_dir", "source_override_from_dir"]


def models_dir(settings: Settings) -> Path:
    """``<data>/models``: where models are installed (created by :class:`photobox.core.Photobox`)."""
    return settings.data_dir.resolve() / "models"


def _mb(value: float | None) -> str:
    return f"~{value:,.0f} MB" if value else "size unknown"


def cmd_models_list(settings: Settings, out: TextIO, *, manifests_dir: Path | None = None) -> int:
    """Print every known model, whether it is installed, and its licence. Returns 0."""
    try:
        installed = load_installed(models_dir(settings))
    except InstalledStateError as exc:
        out.write(f"warning: {exc}\n")
        installed = {}
    manifests = list_manifests(manifests_dir)
    for m in manifests:
        record = installed.get(m.name)
        state = f"installed {record.installed_at} ({record.revision})" if record else "not installed"
        pins = "" if not m.unpinned else f"; no sha256 pin for {', '.join(m.unpinned)}"
        out.write(f"{m.name}{'  [default]' if m.default else ''}\n"
                  f"    {m.description}\n"
                  f"    {state}; download {_mb(m.approx_mb)}{pins}\n"
                  f"    licence: {m.licence}\n"
                  f"    source: {m.source}\n")
    for name in sorted(set(installed) - {m.name for m in manifests}):
        out.write(f"{name}\n    installed {installed[name].installed_at}, no manifest any more\n")
    if not manifests:
        out.write("no model manifests found\n")
    elif not installed:
        out.write(f"\nNo model is installed. `{fetch_command(settings.data_dir, manifests_dir=manifests_dir)}` "
                  f"installs the default ones; add a NAME to install another.\n")
    return 0


def source_override_from_dir(manifest: Manifest, folder: Path) -> dict[str, str]:
    """Map each file of ``manifest`` to a copy in ``folder`` (an offline install).

    A file is looked for as ``folder/<path in repo>``, ``folder/<model name>/<path in repo>``
    and ``folder/<repo name>/<path in repo>`` (so a ``git clone`` of the hub repository works).

    Raises:
        FileNotFoundError: a file is in none of those places (the message lists them).
    """
    repo = manifest.source.rstrip("/").rsplit("/", 1)[-1]
    override: dict[str, str] = {}
    for key, spec in manifest.files.items():
        candidates = [folder / spec.path, folder / manifest.name / spec.path, folder / repo / spec.path]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{manifest.name}: no {key} file in {folder} (looked for "
                                    + ", ".join(str(c) for c in candidates) + ")")
        override[key] = str(found.resolve())
    return override


class _ProgressPrinter:
    """A one-line bar on a terminal; a line every 10% (and per stage) in logs and pipes."""

    def __init__(self, out: TextIO, name: str) -> None:
        self.out = out
        self.name = name
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.stage = ""
        self.last_decile = -1
        self.last_draw = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage != self.stage:
            self.finish()
            self.stage, self.last_decile = stage, -1
            if not stage.startswith("download"):
                self.out.write(f"{self.name}: {stage.replace('check', 'checking the models')}…\n")
                self.out.flush()
                return
        if not stage.startswith("download"):
            return
        mb = done / 1e6
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw < 0.2 and (total is None or done < total):
                return
            self.last_draw = now
            if total:
                width = 30
                filled = int(width * done / total)
                self.out.write(f"\r{self.name}: {stage} [{'#' * filled}{'.' * (width - filled)}] "
                               f"{100 * done / total:5.1f}% {mb:,.1f}/{total / 1e6:,.1f} MB")
            else:
                self.out.write(f"\r{self.name}: {stage} {mb:,.1f} MB")
            self.out.flush()
            return
        decile = int(10 * done / total) if total else (-1 if done else 0)
        if decile != self.last_decile and (total or done == 0):
            self.last_decile = decile
            self.out.write(f"{self.name}: {stage} {decile * 10}%"
                           + (f" of {total / 1e6:,.1f} MB\n" if total else "\n"))
            self.out.flush()

    def finish(self) -> None:
        if self.tty and self.stage.startswith("download"):
            self.out.write("\n")
            self.out.flush()


def cmd_models_fetch(settings: Settings, names: list[str], out: TextIO, *, source_override_dir: Path | None = None,
                     trust_on_first_use: bool = False, manifests_dir: Path | None = None) -> int:
    """Fetch the named models (none named: the default ones); see the module docstring for exit codes."""
    if not names:
        names = [m.name for m in list_manifests(manifests_dir) if m.default]
        if not names:
            out.write("photobox: no default model manifest; name one (see `photobox models list`)\n")
            return 2
    status = 0
    for name in names:
        try:
            manifest = get_manifest(name, manifests_dir)
            override = source_override_from_dir(manifest, source_override_dir) if source_override_dir else None
        except (KeyError, FileNotFoundError) as exc:
            out.write(f"photobox: {exc.args[0]}\n")
            status = max(status, 2)
            continue
        printer = _ProgressPrinter(out, name)
        try:
            result = fetch_model(name, models_dir(settings), source_override=override, progress=printer,
                                 trust_on_first_use=trust_on_first_use, manifest=manifest)
        except UnpinnedError as exc:
            printer.finish()
            command = fetch_command(settings.data_dir, [name], manifests_dir=manifests_dir)
            out.write(f"photobox: {exc}\nTo accept them: `{command}`\n")
            status = max(status, 2)
            continue
        except SourceUnreachable as exc:
            printer.finish()
            command = fetch_command(settings.data_dir, [name], manifests_dir=manifests_dir, from_dir=True)
            out.write(f"photobox: fetching {name} failed: {exc}\n"
                      f"Without internet on this box: download the files of {manifest.source} on another "
                      f"computer, copy that folder here (laid out as in the repository) and run `{command}`\n")
            status = max(status, 1)
            continue
        except FetchError as exc:
            printer.finish()
            out.write(f"photobox: fetching {name} failed: {exc}\n")
            status = max(status, 1)
            continue
        printer.finish()
        for warning in result.warnings:
            out.write(f"WARNING: {warning}\n")
        record = result.record
        if result.status == "already-installed":
            out.write(f"{name}: already installed ({record.revision}), nothing to do\n")
        else:
            sizes = sum(f.size for f in record.files.values()) / 1e6
            checks = ", ".join(f"{k}={v}" for k, v in record.checks.items())
            out.write(f"{name}: installed ({record.revision}, {sizes:,.0f} MB on disk"
                      + (f"; {checks}" if checks else "") + ")\n")
    return status


def doctor_check(settings: Settings) -> tuple[str, str]:
    """``(level, detail)`` for ``photobox doctor``'s models line: OK when a CLIP model is installed."""
    command = fetch_command(settings.data_dir)
    try:
        installed = load_installed(models_dir(settings))
    except InstalledStateError as exc:
        return "FAIL", f"{exc}; run `{command}` to reinstall"
    clips = [m for m in installed.values() if m.task == "clip"]
    if not clips:
        return "WARN", f"no models: search by description is unavailable until `{command}` is run"
    missing = [f"{m.name}/{k}" for m in clips for k in m.files if not m.path(k, models_dir(settings)).is_file()]
    if missing:
        names = sorted({m.name for m in clips if any(f"{m.name}/{k}" in missing for k in m.files)})
        return "FAIL", (f"installed model files are missing ({', '.join(missing)}); "
                        f"run `{fetch_command(settings.data_dir, names)}` again")
    from photobox.ml.quantize import int8_cpu, recipe_of

    cpu = int8_cpu()
    recipes = {m.name: recipe_of(m.quantization) for m in installed.values()}
    unfit = [name for name, recipe in recipes.items() if recipe and not cpu.fits(recipe)]
    if unfit:
        return "WARN", (f"{', '.join(unfit)} were quantized for another CPU and compute inexactly on this one "
                        f"({cpu.why}); run `{fetch_command(settings.data_dir, unfit)}` to quantize them again")
    return "OK", ", ".join(f"{m.name} ({m.revision}, {_precision(m)})" for m in clips)


def _precision(model: InstalledModel) -> str:
    """"int8 (u8)", "fp32: int8 was not exact enough here" or "as published"."""
    from photobox.ml.quantize import recipe_of

    recipe = recipe_of(model.quantization)
    if recipe:
        return f"int8 ({recipe})"
    if "int8_refused_on" in model.checks:
        return "fp32: no int8 version was close enough on this CPU"
    return "as published"
