"""``[[clid.pools]]`` in the config (SPEC §12): accepted tables, and one clear
line for each overlap or hole that would make ``random`` ambiguous."""

from __future__ import annotations

import pytest

from platforma_c2d.config import ConfigError, loads_config

TOKENS = f"""
[[auth.token]]
sha256 = "{'ab' * 32}"
name = "crm"
[[auth.token]]
sha256 = "{'cd' * 32}"
name = "dialer"
agents = ["1001", "1002"]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loads_config(text, env={})
    return info.value.problems


def pool(name: str, numbers: list[str], **keys) -> str:
    lines = [f'[[clid.pools]]\nname = "{name}"\nnumbers = {numbers!r}']
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def test_pools_load_with_their_keys_and_defaults():
    cfg = loads_config("[clid]\n" + pool("sales", ["0215550101"], agents=["10*"], policy="area",
                                         fallback="least_used", rest_s=0)
                       + pool("rest", ["0215550102"]) + TOKENS, env={})
    sales, rest = cfg.clid.pools
    assert (sales.name, sales.agents, sales.policy, sales.fallback, sales.rest_s) == (
        "sales", ("10*",), "area", "least_used", 0)
    assert (rest.policy, rest.fallback, rest.sticky_days, rest.rest_s) == ("random", "random", 30, 3600)
    assert cfg.clid.pool == ()   # with pools, [clid] pool is empty unless written
    assert cfg.redacted()["clid"]["pools"][0]["agents"] == ["10*"]


def test_pools_from_the_environment_as_json():
    env = {"PLATFORMA_C2D_CLID_POOLS": '[{"name": "all", "numbers": ["0215550101"], "policy": "round_robin"}]'}
    assert loads_config("", env=env).clid.pools[0].policy == "round_robin"


@pytest.mark.parametrize("table,expected", [
    (pool("a b", ["0215550101"]), "clid.pools[0].name: required, 1-32 letters"),
    (pool("a", []), "clid.pools[0].numbers: empty"),
    (pool("a", ["215550101"]), "clid.pools[0].numbers[0]: must be a CLID number"),
    (pool("a", ["0215550101", "0215550101"]), "clid.pools[0].numbers[1]: 0215550101 is listed twice"),
    (pool("a", ["0215550101"], agents=["1*0"]), "clid.pools[0].agents[0]: must be an agent"),
    (pool("a", ["0215550101"], policy="loudest"), "clid.pools[0].policy: must be one of random, "
                                                  "round_robin, least_used, sticky, area"),
    (pool("a", ["0215550101"], policy="area", fallback="sticky"), "clid.pools[0].fallback: must be one of"),
    (pool("a", ["0215550101"], fallback="round_robin"), "clid.pools[0].fallback: only used by the "
                                                        "policies sticky and area"),
    (pool("a", ["0215550101"], rest_s=-1), "clid.pools[0].rest_s: must be an integer from 0"),
    (pool("a", ["0215550101"], health_margin=2), "clid.pools[0].health_margin: must be a number"),
    (pool("a", ["0215550101"], colour="red"), "clid.pools[0].colour: unknown key"),
])
def test_a_bad_table_is_one_line_naming_it(table, expected):
    found = problems("[clid]\n" + table + TOKENS)
    assert len(found) == 1 and found[0].startswith(expected), found


#: A pool for everyone else: no hole besides the overlap under test.
Z = pool("z", ["0215550199"])


@pytest.mark.parametrize("tables,expected", [
    (pool("a", ["0215550101"], agents=["1001"]) + pool("b", ["0215550102"], agents=["1001"]) + Z,
     "clid.pools[1] (b).agents: 1001 overlaps 1001 of clid.pools[0] (a); random would not know"),
    (pool("a", ["0215550101"], agents=["10*"]) + pool("b", ["0215550102"], agents=["1002"]) + Z,
     "clid.pools[1] (b).agents: 1002 overlaps 10* of clid.pools[0] (a)"),
    (pool("a", ["0215550101"], agents=["1*"]) + pool("b", ["0215550102"], agents=["10*"]) + Z,
     "clid.pools[1] (b).agents: 10* overlaps 1* of clid.pools[0] (a)"),
    (pool("a", ["0215550101"], tokens=["crm"]) + pool("b", ["0215550102"], tokens=["crm"]) + Z,
     "clid.pools[1] (b).tokens: token 'crm' is also in clid.pools[0] (a)"),
    (pool("a", ["0215550101"]) + pool("b", ["0215550102"]),
     "clid.pools[1] (b): a second pool without tokens and agents"),
    (pool("a", ["0215550101"]) + pool("b", ["0215550101"], agents=["1001"]),
     "clid.pools[1] (b).numbers: 0215550101 is also in clid.pools[0] (a); a number belongs to one pool"),
    (pool("a", ["0215550101"]) + pool("a", ["0215550102"], agents=["1001"]),
     "clid.pools[1] (a).name: another pool has this name"),
    (pool("a", ["0215550101"], tokens=["crn"]) + pool("b", ["0215550102"]),
     "clid.pools[0] (a).tokens: no [[auth.token]] is named 'crn'"),
])
def test_overlaps_are_refused_one_line_each(tables, expected):
    found = problems("[clid]\n" + tables + TOKENS)
    assert found == [expected] or (len(found) == 1 and found[0].startswith(expected)), found


def test_a_token_whose_random_finds_no_pool_is_a_hole():
    found = problems("[clid]\n" + pool("a", ["0215550101"], agents=["2*"]) + TOKENS)
    assert found == [
        "clid.pools: token 'crm' draws from no pool (its outbound_id random would be refused); "
        "list it in a pool's tokens, or add a pool without tokens and agents",
        "clid.pools: token 'dialer' draws from no pool (its outbound_id random would be refused); "
        "list it in a pool's tokens, or add a pool without tokens and agents"]
    # A token whose agents are all in agent pools has no hole; a pool for everyone else fills all.
    ok = "[clid]\n" + pool("a", ["0215550101"], agents=["100*"], tokens=["crm"]) + TOKENS
    assert loads_config(ok, env={}).clid.pools[0].name == "a"
    loads_config("[clid]\n" + pool("a", ["0215550101"], agents=["2*"]) + pool("b", ["0215550102"]) + TOKENS,
                 env={})


def test_the_old_pool_and_a_pool_for_everyone_else_are_two_defaults():
    found = problems('[clid]\npool = ["0215550109"]\n' + pool("b", ["0215550102"]) + TOKENS)
    assert found == ["clid.pools[0] (b): lists no tokens and no agents, and clid.pool is set too; "
                     "give one pool for everyone else, not two"]
    found = problems('[clid]\npool = ["0215550109"]\n' + pool("default", ["0215550102"], tokens=["crm"])
                     + TOKENS)
    assert found[0].startswith("clid.pools[0] (default).name: 'default' is the pool of clid.pool")


def test_pool_numbers_must_be_allowed():
    found = problems('[clid]\nallowed = ["0115550000", "0215550101"]\n'
                     + pool("a", ["0215550101", "0215550102"]) + TOKENS)
    assert found == ["clid.pools[0] (a).numbers: 0215550102 is not in clid.allowed"]


def test_the_example_of_the_configuration_guide_loads():
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    example = guide.split("Example: two teams", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = loads_config(example.replace("<64 hex characters>", "ab" * 32), env={})
    assert [(p.name, p.policy) for p in cfg.clid.pools] == [
        ("sales", "sticky"), ("collections", "least_used"), ("national", "area")]
