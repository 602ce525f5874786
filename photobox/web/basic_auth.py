"""HTTP Basic auth for the WebDAV routes (phone apps speak Basic, not cookies or Bearer).

The password is an API key (recommended: fast, revocable, shown in Settings; the user name is
then ignored) or the owner's name and password. A key is held to its scope by the app guard
(:func:`photobox.web.security.scope_allows`), as a Bearer key is. A key cannot be guessed, so a
wrong one costs no budget.

Argon2 takes 50–300 ms, and a DAV client sends the credential on every request, so a verified
name+password is remembered (by its SHA-256, in memory, at most :data:`_KNOWN_MAX`, and only
while the password is unchanged): within :data:`CACHE_SECONDS` it is accepted without argon2,
and after that it is still a *known* credential, checked again but never refused by the
throttle. That is how a phone app is a "known device" without cookies. Other tries count
against the same budget as the login page (:mod:`photobox.throttle`, by client address), and
a client over it gets 429 instead of another argon2 run.

Basic credentials are resolved only for ``/dav`` paths: browsers replay cached Basic
credentials on any request, and every state-changing DAV method (PUT, DELETE, MKCOL, MOVE,
COPY, PROPPATCH, LOCK) is one a cross-site page cannot send without a CORS preflight,
which photobox never grants. POST is refused under ``/dav``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from typing import TYPE_CHECKING

from litestar import Request, Response

from photobox import auth
from photobox.throttle import GuessThrottle, address_key
from photobox.web.params import scope_extra

if TYPE_CHECKING:
    from litestar.types import Scope

    from photobox.core import Photobox
    from photobox.web.security import Auth

__all__ = ["CACHE_SECONDS", "is_dav_request", "resolve_basic", "unauthorized"]

CACHE_SECONDS = 300.0
_KNOWN_MAX = 64


def _decode(value: str) -> tuple[str, str] | None:
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def _known(scope: Scope) -> dict[bytes, tuple[float, float]]:
    """SHA-256 of a verified ``user:password`` → (verified at, the password's ``password_changed_at``)."""
    state = scope["litestar_app"].state
    if getattr(state, "dav_known", None) is None:
        state.dav_known = {}
    return state.dav_known


async def resolve_basic(box: Photobox, scope: Scope, credentials: str) -> Auth | None:
    """The :class:`~photobox.web.security.Auth` for a Basic credential, or None.

    When the client is throttled, ``scope["dav_retry_after"]`` says for how long.
    """
    from photobox.web.security import Auth, client_address

    decoded = _decode(credentials)
    if decoded is None:
        return None
    user, password = decoded
    # An API key in the password field (or, for apps with one field, in the user name).
    for secret in (password, user if not password else ""):
        if secret.startswith(auth.API_KEY_PREFIX):
            found = await box.db.read(auth.find_api_key, secret)
            owner = await box.db.read(auth.get_owner) if found is not None else None
            if found is None or owner is None:
                return None  # 192 random bits cannot be guessed: no budget spent, no argon2 run
            if found.last_used_at is None or time.time() - found.last_used_at > 300:
                await box.db.write(auth.mark_api_key_used, found.id)
            return Auth("basic", owner, api_key_id=found.id, scopes=found.scopes)
    row = await box.db.read(lambda c: c.execute(
        "SELECT id, username, password_hash, password_changed_at FROM users WHERE id = 1").fetchone())
    if row is None:
        return None
    owner = auth.User(row[0], row[1])
    ok_name = hmac.compare_digest(row[1].casefold().encode(), user.strip().casefold().encode())
    key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
    known = _known(scope)
    hit = known.get(key)
    now = time.monotonic()
    if hit is not None and hit[1] != row[3]:  # the password changed since
        del known[key]
        hit = None
    if hit is not None and ok_name and now - hit[0] < CACHE_SECONDS:
        return Auth("basic", owner)
    guesses: GuessThrottle = scope["litestar_app"].state.password_throttle
    guess_key = address_key(client_address(scope))
    if hit is None:  # a known credential is never throttled: others' failures cannot lock it out
        retry = guesses.retry_after(guess_key)
        if retry:
            scope_extra(scope)["dav_retry_after"] = retry
            return None
    if not (ok_name and await asyncio.to_thread(auth.verify_password, row[2], password)):
        guesses.failed(guess_key)
        known.pop(key, None)
        return None
    if hit is None:  # a known credential did not use the address's budget: leave its count alone
        guesses.succeeded(guess_key)
    known.pop(key, None)
    if len(known) >= _KNOWN_MAX:
        del known[next(iter(known))]
    known[key] = (now, row[3])
    return Auth("basic", owner)


def is_dav_request(request: Request) -> bool:
    """Whether the request is for ``/dav`` (by the raw path: the mount has cut ``scope["path"]``)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return raw == b"/dav" or raw.startswith(b"/dav/")


def unauthorized(request: Request) -> Response:
    """The 401 (or 429 while throttled) every DAV client understands: a Basic challenge."""
    retry = request.scope.get("dav_retry_after")
    if retry:
        return Response("too many failed logins from this address; try again later\n", status_code=429,
                        media_type="text/plain", headers={"Retry-After": str(retry)})
    return Response("photobox WebDAV: log in with any user name and an API key (Settings → API keys) "
                    "as the password\n", status_code=401, media_type="text/plain",
                    headers={"WWW-Authenticate": 'Basic realm="photobox", charset="UTF-8"'})
