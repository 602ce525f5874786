"""The jobs page: what the pipeline is doing, what failed and why, with retry.

HTMX polls the progress block every two seconds and stops (status 286) once nothing is
queued or running; a retry swaps the block back in, which starts polling again.
(litestar-htmx's ``HXStopPolling`` answers 286 with an empty body; here the last state must
be swapped in, so the page keeps its body and takes the status.)
"""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.plugins.htmx import HTMXRequest, HXStopPolling
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox.jobs import store
from photobox.jobs.failures import list_failures
from photobox.web.deps import Box, Read
from photobox.web.params import Id
from photobox.web.render import page
from photobox.web.security import local_path

STATES = ("queued", "running", "done", "failed")
_STOP_POLLING = HXStopPolling().status_code  # 286


class RetryForm(Struct):
    job_id: Id | None = None
    kind: str | None = None
    back: str = ""  # the viewer's Retry comes back to the photo
    csrf_token: str = ""


async def _render(request: HTMXRequest, box: Box, read: Read) -> Response:
    def load(conn):
        return store.counts(conn), list_failures(conn, box.pipeline.asset_kinds(), limit=50)

    counts, failed = await read(load)
    names = box.scheduler.registry.titles()
    kinds = [k for k in names if k in counts] + sorted(k for k in counts if k not in names)
    busy = any(counts[k].get("queued") or counts[k].get("running") for k in counts)
    response = page(request, "jobs.html", block="progress", counts=counts, kinds=kinds, names=names,
                    states=STATES, failed=failed, busy=busy)
    if request.htmx and request.method == "GET" and not busy:
        response.status_code = _STOP_POLLING  # htmx swaps this last state in and stops polling
    return response


@get("/jobs", include_in_schema=False)
async def jobs_page(request: HTMXRequest, box: Box, read: Read) -> Response:
    return await _render(request, box, read)


@post("/jobs/retry", include_in_schema=False)
async def retry(request: HTMXRequest, box: Box, read: Read,
                data: Annotated[RetryForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response:
    await box.db.write(lambda c: store.retry(c, now=box.clock(), job_id=data.job_id, kind=data.kind or None))
    box.scheduler.notify()
    if request.htmx and not data.back:
        return await _render(request, box, read)
    return Redirect(local_path(data.back) if data.back else "/jobs", status_code=303)


ROUTES = [jobs_page, retry]
