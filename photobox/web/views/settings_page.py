"""Settings: account (password) and API keys."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox import auth, throttle
from photobox.library import libraries
from photobox.web.params import Count
from photobox.web.render import page
from photobox.web.security import client_address

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class NewKeyForm(Struct):
    name: str = ""
    scopes: str = "all"
    csrf_token: str = ""


class PasswordForm(Struct):
    current: str = ""
    password: str = ""
    password2: str = ""
    csrf_token: str = ""


class LibraryForm(Struct):
    path: str = ""
    name: str = ""
    exclusions: str = ""
    scan_minutes: Count = 360
    csrf_token: str = ""


def _storage(box, conn) -> dict:
    usage = shutil.disk_usage(box.data_dir)
    count, size = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM assets WHERE library_id = 1").fetchone()
    ext_count = conn.execute("SELECT count(*) FROM assets WHERE library_id != 1").fetchone()[0]
    return {"data_dir": str(box.data_dir), "free": usage.free, "total": usage.total, "uploaded": count,
            "uploaded_bytes": size, "external": ext_count}


async def _render(request: Request, *, new_secret: str | None = None, message: str | None = None,
                  error: str | None = None, status_code: int = 200, block: str | None = None) -> Response:
    box = request.app.state.photobox

    def load(conn):
        return auth.list_api_keys(conn), libraries.list_libraries(conn), _storage(box, conn)

    keys, libs, storage = await box.db.read(load)
    return page(request, "settings.html", block=block or ("api_keys" if new_secret else None), keys=keys,
                libraries=libs, storage=storage, new_secret=new_secret, message=message, error=error,
                status_code=status_code)


@get("/settings", include_in_schema=False)
async def settings_page(request: Request) -> Response:
    return await _render(request)


@post("/settings/api-keys", include_in_schema=False)
async def create_key(request: Request, data: Annotated[NewKeyForm, Form]) -> Response:
    try:
        scopes = auth.parse_scopes(data.scopes)
    except ValueError as exc:  # never guess: an unknown scope used to become "all"
        return await _render(request, error=f"No key was made: {exc}.", status_code=400, block="api_keys")
    _, secret = await request.app.state.photobox.db.write(lambda c: auth.create_api_key(c, data.name, scopes=scopes))
    return await _render(request, new_secret=secret)


@post("/settings/api-keys/{key_id:int}/revoke", include_in_schema=False)
async def revoke_key(request: Request, key_id: FromPath[int]) -> Response:
    await request.app.state.photobox.db.write(auth.revoke_api_key, key_id)
    if request.headers.get("hx-request") == "true":
        keys = await request.app.state.photobox.db.read(auth.list_api_keys)
        return page(request, "settings.html", block="api_keys", keys=keys, new_secret=None)
    return Redirect("/settings", status_code=303)


@post("/settings/password", include_in_schema=False)
async def change_password(request: Request, data: Annotated[PasswordForm, Form]) -> Response:
    box = request.app.state.photobox
    user = request.scope["user"]
    # The current password is a password try too: the session's own budget (a stolen session
    # must not guess it freely; an attacker's failures elsewhere do not block the owner here).
    a = request.scope["auth"]
    key = throttle.session_key(a.session_token) if a.session_token else throttle.address_key(client_address(request.scope))
    guesses: throttle.GuessThrottle = request.app.state.password_throttle
    wait = guesses.retry_after(key)
    if wait:
        response = await _render(request, error="Too many wrong passwords. " + throttle.try_again(wait),
                                 status_code=429)
        response.headers["Retry-After"] = str(wait)
        return response

    def check() -> bool:
        with box.db.reader() as conn:
            return auth.authenticate(conn, user.username, data.current) is not None

    if not await asyncio.to_thread(check):
        guesses.failed(key)
        return await _render(request, error="The current password is wrong.", status_code=400)
    guesses.succeeded(key)
    try:
        auth.validate_credentials(user.username, data.password)
    except ValueError as exc:
        return await _render(request, error=str(exc), status_code=400)
    if data.password != data.password2:
        return await _render(request, error="The two new passwords differ.", status_code=400)
    password_hash = await asyncio.to_thread(auth.hash_password, data.password)
    await box.db.write(lambda c: auth.set_password(c, None, password_hash), durable=True)
    # Changing the password ends every session, this one included.
    return Redirect("/login", status_code=303)


@post("/settings/libraries", include_in_schema=False)
async def add_library(request: Request, data: Annotated[LibraryForm, Form]) -> Response:
    box = request.app.state.photobox
    patterns = [p.strip() for p in data.exclusions.replace(",", "\n").splitlines() if p.strip()]
    try:
        lib_id = await box.db.write(lambda c: libraries.add_library(
            c, Path(data.path), name=data.name, exclusions=[*libraries.DEFAULT_EXCLUSIONS, *patterns],
            scan_minutes=max(0, data.scan_minutes), now=box.clock(), data_dir=box.data_dir))
    except ValueError as exc:
        return await _render(request, error=str(exc), status_code=400, block="libraries")
    await box.scheduler.enqueue("scan", str(lib_id), force=True)
    return await _render(request, message="Library added; the first scan has started.", block="libraries")


@post("/settings/libraries/{library_id:int}/scan", include_in_schema=False)
async def scan_library(request: Request, library_id: FromPath[int]) -> Response:
    box = request.app.state.photobox
    await box.scheduler.enqueue("scan", str(library_id), force=True)
    return await _render(request, message="Scan started.", block="libraries")


@post("/settings/libraries/{library_id:int}/remove", include_in_schema=False)
async def remove_library(request: Request, library_id: FromPath[int]) -> Response:
    box = request.app.state.photobox
    try:
        await box.db.write(lambda c: (libraries.remove_library(c, library_id),
                                      c.execute("DELETE FROM libraries WHERE id = ? AND kind = 'external'", (library_id,))))
    except ValueError as exc:
        return await _render(request, error=str(exc), status_code=400, block="libraries")
    return await _render(request, message="Library removed. Its files were not touched; its photos are in the trash.",
                         block="libraries")


ROUTES = [settings_page, create_key, revoke_key, change_password, add_library, scan_library, remove_library]
