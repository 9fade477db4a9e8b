"""Which pool a caller draws from (SPEC §12). Pure, no I/O.

The order, the same for REST, WebRTC and FastAGI calls:

1. the pool that lists the agent exactly (``"1001"``);
2. the pool that lists a prefix pattern the agent starts with (``"10*"``;
   the longest pattern wins, and the config check refuses two pools whose
   patterns can match one agent);
3. the pool that lists the token of a REST call;
4. for ``outbound_id: random`` only: the pool that lists neither tokens
   nor agents, or ``[clid] pool`` (the pool named ``default``).

A call without an outbound ID (a WebRTC or FastAGI call with no header)
draws from the pool of steps 1-3 when there is one, else presents
``[clid] default``.
"""

from __future__ import annotations

from platforma_c2d.config import ClidConfig
from platforma_c2d.config.pools import DEFAULT_POOL, ClidPoolConfig, agent_matches


def all_pools(clid: ClidConfig) -> tuple[ClidPoolConfig, ...]:
    """Every pool of ``[clid]``: ``[clid] pool`` as ``default`` (policy
    ``random``) when it is not empty, then the ``[[clid.pools]]`` tables."""
    legacy = (ClidPoolConfig(name=DEFAULT_POOL, numbers=clid.pool),) if clid.pool else ()
    return legacy + tuple(clid.pools)


class PoolMap:
    """The pools of one configuration and the caller -> pool rule above.

    ``clid``: ``[clid]``. ``pools``: every pool (:func:`all_pools`).
    """

    def __init__(self, clid: ClidConfig):
        self.pools = all_pools(clid)
        self._catch_all = next((p for p in self.pools if p.catch_all), None)

    def for_caller(self, agent: str, token: str = "", *, random: bool = True) -> ClidPoolConfig | None:
        """The pool a call of ``agent`` (through token ``token``; ``""`` when
        none) draws from; ``random``: the call asked for ``random`` (else it
        gave no outbound ID, and only steps 1-3 apply). None: no pool."""
        best, best_len = None, -1
        for pool in self.pools:
            for pattern in pool.agents:
                if agent_matches(pattern, agent):
                    exact = not pattern.endswith("*")
                    length = 1000 if exact else len(pattern)
                    if length > best_len:
                        best, best_len = pool, length
        if best is not None:
            return best
        if token:
            for pool in self.pools:
                if token in pool.tokens:
                    return pool
        return self._catch_all if random else None

    def by_number(self, number: str) -> ClidPoolConfig | None:
        """The pool that holds ``number`` (a number belongs to one pool), or None."""
        for pool in self.pools:
            if number in pool.numbers:
                return pool
        return None

    def by_name(self, name: str) -> ClidPoolConfig | None:
        """The pool named ``name``, or None."""
        return next((p for p in self.pools if p.name == name), None)
