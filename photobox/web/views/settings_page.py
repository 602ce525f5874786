"""Settings: account (password) and API keys."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox import auth
from photobox.web.render import page

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class NewKeyForm(Struct):
    name: str = ""
    csrf_token: str = ""


class PasswordForm(Struct):
    current: str = ""
    password: str = ""
    password2: str = ""
    csrf_token: str = ""


async def _render(request: Request, *, new_secret: str | None = None, message: str | None = None,
                  error: str | None = None, status_code: int = 200) -> Response:
    keys = await request.app.state.photobox.db.read(auth.list_api_keys)
    return page(request, "settings.html", block="api_keys" if new_secret else None, keys=keys,
                new_secret=new_secret, message=message, error=error, status_code=status_code)


@get("/settings", include_in_schema=False)
async def settings_page(request: Request) -> Response:
    return await _render(request)


@post("/settings/api-keys", include_in_schema=False)
async def create_key(request: Request, data: Annotated[NewKeyForm, Form]) -> Response:
    _, secret = await request.app.state.photobox.db.write(lambda c: auth.create_api_key(c, data.name))
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

    def check() -> bool:
        with box.db.reader() as conn:
            return auth.authenticate(conn, user.username, data.current) is not None

    if not await asyncio.to_thread(check):
        return await _render(request, error="The current password is wrong.", status_code=400)
    try:
        auth.validate_credentials(user.username, data.password)
    except ValueError as exc:
        return await _render(request, error=str(exc), status_code=400)
    if data.password != data.password2:
        return await _render(request, error="The two new passwords differ.", status_code=400)
    password_hash = await asyncio.to_thread(auth.hash_password, data.password)
    await box.db.write(lambda c: auth.set_password(c, None, password_hash))
    # Changing the password ends every session, this one included.
    return Redirect("/login", status_code=303)


ROUTES = [settings_page, create_key, revoke_key, change_password]
