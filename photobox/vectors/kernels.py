"""Scan kernels: int8 codes · a float32 query for every row (or some rows) of a mirror.

Two kernels compute the same scores: :class:`NumpyKernel` converts int8 blocks that fit in
cache to float32 for BLAS, over a few threads; :class:`OnnxKernel` runs onnxruntime's int8
MatMulInteger (dot-product instructions on the Pi 5). :func:`get_kernel` picks whichever is
faster on this CPU by timing both; :func:`set_kernel` forces one (tests, benchmarks). The
choice is one per process, whichever mirror (CLIP search, faces) asks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from photobox.vectors.quantize import quantize_query

__all__ = ["Kernel", "NumpyKernel", "OnnxKernel", "get_kernel", "kernel_name", "set_kernel", "workers"]

log = logging.getLogger(__name__)


class NumpyKernel:
    """int8 rows → float32 in small blocks that stay in cache, then BLAS; blocks split over threads."""

    name = "numpy"
    _STEP = 256      # 256 rows x 512 float32 = 512 KB: fits the Pi's L2 cache
    _PARALLEL = 65536

    def scores(self, codes: np.ndarray, n: int, rows: np.ndarray | None, q: np.ndarray) -> tuple[np.ndarray, float]:
        """``codes[r] · q`` for the first ``n`` rows (or the given rows), and the query's quantization step (none)."""
        q = np.ascontiguousarray(q, dtype=np.float32)
        m = n if rows is None else len(rows)
        out = np.empty(m, dtype=np.float32)
        count = workers()
        if m < self._PARALLEL or count == 1:
            self._part(codes, rows, q, out, 0, m)
        else:
            bounds = np.linspace(0, m, count + 1).astype(int)
            futures = [_pool().submit(self._part, codes, rows, q, out, int(a), int(b))
                       for a, b in zip(bounds[:-1], bounds[1:])]
            for f in futures:
                f.result()
        return out, 0.0

    def _part(self, codes: np.ndarray, rows: np.ndarray | None, q: np.ndarray, out: np.ndarray, lo: int,
              hi: int) -> None:
        step = self._STEP
        buf = np.empty((step, codes.shape[1]), dtype=np.float32)
        gathered = np.empty((step, codes.shape[1]), dtype=np.int8) if rows is not None else None
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            if rows is None or gathered is None:
                block = codes[a:b]
            else:
                block = np.take(codes, rows[a:b], axis=0, out=gathered[:b - a], mode="clip")
            np.copyto(buf[:b - a], block, casting="unsafe")
            np.dot(buf[:b - a], q, out=out[a:b])


class OnnxKernel:
    """onnxruntime's MatMulInteger (int8 x int8 → int32): NEON / dot-product kernels on the Pi.

    The query is quantized to int8 too (one scale), which adds its own small error.
    """

    name = "onnx"
    _STEP = 32768

    def __init__(self) -> None:
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "scores",
            [helper.make_tensor_value_info("A", TensorProto.INT8, ["N", "D"]),
             helper.make_tensor_value_info("B", TensorProto.INT8, ["D", 1])],
            [helper.make_tensor_value_info("Y", TensorProto.INT32, ["N", 1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = workers()
        options.inter_op_num_threads = 1
        # Idle pool threads would otherwise spin for a while after each call, taking the
        # cores from the re-rank, the web server and the other searches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def scores(self, codes: np.ndarray, n: int, rows: np.ndarray | None, q: np.ndarray) -> tuple[np.ndarray, float]:
        """``codes[r] · q`` for the first ``n`` rows (or the given rows), with ``q`` quantized, and its step."""
        qi, step_q = quantize_query(q)
        qi = qi[:, None]
        m = n if rows is None else len(rows)
        out = np.empty(m, dtype=np.float32)
        gathered = np.empty((min(self._STEP, m), codes.shape[1]), dtype=np.int8) if rows is not None else None
        for a in range(0, m, self._STEP):
            b = min(a + self._STEP, m)
            if rows is None or gathered is None:
                block = codes[a:b]
            else:
                block = np.take(codes, rows[a:b], axis=0, out=gathered[:b - a], mode="clip")
            out[a:b] = self._session.run(None, {"A": block, "B": qi})[0][:, 0]
        out *= step_q
        return out, step_q


Kernel = NumpyKernel | OnnxKernel

_lock = threading.Lock()
_kernel: Kernel | None = None
_kernel_rows = 0                     # how many rows the choice of _kernel was timed on
_kernels: dict[str, Kernel] = {}
_forced: str | None = None
_scan_pool: ThreadPoolExecutor | None = None


def workers() -> int:
    """Threads a scan uses: one per CPU, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def _pool() -> ThreadPoolExecutor:
    global _scan_pool
    with _lock:
        if _scan_pool is None:
            _scan_pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="vec-scan")
        return _scan_pool


def set_kernel(name: str | None) -> None:
    """Force the scan kernel (``"numpy"`` or ``"onnx"``), or None to pick the faster by timing (the default)."""
    global _kernel, _forced, _kernel_rows
    if name not in (None, "numpy", "onnx"):
        raise ValueError(f"unknown kernel {name!r}")
    with _lock:
        _forced, _kernel = name, None
        _kernel_rows = 0


def kernel_name() -> str:
    """The name of the kernel chosen so far, or "" before any choice."""
    return _kernel.name if _kernel else ""


def _instance(name: str) -> Kernel:
    with _lock:
        kernel = _kernels.get(name)
    if kernel is None:
        kernel = NumpyKernel() if name == "numpy" else OnnxKernel()
        with _lock:
            kernel = _kernels.setdefault(name, kernel)
    return kernel


def get_kernel(dim: int, sample: np.ndarray | None = None) -> Kernel:
    """The scan kernel, chosen by timing both on this CPU.

    Which wins depends on the CPU and on how far the vectors are from its caches: on x86
    they are close; onnxruntime has int8 dot-product kernels for the Pi 5's Cortex-A76 that
    numpy's convert-then-BLAS path cannot use. The choice is made once on 64k random rows,
    and made again on ``sample`` (a big mirror's own rows, passed when it is built) when
    there are several times more of them. numpy is kept unless onnxruntime is clearly
    faster, as it adds no quantization error of the query.
    """
    global _kernel, _kernel_rows
    with _lock:
        if _kernel is not None and (sample is None or len(sample) <= 2 * _kernel_rows or _forced):
            return _kernel
        forced = _forced
    if forced is not None:
        best, rows = _instance(forced), 0
    else:
        if sample is None:
            sample = np.random.default_rng(0).integers(-127, 128, size=(65536, dim), dtype=np.int8)
        numpy_kernel = best = _instance("numpy")
        rows = len(sample)
        try:
            onnx_kernel = _instance("onnx")
        except Exception as exc:  # noqa: BLE001 - any failure means: use numpy
            log.info("onnxruntime int8 kernel unavailable (%s); vector scans use numpy", exc)
        else:
            q = np.random.default_rng(1).standard_normal(dim).astype(np.float32)
            q /= np.linalg.norm(q)
            timings = {}
            for kernel in (numpy_kernel, onnx_kernel):
                kernel.scores(sample, len(sample), None, q)
                runs = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    kernel.scores(sample, len(sample), None, q)
                    runs.append(time.perf_counter() - t0)
                timings[kernel] = min(runs)
            if timings[onnx_kernel] < 0.8 * timings[numpy_kernel]:
                best = onnx_kernel
            log.info("vector scan kernel: %s (per %d vectors: numpy %.1f ms, onnx %.1f ms)", best.name, len(sample),
                     timings[numpy_kernel] * 1000, timings[onnx_kernel] * 1000)
    with _lock:
        if _kernel is None or rows > _kernel_rows:
            _kernel, _kernel_rows = best, rows
        return _kernel
