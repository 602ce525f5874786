"""``photobox doctor``: is this installation healthy? Each check prints OK, WARN or FAIL."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from photobox import __version__, hostinfo
from photobox.pipeline import feature_names
from photobox.plugins import load_features
from photobox.settings import Settings

__all__ = ["run_checks"]

LOW_SPACE_BYTES = 5 * 1024**3


def _versions() -> str:
    names = ["litestar", "granian", "apsw", "sqlite-vec", "pillow", "pillow-heif", "av", "numpy", "onnxruntime",
             "ai-edge-litert"]
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} missing")
    return ", ".join(parts)


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _host_checks(check, report, root: Path, machine: str | None) -> None:
    """Raspberry Pi and small-box specifics: board, power, memory/swap, CPU features for onnxruntime."""
    model = hostinfo.board_model(root)
    if model:
        report("OK", "board", model)
    power = hostinfo.power_check(root, vcgencmd=shutil.which("vcgencmd") if root == Path("/") else None)
    if power is not None:
        report(power[0], "power", power[1])
    check("memory", lambda: hostinfo.swap_check(root))
    check("cpu", lambda: hostinfo.cpu_check(root, machine))
    if root == Path("/") and machine is None:  # measured on this CPU, so only for the real machine
        check("int8", _int8_check)


def _int8_check() -> tuple[str, str]:
    from photobox.ml.quantize import RECIPES, int8_cpu

    cpu = int8_cpu()
    if not cpu.recipes:
        return "WARN", cpu.why
    return "OK", f"models are quantized with {RECIPES[cpu.recipes[0]].note} ({cpu.recipes[0]}): {cpu.why}"


def check_storage(settings: Settings) -> tuple[str, str]:
    """Is the data folder there, and is it photobox's (not an empty mount point)?"""
    data = settings.data_dir.resolve()
    from photobox.datadir import StorageMissingError, check_data_dir, read_marker

    try:
        check_data_dir(data, require_existing=settings.require_existing_data)
    except StorageMissingError as exc:
        return "FAIL", f"storage missing: {exc}"
    marker = read_marker(data)
    if marker is None:
        if settings.db_path.exists():
            return "OK", f"{data} (the .photobox-data marker is written at the next start)"
        return "WARN", f"{data} has no photobox yet (a new library is created on first start)"
    return "OK", f"{data} is a photobox data folder (instance {marker.get('instance_id')})"


def run_checks(settings: Settings, out: TextIO, *, host_root: Path = Path("/"), machine: str | None = None) -> int:
    """Run every check against ``settings``; return 1 if any failed, else 0.

    ``host_root`` is where the machine's /proc and /sys are read and ``machine`` overrides
    ``platform.machine()`` (tests pass a fake Raspberry Pi tree).
    """
    failures = 0

    def report(level: str, what: str, detail: str) -> None:
        nonlocal failures
        failures += level == "FAIL"
        out.write(f"{level:4}  {what}: {detail}\n")

    def check(what: str, fn: Callable[[], tuple[str, str]]) -> None:
        try:
            level, detail = fn()
        except Exception as exc:  # a check must not stop the others
            level, detail = "FAIL", f"{type(exc).__name__}: {exc}"
        report(level, what, detail)

    data = settings.data_dir.resolve()
    report("OK", "photobox", f"{__version__} on Python {sys.version.split()[0]}, {platform.machine()}, "
                             f"{os.cpu_count()} CPU(s)")
    report("OK", "libraries", _versions())

    def data_folder() -> tuple[str, str]:
        if not data.exists():
            return "WARN", f"{data} does not exist yet (created on first start)"
        if not os.access(data, os.W_OK):
            return "FAIL", f"{data} is not writable by this user"
        return "OK", str(data)

    def disk() -> tuple[str, str]:
        target = data if data.exists() else data.parent
        usage = shutil.disk_usage(target)
        detail = f"{usage.free / 1024**3:.1f} GiB free of {usage.total / 1024**3:.1f} GiB"
        return ("WARN" if usage.free < LOW_SPACE_BYTES else "OK"), detail

    def database() -> tuple[str, str]:
        from photobox.db import connect, schema_version
        from photobox.db.migrate import available
        from photobox.db.sql import scalar

        if not settings.db_path.exists():
            return "WARN", "no database yet (created on first start)"
        conn = connect(settings.db_path, readonly=True)
        try:
            result = scalar(conn, "PRAGMA quick_check")
            version = schema_version(conn)
            vec = scalar(conn, "SELECT vec_version()")
        finally:
            conn.close()
        latest = available()[-1].version
        if result != "ok":
            return "FAIL", f"integrity check: {result}"
        if version > latest:
            return "FAIL", f"schema {version} is newer than this photobox ({latest}); upgrade photobox"
        state = "up to date" if version == latest else f"will migrate {version} → {latest} on start"
        return "OK", f"{settings.db_path} integrity ok, schema {version} ({state}), sqlite-vec {vec}"

    check("data folder", data_folder)
    check("storage", lambda: hostinfo.storage_check(data if data.exists() else _existing_parent(data), host_root))
    check("free space", disk)
    check("database", database)
    check("storage", lambda: check_storage(settings))

    def models() -> tuple[str, str]:
        from photobox.ml.commands import doctor_check

        return doctor_check(settings)

    check("models", models)
    _host_checks(check, report, host_root, machine)

    for feature in load_features(feature_names(settings.plugins)):  # each feature's own lines
        for line in feature.checks:
            check(line.name, functools.partial(line.fn, settings))
    return 1 if failures else 0
