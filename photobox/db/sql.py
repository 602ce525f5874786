"""Small SQL helpers shared by the domain modules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

__all__ = ["id_chunks"]

#: SQLite's default limit is 32766 host parameters; 500 keeps statements small and cached.
CHUNK = 500


def id_chunks(ids: Sequence[int], size: int = CHUNK) -> Iterator[tuple[list[int], str]]:
    """Split ``ids`` for ``WHERE id IN (…)``: yields (chunk, "?,?,…") with one mark per id.

    Only question marks go into the SQL text; the ids travel as parameters.
    """
    for start in range(0, len(ids), size):
        chunk = [int(i) for i in ids[start:start + size]]
        yield chunk, ",".join("?" * len(chunk))
