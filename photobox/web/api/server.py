"""``/api/server``: what this photobox is and can do; ``/api/jobs``: the job queue."""

from __future__ import annotations

import platform
import sys

from litestar import Request, get, post
from litestar.params import FromQuery
from msgspec import Struct

from photobox import __version__
from photobox.db import schema_version
from photobox.jobs import store
from photobox.web.deps import Box, Read
from photobox.web.params import OptionalId


class ServerInfo(Struct):
    version: str
    schema: int
    python: str
    machine: str
    features: dict[str, bool]


class Me(Struct):
    id: int
    username: str
    auth: str


class JobCounts(Struct):
    counts: dict[str, dict[str, int]]


@get("/api/server", tags=["server"], summary="Version, schema and available features")
async def server_info(read: Read) -> ServerInfo:
    schema = await read(schema_version)
    return ServerInfo(__version__, schema, sys.version.split()[0], platform.machine(),
                      features={"clip_search": False, "faces": False})


@get("/api/me", tags=["server"], summary="The authenticated user")
async def me(request: Request) -> Me:
    user = request.scope["user"]
    return Me(user.id, user.username, request.scope["auth"].kind)


@get("/api/jobs", tags=["jobs"], summary="Job counts by kind and state")
async def job_counts(read: Read) -> JobCounts:
    return JobCounts(await read(store.counts))


@post("/api/jobs/retry", tags=["jobs"], summary="Queue failed jobs again", status_code=200)
async def retry_jobs(
    box: Box, kind: FromQuery[str | None] = None, job_id: FromQuery[OptionalId] = None
) -> dict[str, int]:
    n = await box.db.write(lambda c: store.retry(c, now=box.clock(), job_id=job_id, kind=kind))
    box.scheduler.notify()
    return {"retried": n}


ROUTES = [server_info, me, job_counts, retry_jobs]
