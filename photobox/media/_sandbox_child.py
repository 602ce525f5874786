"""The decoder child process (see :mod:`photobox.media.sandbox`).

Started as ``python -m photobox.media._sandbox_child REQ_FD RES_FD MEMORY_MB PARENT_PID``.
Caps its own address space, then serves ``(target, args, kwargs)`` requests one at a time
until told to stop (``None``) or the parent goes away.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time


def resolve(target: str):
    """The function a ``"module:function"`` target names (here, not in :mod:`photobox.media.sandbox`,
    so a child imports only this small module and what its calls need: ~2 MiB less each)."""
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _watch_parent(parent: int) -> None:
    # Never outlive the server, even in the middle of a long decode.
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def _limit_memory(memory_mb: int) -> None:
    import resource

    if memory_mb > 0:
        cap = memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    # Fewer malloc arenas and decode buffers given back when freed: MALLOC_ARENA_MAX and
    # MALLOC_MMAP_THRESHOLD_ in the environment the parent starts us with (sandbox.CHILD_ENV).


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with the same text."""
    try:
        pickle.loads(pickle.dumps(exc))
        exc.__traceback__ = None
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def main(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    req_fd, res_fd, memory_mb, parent = (int(a) for a in argv[:4])
    # Ctrl-C and a SIGTERM to the process group are for the server: it finishes or stops the
    # running call and then stops us (the watchdog covers a server that died).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _limit_memory(memory_mb)
    requests = Connection(req_fd, writable=False)
    results = Connection(res_fd, readable=False)
    while True:
        try:
            msg = requests.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        target, args, kwargs = msg
        try:
            reply = ("ok", resolve(target)(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 -- everything goes back to the caller
            reply = ("err", _portable(exc))
        try:
            results.send(reply)
        except Exception as exc:  # an unpicklable result
            results.send(("err", RuntimeError(f"the decoder result could not be sent back: {exc}")))


if __name__ == "__main__":
    main(sys.argv[1:])
