"""People: faces grouped into persons, kept stable across re-clusters and user corrections.

:mod:`photobox.people.cluster` is the storage-agnostic core: it sees faces only through a
nearest-neighbour callback, so the database layer decides where vectors live.
"""

from photobox.people.cluster import (
    DEFAULTS,
    Assignment,
    ClusterParams,
    Constraints,
    Neighbours,
    assign_new_face,
    recluster,
)

__all__ = [
    "DEFAULTS",
    "Assignment",
    "ClusterParams",
    "Constraints",
    "Neighbours",
    "assign_new_face",
    "recluster",
]
