"""A token's name is what the store keeps its calls, events, Idempotency-Keys and
rates under (SPEC §7: every key has a default or a clear start-up error): a name
the config accepts is one every store can hold, checked against a real PostgreSQL,
which refuses a value wider than its column where SQLite stores anything."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from platforma_c2d.cluster.rates import rates
from platforma_c2d.config import ConfigError, loads_config
from platforma_c2d.config.loader import TOKEN_NAME_MAX
from platforma_c2d.store import idempotency, outbox
from platforma_c2d.store.journal import Journal, calls


def _config(name: str):
    digest = hashlib.sha256(b"crm-token").hexdigest()
    return loads_config(f'[[auth.token]]\nsha256 = "{digest}"\nname = "{name}"\n', env={})


def test_a_token_name_longer_than_the_store_holds_is_a_start_up_error():
    assert _config("c" * TOKEN_NAME_MAX).auth.tokens[0].name == "c" * TOKEN_NAME_MAX
    with pytest.raises(ConfigError, match=rf"auth.token\[0\].name: .*at most {TOKEN_NAME_MAX}"):
        _config("c" * (TOKEN_NAME_MAX + 1))


def test_every_column_keyed_by_token_name_holds_the_longest_name():
    for table in (calls, outbox.events, idempotency.idempotency_keys, rates):
        column = table.c.token_name if "token_name" in table.c else table.c.name
        assert column.type.length >= TOKEN_NAME_MAX, table.name


def test_postgresql_journals_a_call_of_the_longest_token_name(postgres_server):
    journal = Journal(postgres_server.new_database("tokennames"))
    try:
        row = {"id": "a" * 32, "origin": "rest", "agent": "1001", "callee": "0215550100",
               "outbound_id": "random", "clid": "0115550001", "call_ref": "", "state": "ended",
               "created_at": "2026-12-07T10:00:00.000Z", "duration_s": 0.0}
        with journal.engine.begin() as conn:
            conn.execute(calls.insert().values(**row, token_name="c" * TOKEN_NAME_MAX))
            with pytest.raises(sa.exc.DataError):     # one wider: what the start-up check prevents
                with conn.begin_nested():
                    conn.execute(calls.insert().values(**{**row, "id": "b" * 32},
                                                       token_name="c" * (TOKEN_NAME_MAX + 1)))
    finally:
        journal.close()
