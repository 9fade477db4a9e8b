"""``[cluster]``: this instance's node and name, and which node serves an agent (SPEC §11).

Empty ``node`` (the default) is one node with one service, as always. A
cluster needs a PostgreSQL store: every instance of every node shares it
(the journal, the commands between instances, the one-active-per-node
lock). The checks here run with the other cross-key checks of the loader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from platforma_c2d.config.checks import _in_range
from platforma_c2d.config.fields import option as _key   # a [cluster] key: the metadata of every section's keys

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
#: ``PATTERN=NODE``: a shell-style pattern of agents (``*``, ``?``, ``[0-9]``) and a node name.
RULE_RE = re.compile(r"([0-9*?!\[\]-]{1,32})=([A-Za-z0-9_.-]{1,32})")
AGENTS_BY = ("rules", "registration")
_NAME = "1-32 letters, digits, _ . -"




@dataclass(frozen=True)
class ClusterConfig:
    """``[cluster]``: ``node`` (this instance's node; "" = no cluster), ``instance``
    (this instance's name; "" = host name and process id), ``agents_by`` (how an
    agent's node is found: ``rules``, or ``registration``: the node where its
    endpoint is online, the rules when none), ``rules`` (``PATTERN=NODE``, the
    first match wins), ``command_timeout_s`` (seconds an instance waits for the node
    that owns a call to answer a command), ``lease_check_s`` (seconds between
    a standby's attempts to take its node's lock, and between the active
    instance's checks that it still holds it)."""

    node: str = _key("", "str", f"{_NAME}, or \"\" (no cluster)",
                     lambda v: v == "" or NAME_RE.fullmatch(v) is not None)
    instance: str = _key("", "str", f"{_NAME}, or \"\" (host name and process id)",
                         lambda v: v == "" or NAME_RE.fullmatch(v) is not None)
    agents_by: str = _key("rules", "str", " or ".join(f'"{a}"' for a in AGENTS_BY), lambda v: v in AGENTS_BY)
    rules: tuple[str, ...] = _key((), "strs", "a list of PATTERN=NODE",
                                  item_ok=lambda v: RULE_RE.fullmatch(v) is not None,
                                  item_desc="PATTERN=NODE (PATTERN: digits, * ? [0-9]; NODE: "
                                            f"{_NAME}), e.g. \"10*=a\"")
    command_timeout_s: float = _key(15.0, "float", "a positive number (seconds, at most 300)",
                                    _in_range(0, 300))
    lease_check_s: float = _key(1.0, "float", "a positive number (seconds, at most 30)",
                                _in_range(0, 30))

    @property
    def enabled(self) -> bool:
        """Whether this instance is part of a cluster (``node`` is set)."""
        return bool(self.node)

    def parsed_rules(self) -> tuple[tuple[str, str], ...]:
        """``rules`` as (pattern, node) pairs, in order."""
        return tuple(tuple(rule.split("=", 1)) for rule in self.rules)  # type: ignore[misc]


def cluster_problems(values: dict[str, dict[str, Any]], problems: list[str]) -> None:
    """Rules between ``[cluster]`` and the other sections, appended to ``problems``
    (one line each): a cluster needs a PostgreSQL store; ``rules`` and
    ``instance`` and ``agents_by`` need a ``node``; ``agents_by = "rules"`` needs rules."""
    cluster = values.get("cluster", {})
    node, rules = cluster.get("node"), cluster.get("rules")
    if node is None or rules is None:
        return      # already refused
    if not node:
        if rules or cluster.get("instance") or cluster.get("agents_by", "rules") != "rules":
            problems.append("cluster.node: required when [cluster] rules, instance or agents_by are set "
                            "(the name of this instance's node)")
        return
    url = values.get("store", {}).get("url")
    if isinstance(url, str) and not url.lower().startswith("postgresql"):
        problems.append(f"cluster.node: a cluster needs a PostgreSQL store, not {url.split(':', 1)[0]} "
                        "([store] url = \"postgresql+psycopg://user:password@host/db\"); "
                        "SQLite serves one node only")
    if cluster.get("agents_by") == "rules" and not rules:
        problems.append('cluster.rules: required with agents_by = "rules" (which node serves which '
                        'agents), e.g. ["10*=a", "20*=b"]')
