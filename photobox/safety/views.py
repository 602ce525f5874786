"""Settings → Backups (list, back up now, staged restore, upload a backup) and Settings →
Library health (integrity findings, storage problems). Nothing here deletes a photo; a
restore is staged and applied at the next start (see :mod:`photobox.datadir.restore`)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import File, Response
from msgspec import Struct
from multipart import MultipartError, MultipartSegment, PushMultipartParser

from photobox.datadir import restore
from photobox.datadir.storage import TempWriter
from photobox.library import assets
from photobox.safety import backups, integrity
from photobox.web.params import Id, content_length
from photobox.web.render import page

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
_NAME = re.compile(r"^[A-Za-z0-9._-]+\.(db|json)$")


class RestoreForm(Struct):
    name: str = ""
    confirm: str = ""
    csrf_token: str = ""


class TokenForm(Struct):
    csrf_token: str = ""


def _backup_path(box, name: str):
    """A file in backups/ named by the user: only plain names of files that are listed."""
    if not _NAME.match(name or ""):
        raise NotFoundException("no such backup")
    path = box.path("backups", name)
    if not path.is_file():
        raise NotFoundException("no such backup")
    return path


async def _render(request: Request, *, message: str | None = None, error: str | None = None,
                  status_code: int = 200) -> Response:
    box = request.app.state.photobox

    def load():
        files = backups.list_backups(box.path("backups"))
        with box.db.reader() as conn:
            row = conn.execute("SELECT state, error, updated_at FROM jobs WHERE kind = 'backup' "
                               "ORDER BY updated_at DESC LIMIT 1").fetchone()
        return files, restore.staged_info(box.data_dir), row

    files, staged, job = await asyncio.to_thread(load)
    return page(request, "backups.html", backups=files, staged=staged, job=job, settings=box.settings,
                message=message, error=error, status_code=status_code)


@get("/settings/backups", include_in_schema=False)
async def backups_page(request: Request) -> Response:
    return await _render(request)


@post("/settings/backups", include_in_schema=False)
async def backup_now(request: Request, data: Annotated[TokenForm, Form]) -> Response:
    box = request.app.state.photobox
    await box.scheduler.enqueue("backup", "manual", force=True)
    return await _render(request, message="A backup is being made in the background; reload this page in a "
                                          "moment to see it.")


@get("/settings/backups/{name:str}", include_in_schema=False)
async def download_backup(request: Request, name: FromPath[str]) -> File:
    path = _backup_path(request.app.state.photobox, name)
    return File(path, filename=path.name, media_type="application/octet-stream" if name.endswith(".db")
                else "application/json")


async def _stage(request: Request, source) -> Response:
    box = request.app.state.photobox
    try:
        info = await asyncio.to_thread(restore.stage_restore, box.data_dir, source)
    except (backups.BackupError, OSError) as exc:
        return await _render(request, error=f"Not restored: {exc}", status_code=400)
    return await _render(request, message=(
        f"Restore staged ({info['assets']} photos and videos, schema {info['schema']}). It replaces the database "
        "when photobox restarts (e.g. `sudo systemctl restart photobox`, or restart the box); until then nothing "
        "changes. The current database is kept as a restore point in backups/."))


@post("/settings/backups/restore", include_in_schema=False)
async def restore_backup(request: Request, data: Annotated[RestoreForm, Form]) -> Response:
    box = request.app.state.photobox
    if data.confirm != "yes":
        return await _render(request, error="Tick the box to confirm the restore.", status_code=400)
    path = _backup_path(box, data.name)
    if not path.name.endswith(".db"):
        raise NotFoundException("no such backup")
    return await _stage(request, path)


@post("/settings/backups/upload", include_in_schema=False, request_max_body_size=None)
async def upload_backup(request: Request) -> Response:
    """Stream an uploaded database file to tmp/, then verify and stage it like a listed backup."""
    box = request.app.state.photobox
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data") or "boundary=" not in ctype:
        raise ClientException("send the backup file as multipart/form-data in a field named 'file'")
    boundary = ctype.split("boundary=", 1)[1].split(";")[0].strip().strip('"')
    writer: TempWriter | None = None
    confirmed = False
    segment: MultipartSegment | None = None
    value = bytearray()
    try:
        with PushMultipartParser(boundary, content_length=content_length(request.headers, -1),
                                 max_segment_count=10) as parser:
            async for chunk in request.stream():
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment = event
                        value.clear()
                        if event.name == "file" and event.filename is not None and writer is None:
                            writer = TempWriter(box.path("tmp"))
                    elif event is None:
                        if segment is not None and segment.name == "confirm":
                            confirmed = value.decode(errors="replace") == "yes"
                        segment = None
                    elif segment is not None:
                        if segment.name == "file" and writer is not None:
                            await writer.write(event)
                        elif len(value) < 4096:
                            value.extend(event)
            parser.parse(b"")
        if writer is None:
            return await _render(request, error="Choose a backup file to upload.", status_code=400)
        tmp, _, size = await writer.finish()
    except MultipartError as exc:
        if writer is not None:
            writer.discard()
        raise ClientException(f"the upload was cut short or malformed: {exc}") from None
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    try:
        if not confirmed:
            return await _render(request, error="Tick the box to confirm the restore.", status_code=400)
        return await _stage(request, tmp)
    finally:
        tmp.unlink(missing_ok=True)


@post("/settings/backups/cancel-restore", include_in_schema=False)
async def cancel_restore(request: Request, data: Annotated[TokenForm, Form]) -> Response:
    box = request.app.state.photobox
    (box.data_dir / restore.STAGED_NAME).unlink(missing_ok=True)
    return await _render(request, message="The staged restore was cancelled; the database stays as it is.")


@get("/settings/health", include_in_schema=False)
async def health_page(request: Request, after: FromQuery[Id] = 0) -> Response:
    box = request.app.state.photobox

    def load(conn):
        return integrity.load_state(conn), integrity.issue_counts(conn), integrity.list_issues(conn, after_id=after)

    state, counts, issues = await box.db.read(load)
    with_total = await box.db.read(assets.count_assets)
    return page(request, "health.html", state=state, counts=counts, issues=issues, total=with_total,
                problems=box.storage_problems, settings=box.settings,
                next_after=issues[-1]["id"] if len(issues) == 100 else None, message=None, error=None)


@post("/settings/health/check", include_in_schema=False)
async def check_now(request: Request, data: Annotated[TokenForm, Form]) -> Response:
    box = request.app.state.photobox
    await box.scheduler.enqueue("integrity", "slice", force=True)
    from litestar.response import Redirect

    return Redirect("/settings/health", status_code=303)


ROUTES = [backups_page, backup_now, download_backup, restore_backup, upload_backup, cancel_restore, health_page,
          check_now]
