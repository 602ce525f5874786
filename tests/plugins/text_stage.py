"""A test plugin through the same seam as the built-in features: a job kind that is a pipeline
stage after thumbnails (photos only) and a route that shows what the stage made.

Enabled with the ``plugins`` setting (``tests.plugins.text_stage``); never in production.
"""

from __future__ import annotations

import os

from litestar import Request, get
from litestar.exceptions import NotFoundException

from photobox.plugins import Feature

feature = Feature("test.text")


def _out(box, asset_id: int):
    return box.path("cache", "text", f"{asset_id}.txt")


@feature.job("test.text", title="Text in photos", after="thumbs", wanted=lambda kind, facts: kind == "image")
def text_job(job) -> None:
    """Idempotent like every stage: write a temp file, rename it into place."""
    box = job.context
    out = _out(box, int(job.target))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(f"text of asset {job.target}")
    os.replace(tmp, out)


@feature.routes
def _routes():
    @get("/api/test/text/{asset_id:int}", media_type="text/plain")
    async def text(request: Request, asset_id: int) -> str:
        path = _out(request.app.state.photobox, asset_id)
        if not path.exists():
            raise NotFoundException("no text for this photo")
        return path.read_text()

    return [text]
