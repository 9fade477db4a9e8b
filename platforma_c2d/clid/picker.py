"""The CLID a call presents (SPEC §1, §12): one object for REST, WebRTC and FastAGI.

1. An explicit ``outbound_id`` number always wins, rested or not (the
   policy has already checked it against ``[clid] allowed``); when it is a
   pool's number it is counted in that number's calls today.
2. Otherwise the caller's pool (:class:`~platforma_c2d.clid.pools.PoolMap`)
   draws, in the store (:meth:`ClidStore.draw`): ``random`` asked, or no
   outbound ID and the agent or token has a pool of its own.
3. No outbound ID and no pool of its own: ``[clid] default``.

Every pool number is in ``[clid] allowed`` when that list is set (the
config check), so a drawn number never escapes it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily

from platforma_c2d import rules
from platforma_c2d.calls.model import utcnow
from platforma_c2d.clid.pools import PoolMap
from platforma_c2d.config import ClidConfig
from platforma_c2d.store.clids import ClidStore

log = logging.getLogger("platforma_c2d.clid")


@dataclass(frozen=True)
class Choice:
    """A call's CLID: ``clid`` the number; ``pool`` the name of the pool it
    belongs to (None when it is in none); ``drawn``: chosen by the pool's
    policy (not given explicitly)."""

    clid: str
    pool: str | None = None
    drawn: bool = False


class ClidPicker:
    """Chooses CLIDs; see the module's rule.

    ``clid``: ``[clid]``; ``store``: where draws are decided and counted;
    ``rng``: random source of the ``random`` policy (system randomness when
    None); ``clock``: returns the current UTC time; ``registry``: when
    given, the metrics ``c2d_clid_rests_total{pool}`` (numbers rested by
    this process) and, read from the store at each scrape,
    ``c2d_clid_rested{pool,number}`` (1 while rested),
    ``c2d_clid_calls_today{pool,number}`` and
    ``c2d_clid_answer_rate{pool,number}`` (recent calls, 0-1) are
    registered there. Thread-safe (the store serialises draws).
    """

    def __init__(self, clid: ClidConfig, store: ClidStore, *, rng: random.Random | None = None,
                 clock=utcnow, registry: CollectorRegistry | None = None):
        self.default = clid.default
        self.pools = PoolMap(clid)
        self.store, self.clock = store, clock
        self.rng = rng or random.SystemRandom()
        self._executor: ThreadPoolExecutor | None = None
        self._rests = None
        store.ensure(self.pools.pools)
        if registry is not None:
            self._rests = Counter("c2d_clid_rests", "CLID numbers rested for poor health, by pool",
                                  ["pool"], registry=registry)
            registry.register(_Collector(self))

    def choose(self, req: rules.CallRequest, token: str = "") -> Choice:
        """The CLID of a call that passed the rules and the policy (blocks on the store).

        ``token``: the name of the REST call's token (``""`` for WebRTC and
        FastAGI calls). Raises :class:`rules.RuleError` on ``outbound_id``
        when ``random`` is asked and no pool serves the caller. A store that
        cannot be written never stops a call: the draw is then made at
        random among the pool's numbers, and logged.
        """
        now = self.clock()
        wanted = req.outbound_id
        if wanted not in ("", rules.RANDOM):
            pool = self.pools.by_number(wanted)
            if pool is not None:
                self._safely(self.store.note_use, pool, wanted, now)
            return Choice(wanted, pool.name if pool else None)
        pool = self.pools.for_caller(req.agent, token, random=wanted == rules.RANDOM)
        if pool is None:
            if wanted == "":
                return Choice(self.default)
            raise rules.RuleError("outbound_id", "'random' asked but no CLID pool serves this "
                                  "caller (the pool is empty); give a number: "
                                  + rules.OUTBOUND_ID_FORMATS)
        try:
            draw = self.store.draw(pool, req.callee, now, self.rng)
        except sa.exc.SQLAlchemyError as exc:
            log.error("CLID pool %s: the store cannot decide (%s); drawing at random",
                      pool.name, type(exc).__name__)
            return Choice(self.rng.choice(pool.numbers), pool.name, drawn=True)
        self._report(pool.name, pool.rest_s, draw.rested, draw.recovered)
        return Choice(draw.number, pool.name, drawn=True)

    async def choose_async(self, req: rules.CallRequest, token: str = "") -> Choice:
        """:meth:`choose` off the event loop (on a small thread pool of its own),
        for the telephony thread, which never runs SQL itself."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clid")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.choose, req, token)

    def release(self, choice: Choice) -> None:
        """Take back the count of a drawn CLID whose call was not placed after all
        (an Idempotency-Key replay, the agent busy, Asterisk away)."""
        pool = self.pools.by_name(choice.pool) if choice.pool else None
        if pool is not None and choice.drawn:
            self._safely(self.store.release, pool, choice.clid, self.clock())

    def report(self, now: datetime | None = None, *, agents: tuple[str, ...] = (),
               token: str = "") -> list[dict]:
        """The pools and their numbers, as ``GET /click2dial/clids`` shows them
        (:meth:`ClidStore.report`): every pool, or (``agents`` given: a token
        limited to them, named ``token``) only the pools those agents' calls
        through that token draw ``random`` from."""
        pools = self.pools.pools
        if agents:
            drawn = {id(p) for p in (self.pools.for_caller(a, token) for a in agents) if p is not None}
            pools = [p for p in pools if id(p) in drawn]
        return self.store.report(pools, now or self.clock())

    def _safely(self, fn, *args) -> None:
        try:
            fn(*args)
        except sa.exc.SQLAlchemyError as exc:
            log.error("CLID pool %s: cannot count the use of %s (%s)", args[0].name, args[1],
                      type(exc).__name__)

    def _report(self, pool: str, rest_s: int, rested, recovered) -> None:
        for number, share, pool_share in rested:
            log.warning("CLID %s of pool %s rested for %d s: %d%% of its recent calls refused or "
                        "unanswered, %d%% for the rest of the pool", number, pool, rest_s,
                        round(share * 100), round(pool_share * 100),
                        extra={"fields": {"clid": number, "pool": pool}})
            if self._rests is not None:
                self._rests.labels(pool).inc()
        for number in recovered:
            log.info("CLID %s of pool %s is drawn again (its rest is over)", number, pool,
                     extra={"fields": {"clid": number, "pool": pool}})


class _Collector:
    """Prometheus collector of the pools' state, read from the store at each scrape
    (so it holds for every process and node sharing the store)."""

    def __init__(self, picker: ClidPicker):
        self.picker = picker

    def describe(self):
        return []   # nothing read at registration

    def collect(self):
        rested = GaugeMetricFamily("c2d_clid_rested", "1 while a CLID is rested for poor health",
                                   labels=["pool", "number"])
        today = GaugeMetricFamily("c2d_clid_calls_today", "Calls presenting a CLID today (UTC)",
                                  labels=["pool", "number"])
        rate = GaugeMetricFamily("c2d_clid_answer_rate",
                                 "Share of a CLID's recent counted calls that were answered",
                                 labels=["pool", "number"])
        try:
            pools = self.picker.report()
        except sa.exc.SQLAlchemyError:
            pools = []
        for pool in pools:
            for n in pool["numbers"]:
                labels = [pool["name"], n["number"]]
                rested.add_metric(labels, 1.0 if n["rested_until"] else 0.0)
                today.add_metric(labels, n["calls_today"])
                if n["answer_rate"] is not None:
                    rate.add_metric(labels, n["answer_rate"])
        yield from (rested, today, rate)
