"""Settings → Backups (list, back up now, staged restore, upload a backup) and Settings →
Library health (integrity findings, storage problems). Nothing here deletes a photo; a
restore is staged and applied at the next start (see :mod:`photobox.datadir.restore`)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import File, Response
from msgspec import Struct

from photobox.datadir import restore
from photobox.library import assets
from photobox.safety import backups, integrity
from photobox.web.deps import Box, Read
from photobox.web.intake import Multipart, receive_body
from photobox.web.params import Id
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


async def _render(request: Request, box: Box, read: Read, *, message: str | None = None,
                  error: str | None = None, status_code: int = 200) -> Response:
    def load():
        files = backups.list_backups(box.path("backups"))
        with read.connection() as conn:
            row = conn.execute("SELECT state, error, updated_at FROM jobs WHERE kind = 'backup' "
                               "ORDER BY updated_at DESC LIMIT 1").fetchone()
        return files, restore.staged_info(box.data_dir), row

    files, staged, job = await asyncio.to_thread(load)
    return page(request, "backups.html", backups=files, staged=staged, job=job, settings=box.settings,
                message=message, error=error, status_code=status_code)


@get("/settings/backups", include_in_schema=False)
async def backups_page(request: Request, box: Box, read: Read) -> Response:
    return await _render(request, box, read)


@post("/settings/backups", include_in_schema=False)
async def backup_now(request: Request, box: Box, read: Read,
                     data: Annotated[TokenForm, Form]) -> Response:
    await box.scheduler.enqueue("backup", "manual", force=True)
    return await _render(request, box, read, message="A backup is being made in the background; reload this page in a "
                                          "moment to see it.")


@get("/settings/backups/{name:str}", include_in_schema=False)
async def download_backup(box: Box, name: FromPath[str]) -> File:
    path = _backup_path(box, name)
    return File(path, filename=path.name, media_type="application/octet-stream" if name.endswith(".db")
                else "application/json")


async def _stage(request: Request, box: Box, read: Read, source) -> Response:
    try:
        info = await asyncio.to_thread(restore.stage_restore, box.data_dir, source)
    except (backups.BackupError, OSError) as exc:
        return await _render(request, box, read, error=f"Not restored: {exc}", status_code=400)
    return await _render(request, box, read, message=(
        f"Restore staged ({info['assets']} photos and videos, schema {info['schema']}). It replaces the database "
        "when photobox restarts (e.g. `sudo systemctl restart photobox`, or restart the box); until then nothing "
        "changes. The current database is kept as a restore point in backups/."))


@post("/settings/backups/restore", include_in_schema=False)
async def restore_backup(request: Request, box: Box, read: Read,
                         data: Annotated[RestoreForm, Form]) -> Response:
    if data.confirm != "yes":
        return await _render(request, box, read, error="Tick the box to confirm the restore.", status_code=400)
    path = _backup_path(box, data.name)
    if not path.name.endswith(".db"):
        raise NotFoundException("no such backup")
    return await _stage(request, box, read, path)


#: A database file to restore, and the box that confirms it.
BACKUP_FORM = Multipart(("file",), text_fields=("confirm",), what="the upload",
                        not_multipart="send the backup file as multipart/form-data in a field named 'file'")


@post("/settings/backups/upload", include_in_schema=False, request_max_body_size=None)
async def upload_backup(request: Request, box: Box, read: Read) -> Response:
    """Stream an uploaded database file to tmp/ (keeping the disk reserve, like every upload),
    then verify and stage it like a listed backup."""
    body = await receive_body(box, request.stream(), request.headers, form=BACKUP_FORM)
    try:
        if not body.files:
            return await _render(request, box, read, error="Choose a backup file to upload.", status_code=400)
        if body.fields.get("confirm") != "yes":
            return await _render(request, box, read, error="Tick the box to confirm the restore.", status_code=400)
        return await _stage(request, box, read, body.files[0].path)
    finally:
        body.discard()


@post("/settings/backups/cancel-restore", include_in_schema=False)
async def cancel_restore(request: Request, box: Box, read: Read,
                         data: Annotated[TokenForm, Form]) -> Response:
    (box.data_dir / restore.STAGED_NAME).unlink(missing_ok=True)
    return await _render(request, box, read, message="The staged restore was cancelled; the database stays as it is.")


@get("/settings/health", include_in_schema=False)
async def health_page(request: Request, box: Box, read: Read, after: FromQuery[Id] = 0) -> Response:
    def load(conn):
        return integrity.load_state(conn), integrity.issue_counts(conn), integrity.list_issues(conn, after_id=after)

    state, counts, issues = await read(load)
    with_total = await read(assets.count_assets)
    return page(request, "health.html", state=state, counts=counts, issues=issues, total=with_total,
                problems=box.storage_problems, settings=box.settings,
                next_after=issues[-1]["id"] if len(issues) == 100 else None, message=None, error=None)


@post("/settings/health/check", include_in_schema=False)
async def check_now(box: Box, data: Annotated[TokenForm, Form]) -> Response:
    await box.scheduler.enqueue("integrity", "slice", force=True)
    from litestar.response import Redirect

    return Redirect("/settings/health", status_code=303)


ROUTES = [backups_page, backup_now, download_backup, restore_backup, upload_backup, cancel_restore, health_page,
          check_now]
