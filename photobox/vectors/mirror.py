"""A RAM mirror of stored vectors: int8 rows with one scale each, their ids and an id → row map.

A feature (CLIP search, faces) subclasses :class:`Mirror` with the code that reads its own
tables; this module only holds the rows, changes them and scans them. ``version`` is the
feature's change counter as far as the mirror reflects it: a feature catches up by reading
what changed after it, applying it with :meth:`Mirror.put` / :meth:`Mirror.remove` and
moving ``version`` on. Changes take :attr:`Mirror.lock` exclusively, scans share it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from photobox.vectors.kernels import get_kernel
from photobox.vectors.quantize import pick_candidates, quantize

__all__ = ["DENSE_IDS", "Mirror", "RWLock"]

#: Ids at or above this are looked up through a dict instead of the dense id → row array.
DENSE_IDS = 1 << 26


class RWLock:
    """Many scans at once; applying changes waits for them and goes before new scans."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock with other readers (not re-entrant: a waiting writer goes first)."""
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone."""
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class Mirror:
    """One set of vectors in RAM as int8 + a scale per row, with their ids.

    Rows ``0..n-1`` are live (a removal moves the last row into the hole). ``row_of`` maps
    an id to its row (-1: none) for ids below ``DENSE_IDS``; ``far`` holds the rest.
    Everything is changed only under the exclusive lock.
    """

    def __init__(self, key: tuple[Any, ...], dim: int) -> None:
        self.key = key
        self.dim = dim
        self.lock = RWLock()
        self.version = -1            # the feature's change counter this mirror reflects; -1: not built
        self.n = 0
        self.ids = np.empty(0, dtype=np.int64)
        self.codes = np.empty((0, dim), dtype=np.int8)
        self.scales = np.empty(0, dtype=np.float32)
        self.row_of = np.empty(0, dtype=np.int32)
        self.far: dict[int, int] = {}
        self.build_seconds = 0.0
        self.kernel = ""
        self.used = time.monotonic()

    @property
    def nbytes(self) -> int:
        """RAM held by the arrays (capacity, not just the live rows)."""
        return self.codes.nbytes + self.scales.nbytes + self.ids.nbytes + self.row_of.nbytes + 64 * len(self.far)

    @staticmethod
    def estimate(vectors: int, dim: int, max_id: int) -> int:
        """Bytes a mirror of ``vectors`` rows with ids up to ``max_id`` will hold after :meth:`reset`."""
        return int(vectors * 1.05) * (dim + 12) + 4 * min(max_id + 1, DENSE_IDS)

    def close(self) -> None:
        """Release what the mirror holds besides memory (a subclass's connection); called when dropped."""

    # -- changing (exclusive lock held by the caller) -------------------------------------

    def reset(self, vectors: int, max_id: int) -> None:
        """Empty the mirror, with room for ``vectors`` rows (plus 5%) and ids up to ``max_id``."""
        capacity = max(1024, int(vectors * 1.05))
        self.n = 0
        self.ids = np.empty(capacity, dtype=np.int64)
        self.codes = np.empty((capacity, self.dim), dtype=np.int8)
        self.scales = np.empty(capacity, dtype=np.float32)
        self.row_of = np.full(min(max_id + 1, DENSE_IDS), -1, dtype=np.int32)
        self.far = {}

    def _reserve(self, total: int) -> None:
        if total <= len(self.ids):
            return
        capacity = max(total, int(len(self.ids) * 1.25) + 1024)
        for name in ("ids", "codes", "scales"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[:self.n] = old[:self.n]
            setattr(self, name, new)

    def _set_rows(self, ids: np.ndarray, rows: np.ndarray) -> None:
        near = ids < DENSE_IDS
        if near.any():
            top = int(ids[near].max())
            if top >= len(self.row_of):
                grown = np.full(min(max(top + 1, int(len(self.row_of) * 1.25)), DENSE_IDS), -1, dtype=np.int32)
                grown[:len(self.row_of)] = self.row_of
                self.row_of = grown
            self.row_of[ids[near]] = rows[near]
        for vector_id, row in zip(ids[~near].tolist(), rows[~near].tolist()):
            if row < 0:
                self.far.pop(vector_id, None)
            else:
                self.far[vector_id] = row

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows of these ids, -1 for ids without a vector."""
        out = np.full(len(ids), -1, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self.row_of))
        out[inside] = self.row_of[ids[inside]]
        if self.far:
            for j in np.flatnonzero(ids >= DENSE_IDS).tolist():
                out[j] = self.far.get(int(ids[j]), -1)
        return out

    def put(self, ids: np.ndarray, mat: np.ndarray) -> None:
        """Store (or replace) the vectors of ``ids``: float32 rows, unit length for cosine scores."""
        codes, scales = quantize(mat)
        rows = self.rows_of(ids)
        old = rows >= 0
        self.codes[rows[old]] = codes[old]
        self.scales[rows[old]] = scales[old]
        fresh = ~old
        count_new = int(fresh.sum())
        if count_new:
            self._reserve(self.n + count_new)
            new_rows = np.arange(self.n, self.n + count_new)
            self.ids[new_rows] = ids[fresh]
            self.codes[new_rows] = codes[fresh]
            self.scales[new_rows] = scales[fresh]
            self.n += count_new
            self._set_rows(ids[fresh], new_rows)

    def remove(self, ids: Iterable[int]) -> None:
        """Drop the vectors of ``ids`` (ids it does not hold are ignored)."""
        for vector_id in ids:
            row = int(self.rows_of(np.asarray([vector_id], dtype=np.int64))[0])
            if row < 0:
                continue
            last = self.n - 1
            if row != last:  # keep rows dense: the last row fills the hole
                moved = int(self.ids[last])
                self.ids[row], self.codes[row], self.scales[row] = moved, self.codes[last], self.scales[last]
                self._set_rows(np.asarray([moved], dtype=np.int64), np.asarray([row]))
            self._set_rows(np.asarray([vector_id], dtype=np.int64), np.asarray([-1]))
            self.n -= 1

    # -- scanning (shared lock held by the caller) ----------------------------------------

    def candidates(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None,
                   min_score: float | None = None) -> np.ndarray:
        """Ids whose exact cosine similarity to unit ``q`` could be in the top ``k`` (among
        ``allowed``, and not below ``min_score``), for the caller to re-rank in float32."""
        self.used = time.monotonic()
        n = self.n
        if n == 0:
            return np.empty(0, dtype=np.int64)
        kernel = get_kernel(self.dim)
        self.kernel = kernel.name
        if allowed is None:
            rows = None
            approx, step_q = kernel.scores(self.codes, n, None, q)
            scales = self.scales[:n]
        else:
            rows = self.rows_of(allowed)
            rows = rows[(rows >= 0) & (rows < n)]
            if not len(rows):
                return np.empty(0, dtype=np.int64)
            if len(rows) > n // 3:
                # A broad filter: one sequential scan of everything beats gathering rows.
                full, step_q = kernel.scores(self.codes, n, None, q)
                approx = full[rows]
            else:
                approx, step_q = kernel.scores(self.codes, n, rows, q)
            scales = self.scales[rows]
        approx *= scales
        picked = pick_candidates(approx, scales, step_q, k, min_score)
        return self.ids[picked] if rows is None else self.ids[rows[picked]]
