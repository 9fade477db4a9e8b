"""CLID pool state in the store (SPEC §12, §11): every draw is decided here.

Three tables beside the call journal, in the same database:

* ``clid_pools`` — one row per pool: ``draws`` (so far), ``turn``
  (round-robin's position: the draws round-robin made) and when its
  numbers' health was last judged;
* ``clid_numbers`` — one row per number: calls today (UTC day), rested
  until when, and since when its recent calls count;
* ``clid_sticky`` — one row per (pool, callee): the number that callee
  was last called from, and when.

A draw is one transaction that first locks its pool's row and increments
its ``draws`` (PostgreSQL: ``SELECT … FOR UPDATE``, a row lock; SQLite: the
write takes the database's write lock), held until the commit, so the reads that follow (usage, sticky,
health) and the write of the choice are never interleaved with another
draw from the same pool — by another thread, the FastAGI process, or
another node sharing the store. The policy itself is pure
(:mod:`platforma_c2d.clid.policies`). Outcomes are read from the journal's
``calls`` table (clid, reason, answered_at), which every origin writes.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from platforma_c2d.calls.model import iso, parse_iso
from platforma_c2d.clid import health, policies
from platforma_c2d.config.pools import ClidPoolConfig
from platforma_c2d.store.journal import calls

metadata = sa.MetaData()

clid_pools = sa.Table(
    "clid_pools", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("draws", sa.Integer, nullable=False, default=0),
    sa.Column("turn", sa.Integer, nullable=False, default=0),
    sa.Column("checked_at", sa.String(32)),
)

clid_numbers = sa.Table(
    "clid_numbers", metadata,
    sa.Column("pool", sa.String(32), primary_key=True),
    sa.Column("number", sa.String(16), primary_key=True),
    sa.Column("day", sa.String(10), nullable=False, default=""),
    sa.Column("calls_today", sa.Integer, nullable=False, default=0),
    sa.Column("rested_until", sa.String(32)),
    sa.Column("health_since", sa.String(32)),
)

clid_sticky = sa.Table(
    "clid_sticky", metadata,
    sa.Column("pool", sa.String(32), primary_key=True),
    sa.Column("callee", sa.String(16), primary_key=True),
    sa.Column("number", sa.String(16), nullable=False),
    sa.Column("at", sa.String(32), nullable=False, index=True),
)

#: The outcomes of a number are read by CLID and time.
CALLS_BY_CLID = sa.Index("ix_calls_clid_created", calls.c.clid, calls.c.created_at)

#: A pool's numbers are judged at most this often (seconds).
HEALTH_EVERY_S = 5.0


@dataclass(frozen=True)
class Draw:
    """The result of :meth:`ClidStore.draw`.

    ``number``: the CLID chosen; ``rested``: numbers rested by this draw,
    each with its share of bad calls and the pool's (``(number, share,
    pool_share)``); ``recovered``: numbers whose rest ended.
    """

    number: str
    rested: list[tuple[str, float, float]] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)


def _day(now: datetime) -> str:
    return now.date().isoformat()


def _resting(row, now: datetime) -> bool:
    return bool(row is not None and row.rested_until and row.rested_until > iso(now))


class ClidStore:
    """The pools' state, in the database of ``engine`` (a SQLAlchemy Engine,
    normally the journal's). Creates its tables and the index on
    ``calls.clid`` when missing. Safe from any thread and any process
    sharing the database. Methods raise ``sqlalchemy.exc.SQLAlchemyError``.
    """

    def __init__(self, engine: sa.engine.Engine):
        self.engine = engine
        metadata.create_all(engine)
        CALLS_BY_CLID.create(engine, checkfirst=True)

    def ensure(self, pools: Iterable[ClidPoolConfig]) -> None:
        """Create the rows of pools and numbers not in the store yet (others are kept)."""
        for pool in pools:
            self._insert_missing(clid_pools, {"name": pool.name, "draws": 0, "turn": 0})
            for number in pool.numbers:
                self._insert_missing(clid_numbers, {"pool": pool.name, "number": number,
                                                    "day": "", "calls_today": 0})

    def _insert_missing(self, table: sa.Table, row: dict) -> None:
        keys = [c for c in table.primary_key.columns]
        with self.engine.begin() as conn:
            if conn.execute(sa.select(*keys).where(*(c == row[c.name] for c in keys))).first():
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(table.insert(), row)
        except sa.exc.IntegrityError:
            pass   # another process made it meanwhile

    # ------------------------------------------------------------------
    def draw(self, pool: ClidPoolConfig, callee: str, now: datetime,
             rng: random.Random | None = None) -> Draw:
        """Choose a number of ``pool`` for a call to ``callee`` and count it, atomically.

        Rested numbers are not drawn (all are, when every one rests).
        ``now``: a timezone-aware UTC time. Judges the pool's health first
        when it was last judged :data:`HEALTH_EVERY_S` seconds ago or more.
        """
        with self.engine.begin() as conn:
            mine = clid_pools.c.name == pool.name
            # Lock the pool's row until the commit (SQLite ignores FOR UPDATE:
            # the UPDATE below takes its database-wide write lock instead).
            conn.execute(sa.select(clid_pools.c.name).where(mine).with_for_update())
            conn.execute(clid_pools.update().where(mine).values(draws=clid_pools.c.draws + 1))
            draws, turn, checked = conn.execute(
                sa.select(clid_pools.c.draws, clid_pools.c.turn, clid_pools.c.checked_at).where(mine)).one()
            rows = self._rows(conn, pool)
            rested, recovered = [], []
            if checked is None or parse_iso(checked) <= now - timedelta(seconds=HEALTH_EVERY_S):
                rested, recovered = self._judge(conn, pool, rows, now)
                rows = self._rows(conn, pool)
            eligible = [n for n in pool.numbers if not _resting(rows.get(n), now)] or list(pool.numbers)
            today = _day(now)
            usage = {n: r.calls_today for n, r in rows.items() if r.day == today}
            remembered = None
            if pool.policy == "sticky":
                remembered = conn.execute(
                    sa.select(clid_sticky.c.number).where(
                        clid_sticky.c.pool == pool.name, clid_sticky.c.callee == callee,
                        clid_sticky.c.at >= iso(now - timedelta(days=pool.sticky_days)))).scalar()
            number = policies.choose(pool.policy, eligible, callee=callee, turn=turn + 1, usage=usage,
                                     remembered=remembered, fallback=pool.fallback, rng=rng)
            if policies.uses_turn(pool.policy, eligible, remembered=remembered, fallback=pool.fallback):
                conn.execute(clid_pools.update().where(mine).values(turn=turn + 1))
            self._count(conn, pool.name, number, today, +1)
            if pool.policy == "sticky":
                self._remember(conn, pool, callee, number, now, prune=draws % 1000 == 0)
        return Draw(number, rested, recovered)

    def note_use(self, pool: ClidPoolConfig, number: str, now: datetime) -> None:
        """Count a call that presents ``number`` of ``pool`` given explicitly (not drawn)."""
        with self.engine.begin() as conn:
            self._count(conn, pool.name, number, _day(now), +1)

    def release(self, pool: ClidPoolConfig, number: str, now: datetime) -> None:
        """Take back the count of a number drawn for a call that was not placed after all."""
        with self.engine.begin() as conn:
            self._count(conn, pool.name, number, _day(now), -1)

    @staticmethod
    def _rows(conn, pool: ClidPoolConfig) -> dict:
        return {r.number: r for r in conn.execute(
            sa.select(clid_numbers).where(clid_numbers.c.pool == pool.name))}

    @staticmethod
    def _count(conn, pool: str, number: str, today: str, step: int) -> None:
        c = clid_numbers.c
        counted = sa.case((c.calls_today + step < 0, 0), else_=c.calls_today + step)
        conn.execute(clid_numbers.update().where(c.pool == pool, c.number == number).values(
            calls_today=sa.case((c.day == today, counted), else_=max(step, 0)),
            day=today))

    @staticmethod
    def _remember(conn, pool: ClidPoolConfig, callee: str, number: str, now: datetime,
                  prune: bool) -> None:
        s = clid_sticky.c
        values = {"number": number, "at": iso(now)}
        if not conn.execute(clid_sticky.update().where(s.pool == pool.name, s.callee == callee)
                            .values(values)).rowcount:
            conn.execute(clid_sticky.insert(), {"pool": pool.name, "callee": callee, **values})
        if prune:   # now and then, callees not called for longer than sticky_days are forgotten
            conn.execute(clid_sticky.delete().where(
                s.pool == pool.name, s.at < iso(now - timedelta(days=pool.sticky_days))))

    # ------------------------------------------------------------------
    def tallies(self, conn, pool: ClidPoolConfig, rows: dict) -> dict[str, health.Tally]:
        """Number -> :class:`~platforma_c2d.clid.health.Tally` of its recent counted calls."""
        counted = sa.or_(calls.c.answered_at.is_not(None), calls.c.reason.in_(health.BAD_REASONS))
        out = {}
        for number in pool.numbers:
            row = rows.get(number)
            query = (sa.select(calls.c.reason, calls.c.answered_at)
                     .where(calls.c.clid == number, calls.c.state == "ended", counted)
                     .order_by(calls.c.created_at.desc()).limit(health.WINDOW))
            if row is not None and row.health_since:
                query = query.where(calls.c.created_at >= row.health_since)
            out[number] = health.tally([health.outcome(r.reason, r.answered_at is not None)
                                        for r in conn.execute(query)])
        return out

    def _judge(self, conn, pool: ClidPoolConfig, rows: dict, now: datetime):
        """Rest the numbers far worse than their pool; end rests that are over."""
        c = clid_numbers.c
        conn.execute(clid_pools.update().where(clid_pools.c.name == pool.name)
                     .values(checked_at=iso(now)))
        recovered = [n for n, r in rows.items() if r.rested_until and not _resting(r, now)]
        if recovered:
            conn.execute(clid_numbers.update().where(c.pool == pool.name, c.number.in_(recovered))
                         .values(rested_until=None))
        if pool.rest_s <= 0:
            return [], recovered
        tallies = self.tallies(conn, pool, rows)
        resting = {n for n, r in rows.items() if _resting(r, now)}
        chosen = health.to_rest(tallies, resting, min_calls=pool.health_min_calls,
                                margin=pool.health_margin)
        rested = []
        until = iso(now + timedelta(seconds=pool.rest_s))
        for number in chosen:
            conn.execute(clid_numbers.update().where(c.pool == pool.name, c.number == number)
                         .values(rested_until=until, health_since=until))
            own = tallies[number]
            others = [t for n, t in tallies.items() if n != number]
            pool_share = sum(t.bad for t in others) / max(1, sum(t.calls for t in others))
            rested.append((number, round(own.bad / own.calls, 3), round(pool_share, 3)))
        return rested, recovered

    # ------------------------------------------------------------------
    def report(self, pools: Iterable[ClidPoolConfig], now: datetime) -> list[dict]:
        """Every pool as ``GET /click2dial/clids`` shows it (read only).

        ``[{"name", "policy", "fallback" (None unless sticky/area), "numbers":
        [{"number", "calls_today", "recent_calls", "answer_rate" (0-1 or
        None), "rested_until" (ISO 8601 UTC or None)}]}]``, pools and
        numbers in configuration order.
        """
        out = []
        today = _day(now)
        with self.engine.connect() as conn:
            for pool in pools:
                rows = self._rows(conn, pool)
                tallies = self.tallies(conn, pool, rows)
                numbers = []
                for number in pool.numbers:
                    row = rows.get(number)
                    numbers.append({
                        "number": number,
                        "calls_today": row.calls_today if row is not None and row.day == today else 0,
                        "recent_calls": tallies[number].calls,
                        "answer_rate": tallies[number].answer_rate,
                        "rested_until": row.rested_until if _resting(row, now) else None,
                    })
                out.append({"name": pool.name, "policy": pool.policy,
                            "fallback": pool.fallback if pool.policy in ("sticky", "area") else None,
                            "numbers": numbers})
        return out
