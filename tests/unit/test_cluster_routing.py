"""[cluster] rules and lock keys: the pure parts of the cluster (SPEC §11)."""

import pytest

from platforma_c2d.cluster.routing import DELIVERY_LOCK, LOCK_CLASS, node_for_agent, node_lock_key
from platforma_c2d.config import ConfigError, loads_config

RULES = (("10??", "a"), ("1[5-9]*", "b"), ("*", "c"))


@pytest.mark.parametrize("agent, node", [
    ("1001", "a"), ("1099", "a"), ("10011", "c"), ("1501", "b"), ("1999", "b"),
    ("1401", "c"), ("0215550100", "c"),
])
def test_the_first_rule_matching_the_whole_agent_names_its_node(agent, node):
    assert node_for_agent(agent, RULES) == node


def test_an_agent_no_rule_matches_has_no_node():
    assert node_for_agent("2001", (("10*", "a"),)) is None


def test_lock_keys_are_stable_distinct_and_fit_int4():
    keys = {node_lock_key(n) for n in ("a", "b", "node-a", "node-b", "x" * 32)}
    assert len(keys) == 5
    for cls, obj in keys:
        assert cls == LOCK_CLASS and -2**31 <= obj < 2**31 and obj != DELIVERY_LOCK
    assert node_lock_key("a") == node_lock_key("a") == (LOCK_CLASS, -390611389)


PG = '\n[store]\nurl = "postgresql+psycopg://c2d:pw@db.example/c2d"\n'


def test_with_agents_by_registration_the_rules_are_a_fallback_and_may_be_empty():
    cfg = loads_config('[cluster]\nnode = "a"\nagents_by = "registration"' + PG).cluster
    assert cfg.agents_by == "registration" and cfg.rules == ()


def test_cluster_config_parses_rules_in_order():
    cfg = loads_config('[cluster]\nnode = "a"\ninstance = "a1"\nrules = ["10*=a", "2*=b"]' + PG).cluster
    assert cfg.enabled and cfg.instance == "a1"
    assert cfg.parsed_rules() == (("10*", "a"), ("2*", "b"))
    assert not loads_config("").cluster.enabled


@pytest.mark.parametrize("text, problem", [
    ('[cluster]\nnode = "a"\nrules = ["10*=a"]',
     "cluster.node: a cluster needs a PostgreSQL store, not sqlite"),
    ('[cluster]\nrules = ["10*=a"]' + PG, "cluster.node: required when [cluster] rules, instance or agents_by"),
    ('[cluster]\nagents_by = "registration"' + PG, "cluster.node: required when [cluster] rules, instance or"),
    ('[cluster]\nnode = "a"' + PG, 'cluster.rules: required with agents_by = "rules"'),
    ('[cluster]\nnode = "a"\nrules = ["x=a"]' + PG, "cluster.rules[0]: must be PATTERN=NODE"),
    ('[cluster]\nnode = "a b"\nrules = ["1*=a"]' + PG, "cluster.node: must be 1-32 letters"),
    ('[cluster]\nnode = "a"\nrules = ["1*=a"]\nagents_by = "dns"' + PG, "cluster.agents_by: must be"),
])
def test_a_bad_cluster_config_is_refused_with_one_clear_line(text, problem):
    with pytest.raises(ConfigError) as err:
        loads_config(text)
    assert problem in str(err.value)
    assert len(err.value.problems) == 1
