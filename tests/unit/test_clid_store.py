"""CLID pools decided in the store (SPEC §12): which pool, each policy over many
calls, state kept across a restart, simultaneous draws, resting and recovering
a number, and what ``GET /click2dial/clids`` reports."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from platforma_c2d import rules
from platforma_c2d.calls.model import Call, Origin, Reason, State, new_call_id
from platforma_c2d.clid.picker import ClidPicker
from platforma_c2d.config import loads_config
from platforma_c2d.store.clids import HEALTH_EVERY_S, ClidStore
from platforma_c2d.store.journal import Journal

SALES = ["0215550101", "0215550102", "0215550103"]
SUPPORT = ["0115550201", "0115550202"]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

CONFIG = f"""
[clid]
default = "0115550000"
[[clid.pools]]
name = "sales"
numbers = {SALES!r}
agents = ["10*"]
policy = "round_robin"
[[clid.pools]]
name = "support"
numbers = {SUPPORT!r}
agents = ["2001"]
tokens = ["crm"]
policy = "least_used"
[[clid.pools]]
name = "others"
numbers = ["0315550301", "0315550302"]
[[auth.token]]
sha256 = "{'ab' * 32}"
name = "crm"
"""


class Clock:
    """A settable UTC clock."""

    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def journal(store_url):
    """The journal on SQLite, then on PostgreSQL."""
    j = Journal(store_url)
    yield j
    j.close()


@pytest.fixture
def clock():
    return Clock()


def picker_for(journal, clock, toml: str = CONFIG, seed: int = 3) -> ClidPicker:
    """A picker as ``serve`` builds one (a new one on the same store = a restart)."""
    cfg = loads_config(toml, env={})
    return ClidPicker(cfg.clid, ClidStore(journal.engine), rng=random.Random(seed), clock=clock)


def req(agent="1001", callee="0215559999", outbound_id="random") -> rules.CallRequest:
    return rules.validate_fields(agent=agent, callee=callee,
                                 outbound_id=None if outbound_id == "" else outbound_id, call_ref=None)


def journal_calls(journal, clock, clid: str, answered: int, bad: int) -> None:
    """Journal ended calls that presented ``clid``: ``answered`` completed, ``bad`` unanswered."""
    records = []
    for i in range(answered + bad):
        call = Call(id=new_call_id(), origin=Origin.REST, agent="1001", callee="0215559999",
                    outbound_id="random", clid=clid, call_ref="", created_at=clock())
        call.state = State.ENDED
        if i < answered:
            call.answered_at, call.reason = clock(), Reason.COMPLETED
        else:
            call.reason = Reason.CALLEE_NO_ANSWER
        call.ended_at = clock()
        records.append(journal.snapshot(call, "ended"))
    journal.write(records)   # one transaction


# ---------------------------------------------------------------- which pool


def test_each_caller_draws_from_its_own_pool(journal, clock):
    picker = picker_for(journal, clock)
    assert picker.choose(req(agent="1001")).clid in SALES            # prefix 10*
    assert picker.choose(req(agent="1099")).pool == "sales"
    assert picker.choose(req(agent="2001")).clid in SUPPORT          # exact agent
    assert picker.choose(req(agent="3001"), token="crm").pool == "support"   # token
    assert picker.choose(req(agent="3001")).pool == "others"         # pool for everyone else
    assert picker.choose(req(agent="1001"), token="crm").pool == "sales"     # agent before token


def test_no_outbound_id_draws_from_the_agents_pool_else_the_default(journal, clock):
    picker = picker_for(journal, clock)
    assert picker.choose(req(agent="1001", outbound_id="")).clid == SALES[0]
    assert picker.choose(req(agent="3001", outbound_id="")).clid == "0115550000"


def test_an_explicit_number_always_wins_and_counts_for_its_pool(journal, clock):
    picker = picker_for(journal, clock)
    choice = picker.choose(req(agent="1001", outbound_id="0115550201"))
    assert (choice.clid, choice.pool, choice.drawn) == ("0115550201", "support", False)
    assert picker.choose(req(outbound_id="0415550000")).clid == "0415550000"   # in no pool
    support = picker.report(clock())[1]["numbers"]
    assert [n["calls_today"] for n in support] == [1, 0]


def test_random_with_no_pool_for_the_caller_is_refused(journal, clock):
    picker = picker_for(journal, clock, CONFIG.replace('[[clid.pools]]\nname = "others"\n'
                                                       'numbers = ["0315550301", "0315550302"]\n', ""))
    with pytest.raises(rules.RuleError) as info:
        picker.choose(req(agent="3001"))
    assert info.value.field == "outbound_id"


def test_the_old_clid_pool_is_the_default_pool_drawn_at_random(journal, clock):
    picker = picker_for(journal, clock, '[clid]\npool = ["0115550001", "0115550002"]\n')
    drawn = Counter(picker.choose(req(agent="1001")).clid for _ in range(60))
    assert set(drawn) == {"0115550001", "0115550002"} and min(drawn.values()) > 15
    assert picker.report(clock())[0]["name"] == "default"


# ---------------------------------------------------------------- policies in the store


def test_round_robin_in_exact_order_and_on_after_a_restart(journal, clock):
    first = [picker_for(journal, clock).choose(req()).clid for _ in range(4)]
    again = picker_for(journal, clock)          # a restart: the position is in the store
    later = [again.choose(req()).clid for _ in range(5)]
    assert first + later == (SALES * 3)[:9]


def test_simultaneous_draws_never_break_round_robin_or_least_used(journal, clock):
    picker = picker_for(journal, clock)
    drawn: list[str] = []
    lock = threading.Lock()

    def work(agent: str) -> None:
        for _ in range(15):
            clid = picker.choose(req(agent=agent)).clid
            with lock:
                drawn.append(clid)

    threads = [threading.Thread(target=work, args=(a,)) for a in ("1001", "2001") * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = Counter(drawn)
    assert [counts[n] for n in SALES] == [20, 20, 20]       # 60 round-robin draws
    assert [counts[n] for n in SUPPORT] == [30, 30]         # 60 least-used draws


def test_least_used_counts_calls_today_across_a_restart_and_starts_again_each_day(journal, clock):
    picker = picker_for(journal, clock)
    picker.choose(req(agent="2001", outbound_id="0115550201"))   # an explicit call counts
    assert picker.choose(req(agent="2001")).clid == "0115550202"
    picker = picker_for(journal, clock)
    assert [picker.choose(req(agent="2001")).clid for _ in range(4)] == SUPPORT * 2
    clock.advance(86400)   # a new UTC day: nobody has been used yet
    picker.choose(req(agent="2001", outbound_id="0115550201"))
    assert picker.choose(req(agent="2001")).clid == "0115550202"


def test_a_returning_callee_sees_the_same_number_for_sticky_days(journal, clock):
    toml = CONFIG.replace('policy = "round_robin"', 'policy = "sticky"\nfallback = "round_robin"\n'
                                                     'sticky_days = 2')
    picker = picker_for(journal, clock, toml)
    callees = [f"02155590{i:02d}" for i in range(12)]
    first = {c: picker.choose(req(callee=c)).clid for c in callees}
    assert list(first.values()) == SALES * 4                 # new callees: the fallback
    picker = picker_for(journal, clock, toml)                # a restart keeps the memory
    for _ in range(3):
        for c in reversed(callees):
            assert picker.choose(req(callee=c)).clid == first[c]
    assert picker.choose(req(callee=callees[5])).clid == first[callees[5]]
    # Returning callees leave round-robin where it was: a new callee is the 13th turn.
    assert picker.choose(req(callee="0215558888")).clid == SALES[0]
    clock.advance(3 * 86400)                                 # longer than sticky_days
    assert picker.choose(req(callee=callees[0])).clid == SALES[1]     # forgotten: the 14th turn


def test_area_draws_the_number_of_the_callees_area(journal, clock):
    toml = CONFIG.replace('numbers = ["0315550301", "0315550302"]',
                          'numbers = ["0315550301", "0415550302", "27415550303"]\n'
                          'policy = "area"\nfallback = "round_robin"')
    picker = picker_for(journal, clock, toml)
    assert {picker.choose(req(agent="3001", callee="0315559999")).clid for _ in range(5)} == {"0315550301"}
    # Two numbers of area 041: round-robin between them (the pool's 6th to 9th draws).
    assert [picker.choose(req(agent="3001", callee="27415559999")).clid for _ in range(4)] == [
        "27415550303", "0415550302"] * 2


def test_a_draw_not_used_is_taken_back(journal, clock):
    picker = picker_for(journal, clock)
    choice = picker.choose(req(agent="2001"))
    picker.release(choice)
    assert [n["calls_today"] for n in picker.report(clock())[1]["numbers"]] == [0, 0]


# ---------------------------------------------------------------- health


def test_a_number_far_worse_than_its_pool_is_rested_then_recovers(journal, clock, caplog):
    toml = CONFIG.replace('policy = "round_robin"', 'policy = "random"\nrest_s = 600')
    picker = picker_for(journal, clock, toml)
    journal_calls(journal, clock, SALES[0], answered=2, bad=14)   # carriers refuse it
    journal_calls(journal, clock, SALES[1], answered=12, bad=4)
    journal_calls(journal, clock, SALES[2], answered=13, bad=3)
    clock.advance(HEALTH_EVERY_S)
    with caplog.at_level("WARNING", logger="platforma_c2d.clid"):
        drawn = Counter(picker.choose(req()).clid for _ in range(80))
    assert drawn[SALES[0]] == 0 and drawn[SALES[1]] > 20 and drawn[SALES[2]] > 20
    assert any(f"CLID {SALES[0]} of pool sales rested for 600 s" in r.getMessage() for r in caplog.records)
    sales = picker.report(clock())[0]
    assert sales["policy"] == "random" and sales["fallback"] is None
    rested = sales["numbers"][0]
    assert rested["rested_until"] == "2026-03-02T09:10:05.000Z"
    assert rested["recent_calls"] == 0 and rested["answer_rate"] is None   # counts again after the rest
    assert sales["numbers"][1]["answer_rate"] == 0.75 and sales["numbers"][1]["recent_calls"] == 16
    # Still usable explicitly while rested.
    assert picker.choose(req(outbound_id=SALES[0])).clid == SALES[0]

    clock.advance(600)   # the rest is over
    with caplog.at_level("INFO", logger="platforma_c2d.clid"):
        drawn = Counter(picker.choose(req()).clid for _ in range(80))
    assert drawn[SALES[0]] > 10
    assert any(f"CLID {SALES[0]} of pool sales is drawn again" in r.getMessage() for r in caplog.records)
    assert picker.report(clock())[0]["numbers"][0]["rested_until"] is None


def test_a_number_like_its_pool_is_never_rested(journal, clock):
    picker = picker_for(journal, clock)
    for number in SALES:
        journal_calls(journal, clock, number, answered=5, bad=15)   # a bad day for everyone
    clock.advance(HEALTH_EVERY_S)
    assert [picker.choose(req()).clid for _ in range(6)] == SALES * 2
    assert all(n["rested_until"] is None for n in picker.report(clock())[0]["numbers"])


def test_the_metrics_show_rested_numbers_and_calls_today(journal, clock):
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    cfg = loads_config(CONFIG.replace('policy = "round_robin"', 'rest_s = 60'), env={})
    picker = ClidPicker(cfg.clid, ClidStore(journal.engine), clock=clock, registry=registry)
    journal_calls(journal, clock, SALES[0], answered=0, bad=12)
    journal_calls(journal, clock, SALES[1], answered=12, bad=0)
    clock.advance(HEALTH_EVERY_S)
    picker.choose(req())
    text = generate_latest(registry).decode()
    assert f'c2d_clid_rested{{number="{SALES[0]}",pool="sales"}} 1.0' in text
    assert f'c2d_clid_rested{{number="{SALES[1]}",pool="sales"}} 0.0' in text
    assert 'c2d_clid_rests_total{pool="sales"} 1.0' in text
    assert 'c2d_clid_calls_today{number="0115550201",pool="support"} 0.0' in text
