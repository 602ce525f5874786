"""The owner account, sessions, API keys, CSRF tokens and known devices.

photobox has one owner (``users.id = 1``). Browser sessions and API keys are random
tokens; only their SHA-256 is stored. Passwords are hashed with argon2id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import apsw
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "ApiKey", "Session", "User", "authenticate", "check_csrf", "create_api_key", "device_id", "new_device_token",
    "create_owner", "create_session", "delete_session", "find_api_key", "find_session",
    "close_setup", "get_owner", "list_api_keys", "parse_scopes", "revoke_api_key", "set_password", "setup_closed",
    "verify_password", "API_KEY_SCOPES",
    "MIN_PASSWORD_LENGTH",
]

MIN_PASSWORD_LENGTH = 8
API_KEY_PREFIX = "pbk_"

# argon2id with 64 MiB and 3 passes takes ~0.3 s on a Pi 4: slow for guessing, fine for one login.
_hasher = PasswordHasher()


def _sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scopes: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


# -- owner ---------------------------------------------------------------------------

def get_owner(conn: apsw.Connection) -> User | None:
    """The owner account, or None before first-run setup."""
    row = conn.execute("SELECT id, username FROM users WHERE id = 1").fetchone()
    return User(*row) if row else None


_SETUP_CLOSED = "setup_closed"


def close_setup(conn: apsw.Connection, reason: str) -> None:
    """Keep the first-run setup page closed while there is no owner (``photobox rebuild``:
    a library full of photos must not go to the first visitor on the network); the owner
    is then made on the box with ``photobox user set-password``."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (_SETUP_CLOSED, reason))


def setup_closed(conn: apsw.Connection) -> str | None:
    """Why the web setup page is closed (see :func:`close_setup`), or None."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_SETUP_CLOSED,)).fetchone()
    return row[0] if row else None


def validate_credentials(username: str, password: str) -> None:
    if not username.strip():
        raise ValueError("Choose a user name.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")


def hash_password(password: str) -> str:
    """An argon2id PHC string (slow on purpose: call it from a thread)."""
    return _hasher.hash(password)


def create_owner(conn: apsw.Connection, username: str, password_hash: str, *, now: float | None = None) -> User:
    """Create the single owner; raises ValueError if one exists (first-run setup races lose)."""
    now = time.time() if now is None else now
    try:
        conn.execute(
            "INSERT INTO users (id, username, password_hash, created_at, password_changed_at) VALUES (1, ?, ?, ?, ?)",
            (username.strip(), password_hash, now, now),
        )
    except apsw.ConstraintError:
        raise ValueError("The owner account exists already.") from None
    return User(1, username.strip())


def set_password(conn: apsw.Connection, username: str | None, password_hash: str, *, now: float | None = None) -> User:
    """Set the owner's password (and optionally name), creating the owner if missing; ends all sessions."""
    now = time.time() if now is None else now
    owner = get_owner(conn)
    if owner is None:
        return create_owner(conn, username or "owner", password_hash, now=now)
    conn.execute(
        "UPDATE users SET password_hash = ?, username = coalesce(?, username), password_changed_at = ? WHERE id = 1",
        (password_hash, username, now),
    )
    conn.execute("DELETE FROM sessions")
    return get_owner(conn)  # type: ignore[return-value]


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches an argon2 hash (slow on purpose: call it from a thread)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(conn: apsw.Connection, username: str, password: str) -> User | None:
    """The owner if the name and password match (constant work either way), else None."""
    row = conn.execute("SELECT id, username, password_hash FROM users WHERE id = 1").fetchone()
    if row is None:
        return None
    ok_name = hmac.compare_digest(row[1].casefold().encode(), username.strip().casefold().encode())
    ok_pw = verify_password(row[2], password)
    return User(row[0], row[1]) if ok_name and ok_pw else None


# -- sessions ------------------------------------------------------------------------

def create_session(
    conn: apsw.Connection, user: User, *, days: int, now: float | None = None, user_agent: str = "", remote_addr: str = ""
) -> str:
    """Start a session and return the cookie value (shown once, stored hashed)."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, user_agent, remote_addr) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (_sha256(token), user.id, secrets.token_urlsafe(32), now, now, now + days * 86400, user_agent[:200], remote_addr[:64]),
    )
    conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
    return token


def find_session(conn: apsw.Connection, token: str, *, now: float | None = None) -> Session | None:
    """The live session for a cookie value, or None."""
    now = time.time() if now is None else now
    row = conn.execute(
        "SELECT u.id, u.username, s.csrf_token, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.token_hash = ? AND s.expires_at > ?",
        (_sha256(token), now),
    ).fetchone()
    return Session(User(row[0], row[1]), row[2], row[3]) if row else None


def touch_session(conn: apsw.Connection, token: str, *, days: int, now: float | None = None) -> None:
    """Slide the expiry of an active session forward."""
    now = time.time() if now is None else now
    conn.execute(
        "UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE token_hash = ?",
        (now, now + days * 86400, _sha256(token)),
    )


def delete_session(conn: apsw.Connection, token: str) -> None:
    """Log out: forget the session."""
    conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_sha256(token),))


# -- API keys ------------------------------------------------------------------------

#: API key scopes. ``all``: everything the owner can do. ``read``: look, never change (GET/HEAD
#: under ``/api/``; PROPFIND/GET/HEAD under ``/dav``). ``upload``: what a phone backup app needs
#: (upload, resumable uploads, checksum check, server info; WebDAV writes and listings) and
#: nothing else: a leaked upload key cannot read the library. Enforced by
#: :func:`photobox.web.security.scope_allows`.
API_KEY_SCOPES = ("all", "read", "upload")


def parse_scopes(text: str) -> str:
    """The canonical form of a comma-separated scope list (``"upload, READ"`` → ``"read,upload"``).

    Raises ValueError for an empty list or an unknown scope: a key must never end up with more
    rights than asked for because a name was mistyped.
    """
    choices = ", ".join(API_KEY_SCOPES)
    granted = {part.strip().lower() for part in text.split(",")}
    if granted <= {""}:
        raise ValueError(f"choose an API key scope: {choices}")
    unknown = sorted(granted - set(API_KEY_SCOPES))
    if unknown:
        raise ValueError(f"unknown API key scope {', '.join(repr(u) for u in unknown)}: choose {choices}")
    return "all" if "all" in granted else ",".join(s for s in API_KEY_SCOPES if s in granted)


def create_api_key(conn: apsw.Connection, name: str, *, scopes: str = "all", now: float | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns (record, secret). The secret is not stored and cannot be shown again.

    Raises ValueError for unknown scopes (:func:`parse_scopes`).
    """
    now = time.time() if now is None else now
    scopes = parse_scopes(scopes)
    name = name.strip()[:100] or "API key"
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = secret[: len(API_KEY_PREFIX) + 6]
    conn.execute(
        "INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
        (name, prefix, _sha256(secret), scopes, now),
    )
    key_id = conn.last_insert_rowid()
    return ApiKey(key_id, name, prefix, scopes, now, None, None), secret


def find_api_key(conn: apsw.Connection, secret: str) -> ApiKey | None:
    """The live (not revoked) key with this secret, or None."""
    if not secret.startswith(API_KEY_PREFIX):
        return None
    row = conn.execute(
        "SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys "
        "WHERE key_hash = ? AND revoked_at IS NULL",
        (_sha256(secret),),
    ).fetchone()
    return ApiKey(*row) if row else None


def mark_api_key_used(conn: apsw.Connection, key_id: int, *, now: float | None = None) -> None:
    """Record when a key was last used (shown in settings)."""
    conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (time.time() if now is None else now, key_id))


def list_api_keys(conn: apsw.Connection) -> list[ApiKey]:
    """All keys, newest first, revoked ones included."""
    return [ApiKey(*r) for r in conn.execute(
        "SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys ORDER BY id DESC")]


def revoke_api_key(conn: apsw.Connection, key_id: int, *, now: float | None = None) -> bool:
    """Revoke a key; True if it was live."""
    conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                 (time.time() if now is None else now, key_id))
    return conn.changes() > 0


# -- CSRF ----------------------------------------------------------------------------

def anonymous_csrf_token(secret_key: bytes, anon_id: str) -> str:
    """The CSRF token for forms shown before login, bound to the ``pb_anon`` cookie."""
    return hmac.new(secret_key, b"anon:" + anon_id.encode(), hashlib.sha256).hexdigest()


def check_csrf(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of the token a form or header carried with the expected one."""
    return bool(expected and given) and hmac.compare_digest(str(expected).encode(), str(given).encode())


# -- known devices -------------------------------------------------------------------

def new_device_token(secret_key: bytes) -> str:
    """A value for the ``pb_device`` cookie, given to a browser after a right password: it makes
    that browser a known device, with its own password-guess budget (:mod:`photobox.throttle`)."""
    device = secrets.token_urlsafe(12)
    return f"{device}.{_device_mac(secret_key, device)}"


def device_id(secret_key: bytes, token: str | None) -> str | None:
    """The device id of a ``pb_device`` cookie, or None when it is missing or not one photobox made."""
    device, _, mac = (token or "").partition(".")
    if not device or len(token or "") > 128 or not hmac.compare_digest(mac.encode(), _device_mac(secret_key, device).encode()):
        return None
    return device


def _device_mac(secret_key: bytes, device: str) -> str:
    return hmac.new(secret_key, b"device:" + device.encode(), hashlib.sha256).hexdigest()[:32]
