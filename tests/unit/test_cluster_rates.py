"""Per-token request rates for the whole cluster (SPEC §11): the window's arithmetic,
and two instances sharing one budget in a real PostgreSQL store."""

from __future__ import annotations

import pytest

from platforma_c2d.calls.errors import RateLimited
from platforma_c2d.cluster.rates import StoreRateLimiter, rate_limiter, retry_after_s, window_estimate
from platforma_c2d.config import loads_config
from platforma_c2d.http.limits import RateLimiter
from platforma_c2d.store.journal import Journal


@pytest.mark.parametrize("previous, current, into, estimate", [
    (0, 0, 0, 0), (0, 5, 30, 5), (10, 0, 0, 10), (10, 0, 30, 5), (10, 2, 45, 4.5), (10, 0, 59.999, 0.0),
])
def test_the_window_counts_the_share_of_the_last_minute_still_inside_it(previous, current, into, estimate):
    assert window_estimate(previous, current, into) == pytest.approx(estimate, abs=0.01)


@pytest.mark.parametrize("previous, current, into, limit, retry", [
    (0, 5, 20, 5, 40),      # this minute full: until it ends
    (10, 0, 0, 5, 30),      # half of the last minute must leave the window
    (10, 2, 20, 5, 22),     # (1 - 3/10) * 60 - 20
    (10, 4, 59.5, 5, 1),    # at least one second
])
def test_retry_after_is_when_the_window_falls_below_the_limit(previous, current, into, limit, retry):
    assert retry_after_s(previous, current, into, limit) == retry
    later = into + retry
    if later < 60:
        assert window_estimate(previous, current, later) < limit + 1e-9


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def engine(postgres_server):
    journal = Journal(postgres_server.new_database("rates"))
    yield journal.engine
    journal.close()


def test_two_instances_share_one_budget_per_token_and_kind(engine):
    clock = Clock(6_000_000 * 60 + 10.0)      # 10 s into a minute
    one, two = (StoreRateLimiter(engine, 5, 3, clock=clock) for _ in range(2))
    for limiter in (one, two, one, two, one):
        limiter.hit("crm")
    with pytest.raises(RateLimited) as err:
        two.hit("crm")
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "50"
    assert err.value.details == {"kind": "write", "limit_per_minute": 5}
    one.hit("other-token")                     # another token: its own budget
    for limiter in (one, two, two):            # reads are counted apart
        limiter.hit("crm", write=False)
    with pytest.raises(RateLimited):
        one.hit("crm", write=False)
    # 40 s into the next minute a third of the last one is still inside the window:
    # 5 / 3 ≈ 1.67, so four more writes pass (5.67 would be over) and the fifth is refused.
    clock.t += 90
    for limiter in (one, two, one, two):
        limiter.hit("crm")
    with pytest.raises(RateLimited):
        two.hit("crm")


def test_a_cluster_counts_in_the_store_and_one_node_in_memory(engine):
    pg = '[store]\nurl = "postgresql+psycopg://c2d@/db"\n'
    cluster = loads_config(pg + '[cluster]\nnode = "a"\nrules = ["1*=a"]\n[limits]\nwrites_per_minute = 7\n')
    assert isinstance(rate_limiter(cluster, engine), StoreRateLimiter)
    assert rate_limiter(cluster, engine).limits == {True: 7, False: 1200}
    assert isinstance(rate_limiter(loads_config(""), engine), RateLimiter)
