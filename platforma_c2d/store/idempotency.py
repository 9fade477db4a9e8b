"""Idempotency-Keys claimed in the store before a call is dialled (SPEC §2, §11).

``idempotency_keys``: one row per (token name, Idempotency-Key), its primary
key, naming the call placed with it and the hash of the request's body. A
placement with a key first inserts this row; the database's unique
constraint lets exactly one of any number of requests with the same key win,
whether they reach one instance or several instances of a cluster at the
same moment. The others read the winner's row: the same body is a replay of
its call, another body is ``idempotency-key-reused``.

A claim older than ``[limits] idempotency_window_s`` is taken over by the
next placement with its key (the key may be used again once its window
has passed, as on one node). A placement that dials nothing (refused,
Asterisk away) gives its claim back (:func:`release`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from platforma_c2d.calls.model import iso, utcnow
from platforma_c2d.store.journal import metadata

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("token_name", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("call_id", sa.String(32), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("claimed_at", sa.String(32), nullable=False, index=True),
)


@dataclass(frozen=True)
class Claim:
    """The holder of a key: the call placed (or being placed) with it and its body's hash."""

    call_id: str
    request_hash: str


def claim(engine: sa.Engine, token_name: str, key: str, call_id: str, request_hash: str,
          since: datetime) -> Claim:
    """Claim ``key`` of ``token_name`` for ``call_id``; returns the key's holder.

    The holder is ``call_id`` itself when this claim won (no claim of the key
    since ``since``, the start of the idempotency window), else the claim that
    was there first. One transaction; atomic across processes through the
    table's primary key. Raises ``sqlalchemy.exc.SQLAlchemyError``.
    """
    now = iso(utcnow())
    ours = Claim(call_id, request_hash)
    where = (idempotency_keys.c.token_name == token_name, idempotency_keys.c.idempotency_key == key)
    for _ in range(3):
        try:
            with engine.begin() as conn:
                conn.execute(idempotency_keys.insert().values(
                    token_name=token_name, idempotency_key=key, call_id=call_id,
                    request_hash=request_hash, claimed_at=now))
            return ours
        except sa.exc.IntegrityError:
            pass
        with engine.begin() as conn:
            # Out of its window: the key is free again (one UPDATE wins).
            taken = conn.execute(idempotency_keys.update().where(*where, idempotency_keys.c.claimed_at < iso(since))
                                 .values(call_id=call_id, request_hash=request_hash, claimed_at=now)).rowcount
            if taken:
                return ours
            row = conn.execute(sa.select(idempotency_keys.c.call_id, idempotency_keys.c.request_hash)
                               .where(*where)).first()
        if row is not None:
            return Claim(row.call_id, row.request_hash)
        # Released between the INSERT and the SELECT: try again.
    raise sa.exc.OperationalError("claim of an Idempotency-Key", {}, Exception("the key kept changing hands"))


def holder(engine: sa.Engine, token_name: str, key: str) -> Claim | None:
    """The current claim of ``key`` of ``token_name``, or None. Raises ``sqlalchemy.exc.SQLAlchemyError``."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(idempotency_keys.c.call_id, idempotency_keys.c.request_hash)
                           .where(idempotency_keys.c.token_name == token_name,
                                  idempotency_keys.c.idempotency_key == key)).first()
    return Claim(row.call_id, row.request_hash) if row is not None else None


def release(engine: sa.Engine, token_name: str, key: str, call_id: str) -> None:
    """Give back the claim of ``key`` held for ``call_id`` (nothing was dialled with it).
    Raises ``sqlalchemy.exc.SQLAlchemyError``."""
    with engine.begin() as conn:
        conn.execute(idempotency_keys.delete().where(idempotency_keys.c.token_name == token_name,
                                                     idempotency_keys.c.idempotency_key == key,
                                                     idempotency_keys.c.call_id == call_id))


def purge(conn: sa.Connection, before: str) -> int:
    """Remove claims made before ``before`` (ISO 8601 UTC): out of every window. Returns how many."""
    return conn.execute(idempotency_keys.delete().where(idempotency_keys.c.claimed_at < before)).rowcount
