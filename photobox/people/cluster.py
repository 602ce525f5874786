"""Face clustering: who is who, incrementally as faces arrive and in full on demand.

The core is pure and storage-agnostic: it sees faces only through a **neighbour callback**,
``neighbours(vectors, k, max_distance) -> (ids, distances)`` (in photobox a KNN over the
face vectors: the int8 RAM mirror or sqlite-vec), and the current assignment through
``person_of``. No distance matrix, no table of all embeddings: a full re-cluster streams the
faces in chunks and keeps only each face's ``k`` nearest neighbours (12 bytes a neighbour,
~20 MB at 100k faces), so memory grows with ``k`` × faces, never with faces² or 512 × faces.
Lists already known (stored as the faces arrived, :mod:`photobox.people.graph`) come from
a ``known`` callback instead of a query: same graph, same clusters, O(n · k) to read.

**Why not plain DBSCAN** (Immich: cosine distance 0.5, 3 faces). Its links are ε-chains:
one chain of core points joins two people, and two siblings (centres ~0.6 alike) always
have a few faces within 0.5 of each other, or in-between faces (a squint, an angle) that
chain them. Here the full re-cluster builds the kNN graph, weights each edge by *mutual
reachability* (max of the distance and both faces' core distances, so sparse in-between
faces pull their links up) and merges along it by single linkage (Kruskal; no matrix). Each
merge of two groups of ``split_size`` faces or more is tested for a **narrow bridge**: if,
on either side, fewer than ``bridge_fraction`` of the faces have a neighbour across at about
the merge level, the two meet through a handful of faces: two people, kept apart. A child
growing up is the opposite case: consecutive photos are close, so the early and late
halves meet along a broad front and stay one person although the baby and the teenager are
far apart. No centroid is kept that could lag behind the drift: a person is its members,
and a new face is compared with its nearest members (the recent ones).

**Margins, not nearest wins.** A face outside every dense group (blurry, partial, in between)
joins a person only if that person is nearer than any other by ``margin``; otherwise it
stays unassigned, which costs a little recall but never merges two people. One face at a
time (:func:`assign_new_face`) the reach is tighter (``join_distance``), because alone a
face cannot tell that the person it is near is a sibling's whose own cluster has not
formed yet; named people are stricter still (``named_max_distance``): a wrong face under a
name is the error users see. Faces arriving one at a time never merge two people either: a
drifting child may be started twice, and the next full re-cluster (anchored on the current
assignment, so ids and names stay) joins them.

**Corrections are constraints.** The user's word is stored as *must* (this face is person P:
moved, confirmed, or merged into P) and *cannot* (this face is not P), and a re-cluster
starts from scratch but labels its clusters with the current people: a cluster containing a
must-face of P belongs to P (so merged people stay merged, even as two clusters); a cluster
holding must-faces of one person and many faces of another, or many faces of two *named*
people, is split between them along the neighbour graph (so a split stays split); a face is
never put in a person it cannot be; and when P has faces the user vouched for, the faces
nearer a "not P" face than to those leave with it (one correction fixes its look-alikes).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from photobox.people import linkage

__all__ = [
    "Assignment",
    "ClusterParams",
    "Constraints",
    "KnownNeighbours",
    "Neighbours",
    "NeighboursFound",
    "assign_new_face",
    "recluster",
]

Neighbours = Callable[[np.ndarray, int, float], tuple[np.ndarray, np.ndarray]]
"""``(queries (m, d) float32, k, max_distance) -> (ids (m, k) int64, distances (m, k) float32)``.

Row ``i`` holds the nearest faces to query ``i`` by cosine distance (1 - cosine similarity),
ascending, at most ``k`` of them and none farther than ``max_distance``; missing slots are
``-1`` / ``inf``. The query face itself may be among them (it is ignored).
"""

KnownNeighbours = Callable[[list[int]], Mapping[int, tuple[np.ndarray, np.ndarray]]]
"""``face ids -> {face id: (neighbour ids, distances)}`` for the faces whose nearest-neighbour
list is already known (stored as they arrived): ascending, within the re-cluster's
``max_distance``, and *complete*: the ``k - 1`` nearest other faces (a query's ``k`` nearest
include the face itself), or all faces within ``max_distance`` when fewer. Faces left out are queried through :data:`Neighbours`.
"""

NeighboursFound = Callable[[list[int], np.ndarray, np.ndarray], None]
"""``(face ids, neighbour ids (m, k), distances (m, k))``: what a re-cluster had to query."""


@dataclass(frozen=True, slots=True)
class ClusterParams:
    """Tuned defaults (``scripts/bench_faces.py`` measures them; distances are cosine).

    Attributes:
        max_distance: farthest a core link or a join reaches. 0.5 is Immich's ε; two faces of
            one person are ~0.2-0.45 apart with ArcFace-class models, strangers ~0.8+.
        min_samples: faces (itself included) within ``max_distance`` for a core point; 3 so a
            person in three photos is found.
        k: neighbours asked per face. Bounds memory (k × faces) and the callback's work.
        min_cluster_size: smallest group of faces that becomes a person.
        margin: a face outside every dense group joins the nearest person only if the next
            person (or, one face at a time, a group of unassigned faces) is this much farther.
        join_distance: reach of a new face into an unnamed person, one face at a time (mean
            of its ``join_votes`` nearest faces there). Tighter than ``max_distance``: alone,
            a face cannot see that the person it is near is a sibling's; the full re-cluster
            (which can) uses ``max_distance`` for faces left out.
        named_max_distance: stricter still for a *named* person: a wrong face under a name
            is the error users see.
        join_votes: faces of a person a face is compared with (the mean of the nearest
            ``join_votes`` distances), so one stray neighbour does not decide.
        split_floor: merges at a tighter mutual-reachability distance are never a boundary
            between two people.
        split_size: both parts of a boundary have at least this many faces (smaller parts
            are outliers of one person: a child's first photos, a costume).
        bridge_fraction: parts are two people when, on the narrower side, fewer than this
            fraction of faces have a neighbour across within ``bridge_slack`` of the merge
            level: siblings touch through a few in-between faces (<5%), a child's years
            through a broad front (>30%).
        bridge_slack: relative slack on the merge level for counting faces that touch.
        chunk_size: faces per neighbour call in a full re-cluster.
    """

    max_distance: float = 0.5
    min_samples: int = 3
    k: int = 16
    min_cluster_size: int = 3
    margin: float = 0.05
    join_distance: float = 0.37
    named_max_distance: float = 0.35
    join_votes: int = 2
    split_floor: float = 0.2
    split_size: int = 5
    bridge_fraction: float = 0.15
    bridge_slack: float = 0.1
    chunk_size: int = 1024


DEFAULTS = ClusterParams()


@dataclass(frozen=True, slots=True)
class Constraints:
    """What the user said about faces, kept forever (rows of ``face_constraints``).

    Attributes:
        must: face id -> the person it is (moved there, confirmed, or merged into).
        cannot: face id -> the people it is not.
    """

    must: Mapping[int, int] = field(default_factory=dict)
    cannot: Mapping[int, Collection[int]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, str]]) -> Constraints:
        """From ``(face_id, person_id, 'must' | 'cannot')`` rows."""
        must: dict[int, int] = {}
        cannot: dict[int, set[int]] = defaultdict(set)
        for face, person, kind in rows:
            if kind == "must":
                must[face] = person
            else:
                cannot[face].add(person)
        return cls(must, dict(cannot))

    def allows(self, face: int, person: int) -> bool:
        """Whether ``face`` may be put in ``person``."""
        wanted = self.must.get(face)
        if wanted is not None:
            return wanted == person
        return person not in self.cannot.get(face, ())


NO_CONSTRAINTS = Constraints()


@dataclass(frozen=True, slots=True)
class Assignment:
    """What to do with a new face.

    Attributes:
        action: ``join`` person ``person_id``; ``new``: make a new person of ``faces``;
            ``noise``: leave the face unassigned (a later face or re-cluster may place it).
        person_id: the person to join (``join`` only).
        faces: the faces to put in that person: the new face first, then, for ``join`` and
            ``new``, unassigned neighbours it brings along (faces left out until now).
        distance: mean distance to the chosen person's nearest faces (for logs and review).
    """

    action: Literal["join", "new", "noise"]
    person_id: int | None = None
    faces: tuple[int, ...] = ()
    distance: float | None = None


# -- one face at a time ---------------------------------------------------------------------

def assign_new_face(
    face_id: int,
    vector: np.ndarray,
    *,
    neighbours: Neighbours,
    person_of: Callable[[list[int]], Mapping[int, int]],
    constraints: Constraints = NO_CONSTRAINTS,
    named: Collection[int] = (),
    params: ClusterParams = DEFAULTS,
) -> Assignment:
    """Place one new face among the people found so far, with one neighbour query.

    Args:
        face_id: the new face (already in the index or not: it is skipped among its neighbours).
        vector: its L2-normalised embedding.
        neighbours: the KNN callback (see :data:`Neighbours`).
        person_of: face ids -> their person, for those that have one (one batched lookup).
        constraints: the user's must / cannot links.
        named: ids of people with a name (joined only within ``named_max_distance``).
        params: the tuning.

    Returns:
        The :class:`Assignment`; the caller writes it.
    """
    if face_id in constraints.must:
        return Assignment("join", constraints.must[face_id], (face_id,), 0.0)
    ids, dists = neighbours(np.asarray(vector, dtype=np.float32)[None], params.k, params.max_distance)
    pairs = [(int(i), float(d)) for i, d in zip(ids[0], dists[0])
             if i >= 0 and i != face_id and d <= params.max_distance]
    if not pairs:
        return Assignment("noise", faces=(face_id,))
    owners = person_of([i for i, _ in pairs])
    by_person: dict[int, list[float]] = defaultdict(list)
    free: list[tuple[int, float]] = []
    for i, d in pairs:
        p = owners.get(i)
        if p is None:
            free.append((i, d))
        elif constraints.allows(face_id, p):
            by_person[p].append(d)

    v = params.join_votes
    # A person's distance is the mean over its nearest ``join_votes`` faces; with fewer
    # neighbours in it, the missing ones count as max_distance, so one lucky face is not enough.
    def spread(ds: list[float]) -> float:
        ds = sorted(ds)[:v]
        return (sum(ds) + params.max_distance * (v - len(ds))) / v

    scored = sorted((spread(ds), p) for p, ds in by_person.items())
    free_d = spread([d for _, d in free]) if len(free) >= v else float("inf")
    # Faces the new face brings along: unassigned neighbours as close as a join needs.
    bring = tuple(i for i, d in free if d <= params.join_distance)

    if scored:
        best_d, best = scored[0]
        rival = min(scored[1][0] if len(scored) > 1 else float("inf"), free_d)
        reach = params.named_max_distance if best in named else params.join_distance
        if best_d <= reach and rival - best_d >= params.margin:
            return Assignment("join", best, (face_id,) + bring, best_d)
        if rival - best_d < params.margin and best_d <= free_d:
            # Between two people (or a person and an unplaced group): leave it for review
            # or a re-cluster rather than guess; this is what keeps siblings apart.
            return Assignment("noise", faces=(face_id,), distance=best_d)
        near_person = best_d
    else:
        near_person = float("inf")
    if len(bring) + 1 >= params.min_samples and free_d + params.margin <= near_person:
        return Assignment("new", None, (face_id,) + bring, free_d)
    return Assignment("noise", faces=(face_id,))


# -- full re-cluster ------------------------------------------------------------------------

def recluster(
    faces: Iterable[tuple[int, np.ndarray]],
    *,
    neighbours: Neighbours,
    anchors: Mapping[int, int] | None = None,
    constraints: Constraints = NO_CONSTRAINTS,
    named: Collection[int] = (),
    params: ClusterParams = DEFAULTS,
    known: KnownNeighbours | None = None,
    on_neighbours: NeighboursFound | None = None,
) -> dict[int, int | None]:
    """Cluster all faces from scratch, keeping people's ids and every user correction.

    Args:
        faces: ``(face_id, vector)`` pairs, streamed (e.g. a cursor); read once, in chunks.
        neighbours: the KNN callback over the same faces (see :data:`Neighbours`).
        anchors: the current face -> person assignment. A cluster takes the person most of
            its anchored faces are in (one cluster per person, unless must-links give it
            more), so ids and names survive.
        constraints: the user's must / cannot links; always honoured. A cluster with
            must-faces of a person goes to them; with must-faces of one person and many
            anchored faces of another, it is split between the two along the neighbour graph.
        named: ids of named people. A cluster holding many faces of two named people is
            split between them (the user said they differ); of unnamed ones, it is merged.
        params: the tuning.
        known: the stored neighbour lists (see :data:`KnownNeighbours`); faces it answers
            for are not queried, so a library whose graph is stored costs O(faces × k) reads
            instead of a KNN query per face. The result is the same either way.
        on_neighbours: told the lists that had to be queried (to store them).

    Returns:
        face id -> person id, ``None`` for unassigned faces. Clusters that are nobody yet get
        negative ids (-1, -2, …, largest first): the caller creates those people.
    """
    anchors = anchors or {}
    named = set(named)
    face_ids, idx, dist = linkage.knn_graph(faces, neighbours, params, known, on_neighbours)
    n = len(face_ids)
    cluster = linkage.attach_outliers(idx, dist, linkage.single_linkage(idx, dist, params), params)
    row_of = {int(f): r for r, f in enumerate(face_ids)}

    # Seeds: must-faces (the user's word) and anchors (the previous result).
    must_rows = {row_of[f]: p for f, p in constraints.must.items() if f in row_of}
    anchor_rows = {row_of[f]: p for f, p in anchors.items() if f in row_of}
    members: dict[int, list[int]] = defaultdict(list)
    for r in np.flatnonzero(cluster >= 0):
        members[int(cluster[r])].append(int(r))

    result = np.full(n, None, dtype=object)
    claimed: dict[int, tuple[int, int]] = {}  # person -> (cluster, votes) it won by anchors alone
    plan: dict[int, dict[int, int]] = {}      # cluster -> seeds (row -> person)
    for c, rows in sorted(members.items(), key=lambda kv: -len(kv[1])):
        must_votes = Counter(must_rows[r] for r in rows if r in must_rows)
        anchor_votes = Counter(anchor_rows[r] for r in rows if r in anchor_rows)
        many = {p for p, m in anchor_votes.items() if m >= max(params.min_cluster_size, len(rows) // 4)}
        if must_votes:
            # The user moved faces here: they split the cluster from the people already in
            # it, who keep their share.
            people = set(must_votes) | many
        elif len(many & named) >= 2:
            # Two people the user named as different share the cluster: keep them apart.
            people = many & named
        else:
            # Otherwise the previous result only names the cluster; two unnamed people in
            # one cluster were one person split by chance (faces placed one at a time).
            people = {anchor_votes.most_common(1)[0][0]} if anchor_votes else set()
        seeds = {r: anchor_rows[r] for r in rows if anchor_rows.get(r) in people}
        seeds.update({r: must_rows[r] for r in rows if r in must_rows})
        plan[c] = seeds
        for p in people:
            if p not in must_votes:
                claimed.setdefault(p, (c, anchor_votes[p]))
                if claimed[p][1] < anchor_votes[p]:
                    claimed[p] = (c, anchor_votes[p])

    new_id = -1
    for c, rows in sorted(members.items(), key=lambda kv: -len(kv[1])):
        seeds = plan[c]
        # A person holds a cluster through anchors only once (their best one); other clusters
        # anchored to them become new people, so an old mistake is not carried on forever.
        seeds = {r: p for r, p in seeds.items()
                 if r in must_rows or claimed.get(p, (c,))[0] == c}
        # Faces the user said are not P, inside a cluster going to P: seed their own group.
        people = set(seeds.values())
        outcast = -(10 ** 9) - c
        outcasts = [r for r in rows if r not in must_rows
                    and any(p in constraints.cannot.get(int(face_ids[r]), ()) for p in people)]
        if outcasts:
            # Only faces the user vouched for hold their person against a "not P" face;
            # without any, the correction moves that face alone (one click must not carve
            # a person in half).
            vouched = {r: p for r, p in seeds.items() if r in must_rows}
            if vouched:
                seeds = vouched
            seeds.update(dict.fromkeys(outcasts, outcast))
        if not seeds:
            seeds = {rows[0]: new_id}
            new_id -= 1
        if len(set(seeds.values())) == 1:
            labels = dict.fromkeys(rows, next(iter(seeds.values())))
        else:
            labels = linkage.split_between(np.asarray(rows), seeds, idx, dist)
        groups: dict[int, list[int]] = defaultdict(list)
        for r in rows:
            if r in labels:  # a face no seed reaches (a split cut it off) stays out
                groups[labels[r]].append(r)
        for lab, rs in groups.items():
            if lab == outcast:
                if len(rs) >= params.min_cluster_size:
                    lab, new_id = new_id, new_id - 1
                else:
                    continue
            for r in rs:
                result[r] = lab

    out: dict[int, int | None] = {}
    for r, f in enumerate(face_ids.tolist()):
        p = result[r]
        if r in must_rows:
            p = must_rows[r]
        elif p is not None and not constraints.allows(f, p):
            p = None
        out[f] = p
    for f, p in constraints.must.items():
        out.setdefault(f, p)
    return out
