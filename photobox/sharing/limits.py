"""Rate limits for the public share routes: a token bucket per client address.

In memory, like :class:`photobox.throttle.GuessThrottle`: photobox is one process. A grid page
fetches up to a page of thumbnails at once, so the bucket is deep (a burst of ``burst``
requests) and refills at ``rate`` requests a second; a scraper walking ids is slowed to that
rate, and wrong share passwords count in the much stricter password budget, per link.
"""

from __future__ import annotations

import time

__all__ = ["TokenBucket"]


class TokenBucket:
    """``burst`` requests at once per address, refilled at ``rate`` per second."""

    def __init__(self, rate: float = 20.0, burst: float = 400.0, clock=time.monotonic, max_clients: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # addr -> (tokens, last refill)

    def take(self, addr: str, cost: float = 1.0) -> float:
        """Spend ``cost`` for ``addr``; 0 if allowed, else the seconds to wait before retrying."""
        now = self.clock()
        tokens, last = self._buckets.get(addr, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < cost:
            self._buckets[addr] = (tokens, now)
            return (cost - tokens) / self.rate
        self._buckets[addr] = (tokens - cost, now)
        if len(self._buckets) > self.max_clients:  # bound memory under a spray of addresses
            self._buckets.pop(next(iter(self._buckets)))
        return 0.0
