"""int8 codes for unit vectors and the error bound that keeps a scan's answers exact.

A stored row becomes int8 codes with one scale (``row ≈ codes * scale``); a query may be
quantized the same way by a scan kernel. A scan's int8 scores are then within a known
error of the float32 ones, so :func:`pick_candidates` can keep every row that could still
belong to the exact top ``k``, for a float32 re-rank by the caller.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Z", "pick_candidates", "quantize", "quantize_query"]

#: A candidate is kept while its int8 score, plus Z standard deviations of the
#: quantization error, could still beat the k-th best score minus the same margin.
Z = 4.0


def quantize(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes with one scale per row: ``row ≈ codes * scale``.

    A per-row scale (the row's largest magnitude / 127) needs no training data and keeps
    each vector's own resolution; the error of a dot product is then about
    ``scale / sqrt(12)`` for a unit query, which :func:`pick_candidates` accounts for.
    """
    peak = np.maximum(mat.max(axis=1), -mat.min(axis=1))
    scales = np.where(peak > 0, peak / np.float32(127), np.float32(1)).astype(np.float32)
    scaled = np.multiply(mat, (1 / scales)[:, None], dtype=np.float32)
    return np.rint(scaled, out=scaled).astype(np.int8), scales


def quantize_query(q: np.ndarray) -> tuple[np.ndarray, float]:
    """A query vector as int8 codes and its one step (``q ≈ codes * step``), for int8 x int8 kernels."""
    step_q = float(np.abs(q).max()) / 127.0 or 1.0
    return np.rint(q / step_q).astype(np.int8), step_q


def pick_candidates(approx: np.ndarray, scales: np.ndarray, step_q: float, k: int,
                    min_score: float | None) -> np.ndarray:
    """Indexes of the int8 scores ``approx`` (already multiplied by the row ``scales``) that
    may belong to the exact top ``k``; scores that cannot reach ``min_score`` are left out.

    The int8 error of a row's score has a standard deviation of about
    ``sqrt(scale² + step_q²) / sqrt(12)`` (rounding errors uniform in ±half a step over
    unit vectors; ``step_q`` is 0 for a float32 query), so every row whose score plus Z of
    those could beat the k-th best score minus Z of its own is kept. Typically that is k
    plus 10-25%.
    """
    m = len(approx)
    kk = min(k, m)
    coef = np.float32(Z / np.sqrt(12.0))
    step2 = np.float32(step_q * step_q)

    def margin(idx: np.ndarray | slice) -> np.ndarray:
        s = scales[idx]
        return coef * np.sqrt(s * s + step2)

    # The k-th best lower bound is found among the best few by int8 score; rows outside
    # them cannot change it as long as it stays above their (smaller) scores.
    few = min(m, max(4 * kk, kk + 64))
    top = np.argpartition(approx, m - few)[m - few:] if few < m else np.arange(m)
    lower = approx[top] - margin(top)
    kth = np.partition(lower, few - kk)[few - kk]
    if few < m and kth < approx[top].min():
        lower = approx - margin(slice(None))
        kth = np.partition(lower, m - kk)[m - kk]
    floor = kth if min_score is None else max(kth, np.float32(min_score))
    widest = coef * np.sqrt(np.float32(scales.max()) ** 2 + step2)
    near = np.flatnonzero(approx >= floor - widest)
    picked = near[approx[near] + margin(near) >= floor]
    cap = max(4 * k, k + 256)
    if len(picked) > cap:  # many near-ties: the best by int8 score are the best bet
        picked = picked[np.argpartition(-approx[picked], cap - 1)[:cap]]
    return picked
