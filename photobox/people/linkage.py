"""The graph work of a full re-cluster: the k-nearest-neighbour graph streamed in chunks,
single linkage over mutual-reachability distances with the narrow-bridge test, outliers
attached by margin, and splitting a cluster between seeded people along the graph.
:mod:`photobox.people.cluster` explains why; this module is how."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from photobox.people.cluster import ClusterParams, KnownNeighbours, Neighbours, NeighboursFound

__all__ = ["attach_outliers", "chunks", "knn_graph", "single_linkage", "split_between"]


def chunks(faces: Iterable[tuple[int, np.ndarray]], size: int) -> Iterator[tuple[list[int], np.ndarray]]:
    ids: list[int] = []
    vecs: list[np.ndarray] = []
    for face_id, vec in faces:
        ids.append(int(face_id))
        vecs.append(np.asarray(vec, dtype=np.float32))
        if len(ids) == size:
            yield ids, np.stack(vecs)
            ids, vecs = [], []
    if ids:
        yield ids, np.stack(vecs)


def knn_graph(faces: Iterable[tuple[int, np.ndarray]], neighbours: Neighbours,
               params: ClusterParams, known: KnownNeighbours | None = None,
               on_neighbours: NeighboursFound | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stream the faces through the callback: ``(face ids, neighbour rows, distances)``.

    Neighbour rows index into the face ids (-1: none, itself, or a face not being clustered);
    only neighbours within ``max_distance`` are kept, nearest first. Faces whose list
    ``known`` has (stored when they arrived) are not queried; those queried are reported to
    ``on_neighbours`` so the caller can store them for the next time.
    """
    all_ids: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    dists: list[np.ndarray] = []
    k = params.k
    for ids, vecs in chunks(faces, params.chunk_size):
        got_ids = np.full((len(ids), k), -1, dtype=np.int64)
        got_d = np.full((len(ids), k), np.inf, dtype=np.float32)
        have = known(ids) if known is not None else {}
        for r, face_id in enumerate(ids):
            stored = have.get(face_id)
            if stored is not None:
                # A query's k nearest include the face itself: a stored list gives k - 1.
                s_ids, s_d = (np.asarray(a)[:k - 1] for a in stored)
                got_ids[r, :len(s_ids)], got_d[r, :len(s_d)] = s_ids, s_d
        ask = [r for r, face_id in enumerate(ids) if face_id not in have]
        if ask:
            q_ids, q_d = neighbours(vecs[ask], k, params.max_distance)
            got_ids[ask] = np.asarray(q_ids, dtype=np.int64)[:, :k]
            got_d[ask] = np.asarray(q_d, dtype=np.float32)[:, :k]
            if on_neighbours is not None:
                on_neighbours([ids[r] for r in ask], got_ids[ask], got_d[ask])
        ids_a = np.asarray(ids, dtype=np.int64)
        # The query face itself is not its own neighbour.
        got_d = np.where(got_ids == ids_a[:, None], np.inf, got_d)
        got_d = np.where((got_ids < 0) | (got_d > params.max_distance), np.inf, got_d)
        all_ids.append(ids_a)
        rows.append(got_ids)
        dists.append(got_d)
    if not all_ids:
        empty = np.empty((0, k))
        return np.empty(0, np.int64), empty.astype(np.int64), empty.astype(np.float32)
    face_ids = np.concatenate(all_ids)
    nbr = np.concatenate(rows)
    dist = np.concatenate(dists)
    order = np.argsort(face_ids, kind="stable")
    sorted_ids = face_ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, nbr), 0, len(face_ids) - 1)
    found = (sorted_ids[pos] == nbr) & np.isfinite(dist)
    idx = np.where(found, order[pos], -1)
    dist = np.where(found, dist, np.inf).astype(np.float32)
    # Re-sort each row: dropping itself or strangers leaves gaps.
    o = np.argsort(dist, axis=1, kind="stable")
    return face_ids, np.take_along_axis(idx, o, 1), np.take_along_axis(dist, o, 1)


def single_linkage(idx: np.ndarray, dist: np.ndarray, params: ClusterParams) -> np.ndarray:
    """Density clusters (HDBSCAN-style) from the kNN graph: a cluster id per face, -1 for none.

    Links are weighted by *mutual reachability*, max(core_i, core_j, d_ij), where core is the
    distance to a face's ``min_samples``-th nearest face: a face in a sparse spot (between
    two siblings, blurry) pulls every link through it up to its own sparseness. Single
    linkage over those weights (Kruskal on the kNN edges, never a full matrix) gives a tree;
    a merge of two parts of ``split_size`` faces or more is a possible boundary between
    people, and is one when the parts touch *narrowly* (few faces of either have a neighbour
    across near the merge level): a bridge of a few faces between two siblings is narrow, a
    child's slow drift meets itself along a broad front. Merges tighter than ``split_floor``
    are never boundaries: that close, two groups are one person in two moods.
    """
    n, k = idx.shape
    # Core distance: to the (min_samples-1)-th other face; a face with fewer neighbours in
    # reach (a person in a handful of photos) uses its farthest one, and one with fewer than
    # min_cluster_size - 1 is noise.
    have = (idx >= 0).sum(1)
    rank = np.clip(np.minimum(params.min_samples - 1, have), 1, k) - 1
    core = dist[np.arange(n), rank].astype(np.float32)
    core[have < max(1, params.min_cluster_size - 1)] = np.inf
    src = np.repeat(np.arange(n), k)
    dst = idx.ravel()
    d = dist.ravel()
    ok = (dst >= 0) & np.isfinite(core[src]) & np.isfinite(core[np.maximum(dst, 0)])
    src, dst, d = src[ok], dst[ok], d[ok]
    w = np.maximum(np.maximum(core[src], core[dst]), d)
    order = np.argsort(w, kind="stable")
    # Each edge once, lightest first: two faces are often in each other's lists.
    src, dst, w = np.minimum(src, dst)[order], np.maximum(src, dst)[order], w[order]
    _, first = np.unique(src * n + dst, return_index=True)
    first.sort()
    src, dst, w = src[first], dst[first], w[first]

    # Kruskal: merges as (left node, right node, weight); nodes 0..n-1 are faces.
    uf = list(range(n))
    node_of = list(range(n))
    size = [1] * n
    left: list[int] = []
    right: list[int] = []
    level: list[float] = []

    def find(a: int) -> int:
        while uf[a] != a:
            uf[a] = uf[uf[a]]
            a = uf[a]
        return a

    def edges() -> Iterator[tuple[int, int, float]]:
        # In slices: Python ints for 1.6M edges at once would take ~150 MB.
        for s0 in range(0, len(src), 65536):
            yield from zip(src[s0:s0 + 65536].tolist(), dst[s0:s0 + 65536].tolist(), w[s0:s0 + 65536].tolist())

    for a, b, wt in edges():
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        left.append(node_of[ra])
        right.append(node_of[rb])
        level.append(wt)
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        uf[rb] = ra
        size[ra] += size[rb]
        node_of[ra] = n + len(level) - 1
    node_size = [1] * n + [0] * len(level)
    for t in range(len(level)):
        node_size[n + t] = node_size[left[t]] + node_size[right[t]]

    def leaves(node: int) -> list[int]:
        out, stack = [], [node]
        while stack:
            x = stack.pop()
            if x < n:
                out.append(x)
            else:
                stack += (left[x - n], right[x - n])
        return out

    def narrow(a: list[int], b: list[int], at: float) -> bool:
        """Whether groups ``a`` and ``b`` touch through few faces near level ``at``.

        A child's early and late faces meet along a broad front (many faces on each side
        have a neighbour across at about the join level); two siblings meet through a
        handful of in-between faces. The narrower side, as a fraction of its size, decides.
        """
        reach = at * (1.0 + params.bridge_slack)

        def touching(rows: list[int], other: list[int]) -> float:
            inside = np.zeros(n, bool)
            inside[other] = True
            r = np.asarray(rows)
            nb = idx[r]
            safe = np.maximum(nb, 0)
            weight = np.maximum(np.maximum(core[r][:, None], core[safe]), dist[r])
            hit = (nb >= 0) & inside[safe] & (weight <= reach)
            return float(hit.any(1).sum()) / len(rows)

        # Neighbour lists are one-way (a blurry face is in nobody's list): count both ways.
        return min(touching(a, b), touching(b, a)) < params.bridge_fraction

    # Walk each tree from the top. A merge of two parts of ``split_size`` faces or more
    # that meet narrowly is a boundary between people: each part becomes its own cluster
    # and is walked on. Smaller parts that fall off a cluster are its (outlying) members.
    cluster = np.full(n, -1)
    split: list[int] = []
    count = 0
    for r in {find(i) for i in range(n)}:
        top = node_of[r]
        if node_size[top] < params.min_cluster_size:
            continue  # a lone face or a pair: noise, left to the margin rule
        stack = [(top, count)]
        count += 1
        while stack:
            node, c = stack.pop()
            if node < n:
                cluster[node] = c
                continue
            t = node - n
            kids = (left[t], right[t])
            if (min(node_size[x] for x in kids) >= params.split_size and level[t] >= params.split_floor
                    and narrow(leaves(kids[0]), leaves(kids[1]), level[t])):
                split.append(c)
                for x in kids:
                    stack.append((x, count))
                    count += 1
            else:
                stack += [(x, c) for x in kids]
    # Faces that fell off a cluster before it split sat between its parts (the bridge
    # itself): unassigned here, the margin rule places those clearly nearer one part.
    cluster[np.isin(cluster, split)] = -1
    return cluster


def attach_outliers(idx: np.ndarray, dist: np.ndarray, cluster: np.ndarray, params: ClusterParams) -> np.ndarray:
    """Give faces outside every cluster the nearest cluster among their neighbours, with margin."""
    out = cluster.copy()
    v = params.join_votes
    for i in np.flatnonzero(cluster < 0):
        near: dict[int, list[float]] = defaultdict(list)
        for j, d in zip(idx[i], dist[i]):
            if j >= 0 and cluster[j] >= 0:
                near[int(cluster[j])].append(float(d))
        if not near:
            continue
        scored = sorted(
            ((sum(ds[:v]) + params.max_distance * max(0, v - len(ds))) / v, c) for c, ds in near.items())
        best_d, best = scored[0]
        rival = scored[1][0] if len(scored) > 1 else float("inf")
        if best_d <= params.max_distance and rival - best_d >= params.margin:
            out[i] = best
    return out


def split_between(members: np.ndarray, seeds: Mapping[int, int], idx: np.ndarray, dist: np.ndarray) -> dict[int, int]:
    """Label each member (row index) with its nearest seed's label along the neighbour graph.

    Geodesic, not straight-line: a child's late faces reach the seeds of their early faces
    through the faces in between, and a sibling's faces reach their sibling's seeds only
    across the gap between the two.
    """
    inside = set(members.tolist())
    # Undirected: a blurry face is in nobody's nearest list but has its own.
    adj: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for i in inside:
        for j, w in zip(idx[i].tolist(), dist[i].tolist()):
            if j >= 0 and j in inside:
                adj[i].append((j, w))
                adj[j].append((i, w))
    best: dict[int, float] = {}
    label: dict[int, int] = {}
    heap = [(0.0, i, lab) for i, lab in seeds.items() if i in inside]
    heapq.heapify(heap)
    while heap:
        d, i, lab = heapq.heappop(heap)
        if i in label:
            continue
        label[i] = lab
        for j, w in adj[i]:
            if j not in label and d + w < best.get(j, float("inf")):
                best[j] = d + w
                heapq.heappush(heap, (d + w, j, lab))
    return label
