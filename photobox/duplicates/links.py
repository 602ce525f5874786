"""Which photos look alike, stored in two small tables, so that rows grow with the number
of photos and never with the number of pairs:

* ``dupe_links``, a spanning forest of the look-alike graph: photos connected through
  accepted look-alikes are connected by links, nearest first, one link fewer than photos at
  most. It says which photos can be in one group, whatever the shape of the graph;
* ``dupe_nearest``, each photo's ``NEAREST`` closest matches when it was last searched. A
  tree alone loses choices that grouping makes when it must keep photos apart ("not
  duplicates", two moments of a burst): with a photo's closest matches at hand, a copy
  still joins its original when a third photo between them may not.

Why not every pair: 2,013 look-alike photos without a camera time (one app screen
screenshotted again and again, one form scanned) are all duplicates of one another under
the rule; storing every pair made 1,999,078 rows (+92 MB) and a 96 s job. Why not each
photo's k nearest either: a photo saved more than k times fills all its copies' lists with
one another, so two such clusters that are copies of each other are never linked and their
group splits (2,000 generated look-alikes made 3 groups with k = 10): the forest links them.
Groups are made from both tables, closest first (:func:`photobox.duplicates.store.regroup`).

A photo is offered to the forest through its ``NEAREST`` closest matches, and through its
closest match in each other tree it matches, so no tree it belongs with is left out.

Upkeep, one batch of changed photos at a time (the ``dupe_dirty`` queue: a new thumbnail,
a new capture time, trash, restore, deletion):

1. their links go. Where that cuts a tree into pieces, every piece but the largest is
   searched again: any link that can join the pieces has one end in a searched piece;
2. the changed photos that can still be duplicates are searched
   (:class:`~photobox.duplicates.index.Finder`);
3. Kruskal's algorithm over the remaining links of the trees concerned and the offered ones
   makes those trees again, nearest links first; each searched photo's closest matches
   replace its old ones.

The cost is the searches (a few hundred index seeks each) and the trees they touch, never
the size of the library.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import apsw
import numpy as np

from photobox.db.sql import id_chunks
from photobox.duplicates.index import Finder

__all__ = ["NEAREST", "Plan", "apply", "component", "nearest", "plan"]

#: closest matches kept per photo, and offered to the forest (more only to join other trees)
NEAREST = 10


class _Sets:
    """Union-find."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = self.parent.setdefault(x, x)
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[rb] = ra
        return True


def _links(conn: apsw.Connection, ids: Iterable[int]) -> list[tuple[int, int, int]]:
    """Every link (a < b, distance) with an end in ``ids``."""
    out: set[tuple[int, int, int]] = set()
    for chunk, marks in id_chunks(sorted(set(ids))):
        out.update(conn.execute(f"SELECT a, b, distance FROM dupe_links WHERE a IN ({marks}) "
                                f"UNION SELECT a, b, distance FROM dupe_links WHERE b IN ({marks})", chunk + chunk))
    return sorted(out)


def component(conn: apsw.Connection, seeds: Iterable[int],
              skip: frozenset[int] | set[int] = frozenset()) -> tuple[set[int], list[tuple[int, int, int]]]:
    """The photos reachable from ``seeds`` through links that do not touch ``skip``, and
    those links."""
    nodes = set(seeds) - set(skip)
    frontier, links = nodes, set()
    while frontier:
        found = [link for link in _links(conn, frontier) if link[0] not in skip and link[1] not in skip]
        links.update(found)
        frontier = {x for a, b, _ in found for x in (a, b)} - nodes
        nodes |= frontier
    return nodes, sorted(links)


def _to_search_again(conn: apsw.Connection, changed: set[int]) -> set[int]:
    """The photos of every piece but the largest of each tree that losing the links of
    ``changed`` cuts apart."""
    old = _links(conn, changed)
    partners = {x for a, b, _ in old for x in (a, b)} - changed
    _, links = component(conn, partners, skip=changed)
    pieces = _Sets()
    for a, b, _ in links:
        pieces.union(a, b)
    trees = _Sets()  # pieces that were one tree, through a changed photo
    for a, b, _ in old:
        trees.union(pieces.find(a) if a not in changed else -a, pieces.find(b) if b not in changed else -b)
    members: dict[int, dict[int, list[int]]] = {}
    for x in partners | {x for a, b, _ in links for x in (a, b)}:
        piece = pieces.find(x)
        members.setdefault(trees.find(piece), {}).setdefault(piece, []).append(x)
    out: set[int] = set()
    for by_piece in members.values():
        ordered = sorted(by_piece.values(), key=lambda m: (-len(m), min(m)))
        out.update(x for piece in ordered[1:] for x in piece)
    return out


@dataclass(slots=True)
class Plan:
    """What one batch changes: worked out on a reader (the searches are the slow part),
    written by :func:`apply` in one short write transaction."""

    forget: set[int]                   # changed photos: their links go
    nodes: set[int]                    # every photo of the trees concerned
    offers: dict[tuple[int, int], int]  # (a < b) → distance: links a search proposes
    nearest: dict[int, list[tuple[int, int]]]  # searched photo → its closest matches (id, distance)

    @property
    def searched(self) -> int:
        return len(self.nearest)


def plan(conn: apsw.Connection, changed: Iterable[int]) -> Plan:
    """Search the ``changed`` photos and the pieces their links held together."""
    changed = set(changed)
    finder = Finder(conn)
    todo = finder.photos(sorted(changed | _to_search_again(conn, changed)))
    found = {i: finder.matches(p) for i, p in todo.items()}
    reach = set(todo).union(*(ids.tolist() for ids, _ in found.values()))
    nodes, links = component(conn, reach, skip=changed)
    trees = _Sets()
    for a, b, _ in links:
        trees.union(a, b)
    known = np.array(sorted(trees.parent), dtype=np.int64)
    roots = np.array([trees.find(x) for x in known.tolist()], dtype=np.int64)
    offers: dict[tuple[int, int], int] = {}
    for i, (ids, distance) in found.items():
        # The tree of each match (a photo without links is a tree of its own) as it is now
        # that the photos searched before have joined theirs, and the closest match in each
        # (the matches are sorted closest first).
        at = np.searchsorted(known, ids).clip(max=max(len(known) - 1, 0))
        tree = np.where(known[at] == ids, roots[at], ids) if len(known) else ids
        _, first = np.unique(tree, return_index=True)
        joined: dict[int, int] = {}
        for k in sorted(first.tolist()):  # closest first
            joined.setdefault(trees.find(int(tree[k])), k)
        pick = set(joined.values()) | set(range(min(NEAREST, len(ids))))
        for k in pick:
            j = int(ids[k])
            offers[(min(i, j), max(i, j))] = int(distance[k])
            trees.union(i, j)
    closest = {i: list(zip(ids[:NEAREST].tolist(), distance[:NEAREST].tolist())) for i, (ids, distance) in found.items()}
    return Plan(changed, nodes | reach, offers, closest)


def _existing(conn: apsw.Connection, ids: set[int]) -> set[int]:
    out: set[int] = set()
    for chunk, marks in id_chunks(sorted(ids)):
        out.update(i for (i,) in conn.execute(f"SELECT id FROM assets WHERE id IN ({marks})", chunk))
    return out


def apply(conn: apsw.Connection, work: Plan) -> set[int]:
    """Write ``work`` in the caller's write transaction; returns the photos whose group may
    have changed (for :func:`photobox.duplicates.store.regroup`)."""
    for chunk, marks in id_chunks(sorted(work.forget)):
        conn.execute(f"DELETE FROM dupe_links WHERE a IN ({marks}) OR b IN ({marks})", chunk + chunk)
        conn.execute(f"DELETE FROM dupe_nearest WHERE asset_id IN ({marks}) OR neighbour_id IN ({marks})",
                     chunk + chunk)
    live = _existing(conn, work.nodes)  # a photo deleted since the plan is left out (its own queue entry follows)
    current = {(a, b): d for a, b, d in _links(conn, live) if a in live and b in live}
    candidates = {**{k: d for k, d in work.offers.items() if k[0] in live and k[1] in live}, **current}
    trees, forest = _Sets(), {}
    for (a, b), d in sorted(candidates.items(), key=lambda kv: (kv[1], kv[0])):
        if trees.union(a, b):
            forest[(a, b)] = d
    conn.executemany("DELETE FROM dupe_links WHERE a = ? AND b = ?", sorted(current.keys() - forest.keys()))
    conn.executemany("INSERT INTO dupe_links (a, b, distance) VALUES (?, ?, ?)",
                     [(a, b, forest[(a, b)]) for a, b in sorted(forest.keys() - current.keys())])
    searched = sorted(i for i in work.nearest if i in live)
    for chunk, marks in id_chunks(searched):
        conn.execute(f"DELETE FROM dupe_nearest WHERE asset_id IN ({marks})", chunk)
    conn.executemany("INSERT INTO dupe_nearest (asset_id, neighbour_id, distance) VALUES (?, ?, ?)",
                     [(i, j, d) for i in searched for j, d in work.nearest[i] if j in live])
    return work.nodes | work.forget


def nearest(conn: apsw.Connection, ids: Iterable[int]) -> list[tuple[int, int, int]]:
    """The stored closest matches of ``ids``, as (a < b, distance)."""
    out: set[tuple[int, int, int]] = set()
    for chunk, marks in id_chunks(sorted(set(ids))):
        out.update((min(a, b), max(a, b), d) for a, b, d in conn.execute(
            f"SELECT asset_id, neighbour_id, distance FROM dupe_nearest WHERE asset_id IN ({marks})", chunk))
    return sorted(out)
