"""First-run setup, login and logout."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox import auth, throttle
from photobox.web.deps import Box, Read
from photobox.web.render import page
from photobox.web.security import (
    DEVICE_COOKIE,
    SESSION_COOKIE,
    client_address,
    ensure_anon_cookie,
    is_secure,
    local_path,
)

PUBLIC = {"public": True}
#: How long a browser stays a known device after its last login.
DEVICE_DAYS = 400


class SetupForm(Struct):
    username: str = ""
    password: str = ""
    password2: str = ""
    csrf_token: str = ""


class LoginForm(Struct):
    username: str = ""
    password: str = ""
    next: str = "/"
    csrf_token: str = ""


Form = Body(media_type=RequestEncodingType.URL_ENCODED)


def _login_response(request: HTMXRequest, box: Box, token: str, target: str) -> Response:
    response: Response = Redirect(target, status_code=303)
    if request.htmx:
        response = Response("", status_code=204, headers={"HX-Redirect": target})
    response.set_cookie(
        SESSION_COOKIE, token, max_age=box.settings.session_days * 86400, path="/",
        httponly=True, samesite="lax", secure=is_secure(request),
    )
    # This browser is now a known device: its own guess budget, which nobody else's failures
    # can use up (photobox.throttle). Only the login form reads it, and it outlives a logout.
    device = request.cookies.get(DEVICE_COOKIE)
    if auth.device_id(box.secret_key, device) is None:
        device = auth.new_device_token(box.secret_key)
    response.set_cookie(DEVICE_COOKIE, device, max_age=DEVICE_DAYS * 86400, path="/login", httponly=True,
                        samesite="strict", secure=is_secure(request))
    return response


def guess_key(request: Request, box: Box) -> str:
    """Whose budget a wrong owner password is counted against: the known device, else the address."""
    device = auth.device_id(box.secret_key, request.cookies.get(DEVICE_COOKIE))
    return throttle.device_key(device) if device else throttle.address_key(client_address(request.scope))


async def _setup_closed(request: Request, read: Read) -> Response | None:
    """The answer while setup is closed to the network (after ``photobox rebuild``), else None."""
    reason = await read(auth.setup_closed)
    if reason is None:
        return None
    return page(request, "error.html", status_code=403, status=403,
                detail=f"{reason} Its owner account is not made here: on the machine photobox runs on, run "
                       "`photobox user set-password`, then log in.")


@get("/setup", opt=PUBLIC, include_in_schema=False)
async def setup_page(request: Request, read: Read) -> Response:
    if await read(auth.get_owner) is not None:
        return Redirect("/login", status_code=303)
    if (closed := await _setup_closed(request, read)) is not None:
        return closed
    ensure_anon_cookie(request)
    return page(request, "setup.html", error=None, username="")


@post("/setup", opt=PUBLIC, include_in_schema=False)
async def setup_submit(request: HTMXRequest, box: Box, read: Read,
                       data: Annotated[SetupForm, Form]) -> Response:
    if await read(auth.get_owner) is not None:
        return Redirect("/login", status_code=303)
    if (closed := await _setup_closed(request, read)) is not None:
        return closed
    error = None
    try:
        auth.validate_credentials(data.username, data.password)
        if data.password != data.password2:
            error = "The two passwords differ."
    except ValueError as exc:
        error = str(exc)
    if error:
        return page(request, "setup.html", error=error, username=data.username, status_code=400)
    password_hash = await asyncio.to_thread(auth.hash_password, data.password)

    def create(conn) -> auth.User | None:  # the closed check and the insert in one transaction
        return None if auth.setup_closed(conn) else auth.create_owner(conn, data.username, password_hash)

    try:
        user = await box.db.write(create, durable=True)
    except ValueError:
        return Redirect("/login", status_code=303)
    if user is None:  # closed while the form was filled in
        return await _setup_closed(request, read) or Redirect("/login", status_code=303)
    ua = request.headers.get("user-agent", "")
    addr = client_address(request.scope)
    token = await box.db.write(lambda c: auth.create_session(c, user, days=box.settings.session_days, user_agent=ua, remote_addr=addr))
    return _login_response(request, box, token, "/")


@get("/login", opt=PUBLIC, include_in_schema=False)
async def login_page(request: Request, read: Read, next: FromQuery[str] = "/") -> Response:
    if await read(auth.get_owner) is None:
        return Redirect("/setup", status_code=303)
    if request.scope.get("user") is not None:
        return Redirect(local_path(next), status_code=303)
    ensure_anon_cookie(request)
    return page(request, "login.html", error=None, username="", next=local_path(next))


@post("/login", opt=PUBLIC, include_in_schema=False)
async def login_submit(request: HTMXRequest, box: Box, read: Read,
                       data: Annotated[LoginForm, Form]) -> Response:
    guesses: throttle.GuessThrottle = request.app.state.password_throttle
    addr = client_address(request.scope)
    key = guess_key(request, box)
    target = local_path(data.next)
    wait = guesses.retry_after(key)
    if wait:
        response = page(request, "login.html", error="Too many failed logins. " + throttle.try_again(wait),
                        username=data.username, next=target, status_code=429)
        response.headers["Retry-After"] = str(wait)
        return response
    def check() -> auth.User | None:
        # argon2 takes ~0.3 s on a Pi: a plain thread, not one of the few page-reader threads.
        # The limit counts SQL steps only: the hash check after the one SELECT is not cut short.
        with read.connection() as conn:
            return auth.authenticate(conn, data.username, data.password)

    user = await asyncio.to_thread(check)
    if user is None:
        guesses.failed(key)
        return page(request, "login.html", error="Wrong user name or password.", username=data.username,
                    next=target, status_code=401)
    guesses.succeeded(key)
    ua = request.headers.get("user-agent", "")
    token = await box.db.write(lambda c: auth.create_session(c, user, days=box.settings.session_days, user_agent=ua, remote_addr=addr))
    return _login_response(request, box, token, target)


@post("/logout", include_in_schema=False)
async def logout(request: Request, box: Box) -> Response:
    a = request.scope.get("auth")
    if a is not None and a.session_token:
        await box.db.write(auth.delete_session, a.session_token)
    response = Redirect("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


ROUTES = [setup_page, setup_submit, login_page, login_submit, logout]
