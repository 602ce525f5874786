"""Small SQL helpers shared by the domain modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["MissingRow", "id_chunks", "meta_value", "scalar"]

#: SQLite's default limit is 32766 host parameters; 500 keeps statements small and cached.
CHUNK = 500


class MissingRow(LookupError):
    """A write names a row that does not exist (a face, a person…): the caller's input is
    wrong, not the database. The web app answers 404 with the message."""


def id_chunks(ids: Sequence[int], size: int = CHUNK) -> Iterator[tuple[list[int], str]]:
    """Split ``ids`` for ``WHERE id IN (…)``: yields (chunk, "?,?,…") with one mark per id.

    Only question marks go into the SQL text; the ids travel as parameters.
    """
    for start in range(0, len(ids), size):
        chunk = [int(i) for i in ids[start:start + size]]
        yield chunk, ",".join("?" * len(chunk))


def meta_value(conn, key: str, make: Callable[[], str]) -> str:
    """The ``meta`` row ``key``, set to ``make()`` first when absent (call inside a write
    transaction so two openers cannot both make one)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is not None:
        return row[0]
    value = make()
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
    return value


def scalar(conn, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
    """The first column of the first row of ``sql`` (an aggregate, a PRAGMA), or None without rows."""
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]
