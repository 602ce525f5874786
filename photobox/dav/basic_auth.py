"""HTTP Basic auth for the WebDAV routes (phone apps speak Basic, not cookies or Bearer).

The password is an API key (recommended: fast, revocable, shown in Settings; the user
name is then ignored) or the owner's name and password. Argon2 takes 50–300 ms, and a
DAV client sends the credential on every request, so a verified name+password is
remembered for :data:`CACHE_SECONDS` (by its SHA-256, in memory, and only while the
password is unchanged). Failures count against the same kind of per-address throttle as
the login page; a throttled client gets 429 instead of another argon2 run.

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

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from photobox import auth

if TYPE_CHECKING:
    from litestar.types import Scope

    from photobox.core import Photobox
    from photobox.web.security import Auth

__all__ = ["CACHE_SECONDS", "is_dav_path", "resolve_basic"]

CACHE_SECONDS = 300.0
_CACHE_MAX = 64
_hasher = PasswordHasher()


def is_dav_path(path: str) -> bool:
    return path == "/dav" or path.startswith("/dav/")


def _decode(value: str) -> tuple[str, str] | None:
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "?"


def _state(scope: Scope):
    state = scope["litestar_app"].state
    if getattr(state, "dav_auth", None) is None:
        box: Photobox = state.photobox
        state.dav_auth = {"throttle": auth.LoginThrottle(limit=box.settings.login_attempts), "cache": {}}
    return state.dav_auth


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def resolve_basic(box: Photobox, scope: Scope, credentials: str) -> Auth | None:
    """The :class:`~photobox.web.security.Auth` for a Basic credential, or None.

    When the client is throttled, ``scope["dav_retry_after"]`` says for how long.
    """
    from photobox.web.security import Auth

    decoded = _decode(credentials)
    if decoded is None:
        return None
    user, password = decoded
    state = _state(scope)
    addr = _client(scope)
    # An API key in the password field (or, for apps with one field, in the user name).
    for secret in (password, user if not password else ""):
        if secret.startswith(auth.API_KEY_PREFIX):
            found = await box.db.read(auth.find_api_key, secret)
            owner = await box.db.read(auth.get_owner) if found is not None else None
            if found is not None and owner is not None:
                if found.last_used_at is None or time.time() - found.last_used_at > 300:
                    await box.db.write(auth.mark_api_key_used, found.id)
                return Auth("basic", owner, api_key_id=found.id, scopes=found.scopes)
            state["throttle"].failed(addr)  # a wrong or revoked key: no argon2 run needed
            return None
    # Keys cannot be guessed, so only the password path is throttled (a correct key always works).
    retry = state["throttle"].retry_after(addr)
    if retry:
        scope["dav_retry_after"] = retry
        return None
    row = await box.db.read(lambda c: c.execute(
        "SELECT id, username, password_hash, password_changed_at FROM users WHERE id = 1").fetchone())
    if row is None:
        return None
    owner = auth.User(row[0], row[1])
    ok_name = hmac.compare_digest(row[1].casefold().encode(), user.strip().casefold().encode())
    key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
    cache: dict[bytes, tuple[float, float]] = state["cache"]
    hit = cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now and hit[1] == row[3] and ok_name:
        return Auth("basic", owner)
    ok = ok_name and await asyncio.to_thread(_verify, row[2], password)
    if not ok:
        state["throttle"].failed(addr)
        cache.pop(key, None)
        return None
    state["throttle"].succeeded(addr)
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = (now + CACHE_SECONDS, row[3])
    return Auth("basic", owner)
