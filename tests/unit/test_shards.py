"""testbed/shards.py: how one pytest pass is shared out among shards."""

from __future__ import annotations

import pytest

from testbed.shards import assign, file_weight, parse_shard, pass_name


def test_every_file_lands_in_exactly_one_shard_and_the_loads_are_even():
    costs = {"a": 300, "b": 250, "c": 200, "d": 150, "e": 100, "f": 60, "g": 40}
    shards = assign(costs, 2)
    assert set().union(*shards) == set(costs) and sum(map(len, shards)) == len(costs)
    loads = sorted(sum(costs[p] for p in s) for s in shards)
    assert loads == [550, 550]


def test_the_assignment_depends_on_nothing_but_its_arguments():
    costs = {f"tests/integration/test_{i}.py": float(i % 5) for i in range(40)}
    assert assign(costs, 3) == assign(dict(reversed(list(costs.items()))), 3)


def test_more_shards_than_files_leaves_shards_empty():
    assert assign({"a": 1.0}, 3) == [{"a"}, set(), set()]


def test_a_file_without_a_measure_is_guessed_by_its_kind():
    weights = {"tests/integration/test_agi.py": 300}
    assert file_weight("tests/integration/test_agi.py", 36, weights) == 300
    assert file_weight("tests/unit/test_x.py", 100, weights) == pytest.approx(5.0)
    assert file_weight("tests/integration/test_new.py", 2, weights) == 16.0


@pytest.mark.parametrize("text", ["", "1", "0/2", "3/2", "a/b", "1/2/3"])
def test_a_bad_shard_is_refused_with_the_reason(text):
    with pytest.raises(ValueError, match="C2D_SHARD"):
        parse_shard(text)


def test_a_shard_is_k_of_n():
    assert parse_shard("2/4") == (2, 4)


def test_a_head_start_on_shard_1_gives_it_less_of_this_pass():
    costs = {"a": 100, "b": 100, "c": 100, "d": 100}
    shards = assign(costs, 2, head=200)
    assert (len(shards[0]), len(shards[1])) == (1, 3)


def test_the_weights_table_is_the_pass_the_bench_runs():
    assert pass_name({}) == "main"
    assert pass_name({"C2D_BENCH_STORE": "postgresql"}) == "postgresql"
    assert pass_name({"C2D_BENCH_CONFIGS": "admin", "C2D_BENCH_STORE": "postgresql"}) == "admin"
