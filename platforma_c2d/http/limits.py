"""Per-token request rate limits (SPEC §2): a sliding one-minute window,
writes (``POST``, ``DELETE``) and reads (``GET``) counted apart, so a CRM
that follows its calls by polling them is never refused because of its
polls, and polls never use up the budget for placing calls.

Thread-safe: HTTP worker threads call ``hit`` concurrently, so the windows
are kept under one lock local to this object (this is request accounting,
not call state).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from platforma_c2d.calls.errors import RateLimited


WINDOW_S = 60.0


def prune(q: deque, now: float, window_s: float = WINDOW_S) -> deque:
    """Drop from the left of ``q`` (monotonic times, oldest first) the times at
    least ``window_s`` seconds before ``now``; returns ``q``. The caller holds its lock."""
    while q and now - q[0] >= window_s:
        q.popleft()
    return q


def retry_after_s(q: deque, now: float, window_s: float = WINDOW_S) -> int:
    """Whole seconds (at least 1) until the oldest time of a full window ``q`` leaves it."""
    return max(1, math.ceil(window_s - (now - q[0])))


class RateLimiter:
    """At most ``writes_per_minute`` writes and ``reads_per_minute`` reads per
    caller name in any 60 s window (0 = that kind unlimited)."""

    WINDOW_S = WINDOW_S

    def __init__(self, writes_per_minute: int, reads_per_minute: int = 0, clock=time.monotonic):
        self.limits = {True: writes_per_minute, False: reads_per_minute}
        self.clock = clock
        self._hits: dict[tuple[str, bool], deque] = {}
        self._lock = threading.Lock()

    def hit(self, name: str, write: bool = True) -> None:
        """Count one request of ``name`` (a write, or a read when ``write`` is False).

        Raises ``RateLimited`` (429) with ``Retry-After`` in seconds when the
        window of that kind is full; the refused request is not counted.
        """
        per_minute = self.limits[write]
        if not per_minute:
            return
        now = self.clock()
        with self._lock:
            q = prune(self._hits.setdefault((name, write), deque()), now, self.WINDOW_S)
            if len(q) >= per_minute:
                retry = retry_after_s(q, now, self.WINDOW_S)
                kind = "writes (POST, DELETE)" if write else "reads (GET)"
                raise RateLimited(f"too many {kind} for this token; retry after {retry} s",
                                  {"kind": "write" if write else "read", "limit_per_minute": per_minute},
                                  headers={"Retry-After": str(retry)})
            q.append(now)
