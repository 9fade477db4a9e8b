"""CLID pool policies and number health (SPEC §12), pure: many calls each."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from platforma_c2d.clid import health, policies
from platforma_c2d.clid.health import Tally

POOL = ["0215550101", "0215550102", "0115550103", "27315550104"]


def test_random_draws_every_number_about_equally_over_many_calls():
    rng = random.Random(12)
    drawn = Counter(policies.choose("random", POOL, rng=rng) for _ in range(8000))
    assert set(drawn) == set(POOL)
    for number in POOL:   # 2000 expected each; 5 standard deviations is about +-190
        assert 1800 <= drawn[number] <= 2200, drawn


def test_round_robin_walks_the_pool_in_order_and_wraps():
    drawn = [policies.choose("round_robin", POOL, turn=t) for t in range(1, 10)]
    assert drawn == POOL + POOL + POOL[:1]


def test_least_used_takes_the_number_with_fewest_calls_today_first_in_order_on_a_tie():
    usage = {"0215550101": 3, "0215550102": 1, "0115550103": 1}
    assert policies.choose("least_used", POOL, usage=usage) == "27315550104"   # 0 today
    usage["27315550104"] = 2
    assert policies.choose("least_used", POOL, usage=usage) == "0215550102"    # first of the 1s
    # Counting each draw, the numbers are used evenly.
    usage = {}
    for _ in range(40):
        n = policies.choose("least_used", POOL, usage=usage)
        usage[n] = usage.get(n, 0) + 1
    assert set(usage.values()) == {10}


def test_sticky_returns_the_remembered_number_while_it_is_in_the_pool():
    assert policies.choose("sticky", POOL, remembered="0115550103", turn=1,
                           fallback="round_robin") == "0115550103"
    # Rested or removed: the fallback chooses.
    assert policies.choose("sticky", POOL[:2], remembered="0115550103", turn=2,
                           fallback="round_robin") == "0215550102"
    assert policies.choose("sticky", POOL, remembered=None, turn=1,
                           fallback="round_robin") == POOL[0]


@pytest.mark.parametrize("callee,expected", [
    ("0215550999", ["0215550101", "0215550102"]),   # 021555 shared with two
    ("0115559999", ["0115550103"]),                 # 01155 with one
    ("27115559999", ["0115550103"]),                # 27 11... is 011... nationally
    ("0315550000", ["27315550104"]),                # 27 31... is 031...
    ("0415550000", []),                             # only the trunk prefix 0: no area
    ("0027215550000", []),                          # international: no area
])
def test_area_keeps_the_numbers_sharing_the_longest_prefix(callee, expected):
    assert policies.area_matches(callee, POOL) == expected


def test_area_draws_a_number_of_the_callee_area_then_the_fallback():
    for turn in range(1, 7):
        assert policies.choose("area", POOL, callee="0115551234", turn=turn,
                               fallback="round_robin") == "0115550103"
    among_two = [policies.choose("area", POOL, callee="0215551234", turn=t, fallback="round_robin")
                 for t in range(1, 5)]
    assert among_two == ["0215550101", "0215550102"] * 2
    # No number of the area: the fallback over the whole pool.
    assert [policies.choose("area", POOL, callee="0415550000", turn=t, fallback="round_robin")
            for t in range(1, 5)] == POOL


def test_no_number_or_an_unknown_policy_is_an_error():
    with pytest.raises(ValueError):
        policies.choose("random", [])
    with pytest.raises(ValueError):
        policies.choose("loudest", POOL)


# ---------------------------------------------------------------- health


def test_outcomes_that_count():
    assert health.outcome("completed", True) is True
    for reason in ("callee_no_answer", "callee_busy", "callee_unavailable", "rejected"):
        assert health.outcome(reason, False) is False
    for reason in ("cancelled", "agent_no_answer", "agent_busy", "failed"):
        assert health.outcome(reason, False) is None


def test_tally_keeps_the_newest_window():
    t = health.tally([False] * 5 + [True] * 100)
    assert t.calls == health.WINDOW and t.bad == 5 and t.answer_rate == 0.75
    assert health.tally([]).answer_rate is None


def test_a_number_far_worse_than_its_pool_is_rested():
    tallies = {"a": Tally(20, 16), "b": Tally(20, 4), "c": Tally(20, 5)}
    assert health.to_rest(tallies, set(), min_calls=10, margin=0.3) == ["a"]


def test_a_number_a_little_worse_or_with_few_calls_is_not_rested():
    assert health.to_rest({"a": Tally(20, 9), "b": Tally(20, 4)}, set(), min_calls=10, margin=0.3) == []
    assert health.to_rest({"a": Tally(9, 9), "b": Tally(20, 0)}, set(), min_calls=10, margin=0.3) == []
    # The rest of the pool has too few calls to compare with.
    assert health.to_rest({"a": Tally(20, 20), "b": Tally(5, 0)}, set(), min_calls=10, margin=0.3) == []


def test_the_last_number_left_to_draw_is_never_rested():
    tallies = {"a": Tally(20, 20), "b": Tally(20, 19), "c": Tally(20, 0)}
    assert health.to_rest(tallies, set(), min_calls=10, margin=0.3) == ["a", "b"]   # worst first
    assert health.to_rest(tallies, {"c"}, min_calls=10, margin=0.3) == ["a"]       # b stays
    assert health.to_rest({"a": Tally(20, 20), "c": Tally(20, 0)}, {"c"}, min_calls=10, margin=0.3) == []
