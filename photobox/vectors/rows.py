"""float32 vectors stored as blobs (sqlite-vec's format) into numpy arrays, for mirrors and re-ranks.

The SQL is the caller's: these helpers take the rows of a statement, or a statement with one
``?`` for the id, and never build SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apsw
import numpy as np

__all__ = ["batches", "id_array", "matrix", "read_by_id", "unit_rows"]


def matrix(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """float32 blobs of ``dim`` values each as the rows of one (read-only) matrix."""
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)


def batches(rows: Iterable[tuple[int, bytes]], dim: int, size: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) of ``size`` rows at a time from rows of (id, blob), e.g. a table scan."""
    ids: list[int] = []
    blobs: list[bytes] = []
    for vector_id, blob in rows:
        ids.append(vector_id)
        blobs.append(blob)
        if len(ids) >= size:
            yield np.asarray(ids, dtype=np.int64), matrix(blobs, dim)
            ids, blobs = [], []
    if ids:
        yield np.asarray(ids, dtype=np.int64), matrix(blobs, dim)


def id_array(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    """Ids from any iterable (a filter's result, of any size) as one int64 array, for a mirror scan."""
    if isinstance(ids, np.ndarray):
        return ids.astype(np.int64, copy=False).ravel()
    if not isinstance(ids, (list, tuple)):
        ids = list(ids)
    return np.fromiter(ids, dtype=np.int64, count=len(ids))


def read_by_id(conn: apsw.Connection, sql: str, ids: Iterable[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of ``ids``, one indexed read each (``sql`` selects the blob of the id bound
    to its one ``?``); ids without a row are left out: (ids found, their vectors)."""
    found: list[int] = []
    blobs: list[bytes] = []
    for vector_id in ids:
        row = conn.execute(sql, (int(vector_id),)).fetchone()
        if row is not None:
            found.append(int(vector_id))
            blobs.append(row[0])
    return np.asarray(found, dtype=np.int64), matrix(blobs, dim)


def unit_rows(vectors: Any, dim: int) -> np.ndarray:
    """Vectors as float32 rows of length ``dim``, L2-normalised so a dot product is the cosine.

    Raises:
        ValueError: another shape, or a zero or non-finite vector.
    """
    mat = np.asarray(vectors, dtype=np.float32)
    if mat.ndim == 1:
        mat = mat[None, :]
    if mat.ndim != 2 or mat.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {np.shape(vectors)}")
    norms = np.linalg.norm(mat, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("embedding vectors must be finite and non-zero")
    return np.ascontiguousarray(mat / norms[:, None], dtype=np.float32)
