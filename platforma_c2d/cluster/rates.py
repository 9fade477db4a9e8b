"""Per-token request rates counted for the whole cluster (SPEC §11), in the store.

On one node the rate limiter keeps each token's requests in memory
(``http/limits.py``). In a cluster a client may spread its requests over
every instance, so each instance counts in the table ``cluster_rates``:
one row per (token, kind, minute), and a sliding one-minute window
estimated from this minute's count and the last one's (the last minute's
count weighted by the part of it still inside the window). Each check is
one transaction that locks the token's rows, so two instances never both
let the request over the limit through; a refused request is not counted.
"""

from __future__ import annotations

import logging
import math
import time

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from platforma_c2d.calls.errors import RateLimited
from platforma_c2d.http.limits import RateLimiter
from platforma_c2d.store.cluster_tables import rates

log = logging.getLogger("platforma_c2d.cluster")



def window_estimate(previous: int, current: int, into_minute: float) -> float:
    """Requests in the last 60 s, estimated: ``current`` (this minute's count) plus
    ``previous`` (the last minute's) times the share of the last minute still in
    the window; ``into_minute``: seconds since this minute began (0 ≤ s < 60)."""
    return previous * (1 - into_minute / 60) + current


def retry_after_s(previous: int, current: int, into_minute: float, limit: int) -> int:
    """Whole seconds until :func:`window_estimate` falls below ``limit`` (at least 1)."""
    if current >= limit or previous == 0:
        return max(1, math.ceil(60 - into_minute))
    share_left = (limit - current) / previous       # the last minute's share the window may keep
    return max(1, math.ceil((1 - share_left) * 60 - into_minute))


class StoreRateLimiter:
    """``RateLimiter``'s interface (``hit``), counted in the store for every instance.

    ``engine``: the store (PostgreSQL); per minute limits as ``[limits]``
    (0 = that kind unlimited); ``clock``: epoch seconds. A store that does
    not answer lets the request through (the request then meets the store
    itself), with a warning in the log.
    """

    def __init__(self, engine: sa.Engine, writes_per_minute: int, reads_per_minute: int = 0, clock=time.time):
        self.engine, self.clock = engine, clock
        self.limits = {True: writes_per_minute, False: reads_per_minute}
        self._swept = 0

    def hit(self, name: str, write: bool = True) -> None:
        """Count one request of ``name``; raises ``RateLimited`` (429, ``Retry-After``)
        when the cluster-wide window of that kind is full (the request is not counted)."""
        limit = self.limits[write]
        if not limit:
            return
        now = self.clock()
        minute, into = int(now // 60), now % 60
        kind = "write" if write else "read"
        key = {"name": name[:64], "kind": kind}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(rates).values(**key, minute=minute, hits=0).on_conflict_do_nothing())
                counts = dict(conn.execute(
                    sa.select(rates.c.minute, rates.c.hits).where(
                        rates.c.name == key["name"], rates.c.kind == kind,
                        rates.c.minute.in_((minute - 1, minute))).with_for_update()).all())
                previous, current = counts.get(minute - 1, 0), counts.get(minute, 0)
                if window_estimate(previous, current, into) >= limit:
                    retry = retry_after_s(previous, current, into, limit)
                    what = "writes (POST, DELETE)" if write else "reads (GET)"
                    raise RateLimited(f"too many {what} for this token; retry after {retry} s",
                                      {"kind": kind, "limit_per_minute": limit},
                                      headers={"Retry-After": str(retry)})
                conn.execute(rates.update().where(rates.c.name == key["name"], rates.c.kind == kind,
                                                  rates.c.minute == minute).values(hits=rates.c.hits + 1))
                if minute != self._swept:
                    self._swept = minute
                    conn.execute(rates.delete().where(rates.c.minute < minute - 1))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("request rates: the store does not answer (%s); not counted", str(exc)[:200])


def rate_limiter(config, engine: sa.Engine):
    """The API's rate limiter: per instance in memory (``RateLimiter``), or for the
    whole cluster in the store (:class:`StoreRateLimiter`) when ``[cluster] node`` is set."""
    limits = config.limits
    if config.cluster.enabled:
        return StoreRateLimiter(engine, limits.writes_per_minute, limits.reads_per_minute)
    return RateLimiter(limits.writes_per_minute, limits.reads_per_minute)
