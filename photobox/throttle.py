"""One budget for password guesses, whichever way a password is tried.

The login page, WebDAV Basic with the owner's password and the settings page's "current
password" all try the owner's password; a share link's form tries that link's password. Every
failure is counted against a *key*; a key with ``limit`` failures in ``window`` seconds is
refused until the oldest of them ages out:

* ``addr:<address>``: an unknown client guessing the owner's password, by address (an IPv6
  client by its /64, which one host usually owns whole). All unknown clients together also
  have ``limit * spray_factor`` failures, so guesses spread over many addresses are slowed too.
* ``device:<id>``: a browser the owner logged in with before (the signed ``pb_device``
  cookie). Nobody else's failures count here and the spray cap does not apply, so an attacker
  cannot lock the owner out of a known browser, not even behind a proxy that makes every
  client 127.0.0.1. (WebDAV apps keep no cookies: :mod:`photobox.web.basic_auth` lets a
  credential it verified before through instead.)
* ``session:<id>``: a logged-in session confirming the password (changing it).
* ``share:<id>``: a share link, counted per link from every address together (its password
  may be short, so rotating addresses must not buy more guesses); a right password on one
  link never resets another's count.

A right password clears only its own key. The counts are in memory: photobox is one process,
and a restart clearing them costs an attacker a reboot of the box per few guesses. At most
``max_keys`` keys are kept (expired ones are dropped first, then the longest quiet); anonymous
clients can add only ``limit * spray_factor`` keys per window, because callers check
:meth:`GuessThrottle.retry_after` before they verify and count a failure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import deque

__all__ = ["GuessThrottle", "address_key", "device_key", "session_key", "share_key", "try_again"]

_ADDRESS = "addr:"


def address_key(address: str) -> str:
    """The key of an unknown client (IPv6 by its /64 network)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return _ADDRESS + address[:64]
    if ip.version == 6:
        return _ADDRESS + str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return _ADDRESS + str(ip)


def device_key(device_id: str) -> str:
    """The key of a browser the owner logged in with before."""
    return "device:" + device_id


def session_key(session_token: str) -> str:
    """The key of a logged-in session (from its token, which is never kept in memory as is)."""
    return "session:" + hashlib.sha256(session_token.encode()).hexdigest()[:32]


def share_key(share_id: int) -> str:
    """The key of a share link's password."""
    return f"share:{share_id}"


def try_again(seconds: int) -> str:
    """The sentence a refused form shows (its answer also carries ``Retry-After``)."""
    minutes = max(1, math.ceil(seconds / 60))
    return f"Try again in {minutes} minute{'s' if minutes > 1 else ''}."


class GuessThrottle:
    """Failed password tries per key in a sliding window (see the module docstring)."""

    def __init__(self, limit: int = 5, window: float = 900.0, *, clock=time.monotonic, max_keys: int = 10_000,
                 spray_factor: int = 10) -> None:
        self.limit = max(1, limit)
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        # Only the newest `limit` failures of a key matter, so each deque is bounded.
        self._failures: dict[str, deque[float]] = {}
        self._spray: deque[float] = deque(maxlen=self.limit * spray_factor)

    def _wait(self, q: deque[float], now: float) -> float:
        while q and q[0] <= now - self.window:
            q.popleft()
        return q[0] + self.window - now if q and len(q) == q.maxlen else 0.0

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try a password again (0: now)."""
        now = self.clock()
        wait = 0.0
        q = self._failures.get(key)
        if q is not None:
            wait = self._wait(q, now)
            if not q:
                del self._failures[key]
        if key.startswith(_ADDRESS):
            wait = max(wait, self._wait(self._spray, now))
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, key: str) -> None:
        """Count a wrong password against ``key``."""
        now = self.clock()
        q = self._failures.pop(key, None)
        if q is None:
            if len(self._failures) >= self.max_keys:
                self._forget(now)
            q = deque(maxlen=self.limit)
        q.append(now)
        self._failures[key] = q  # (re)inserted last: the dict is ordered by last failure
        if key.startswith(_ADDRESS):
            self._spray.append(now)

    def succeeded(self, key: str) -> None:
        """A right password: forget ``key``'s failures (and only its own)."""
        self._failures.pop(key, None)

    def _forget(self, now: float) -> None:
        """Make room for a key: drop the expired keys, else the one quiet the longest. The dict is
        ordered by last failure, so both are at its front (no scan of the whole table)."""
        while self._failures:
            first = next(iter(self._failures))
            if self._failures[first] and self._failures[first][-1] > now - self.window \
                    and len(self._failures) < self.max_keys:
                break
            del self._failures[first]

    def __len__(self) -> int:
        return len(self._failures)
