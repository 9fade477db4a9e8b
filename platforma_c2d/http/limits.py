"""Per-token request rate limit (issue "toll fraud"): a sliding one-minute window.

Thread-safe: HTTP worker threads call ``hit`` concurrently, so the window is
kept under one lock local to this object (this is request accounting, not
call state).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from platforma_c2d.calls.errors import RateLimited


class RateLimiter:
    """At most ``per_minute`` requests per caller name in any 60 s window (0 = unlimited)."""

    WINDOW_S = 60.0

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()

    def hit(self, name: str) -> None:
        """Count one request of ``name``; raises ``RateLimited`` (429, Retry-After in seconds)."""
        if not self.per_minute:
            return
        now = self.clock()
        with self._lock:
            q = self._hits.setdefault(name, deque())
            while q and now - q[0] >= self.WINDOW_S:
                q.popleft()
            if len(q) >= self.per_minute:
                retry = max(1, math.ceil(self.WINDOW_S - (now - q[0])))
                raise RateLimited("too many requests for this token",
                                  {"limit_per_minute": self.per_minute},
                                  headers={"Retry-After": str(retry)})
            q.append(now)
