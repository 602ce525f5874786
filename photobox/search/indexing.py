"""The ``clip`` job: embed each asset's preview into the current embedding space.

One job works through the assets that have no vector in the space yet, in batches (the
image tower runs a batch at a time, which is what makes a Pi bearable). The first space is
activated at once, so search works while the library is still being embedded. When the
model changes, a new space is filled the same way while search keeps using the old one,
and the new one takes over when every asset that can be embedded has its vector.
Idempotent: an asset that has a vector in the space is no longer missing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from PIL import Image

from photobox.jobs import Job, Stopping
from photobox.library.paths import derived_path
from photobox.plugins import Feature
from photobox.search import vectors

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["BATCH", "queue_indexing"]

log = logging.getLogger(__name__)

BATCH = 16


def _load_preview(box: Photobox, asset_id: int) -> Image.Image | None:
    path = derived_path(box, "preview", asset_id)
    try:
        with Image.open(path) as im:
            im.draft("RGB", (448, 448))  # the tower sees 224 px: decode the JPEG at a fraction
            return im.convert("RGB")
    except FileNotFoundError:
        return None  # no preview yet (or the file cannot be shown): the thumbs job queues us again
    except (OSError, ValueError) as exc:
        log.warning("clip: cannot read the preview of asset %s: %s", asset_id, exc)
        return None


feature = Feature("search")


def _clip_installed(box: Photobox) -> bool:
    return box.models.clip() is not None


@feature.job("clip", title="Search index", priority=10, after="thumbs", batch=True, ready=_clip_installed)
def clip_job(job: Job) -> None:
    box: Photobox = job.context
    model = box.models.clip()
    if model is None:
        return  # no model installed: search by description is off; nothing to do
    with box.db.transaction() as conn:
        space = vectors.ensure_space(conn, model.model_id, model.embedding_size)
        if vectors.active_space(conn) is None:
            vectors.activate(conn, space.id, force=True)  # first model: search as vectors arrive
    skipped = 0
    done = 0
    before: int | None = None
    while True:
        if job.should_stop():
            raise Stopping()
        with box.db.reader() as conn:
            ids = vectors.missing_assets(conn, space.id, BATCH, before_id=before)
        if not ids:
            break
        before = ids[-1]
        images, ready = [], []
        for asset_id in ids:
            image = _load_preview(box, asset_id)
            if image is None:
                skipped += 1
            else:
                images.append(image)
                ready.append(asset_id)
        if not ready:
            continue
        embeddings = model.embed_images(images)
        with box.db.transaction() as conn:
            vectors.upsert_many(conn, space.id, ready, embeddings)
        done += len(ready)
    with box.db.transaction() as conn:
        building = vectors.building_space(conn)
        if building is not None and building.id == space.id:
            # Whatever is still missing has no preview to embed (yet): do not hold the new
            # model back for files that cannot be shown.
            vectors.activate(conn, space.id, force=True)
            log.info("search: embedding space %s (%s) is complete and now active", space.id, model.model_id)
    if done or skipped:
        log.info("clip: embedded %d asset(s), %d without a preview yet", done, skipped)


@feature.every(300, "search-indexing")
async def queue_indexing(box: Photobox) -> None:
    """Periodic: drop vectors of deleted assets, build the search mirror ahead of the first
    search, and queue ``clip`` when assets lack vectors."""
    await box.db.write(vectors.sweep)
    active = await box.db.read(vectors.active_space)
    if active is not None:
        await asyncio.to_thread(vectors.warm, box.db, active.id)
    model = await asyncio.to_thread(box.models.clip)
    if model is None:
        return

    def pending(conn) -> bool:
        spaces = [s for s in (vectors.active_space(conn), vectors.building_space(conn)) if s is not None]
        target = next((s for s in spaces if s.model == model.model_id), None)
        return target is None or bool(vectors.missing_assets(conn, target.id, 1))

    if await box.db.read(pending):
        await box.scheduler.enqueue("clip", "", force=True)


@feature.routes
def _routes():
    from photobox.search import views as search

    return search.ROUTES


@feature.viewer_scope("search")
async def _viewer_scope(request, box: Photobox, asset_id: int):
    """Opened from search results: move within them (the query is re-run; its text embedding is
    cached, the ranking takes milliseconds)."""
    from photobox.search.service import search
    from photobox.search.views import SearchScope, search_params
    q, like, f, query_string = search_params(request)
    outcome = await asyncio.to_thread(search, box, q=q, like=like, f=f)
    newer = older = None
    if asset_id in outcome.ids:
        i = outcome.ids.index(asset_id)
        newer = outcome.ids[i - 1] if i > 0 else None
        older = outcome.ids[i + 1] if i + 1 < len(outcome.ids) else None
    return SearchScope(query_string), newer, older, f"/search?{query_string}"
