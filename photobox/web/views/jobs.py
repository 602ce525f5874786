"""The jobs page: what the pipeline is doing, what failed and why, with retry.

HTMX polls the progress block every two seconds and stops (status 286) once nothing is
queued or running; a retry swaps the block back in, which starts polling again.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox.jobs import store
from photobox.jobs.failures import list_failures
from photobox.web.params import Id
from photobox.web.render import page
from photobox.web.security import local_path

STATES = ("queued", "running", "done", "failed")


class RetryForm(Struct):
    job_id: Id | None = None
    kind: str | None = None
    back: str = ""  # the viewer's Retry comes back to the photo
    csrf_token: str = ""


async def _render(request: Request) -> Response:
    box = request.app.state.photobox

    def load(conn):
        return store.counts(conn), list_failures(conn, box.pipeline.asset_kinds(), limit=50)

    counts, failed = await box.db.read(load)
    names = box.scheduler.registry.titles()
    kinds = [k for k in names if k in counts] + sorted(k for k in counts if k not in names)
    busy = any(counts[k].get("queued") or counts[k].get("running") for k in counts)
    response = page(request, "jobs.html", block="progress", counts=counts, kinds=kinds, names=names,
                    states=STATES, failed=failed, busy=busy)
    if request.headers.get("hx-request") == "true" and request.method == "GET" and not busy:
        response.status_code = 286  # htmx swaps this last state in and stops polling
    return response


@get("/jobs", include_in_schema=False)
async def jobs_page(request: Request) -> Response:
    return await _render(request)


@post("/jobs/retry", include_in_schema=False)
async def retry(request: Request, data: Annotated[RetryForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response:
    box = request.app.state.photobox
    await box.db.write(lambda c: store.retry(c, now=box.clock(), job_id=data.job_id, kind=data.kind or None))
    box.scheduler.notify()
    if request.headers.get("hx-request") == "true" and not data.back:
        return await _render(request)
    return Redirect(local_path(data.back) if data.back else "/jobs", status_code=303)


ROUTES = [jobs_page, retry]
