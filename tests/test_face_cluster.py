"""Face clustering: quality on small synthetic hard cases, anchors, constraints, memory bounds.

The synthetic data and the brute-force neighbour index come from ``scripts/bench_faces.py``
(the benchmark measures the same scenarios at full size).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from photobox.people import DEFAULTS, Assignment, ClusterParams, Constraints, assign_new_face, recluster

_spec = importlib.util.spec_from_file_location(
    "bench_faces", Path(__file__).resolve().parents[1] / "scripts" / "bench_faces.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def index_of(x: np.ndarray) -> bench.BruteIndex:
    index = bench.BruteIndex()
    index.add(np.arange(len(x)), x)
    return index


def full(x: np.ndarray, **kw) -> dict[int, int | None]:
    return recluster(((i, x[i]) for i in range(len(x))), neighbours=index_of(x), **kw)


def faces_of(y: np.ndarray, label: int) -> list[int]:
    return np.flatnonzero(y == label).tolist()


def sibling_library(seed: int = 0, n: int = 30, ambiguous: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """Two siblings (labels 0, 1), one more pair (2, 3) and two strangers (4, 5)."""
    b = bench.Builder(bench.Faker(np.random.default_rng(seed)))
    b.siblings(n, ambiguous=ambiguous)
    b.siblings(n // 2, similarity=0.65)
    b.people(2, 10, 20)
    return b.build()


# -- quality --------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", bench.SCENARIOS)
@pytest.mark.parametrize("seed", [0, 1])
def test_full_recluster_quality(scenario, seed):
    x, y = bench.make_scenario(scenario, np.random.default_rng(seed), 0.6)
    s = bench.pair_scores(y, bench.as_labels(full(x), len(x)))
    assert s["precision"] >= 0.95, s
    assert s["recall"] >= 0.85, s


@pytest.mark.parametrize("scenario", bench.SCENARIOS)
def test_incremental_quality_then_recluster(scenario):
    # One face at a time cannot see that the person it is near is a sibling's, so it is
    # conservative: as precise, but it leaves faces out and may start a drifting child
    # twice (it never merges people). The re-cluster after a batch, anchored on its result,
    # fixes both.
    x, y = bench.make_scenario(scenario, np.random.default_rng(2), 0.6)
    got = bench.run_incremental(x, np.random.default_rng(3), retry=True)
    s = bench.pair_scores(y, got)
    assert s["precision"] >= 0.95, s
    if scenario in ("separated", "siblings"):
        assert s["recall"] >= 0.85, s
    anchors = {i: int(p) for i, p in enumerate(got) if p >= 0}
    s = bench.pair_scores(y, bench.as_labels(full(x, anchors=anchors), len(x)))
    assert s["precision"] >= 0.95 and s["recall"] >= 0.85, s


def test_plain_dbscan_merges_the_siblings():
    """The scenario is hard: the Immich-style baseline merges each sibling pair."""
    x, y = bench.make_scenario("siblings", np.random.default_rng(0), 0.6)
    assert bench.pair_scores(y, bench.plain_dbscan(x))["precision"] < 0.8


def test_noise_faces_stay_unassigned():
    rng = np.random.default_rng(4)
    b = bench.Builder(bench.Faker(rng))
    b.people(4, 10, 30)
    b.noise(40)
    x, y = b.build()
    got = full(x)
    assert all(got[i] is None for i in faces_of(y, bench.NOISE))
    assert all(got[i] is not None for i in range(len(x)) if y[i] != bench.NOISE)
    # One at a time too: a random face near nobody is noise.
    index = index_of(x)
    person = {i: p for i, p in got.items() if p is not None}
    lone = bench.unit(rng.standard_normal(bench.DIM))
    a = assign_new_face(10_000, lone, neighbours=index, person_of=lambda ids: {i: person[i] for i in ids if i in person})
    assert a == Assignment("noise", faces=(10_000,))


# -- one face at a time ---------------------------------------------------------------------

def test_new_faces_build_a_person_then_join_it():
    f = bench.Faker(np.random.default_rng(5))
    x = f.person(6)
    index = bench.BruteIndex()
    person: dict[int, int] = {}
    actions = []
    for i in range(6):
        a = assign_new_face(i, x[i], neighbours=index, person_of=lambda ids: {j: person[j] for j in ids if j in person})
        actions.append(a.action)
        if a.action == "new":
            person.update(dict.fromkeys(a.faces, 1))
        elif a.action == "join":
            person.update(dict.fromkeys(a.faces, a.person_id))
        index.add(np.array([i]), x[i][None])
    # The first two wait; the third makes a person of all three; the rest join.
    assert actions[:3] == ["noise", "noise", "new"]
    assert actions[3:] == ["join"] * 3
    assert person == dict.fromkeys(range(6), 1)


def test_named_person_attracts_their_faces_but_not_their_siblings():
    # No in-between faces here: a face drawn toward Alice may rightly look like her.
    x, y = sibling_library(seed=6, n=40, ambiguous=0.0)
    alice, bob = faces_of(y, 0), faces_of(y, 1)
    # Alice is named (person 7) and has most of her faces; Bob has no person yet.
    known = alice[:-5]
    index = bench.BruteIndex()
    index.add(np.array(known), x[known])
    person = dict.fromkeys(known, 7)
    lookup = lambda ids: {i: person[i] for i in ids if i in person}  # noqa: E731
    joined = [assign_new_face(i, x[i], neighbours=index, person_of=lookup, named={7}) for i in alice[-5:]]
    assert sum(a.action == "join" and a.person_id == 7 for a in joined) >= 4
    within_reach = 0
    for i in bob:
        a = assign_new_face(i, x[i], neighbours=index, person_of=lookup, named={7})
        assert a.person_id != 7, (i, a)
        near_alice, _ = index(x[i][None], 16, 0.5)  # the index holds only Alice's faces
        within_reach += bool((near_alice >= 0).any())
    assert within_reach > 0  # plain ε = 0.5 would have put some of Bob in Alice


def test_must_and_cannot_decide_a_new_face():
    x, y = sibling_library(seed=7)
    index = index_of(x)
    alice = faces_of(y, 0)
    person = dict.fromkeys(alice, 7)
    lookup = lambda ids: {i: person[i] for i in ids if i in person}  # noqa: E731
    face = alice[0]
    assert assign_new_face(face, x[face], neighbours=index, person_of=lookup).person_id == 7
    no = Constraints(cannot={face: {7}})
    assert assign_new_face(face, x[face], neighbours=index, person_of=lookup, constraints=no).person_id != 7
    moved = Constraints(must={face: 9})
    assert assign_new_face(face, x[face], neighbours=index, person_of=lookup, constraints=moved) == \
        Assignment("join", 9, (face,), 0.0)


# -- re-cluster: anchors and constraints ----------------------------------------------------

def test_recluster_keeps_person_ids():
    x, y = sibling_library(seed=8)
    anchors = {i: 100 + int(y[i]) for i in range(len(x)) if i % 3 == 0}
    got = full(x, anchors=anchors)
    for label in range(6):
        assert {got[i] for i in faces_of(y, label)} == {100 + label}


def test_new_clusters_get_negative_ids():
    x, y = sibling_library(seed=9)
    got = full(x)
    ids = {p for p in got.values() if p is not None}
    assert len(ids) == 6 and all(p < 0 for p in ids)


def test_cannot_link_survives_recluster():
    x, y = sibling_library(seed=10)
    alice = faces_of(y, 0)
    anchors = dict.fromkeys(alice, 7)
    face = alice[3]
    got = full(x, anchors=anchors, constraints=Constraints(cannot={face: {7}}))
    assert got[face] != 7
    assert sum(got[i] == 7 for i in alice) >= len(alice) - 3


def test_moved_face_stays_moved():
    x, y = sibling_library(seed=11)
    alice, bob = faces_of(y, 0), faces_of(y, 1)
    anchors = {**dict.fromkeys(alice, 7), **dict.fromkeys(bob, 8)}
    face = bob[0]  # the user says this one is Alice after all
    got = full(x, anchors=anchors, constraints=Constraints(must={face: 7}))
    assert got[face] == 7
    assert all(got[i] == 8 for i in bob[1:])


def test_merged_people_stay_merged():
    x, y = sibling_library(seed=12)
    a, c = faces_of(y, 4), faces_of(y, 5)  # two strangers the user says are one person
    anchors = {**dict.fromkeys(a, 7), **dict.fromkeys(c, 9)}
    # The merge moved c's faces into 7; a few must-links suffice to carry their cluster.
    got = full(x, anchors={**anchors, **dict.fromkeys(c, 7)}, constraints=Constraints(must=dict.fromkeys(c[:3], 7)))
    assert {got[i] for i in a + c} == {7}


# No boundaries: clustering alone merges near-twins.
MERGING = ClusterParams(bridge_fraction=0.0)


def twins(seed: int) -> tuple[np.ndarray, np.ndarray]:
    b = bench.Builder(bench.Faker(np.random.default_rng(seed)))
    b.siblings(30, similarity=0.85)
    b.people(2, 10, 20)
    return b.build()


def test_split_stays_split_even_when_clustering_would_merge():
    x, y = twins(13)
    alice, bob = faces_of(y, 0), faces_of(y, 1)
    merging = MERGING
    assert len({full(x, params=merging)[i] for i in alice + bob}) == 1
    # The user split the person: Bob's faces moved to a new person 9 (the move of the
    # first three recorded as must-links), so the current assignment has them apart.
    anchors = {**dict.fromkeys(alice, 7), **dict.fromkeys(bob, 9)}
    got = full(x, anchors=anchors, constraints=Constraints(must=dict.fromkeys(bob[:3], 9)), params=merging)
    assert sum(got[i] == 9 for i in bob) >= 0.9 * len(bob)
    assert sum(got[i] == 7 for i in alice) >= 0.9 * len(alice)
    # Without the user's word, two unnamed people in one cluster are one person.
    got = full(x, anchors=anchors, params=merging)
    assert len({got[i] for i in alice + bob}) == 1
    # Named, they stay two.
    got = full(x, anchors=anchors, named={7, 9}, params=merging)
    assert sum(got[i] == 9 for i in bob) >= 0.9 * len(bob)
    assert sum(got[i] == 7 for i in alice) >= 0.9 * len(alice)


def test_not_this_person_takes_the_look_alikes_with_it():
    x, y = twins(14)
    alice, bob = faces_of(y, 0), faces_of(y, 1)
    merging = MERGING
    anchors = dict.fromkeys(alice + bob, 7)  # an earlier merge put Bob in Alice
    assert len({full(x, params=merging)[i] for i in alice + bob}) == 1
    # The user confirmed two of Alice's faces, then said one of Bob's is not Alice.
    no = Constraints(must={alice[0]: 7, alice[1]: 7}, cannot={bob[0]: {7}})
    got = full(x, anchors=anchors, constraints=no, params=merging)
    assert got[bob[0]] != 7
    assert sum(got[i] != 7 for i in bob) >= 0.8 * len(bob)
    assert sum(got[i] == 7 for i in alice) >= 0.9 * len(alice)


def test_constraints_from_rows():
    c = Constraints.from_rows([(1, 7, "must"), (2, 7, "cannot"), (2, 8, "cannot")])
    assert c.must == {1: 7} and c.cannot == {2: {7, 8}}
    assert c.allows(1, 7) and not c.allows(1, 8)
    assert not c.allows(2, 7) and c.allows(2, 9) and c.allows(3, 7)


# -- memory bound ---------------------------------------------------------------------------

def test_recluster_reads_faces_in_chunks_through_the_callback_only():
    x, y = bench.make_scenario("library", np.random.default_rng(15), 0.5)
    index = index_of(x)
    params = ClusterParams(chunk_size=64)
    pulled = {"n": 0, "max_ahead": 0}
    asked = []

    def faces():
        for i in range(len(x)):
            pulled["n"] += 1
            yield i, x[i]

    def neighbours(queries, k, max_distance):
        asked.append((len(queries), k, max_distance))
        # Faces are read a chunk ahead at most, never all of them before the first query.
        pulled["max_ahead"] = max(pulled["max_ahead"], pulled["n"] - sum(q for q, _, _ in asked[:-1]))
        return index(queries, k, max_distance)

    got = recluster(faces(), neighbours=neighbours, params=params)
    assert len(asked) == -(-len(x) // 64)
    assert all(q <= 64 and k <= params.k and d == params.max_distance for q, k, d in asked)
    assert pulled["max_ahead"] <= 64
    s = bench.pair_scores(y, bench.as_labels(got, len(x)))
    assert s["precision"] >= 0.95 and s["recall"] >= 0.85, s


def test_defaults_are_sane():
    p = DEFAULTS
    assert p.named_max_distance <= p.join_distance <= p.max_distance
    assert p.min_samples >= 2 and p.k >= p.min_samples
