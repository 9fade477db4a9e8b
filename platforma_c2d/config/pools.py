"""``[[clid.pools]]``: named CLID pools, their parsing and their checks (SPEC §12).

A pool is a list of CLID numbers, the callers that draw from it (token
names, agents) and how it chooses (``policy``). Pure: no I/O. The loader
(:mod:`platforma_c2d.config.loader`) calls :func:`parse_pools` for the
tables and :func:`pool_problems` once every section is read, so every
mistake is one line naming the pool and the key.

Who draws from which pool (:func:`agent_matches`, and
:class:`platforma_c2d.clid.pools.PoolMap`): a pool that lists the call's
agent (exactly, or by a prefix pattern ``"10*"``), else a pool that lists
the token the REST call came with, else — for ``outbound_id: random`` — the
pool that lists neither (at most one), or ``[clid] pool`` (the pool named
``default``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from platforma_c2d import rules

POLICIES = ("random", "round_robin", "least_used", "sticky", "area")
#: Policies that consult ``fallback`` (area: no prefix in common; sticky: a new callee).
NEEDS_FALLBACK = ("sticky", "area")
#: What a ``fallback`` may be: a policy that always chooses by itself.
FALLBACKS = ("random", "round_robin", "least_used")
#: The name of the pool made of ``[clid] pool``.
DEFAULT_POOL = "default"

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_PREFIX = re.compile(r"([0-9]{1,15})\*")
_KEYS = ("name", "numbers", "tokens", "agents", "policy", "fallback", "sticky_days", "rest_s",
         "health_min_calls", "health_margin")
_SHOW_MAX = 40


@dataclass(frozen=True)
class ClidPoolConfig:
    """One ``[[clid.pools]]`` table.

    Attributes:
        name: the pool's name (1-32 of ``A-Z a-z 0-9 _ . -``), unique.
        numbers: its CLID numbers, in the order round-robin walks them.
        tokens: names of ``[[auth.token]]`` tables whose REST calls draw here.
        agents: agents that draw here: an agent exactly (``"1001"``,
            ``"0821234567"``) or a prefix pattern (``"10*"``: every agent
            starting with 10).
        policy: one of :data:`POLICIES`.
        fallback: for ``sticky`` (a callee seen for the first time) and
            ``area`` (no number shares more than the trunk prefix with the
            callee): one of :data:`FALLBACKS`.
        sticky_days: days a callee keeps its number under ``sticky``.
        rest_s: seconds a number far worse than its pool is rested (0: never).
        health_min_calls: counted calls a number (and the rest of its pool)
            needs before it can be judged.
        health_margin: how much higher (0-1) a number's share of refused or
            unanswered calls must be than the rest of its pool's to be rested.
    """

    name: str
    numbers: tuple[str, ...]
    tokens: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    policy: str = "random"
    fallback: str = "random"
    sticky_days: int = 30
    rest_s: int = 3600
    health_min_calls: int = 10
    health_margin: float = 0.3

    @property
    def catch_all(self) -> bool:
        """Whether the pool lists neither tokens nor agents (``random`` of everyone else)."""
        return not self.tokens and not self.agents

    def as_dict(self) -> dict[str, Any]:
        """The table as plain JSON-able data (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def agent_matches(pattern: str, agent: str) -> bool:
    """Whether ``agent`` is drawn by the agent ``pattern`` of a pool: equal to
    it, or starting with its digits when it is a prefix pattern (``"10*"``)."""
    if pattern.endswith("*"):
        return agent.startswith(pattern[:-1])
    return agent == pattern


def is_agent_pattern(value: object) -> bool:
    """Whether ``value`` is an agent (SPEC §1) or a prefix pattern (digits then ``*``)."""
    return rules.is_agent(value) or (isinstance(value, str) and _PREFIX.fullmatch(value) is not None)


def _show(value: Any) -> str:
    text = ascii(value)
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."


def _strs(table: dict, key: str, at: str, problems: list[str]) -> tuple[str, ...] | None:
    value = table.get(key, [])
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        problems.append(f"{at}.{key}: must be a list of strings, got {_show(value)}")
        return None
    return tuple(value)


def _int(table: dict, key: str, at: str, low: int, high: int, default: int,
         problems: list[str]) -> int:
    value = table.get(key, default)
    if type(value) is not int or not low <= value <= high:
        problems.append(f"{at}.{key}: must be an integer from {low} to {high}, got {_show(value)}")
        return default
    return value


def _parse_one(table: Any, at: str, problems: list[str]) -> ClidPoolConfig | None:
    if not isinstance(table, dict):
        problems.append(f"{at}: must be a table with " + ", ".join(_KEYS))
        return None
    before = len(problems)
    for key in sorted(set(table) - set(_KEYS)):
        problems.append(f"{at}.{key}: unknown key (known: {', '.join(sorted(_KEYS))})")
    name = table.get("name")
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        problems.append(f"{at}.name: required, 1-32 letters, digits, _ . -, got {_show(name)}")
    numbers = _strs(table, "numbers", at, problems) or ()
    if "numbers" in table and not numbers and len(problems) == before:
        problems.append(f"{at}.numbers: empty; a pool needs at least one CLID number")
    elif "numbers" not in table:
        problems.append(f"{at}.numbers: required, a list of CLID numbers")
    for i, number in enumerate(numbers):
        if not rules.is_clid_number(number):
            problems.append(f"{at}.numbers[{i}]: must be a CLID number (0 + 9 digits, "
                            f"or 27 + 9 digits), got {_show(number)}")
        elif number in numbers[:i]:
            problems.append(f"{at}.numbers[{i}]: {number} is listed twice")
    tokens = _strs(table, "tokens", at, problems) or ()
    agents = _strs(table, "agents", at, problems) or ()
    for i, agent in enumerate(agents):
        if not is_agent_pattern(agent):
            problems.append(f"{at}.agents[{i}]: must be an agent ({rules.AGENT_FORMATS}) or a "
                            f"prefix of digits followed by * (\"10*\"), got {_show(agent)}")
    policy = table.get("policy", "random")
    if policy not in POLICIES:
        problems.append(f"{at}.policy: must be one of {', '.join(POLICIES)}, got {_show(policy)}")
    fallback = table.get("fallback", "random")
    if fallback not in FALLBACKS:
        problems.append(f"{at}.fallback: must be one of {', '.join(FALLBACKS)}, got {_show(fallback)}")
    elif "fallback" in table and policy in POLICIES and policy not in NEEDS_FALLBACK:
        problems.append(f"{at}.fallback: only used by the policies {' and '.join(NEEDS_FALLBACK)}, "
                        f"not by {policy}; remove it")
    sticky_days = _int(table, "sticky_days", at, 1, 3650, 30, problems)
    rest_s = _int(table, "rest_s", at, 0, 31_536_000, 3600, problems)
    min_calls = _int(table, "health_min_calls", at, 1, 100_000, 10, problems)
    margin = table.get("health_margin", 0.3)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin <= 1:
        problems.append(f"{at}.health_margin: must be a number above 0 and at most 1, got {_show(margin)}")
    if len(problems) != before:
        return None
    return ClidPoolConfig(name=name, numbers=numbers, tokens=tokens, agents=agents, policy=policy,
                          fallback=fallback, sticky_days=sticky_days, rest_s=rest_s,
                          health_min_calls=min_calls, health_margin=float(margin))


def parse_pools(tables: list[Any], where: str, problems: list[str]) -> tuple[ClidPoolConfig, ...] | None:
    """The ``[[clid.pools]]`` tables -> a tuple of :class:`ClidPoolConfig`.

    ``where``: the key for messages (``"clid.pools"``). Appends one line per
    problem to ``problems`` and returns ``None`` when there is any.
    """
    before = len(problems)
    pools = [_parse_one(t, f"{where}[{i}]", problems) for i, t in enumerate(tables)]
    return tuple(p for p in pools if p) if len(problems) == before else None


def _overlap(a: str, b: str) -> bool:
    """Whether two agent patterns can match one agent."""
    return agent_matches(a, b.rstrip("*")) or agent_matches(b, a.rstrip("*"))


def pool_problems(clid: dict[str, Any], token_names: list[str], token_agents: dict[str, tuple[str, ...]],
                  problems: list[str]) -> None:
    """Check the pools against each other and ``[clid]`` / ``[auth]`` (one line each).

    ``clid``: the parsed ``[clid]`` keys (``pools``, ``pool``, ``allowed``);
    ``token_names``: every configured token's name; ``token_agents``: name ->
    the agents that token is limited to (empty: any agent). Refused:
    duplicate names; ``default`` when ``[clid] pool`` is set; a number in two
    pools or outside ``[clid] allowed``; an unknown token; a token, or agent
    patterns that can match one agent, in two pools (which pool would
    ``random`` draw from?); two pools without tokens and agents, or one
    with ``[clid] pool`` also set; and holes: a token listed in no pool
    whose agents are not all drawn by agent patterns, when there is no pool
    for everyone else (its ``random`` would have no pool).
    """
    pools = clid.get("pools")
    if not pools:
        return
    allowed = clid.get("allowed") or ()
    legacy = tuple(clid.get("pool") or ())
    where = [f"clid.pools[{i}] ({p.name})" for i, p in enumerate(pools)]
    owner: dict[str, str] = {n: f"clid.pool ({DEFAULT_POOL})" for n in legacy}
    token_owner: dict[str, str] = {}
    agent_owner: list[tuple[str, str]] = []
    seen: set[str] = set()
    for pool, at in zip(pools, where):
        if pool.name in seen:
            problems.append(f"{at}.name: another pool has this name")
        seen.add(pool.name)
        if pool.name == DEFAULT_POOL and legacy:
            problems.append(f"{at}.name: '{DEFAULT_POOL}' is the pool of clid.pool; rename this pool "
                            "or move clid.pool's numbers into it")
        for number in pool.numbers:
            if allowed and number not in allowed:
                problems.append(f"{at}.numbers: {number} is not in clid.allowed")
            if number in owner:
                problems.append(f"{at}.numbers: {number} is also in {owner[number]}; a number belongs to one pool")
            owner.setdefault(number, at)
        for token in pool.tokens:
            if token not in token_names:
                problems.append(f"{at}.tokens: no [[auth.token]] is named {_show(token)}")
            if token in token_owner:
                problems.append(f"{at}.tokens: token {_show(token)} is also in {token_owner[token]}; "
                                "random would not know which pool to draw from")
            token_owner.setdefault(token, at)
        for pattern in pool.agents:
            for other, other_at in agent_owner:
                if other_at != at and _overlap(pattern, other):
                    problems.append(f"{at}.agents: {pattern} overlaps {other} of {other_at}; "
                                    "random would not know which pool to draw from")
        agent_owner.extend((pattern, at) for pattern in pool.agents)
    catch_all = [at for p, at in zip(pools, where) if p.catch_all]
    for extra in catch_all[1:]:
        problems.append(f"{extra}: a second pool without tokens and agents (the first is "
                        f"{catch_all[0]}); random would not know which pool to draw from")
    if catch_all and legacy:
        problems.append(f"{catch_all[0]}: lists no tokens and no agents, and clid.pool is set too; "
                        "give one pool for everyone else, not two")
    if catch_all or legacy:
        return
    patterns = [p for p, _ in agent_owner]
    for name in token_names:
        agents = token_agents.get(name, ())
        if name in token_owner or (agents and all(any(agent_matches(p, a) for p in patterns)
                                                  for a in agents)):
            continue
        problems.append(f"clid.pools: token {_show(name)} draws from no pool (its outbound_id "
                        "random would be refused); list it in a pool's tokens, or add a pool "
                        "without tokens and agents")
