"""Idempotency-Keys claimed in the store (SPEC §2, §11), on SQLite and on a real
PostgreSQL: of many placements with one key at the same moment, from several
instances (each its own engine), exactly one wins; the others see its claim."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import sqlalchemy as sa

from platforma_c2d.calls.model import new_call_id, utcnow
from platforma_c2d.store import idempotency
from platforma_c2d.store.journal import Journal


def test_of_many_claims_of_one_key_at_once_from_two_instances_exactly_one_wins(store_url):
    instances = [Journal(store_url), Journal(store_url)]
    since = utcnow() - timedelta(days=1)
    tries = [(instances[i % 2].engine, new_call_id(), f"body-{i % 3}") for i in range(8)]
    barrier = threading.Barrier(len(tries))

    def claim(engine, call_id, body_hash):
        barrier.wait()
        return idempotency.claim(engine, "crm", "order-42", call_id, body_hash, since)

    with ThreadPoolExecutor(len(tries)) as pool:
        held = list(pool.map(lambda t: claim(*t), tries))
    winners = [t for t, h in zip(tries, held) if h.call_id == t[1]]
    assert len(winners) == 1
    assert set(held) == {idempotency.Claim(winners[0][1], winners[0][2])}
    assert idempotency.holder(instances[1].engine, "crm", "order-42") == held[0]
    # Another token's key of the same text is its own.
    assert idempotency.claim(instances[0].engine, "other", "order-42", "d" * 32, "x", since).call_id == "d" * 32
    for journal in instances:
        journal.close()


def test_a_claim_given_back_or_out_of_its_window_is_taken_by_the_next_placement(store_url):
    journal = Journal(store_url)
    engine, now = journal.engine, utcnow()
    assert idempotency.claim(engine, "crm", "k", "a" * 32, "h1", now - timedelta(days=1)).call_id == "a" * 32
    idempotency.release(engine, "crm", "k", "b" * 32)                # not its holder: kept
    assert idempotency.holder(engine, "crm", "k").call_id == "a" * 32
    idempotency.release(engine, "crm", "k", "a" * 32)                # nothing dialled: given back
    assert idempotency.holder(engine, "crm", "k") is None
    assert idempotency.claim(engine, "crm", "k", "c" * 32, "h2", now - timedelta(days=1)).call_id == "c" * 32
    # Its window passed (claimed before ``since``): the key is free for a new call.
    later = now + timedelta(seconds=5)
    assert idempotency.claim(engine, "crm", "k", "e" * 32, "h3", later) == idempotency.Claim("e" * 32, "h3")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(idempotency.idempotency_keys)).scalar() == 1
    journal.close()
