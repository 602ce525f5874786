"""The process's vector mirrors, under one memory budget shared by all of them.

Every mirror (a CLIP embedding space, a face vector table) is registered under a key: a
tuple ``(kind, database path, ...)`` its feature makes, e.g. ``("clip", path, space_id,
created_at)`` or ``("faces", path, dim)``. Before building one, a feature asks
:func:`admit` for its estimated size: room is made by dropping the least recently used
mirrors, and a mirror that still does not fit is refused ("too big": its feature queries
SQLite, exact but slower). :func:`build` runs the build, now or in a background thread,
once per key at a time, and publishes the result; :func:`refit` checks a mirror again after
it grew.

Two rules keep features from taking memory from each other in turn: a mirror used in the
last ``IDLE_SECONDS`` is not dropped to make room for another (the newcomer is refused
instead), and a refused mirror is tried again only after ``RETRY_SECONDS`` (or a new
:func:`set_memory_limit`), so that a budget too small for both costs one feature its
speed rather than both their rebuilds over and over.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from photobox.vectors.kernels import kernel_name
from photobox.vectors.mirror import Mirror

__all__ = ["IDLE_SECONDS", "MAX_MIRRORS", "RETRY_SECONDS", "admit", "build", "building", "clear_mirrors", "describe", "forget",
           "get", "memory_limit", "mirror_stats", "ram_share", "refit", "set_memory_limit", "too_big",
           "wait_for"]

log = logging.getLogger(__name__)

Key = tuple[Any, ...]

#: Mirrors kept at most (a face mirror holds a read-only connection); one library needs 2-3.
MAX_MIRRORS = 4
#: A mirror used more recently than this is not dropped to make room for another one.
IDLE_SECONDS = 60.0
#: A mirror refused for want of memory is tried again after this long.
RETRY_SECONDS = 600.0
#: The default budget: a share of physical memory, and the bytes where that is unknown.
#: 55% is what the CLIP (40%) and face (15%) mirrors could take together with budgets of their own.
DEFAULT_SHARE, DEFAULT_BYTES = 0.55, (1 << 30) + (256 << 20)

_lock = threading.Lock()
_mirrors: dict[Key, Mirror] = {}
_building: set[Key] = set()
_too_big: dict[Key, tuple[int, float]] = {}   # refused mirrors: bytes needed, when
_memory_limit: int | None = None


def ram_share(fraction: float, fallback: int) -> int:
    """``fraction`` of this machine's physical memory in bytes (``fallback`` where unknown)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * fraction)
    except (ValueError, OSError, AttributeError):
        return fallback


def set_memory_limit(nbytes: int | None) -> None:
    """Cap the RAM all mirrors may use together (None: 55% of physical memory, the default).

    Mirrors refused before are tried again. A mirror that does not fit is not built; its
    feature queries SQLite directly: exact, but slow.
    """
    global _memory_limit
    with _lock:
        _memory_limit = None if nbytes is None else int(nbytes)
        _too_big.clear()


def memory_limit() -> int:
    """The budget of all mirrors together, in bytes."""
    return _memory_limit if _memory_limit is not None else ram_share(DEFAULT_SHARE, DEFAULT_BYTES)


def get(key: Key) -> Mirror | None:
    """The published mirror of ``key``, marked as used, or None."""
    with _lock:
        mirror = _mirrors.get(key)
    if mirror is not None:
        mirror.used = time.monotonic()
    return mirror


def too_big(key: Key) -> bool:
    """Whether the mirror of ``key`` was refused for want of memory (and is not due a retry)."""
    with _lock:
        entry = _too_big.get(key)
        if entry is not None and time.monotonic() - entry[1] >= RETRY_SECONDS:
            del _too_big[key]
            entry = None
        return entry is not None


def building(key: Key) -> bool:
    """Whether a mirror of ``key`` is being built right now."""
    with _lock:
        return key in _building


def _drop(mirror: Mirror) -> None:
    if _mirrors.get(mirror.key) is mirror:
        del _mirrors[mirror.key]
    mirror.close()


def _make_room(key: Key, need: int, *, cap: bool) -> bool:
    """Drop mirrors other than ``key``'s (least recently used first) until ``need`` more bytes
    fit the budget, and (``cap``) until there is a place under ``MAX_MIRRORS``; otherwise refuse
    ``key``: drop its mirror and remember it as too big. Called with ``_lock`` held."""
    now = time.monotonic()
    others = sorted((m for k, m in _mirrors.items() if k != key), key=lambda m: m.used)
    while cap and len(others) >= MAX_MIRRORS:
        _drop(others.pop(0))
    used = sum(m.nbytes for m in others)
    limit = memory_limit()
    for victim in [m for m in others if now - m.used >= IDLE_SECONDS]:
        if used + need <= limit:
            break
        used -= victim.nbytes
        _drop(victim)
    if used + need <= limit:
        return True
    _too_big[key] = (need, now)
    if key in _mirrors:
        _drop(_mirrors[key])
    log.warning("the %s vector index of %s needs %d MB; with the others (%d MB) that is over the memory limit "
                "(%d MB): querying SQLite directly, which is slow", key[0], key[1], need // 1_000_000,
                used // 1_000_000, limit // 1_000_000)
    return False


def admit(key: Key, need: int) -> bool:
    """Make room for a new mirror of ``key`` that will hold ``need`` bytes; False: it does not fit
    (it is then :func:`too_big` and its feature should query SQLite)."""
    with _lock:
        return _make_room(key, need, cap=True)


def refit(key: Key) -> bool:
    """After ``key``'s mirror grew: make room for its size, or drop it (False, then :func:`too_big`)."""
    with _lock:
        mirror = _mirrors.get(key)
        return mirror is None or _make_room(key, mirror.nbytes, cap=False)


def build(key: Key, make: Callable[[], Mirror | None], *, background: bool = False) -> Mirror | None:
    """Build ``key``'s mirror with ``make`` (None: it cannot be had) and publish it.

    At most one build of a key runs at a time: while one runs this returns None. With
    ``background``, ``make`` runs in a thread (errors are logged) and this returns None at
    once; otherwise its errors propagate.
    """
    with _lock:
        if key in _building:
            return None
        _building.add(key)
    if background:
        threading.Thread(target=_run, args=(key, make, True), daemon=True, name=f"{key[0]}-mirror").start()
        return None
    return _run(key, make, False)


def _run(key: Key, make: Callable[[], Mirror | None], background: bool) -> Mirror | None:
    mirror = None
    try:
        mirror = make()
        return mirror
    except Exception:
        if not background:
            raise
        log.exception("building the %s vector index of %s failed", key[0], key[1])
        return None
    finally:
        with _lock:
            _building.discard(key)
            if mirror is not None:
                _mirrors[key] = mirror


def wait_for(key: Key, attempt: Callable[[], Mirror | None], timeout: float = 600.0) -> Mirror | None:
    """Call ``attempt`` (a feature's get-or-build) until it gives a mirror, for as long as another
    thread is building ``key``'s (at most ``timeout`` seconds); None if it cannot be had."""
    deadline = time.monotonic() + timeout
    while True:
        mirror = attempt()
        if mirror is not None or not building(key) or time.monotonic() >= deadline:
            return mirror
        time.sleep(0.02)


def forget(*prefix: Any) -> None:
    """Drop every mirror (and refusal) whose key starts with ``prefix``, e.g. ``("clip", path, space_id)``."""
    n = len(prefix)
    with _lock:
        for key in [k for k in _mirrors if k[:n] == prefix]:
            _drop(_mirrors[key])
        for key in [k for k in _too_big if k[:n] == prefix]:
            del _too_big[key]


def clear_mirrors() -> None:
    """Forget every mirror and refusal (mirrors are rebuilt on their next use); for tests and benchmarks."""
    with _lock:
        for mirror in list(_mirrors.values()):
            _drop(mirror)
        _too_big.clear()


def describe(mirror: Mirror) -> dict[str, Any]:
    """A ready mirror's :func:`mirror_stats` entry."""
    k = mirror.key
    return {"kind": k[0], "path": k[1], "key": k, "state": "ready", "vectors": mirror.n, "dim": mirror.dim,
            "bytes": mirror.nbytes, "version": mirror.version, "build_seconds": round(mirror.build_seconds, 3),
            "kernel": mirror.kernel or kernel_name()}


def mirror_stats(kind: str | None = None) -> list[dict[str, Any]]:
    """The mirrors of this process (of one ``kind``, or all): key, vectors, bytes of RAM, build
    time, scan kernel, and state: ``ready``, ``building`` or ``too big`` (status pages, benchmarks)."""
    now = time.monotonic()
    with _lock:
        out = [describe(m) for m in _mirrors.values()]
        out += [{"kind": k[0], "path": k[1], "key": k, "state": "building"} for k in _building if k not in _mirrors]
        out += [{"kind": k[0], "path": k[1], "key": k, "state": "too big", "bytes_needed": need}
                for k, (need, since) in _too_big.items() if now - since < RETRY_SECONDS]
    return [s for s in out if kind is None or s["kind"] == kind]
