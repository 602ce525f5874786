"""What every onnxruntime model in photobox shares: session options, lazy loading, idle unloading.

On a Pi the sessions are the memory (tens to hundreds of MB each), so CLIP's two towers
(:mod:`photobox.ml.clip`) and the face detector and recogniser (:mod:`photobox.ml.faces`)
each hold a :class:`LazySession`: created on first use, one inference at a time, and
dropped by :meth:`LazySession.unload_idle` after a while without use. The managers that
hand the models out re-read ``installed.json`` through one :class:`InstalledCache`, so a
``photobox models fetch`` from the CLI takes effect in a running server.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from photobox.ml.registry import InstalledModel, InstalledStateError, load_installed

__all__ = [
    "InstalledCache", "LazySession", "ModelError", "choose_installed", "l2_normalise", "pad_batch", "session_options",
    "swap_model",
]

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """An installed model does not load or does not match its manifest (input names, shapes, embedding size)."""


def session_options(threads: int):
    """``onnxruntime.SessionOptions`` with ``threads`` intra-op threads (0 = onnxruntime's default)."""
    import onnxruntime as ort

    # rclip's pattern: a fixed number of intra-op threads, no inter-op parallelism and
    # sequential execution. The Pi's few cores are shared with thumbnailing and the web
    # app, so the count is explicit rather than "all cores".
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Worker threads otherwise spin-wait after every run, burning the cores other jobs need.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class LazySession:
    """One ONNX model file: loaded on first use, one run at a time, dropped when idle.

    Thread-safe: two threads asking for the session at once load it once; a run in
    progress counts as use (``busy``), so idle unloading leaves it alone, and an explicit
    :meth:`unload` during a run only drops our reference (the run keeps its own).

    Args:
        name: for messages and the log (e.g. ``"clip-vit-b32 image model"``).
        path: the ONNX file.
        threads: onnxruntime intra-op threads (0 = onnxruntime's default).
        clock: monotonic clock for ``last_used`` (tests pass a fake one).

    A subclass that must check the model against its manifest overrides :meth:`inspect`.
    """

    def __init__(self, name: str, path: Path, threads: int, clock: Callable[[], float]) -> None:
        self.name = name
        self.path = Path(path)
        self.threads = threads
        self.clock = clock
        self._lock = threading.Lock()  # loading, unloading and the busy count
        self._run_lock = threading.Lock()  # one inference at a time: it already uses every thread given
        self._session = None
        self.last_used = 0.0
        self.busy = 0  # runs in progress

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def session(self):
        """The ``onnxruntime.InferenceSession``, created now if it is not loaded.

        Raises:
            ModelError: onnxruntime cannot load the file, or ``inspect`` rejects it.
        """
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                started = time.perf_counter()
                try:
                    session = ort.InferenceSession(str(self.path), session_options(self.threads),
                                                   providers=["CPUExecutionProvider"])
                except Exception as exc:  # onnxruntime raises its own exception types
                    raise ModelError(f"{self.name}: cannot load {self.path.name}: {exc}") from exc
                self.inspect(session)
                self._session = session
                log.info("loaded %s in %.2fs (%d threads)", self.name, time.perf_counter() - started, self.threads)
            return self._session

    def inspect(self, session: Any) -> None:
        """Called with a freshly created session, under the load lock, before it is kept.

        Raise :class:`ModelError` to reject it (it is then not kept, and the next use tries again).
        """

    @contextlib.contextmanager
    def in_use(self) -> Iterator[Any]:
        """The session, counted as busy until the block ends; ``last_used`` is the block's end."""
        with self._lock:
            self.busy += 1
        try:
            yield self.session()
        finally:
            with self._lock:
                self.busy -= 1
                self.last_used = self.clock()

    def run(self, feed: Mapping[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """One inference: ``session.run(outputs, feed)``, counted as a use."""
        with self.in_use() as session:
            return self.run_on(session, feed, outputs)

    def run_on(self, session: Any, feed: Mapping[str, np.ndarray],
               outputs: list[str] | None = None) -> list[np.ndarray]:
        """Run ``session`` (from :meth:`in_use`, to run several chunks on one session) under the run lock."""
        with self._run_lock:
            return session.run(outputs, dict(feed))

    def unload(self) -> bool:
        """Drop the session (it reloads on next use); whether it was loaded."""
        with self._lock:
            was = self._session is not None
            # A run in progress keeps its own reference; the session is freed when it ends.
            self._session = None
            return was

    def unload_idle(self, idle_seconds: float, now: float | None = None) -> bool:
        """Drop the session if it is loaded, not running and unused for ``idle_seconds``; whether it was."""
        now = self.clock() if now is None else now
        with self._lock:  # checked and dropped at once: a run cannot start in between
            if self._session is None or self.busy or now - self.last_used < idle_seconds:
                return False
            self._session = None
            return True


def l2_normalise(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), float32."""
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return (emb / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def pad_batch(chunk: np.ndarray, size: int | None) -> np.ndarray:
    """``chunk`` with zero rows appended up to ``size`` items (a model's static batch dimension)."""
    if size and len(chunk) < size:
        return np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
    return chunk


class InstalledCache:
    """``installed.json`` of a models folder, read again only when the file changes.

    ``read()`` gives the installed models by name; a damaged record reads as none, with
    the reason in ``error`` (logged once per distinct reason).
    """

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)
        self.stamp: tuple[int, int, int] | None = None
        self.models: dict[str, InstalledModel] = {}
        self.error: str | None = None

    def read(self) -> dict[str, InstalledModel]:
        path = self.models_dir / "installed.json"
        try:
            st = path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # os.replace gives a new inode
        except FileNotFoundError:
            stamp = None
        if stamp != self.stamp or stamp is None:
            try:
                models, error = load_installed(self.models_dir), None
            except InstalledStateError as exc:
                models, error = {}, str(exc)
                if error != self.error:
                    log.error("cannot read installed models: %s", exc)
            self.stamp, self.models, self.error = stamp, models, error
        return self.models


def swap_model(current: Any, record: InstalledModel | None, make: Callable[[InstalledModel], Any], what: str) -> Any:
    """The model to hand out for ``record`` (the installed one chosen): ``current`` if it is that
    model, else a new one from ``make(record)``; ``None`` when nothing is installed. A replaced
    ``current`` is unloaded (a fetch or removal from the CLI while the server runs).
    """
    if current is not None and (record is None or current.model_id != record.model_id):
        if record is not None:
            log.info("switching %s model %s → %s", what, current.model_id, record.model_id)
        current.unload()
        current = None
    if record is None:
        return None
    return make(record) if current is None else current


def choose_installed(installed: Mapping[str, InstalledModel], task: str,
                     name: str | None) -> InstalledModel | None:
    """The installed model of ``task`` to use: ``name`` if given (None if it is not installed),
    else the one whose manifest is marked ``default``, else the first by name."""
    candidates = {n: m for n, m in installed.items() if m.task == task}
    if name is not None:
        return candidates.get(name)
    defaults = sorted(n for n, m in candidates.items() if m.manifest.default)
    names = defaults or sorted(candidates)
    return candidates[names[0]] if names else None
