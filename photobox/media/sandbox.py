"""Decoders out of the server process: a small pool of child processes for untrusted files.

photobox decodes files it did not make (JPEG/HEIC/PNG/TIFF/WebP through Pillow and
libheif, videos through FFmpeg). A native crash there (a segfault in libheif, an abort in
ffmpeg) or a runaway allocation would take the whole server down with it. So the jobs
that decode (thumbnails, video probe/transcode, metadata) run the decoder in a child
process instead: a crash fails that one job with a one-line error (retried by the job's
normal policy) and the child is replaced; the web app never notices.

This is a deliberate deviation from "one asyncio process" (DESIGN.md): the app is still one
process; only the decoders, which we cannot make safe, sit in disposable children.

Shape:

* Children are fresh interpreters (``python -m photobox.media._sandbox_child``, i.e. exec,
  never ``fork`` of the threaded server), started lazily on first use, one per CPU worker,
  reused, and recycled after ``max_calls`` calls to bound leaks in native libraries.
* Each child caps its address space (``RLIMIT_AS``, setting ``decoder_memory_mb``) so a
  memory bomb fails as a MemoryError or a crash in the child, not the OOM killer
  choosing the server; every call has a timeout (setting ``decoder_timeout_s``; a
  transcode has none but is killed when its job must stop).
* A call names a registered top-level function (:data:`FUNCTIONS`); arguments and results
  are small and picklable (paths in, a dataclass out; never image buffers).
* Children are never orphaned: they exit when the server process goes away (a watchdog
  thread in the child watches its parent), and :meth:`DecoderPool.close` (called by
  ``Photobox.close`` on shutdown) stops them.
* ``isolate_decoders = false`` runs the same functions in the calling thread (today's
  path), for systems where extra processes are not possible.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from photobox.media._sandbox_child import resolve

__all__ = ["CHILD_ENV", "DecoderCrashed", "DecoderError", "DecoderOutOfMemory", "DecoderPool", "DecoderTimeout",
           "FUNCTIONS", "register"]

log = logging.getLogger(__name__)

#: Name → ``"module:function"`` of every function a child may run. Only names listed here
#: can be called; tests add their own (crashing) ones with :func:`register` from a test plugin.
FUNCTIONS: dict[str, str] = {
    "thumbs": "photobox.media.thumbs:make_thumbnails",
    "metadata": "photobox.media.metadata:extract",
    "video.probe": "photobox.media.video:probe",
    "video.transcode": "photobox.media.video:transcode",
}

#: Calls a child serves before it is replaced (native leaks stay bounded).
DEFAULT_MAX_CALLS = 500

#: The children's memory settings (``scripts/bench decoders`` measures their effect).
#: glibc raises its mmap threshold to the size of the largest buffer freed so far (up to
#: 32 MiB), so after the first photo a 12 MP decode's buffers come from the heap, stay in
#: the child's RSS when freed (+18-28 MiB after a JPEG or HEIC here), and a single arena per
#: libheif/FFmpeg thread multiplies that. A fixed threshold sends every buffer of 256 KiB or
#: more to mmap, so it goes back to the system the moment the decoder frees it; two arenas
#: bound the per-thread heaps. The decoders use no BLAS, so numpy's OpenBLAS gets one thread.
CHILD_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": str(256 * 1024),
    "OPENBLAS_NUM_THREADS": "1",
}


def register(name: str, target: str) -> None:
    """Allow ``name`` to run ``target`` (``"package.module:function"``, a top-level function)."""
    if ":" not in target:
        raise ValueError(f"decoder target must be 'module:function', not {target!r}")
    FUNCTIONS[name] = target


class DecoderError(Exception):
    """The decoder child did not return a result for this file (base class)."""


class DecoderCrashed(DecoderError):
    """The decoder child died while working on this file (a native crash or a kill)."""


class DecoderOutOfMemory(DecoderError):
    """The decoder needed more memory than ``decoder_memory_mb`` allows."""


class DecoderTimeout(DecoderError):
    """The decoder took longer than the call's time limit and was stopped."""


def _describe_exit(code: int | None, memory_mb: int) -> str:
    if code is None:
        return "the decoder process vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ""
        if -code == signal.SIGKILL:
            hint = " (killed from outside, e.g. the kernel's out-of-memory killer)"
        elif -code in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS):
            hint = f" (a bug in a native decoder, or memory exhausted under the {memory_mb} MB limit)"
        return f"the decoder crashed with {name}{hint}"
    return f"the decoder process exited unexpectedly with status {code}"


class _Child:
    """One decoder process and the two pipe ends the parent talks to it through."""

    def __init__(self, memory_mb: int) -> None:
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        env = {**os.environ, **CHILD_ENV}
        # The child must import what this process can (tests, plugins): same sys.path.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "photobox.media._sandbox_child", str(req_r), str(res_w),
                 str(memory_mb), str(os.getpid())],
                pass_fds=(req_r, res_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                env=env, close_fds=True,  # same process group: counted and killed with the server
            )
        finally:
            os.close(req_r)
            os.close(res_w)
        self.send_conn = Connection(req_w, readable=False)
        self.recv_conn = Connection(res_r, writable=False)
        self.calls = 0
        self.last_used = time.monotonic()
        self.tainted = False  # replace instead of reuse (after an error that may leave junk behind)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        self.proc.wait()
        self._close_pipes()

    def stop(self, grace: float = 2.0) -> None:
        """Ask the child to exit (it finishes nothing more), kill it if it does not."""
        try:
            self.send_conn.send(None)
        except OSError:
            pass
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for conn in (self.send_conn, self.recv_conn):
            try:
                conn.close()
            except OSError:
                pass


class DecoderPool:
    """At most ``size`` decoder children, shared by the job threads; thread-safe.

    Args:
        size: Children at most (= concurrent calls); callers beyond it wait for a free one.
        memory_mb: Address-space cap of each child, in MiB (0 = no cap).
        timeout: Default time limit of a call, in seconds.
        enabled: False runs every call in the calling thread (no isolation).
        max_calls: Calls a child serves before it is replaced.
    """

    def __init__(self, size: int, *, memory_mb: int = 1024, timeout: float = 120.0, enabled: bool = True,
                 max_calls: int = DEFAULT_MAX_CALLS) -> None:
        self.size = max(1, size)
        self.memory_mb = memory_mb
        self.timeout = timeout
        self.enabled = enabled
        self.max_calls = max_calls
        self._slots = threading.BoundedSemaphore(self.size)
        self._lock = threading.Lock()
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        #: Children started so far (tests and the benchmark read it).
        self.started = 0

    def call(self, name: str, *args: Any, limit: float | None | str = "default",
             kill_when: Callable[[], bool] | None = None, **kwargs: Any) -> Any:
        """Run the function registered as ``name`` with these arguments; return its result.

        Exceptions raised by the function (DecodeError, ValueError, OSError ...) are raised
        here as they are. ``limit`` is the time limit in seconds (default: the pool's;
        None = none); ``kill_when`` is polled and, when true, the child is killed and
        :class:`photobox.jobs.Stopping` raised (in-thread, it is passed to the function as
        ``should_stop`` when the function takes that argument, e.g. ``video.transcode``).

        Raises:
            DecoderCrashed: the child died (segfault, abort, killed).
            DecoderOutOfMemory: the function exceeded the memory cap.
            DecoderTimeout: the call took longer than ``timeout``.
        """
        try:
            target = FUNCTIONS[name]
        except KeyError:
            raise ValueError(f"no decoder function named {name!r}") from None
        if not self.enabled:
            fn = resolve(target)
            if kill_when is not None and "should_stop" in inspect.signature(fn).parameters:
                kwargs["should_stop"] = kill_when
            return fn(*args, **kwargs)
        limit = self.timeout if limit == "default" else limit
        with self._slots:
            child = self._take()
            try:
                status, value = self._run(child, name, target, args, kwargs, limit, kill_when)
            except BaseException:
                self._drop(child)
                raise
            self._give_back(child)
        if status == "ok":
            return value
        raise value

    def _run(self, child: _Child, name: str, target: str, args: tuple, kwargs: dict,
             limit: float | None, should_stop: Callable[[], bool] | None) -> tuple[str, Any]:
        child.calls += 1
        try:
            child.send_conn.send((target, args, kwargs))
        except (BrokenPipeError, OSError):
            child.kill()
            raise DecoderCrashed(_describe_exit(child.proc.returncode, self.memory_mb)) from None
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            if child.recv_conn.poll(wait):
                break
            if should_stop is not None and should_stop():
                child.kill()
                from photobox.jobs import Stopping

                raise Stopping()
            if deadline is not None and time.monotonic() >= deadline:
                child.kill()
                raise DecoderTimeout(f"the decoder took longer than {limit:g} s on this file ({name}) and was stopped")
        try:
            status, value = child.recv_conn.recv()
        except (EOFError, OSError):
            child.kill()
            raise DecoderCrashed(_describe_exit(child.proc.returncode, self.memory_mb)) from None
        if status == "ok":
            return status, value
        if isinstance(value, MemoryError):
            child.tainted = True  # a heap that hit the cap: start afresh
            value = DecoderOutOfMemory(
                f"the decoder needed more than {self.memory_mb} MB (setting decoder_memory_mb) for this file")
        # Any other exception is the function's own (DecodeError for a broken file ...): the
        # child is sound and is reused; starting one costs ~0.2 s here, 1-2 s on a Pi.
        return status, value

    def _take(self) -> _Child:
        with self._lock:
            child = self._idle.pop() if self._idle else None
            if child is None:
                child = _Child(self.memory_mb)
                self.started += 1
            self._busy.add(child)
            return child

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            self._busy.discard(child)
            if child.tainted or child.calls >= self.max_calls or child.proc.poll() is not None:
                retire = True
            else:
                child.last_used = time.monotonic()
                self._idle.append(child)
                retire = False
        if retire:
            child.stop()

    def _drop(self, child: _Child) -> None:
        with self._lock:
            self._busy.discard(child)
        if child.proc.poll() is None:
            child.stop()
        else:
            child.kill()

    def reap_idle(self, max_idle: float = 120.0) -> int:
        """Stop children unused for ``max_idle`` seconds (each holds 45-75 MiB between calls); return how many.

        Run periodically (``Photobox`` does, every minute): an idle Pi gives the memory back,
        and the next call starts a child again (~0.2 s on x86, a second or two on a Pi).
        """
        cutoff = time.monotonic() - max_idle
        with self._lock:
            old = [c for c in self._idle if c.last_used < cutoff]
            self._idle = [c for c in self._idle if c.last_used >= cutoff]
        for child in old:
            child.stop()
        return len(old)

    def pids(self) -> list[int]:
        """Process ids of the running children (for RSS accounting and tests)."""
        with self._lock:
            return [c.proc.pid for c in [*self._idle, *self._busy] if c.proc.poll() is None]

    def close(self) -> None:
        """Stop every child (idle ones now; busy ones are killed, their calls fail).

        Safe to call twice; a later call starts new children (``Photobox`` may reopen).
        """
        with self._lock:
            idle, busy = self._idle, list(self._busy)
            self._idle = []
        for child in idle:
            child.stop()
        for child in busy:
            child.kill()
