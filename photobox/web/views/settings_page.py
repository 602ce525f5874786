"""Settings: the account (password) and API keys, with each feature's own sections between them."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox import auth, throttle
from photobox.web.deps import Box, Read
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


async def render_settings(request: HTMXRequest, box: Box, read: Read, *,
                          new_secret: str | None = None, message: str | None = None, error: str | None = None,
                          status_code: int = 200, block: str | None = None,
                          block_template: str = "settings.html") -> Response:
    """The Settings page: the account and API keys, and between them each feature's sections
    (``@feature.settings_section``). For an HTMX request, just ``block`` of ``block_template``."""

    def load(conn) -> dict:
        context: dict[str, Any] = {"keys": auth.list_api_keys(conn), "sections": []}
        for feature in box.features:
            for section in feature.settings_sections:
                context.update(section.load(box, conn))
                context["sections"].append(section.template)
        return context

    context = await read(load)
    block = block or ("api_keys" if new_secret else None)
    name = block_template if block and request.htmx else "settings.html"
    return page(request, name, block=block, new_secret=new_secret, message=message, error=error,
                status_code=status_code, **context)


@get("/settings", include_in_schema=False)
async def settings_page(request: HTMXRequest, box: Box, read: Read) -> Response:
    return await render_settings(request, box, read)


@post("/settings/api-keys", include_in_schema=False)
async def create_key(request: HTMXRequest, box: Box, read: Read,
                     data: Annotated[NewKeyForm, Form]) -> Response:
    try:
        scopes = auth.parse_scopes(data.scopes)
    except ValueError as exc:  # never guess: an unknown scope used to become "all"
        return await render_settings(request, box, read, error=f"No key was made: {exc}.", status_code=400,
                                     block="api_keys")
    _, secret = await box.db.write(lambda c: auth.create_api_key(c, data.name, scopes=scopes))
    return await render_settings(request, box, read, new_secret=secret)


@post("/settings/api-keys/{key_id:int}/revoke", include_in_schema=False)
async def revoke_key(request: HTMXRequest, box: Box, read: Read, key_id: FromPath[int]) -> Response:
    await box.db.write(auth.revoke_api_key, key_id)
    if request.htmx:
        keys = await read(auth.list_api_keys)
        return page(request, "settings.html", block="api_keys", keys=keys, new_secret=None)
    return Redirect("/settings", status_code=303)


@post("/settings/password", include_in_schema=False)
async def change_password(request: HTMXRequest, box: Box, read: Read,
                          data: Annotated[PasswordForm, Form]) -> Response:
    user = request.scope["user"]
    # The current password is a password try too: the session's own budget (a stolen session
    # must not guess it freely; an attacker's failures elsewhere do not block the owner here).
    a = request.scope["auth"]
    key = throttle.session_key(a.session_token) if a.session_token else throttle.address_key(client_address(request.scope))
    guesses: throttle.GuessThrottle = request.app.state.password_throttle
    wait = guesses.retry_after(key)
    if wait:
        response = await render_settings(request, box, read, status_code=429,
                                         error="Too many wrong passwords. " + throttle.try_again(wait))
        response.headers["Retry-After"] = str(wait)
        return response

    def check() -> bool:
        with read.connection() as conn:
            return auth.authenticate(conn, user.username, data.current) is not None

    if not await asyncio.to_thread(check):
        guesses.failed(key)
        return await render_settings(request, box, read, error="The current password is wrong.", status_code=400)
    guesses.succeeded(key)
    try:
        auth.validate_credentials(user.username, data.password)
    except ValueError as exc:
        return await render_settings(request, box, read, error=str(exc), status_code=400)
    if data.password != data.password2:
        return await render_settings(request, box, read, error="The two new passwords differ.", status_code=400)
    password_hash = await asyncio.to_thread(auth.hash_password, data.password)
    await box.db.write(lambda c: auth.set_password(c, None, password_hash), durable=True)
    # Changing the password ends every session, this one included.
    return Redirect("/login", status_code=303)


ROUTES = [settings_page, create_key, revoke_key, change_password]
