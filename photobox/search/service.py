"""Search: a description (or "more like this") ranked by CLIP similarity, within filters.

Runs in a thread, reading through the web's time-limited reader (``read``, see
:mod:`photobox.web.deps`). The filters pick the admissible assets first
(:mod:`photobox.search.filters`), the vector store ranks exactly within them
(:mod:`photobox.search.vectors`), and a relevance cut-off drops weak matches so a query
with no good match says so instead of showing random photos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from photobox.db.sql import id_chunks
from photobox.library.assets import VISIBLE
from photobox.search import filters as search_filters
from photobox.search import vectors
from photobox.search.filters import Filters

if TYPE_CHECKING:
    from photobox.core import Photobox
    from photobox.db import LimitedReader

__all__ = ["SearchOutcome", "search"]

MAX_RESULTS = 1000


@dataclass(slots=True)
class SearchOutcome:
    ids: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    ranked: bool = False          # by similarity (else: filtered, in timeline order)
    message: str | None = None    # why there is nothing, or what is unavailable


def _visible(conn, ids: list[int]) -> set[int]:
    """The ids that default searches may show (not trashed, archived or a Live Photo's video)."""
    out: set[int] = set()
    for chunk, marks in id_chunks(ids):
        out.update(i for (i,) in conn.execute(
            f"SELECT a.id FROM assets a WHERE a.id IN ({marks}) AND {VISIBLE}", chunk))
    return out


#: Extra hits fetched without filters, for the hidden ones dropped after ranking.
_OVERFETCH = 200
#: The widest unfiltered fetch (sqlite-vec's KNN also caps k at 4096).
_MAX_FETCH = 4096


def search(box: Photobox, *, q: str = "", like: int | None = None, f: Filters | None = None,
           limit: int = MAX_RESULTS, read: LimitedReader | None = None) -> SearchOutcome:
    """Rank by a description ``q`` or by similarity to asset ``like``, within filters ``f``;
    every query through ``read`` (a request's reader; by default one with the web's time limit)."""
    if read is None:
        from photobox.web.deps import reader_for

        read = reader_for(box)
    f = f or Filters()
    q = q.strip()
    if not q and like is None:
        if not f.narrowing:
            return SearchOutcome(message=None)
        with read.connection() as conn:
            ids = search_filters.filtered_page(conn, f, before=None, limit=limit)
        return SearchOutcome(ids=ids, message=None if ids else "Nothing matches these filters.")
    with read.connection() as conn:
        space = vectors.active_space(conn)
    model = box.models.clip() if q else None
    if space is None or (q and model is None):
        return SearchOutcome(message=box.models.status()["message"] if model is None
                             else "Search by description starts once photos are indexed.")
    if q and space.model != model.model_id:
        # A new model is filling its own space; its text vectors do not fit the old one, and
        # the old model's files are gone. Say so rather than rank with mismatched vectors.
        return SearchOutcome(message="Search by description is being rebuilt for a new model; "
                                     "it is back once the library is indexed again.")
    if q:
        query = model.embed_texts([q])[0]
    with read.connection() as conn:
        if like is not None:
            query = vectors.get_vector(conn, space.id, like)
            if query is None:
                return SearchOutcome(message="That photo is not indexed for search yet.")
        # The cut-off applies to descriptions; "more like this" always has a best match.
        min_score = box.settings.search_min_score if q else None
        allowed = search_filters.allowed_ids(conn, f) if f.narrowing else None
        # Without filters the index also holds hidden assets (trash, archive, motion parts):
        # over-fetch, drop them, and widen the fetch while hidden ones crowd out the page.
        k = limit + (0 if allowed is not None else _OVERFETCH)
        while True:
            try:
                raw = vectors.search(conn, space.id, query, k=k, allowed_ids=allowed, min_score=min_score)
            except vectors.SpaceUnavailable:  # retired between our two reads: the next search uses the new one
                return SearchOutcome(message="Search was just switched to a new model; please try again.")
            hits = [(i, s) for i, s in raw if i != like]
            if allowed is None:
                keep = _visible(conn, [i for i, _ in hits])
                hits = [(i, s) for i, s in hits if i in keep]
            if allowed is not None or len(hits) >= limit or len(raw) < k or k >= _MAX_FETCH:
                break
            k = min(k * 4, _MAX_FETCH)
    hits = hits[:limit]
    if not hits:
        return SearchOutcome(ranked=True, message=f"No good match for “{q}”." if q else "Nothing similar found.")
    return SearchOutcome(ids=[i for i, _ in hits], scores=[s for _, s in hits], ranked=True)
